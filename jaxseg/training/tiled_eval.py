"""Evaluation one example at a time, as prediction sees photos (`jaxseg.inference.logits`): sliding windows,
test-time scales and flips, or examples rescaled to fit `data.scale` keeping their aspect ratio.

Every example is read at its own size; its logit maps are summed while upsampled to its labels' size, a band
of rows at a time, and only the class ids are compared with the labels, so memory does not grow with the
image. Every process walks the same examples in the same order (the windows of one example are one batch
split over all devices), so the confusion matrix comes out the same everywhere. The loss is not computed
(NaN): it belongs to the model's input size, which windows and scales change.
"""

from typing import Any

import numpy as np

from jaxseg.data import geometry, splits
from jaxseg.data.sources import SOURCES
from jaxseg.errors import DatasetError
from jaxseg.inference import logits as inference
from jaxseg.training import metrics
from jaxseg.training.state import TrainState, bn_debias_momentum, inference_variables


def confusion(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
  """(C, C) counts of (label, prediction) over the pixels whose label is a class (IGNORE left out)."""
  valid = labels < num_classes
  pairs = labels[valid].astype(np.int64) * num_classes + predicted[valid]
  return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def evaluate(run, state: TrainState, split: str) -> dict[str, Any]:
  """Metrics of `state` on `split` of the run's dataset, example by example (`config.eval` and `data.scale`).

  Args:
    run: the `Run` (config, model, mesh).
    state: the train state to evaluate.
    split: the split's name.

  Raises:
    DatasetError: a bad example (unless `data.skip_bad`: then it is left out and counted).
  """
  config = run.config
  c, batch_size = config.num_classes, config.eval_batch_size
  run_model = run.logits_fn(inference_variables(state, bn_debias_momentum(config)))
  listing = SOURCES[config.data.source](config, split)
  problems = list(listing.problems)
  limit = splits.example_limit(config, split)
  total = np.zeros((c, c), np.int64)
  for k, (_, load) in enumerate(listing.examples):
    if limit and k >= limit:
      break
    try:
      image, label = load()
    except DatasetError as e:
      problems.append(str(e))
      continue
    maps = inference.logit_maps(image, config, run_model, geometry.stored_size(config), batch_size)
    total += confusion(label, inference.maps_to_mask(maps, label.shape), c)
  splits.report_problems(problems, splits.describe(config, split), config.data.skip_bad)
  return metrics.summarize({"loss_sum": np.nan, "weight_sum": 1.0, "confusion": total}, run.classes.names)
