"""Keras-style parameter counts and model summary: block, output shape, parameter count, and the totals."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.models import aux_head
from jaxseg.models.base import SegmentationModel


def _size(tree: Any) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def _shape(s) -> str:
  return "(None, " + ", ".join(str(d) for d in s[1:]) + ")"


def count_params(variables: dict[str, Any], freeze_encoder: bool = True) -> dict[str, int]:
  """Keras-style counts: trainable = decoder params (+ encoder params when not frozen); non-trainable = the
  frozen encoder and all BatchNorm statistics.

  Args:
    variables: `{"params", "batch_stats"}` of a model (arrays or shape structs).
    freeze_encoder: count the encoder's params as non-trainable.

  Returns:
    {"total", "trainable", "non_trainable", "encoder", "decoder_bn_stats"}.
  """
  params, stats = variables["params"], variables.get("batch_stats", {})
  encoder = _size(params.get("encoder", {})) + _size(stats.get("encoder", {}))
  decoder_stats = _size({k: v for k, v in stats.items() if k != "encoder"})
  trainable = _size({k: v for k, v in params.items() if k != "encoder"})
  total = encoder + decoder_stats + trainable
  if not freeze_encoder:
    trainable += _size(params.get("encoder", {}))
  return {"total": total, "trainable": trainable, "non_trainable": total - trainable, "encoder": encoder,
          "decoder_bn_stats": decoder_stats}


def summary_rows(model: SegmentationModel, image_size: int | tuple[int, int],
                 freeze_encoder: bool = True) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
  """Rows of (block, output shapes, params) for `model` at `image_size` (square, or (height, width)), and
  `count_params`. The blocks are the model's own (`SegmentationModel.summary_rows`).

  Shapes come from `jax.eval_shape`, so nothing is computed or compiled.
  """
  h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
  images = jnp.zeros((1, h, w, 3), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), images))
  _, state = jax.eval_shape(lambda v: model.apply(v, images, capture_intermediates=True,
                                                  mutable=["intermediates"]), variables)
  size = lambda name: _size(variables["params"].get(name, {})) + _size(variables["batch_stats"].get(name, {}))
  rows = [("input (InputLayer)", _shape(images.shape), 0)]
  for name, shapes, params in model.summary_rows(variables, state["intermediates"], size):
    rows.append((name, " ".join(_shape(s) for s in shapes), params))
  if aux_head.MODULE in variables["params"]:  # `SegmentationModel.auxiliary`
    out = state["intermediates"][aux_head.MODULE]["__call__"][0].shape
    stride = min(model.aux_stride, model.encoder_output_stride())  # a dilated encoder's deeper maps stay there
    rows.append((f"aux_head (training only: stride {stride}, 3x3 ConvBN, 1x1, bilinear)", _shape(out),
                 size(aux_head.MODULE)))
  return rows, count_params(variables, freeze_encoder)


def format_summary(model: SegmentationModel, image_size: int | tuple[int, int], freeze_encoder: bool = True) -> str:
  """The summary as text, ending with the Total / Trainable / Non-trainable lines Keras prints."""
  rows, counts = summary_rows(model, image_size, freeze_encoder)
  w0 = max(len(r[0]) for r in rows) + 2
  w1 = max(len(r[1].split(" ")[0]) for r in rows) + 22
  lines = [f"Model: {type(model).__name__} (num_classes={model.num_classes}, "
           f"dtype={jnp.dtype(model.spec.dtype).name})",
           "=" * (w0 + w1 + 12), f"{'Layer (block)':<{w0}}{'Output Shape':<{w1}}{'Param #':>12}",
           "=" * (w0 + w1 + 12)]
  for name, shape, params in rows:
    parts = shape.split(" (")
    shapes = [parts[0]] + ["(" + p for p in parts[1:]]
    lines.append(f"{name:<{w0}}{shapes[0]:<{w1}}{params:>12,}")
    lines.extend(f"{'':<{w0}}{s:<{w1}}" for s in shapes[1:])
  lines += ["=" * (w0 + w1 + 12),
            f"Total params: {counts['total']:,}",
            f"Trainable params: {counts['trainable']:,}",
            f"Non-trainable params: {counts['non_trainable']:,}"]
  return "\n".join(lines)
