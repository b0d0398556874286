"""Batches of a preprocessed split: shuffled training batches and padded evaluation batches.

Multi-host: every host yields only its own rows of each global batch; `parallel.to_global` assembles them.
"""

from collections.abc import Iterator

import jax
import numpy as np

from jaxseg.data.labels import label_canvas
from jaxseg.data.splits import Split


def host_slice(batch_size: int) -> slice:
  """This host's rows of a global batch."""
  per_host = batch_size // jax.process_count()
  return slice(jax.process_index() * per_host, (jax.process_index() + 1) * per_host)


def steps_per_epoch(split: Split, batch_size: int) -> int:
  """Full batches per epoch (the remainder is dropped)."""
  return len(split) // batch_size


def train_batches(split: Split, batch_size: int, seed: int, epoch: int,
                  start: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Shuffled full batches ({"image", "mask"}), this host's share of each global batch, from batch `start`.

  The order depends only on (seed, epoch), so a run resumed at epoch k, batch b sees the batches an
  uninterrupted run would.
  """
  order = np.random.default_rng([seed, epoch]).permutation(len(split))
  rows = host_slice(batch_size)
  for i in range(start, steps_per_epoch(split, batch_size)):
    # The global batch in one order however many processes share it (augmentation is keyed by position).
    idx = np.sort(order[i * batch_size:(i + 1) * batch_size])[rows]
    yield {"image": split.images[idx], "mask": split.masks[idx]}


def eval_batches(split: Split, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Every example exactly once, in order; the last batch is padded and its `weight` is 0 on padding.

  Splits that keep their original labels also give `label_size` and `label`: the batch's originals at the
  top left of a canvas whose sides are the batch's largest rounded up (`labels.label_canvas`)
  (IGNORE around them), so that few canvas shapes occur and no split-wide canvas is ever held.
  """
  rows = host_slice(batch_size)
  for start in range(0, len(split), batch_size):
    idx = np.arange(start, start + batch_size)
    weight = (idx < len(split)).astype(np.float32)
    idx = np.minimum(idx, len(split) - 1)
    batch = {"image": split.images[idx[rows]], "mask": split.masks[idx[rows]], "weight": weight[rows]}
    if split.labels is not None:
      largest = split.label_sizes[idx].max(0)  # the global batch's: every host builds the same canvas shape
      batch["label"] = label_canvas([split.labels[i] for i in idx[rows]], largest)
      batch["label_size"] = split.label_sizes[idx[rows]]
    yield batch
