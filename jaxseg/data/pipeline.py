"""One interface over the two input pipelines, chosen by `data.pipeline`.

- "memory": every example decoded, resized to the stored size and held (`splits`, `batching`); fastest for
  small datasets trained for many epochs (decoding is paid once).
- "stream": examples read and prepared by Grain worker processes as training consumes them (`streaming`);
  memory bounded by workers x prefetch x batch, the first step seconds after the listing, at any size.
- "auto": memory for synthetic data, tfds and folder splits whose stored arrays take at most
  `AUTO_MEMORY_BYTES`; stream otherwise, and always with `data.scale` (examples of their own sizes).

Both give the same batches for the same config and seed (the order depends only on (seed, epoch)), and
yield each training batch with the state to resume after it.
"""

from collections.abc import Iterator
from typing import Any

import jax
import ml_collections
import numpy as np

from jaxseg.data import batching, geometry, random_access, resize_crop, splits, streaming
from jaxseg.data.images import resize_pair
from jaxseg.data.labels import frequency_terms, label_canvas, median_frequency_from_counts

AUTO_MEMORY_BYTES = 2 << 30  # "auto": splits up to this many bytes of stored arrays are held in memory
PIPELINES = ("auto", "memory", "stream")


class InMemory:
  """A split decoded once and held at the stored size."""

  def __init__(self, config: ml_collections.ConfigDict, split: str, held: splits.Split | None = None):
    """
    Args:
      config: the experiment config.
      split: the split's name.
      held: its examples, if already at hand (else loaded: `splits.load_split`).
    """
    self.config, self.name = config, split
    self.split = held if held is not None else splits.load_split(config, split)

  def __len__(self) -> int:
    return len(self.split)

  def train_batches(self, batch_size: int, seed: int, epoch: int,
                    state: dict[str, Any] | None = None) -> Iterator[tuple[dict[str, np.ndarray], dict[str, Any]]]:
    """This process's rows of every full batch of the epoch, each with the state after it."""
    start = state["batch"] if state else 0
    for i, batch in enumerate(batching.train_batches(self.split, batch_size, seed, epoch, start), start + 1):
      yield batch, {"batch": i}

  def eval_batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Every example once, padded (see `batching.eval_batches`)."""
    return batching.eval_batches(self.split, batch_size)

  def samples(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images and masks at the stored size of the examples `idx`."""
    return self.split.images[idx], self.split.masks[idx]

  def mask_stream(self) -> Iterator[np.ndarray]:
    """Every stored mask."""
    return iter(self.split.masks)

  def close(self) -> None:
    """Nothing to stop (for symmetry with `Streaming.close`)."""


class Streaming:
  """A split listed now and read by Grain workers as it is consumed (`jaxseg.data.streaming`)."""

  def __init__(self, config: ml_collections.ConfigDict, split: str, opened: tuple[Any, list[str]] | None = None):
    """
    Args:
      config: the experiment config.
      split: the split's name.
      opened: its random-access source and listing problems, if already listed (`random_access.open_source`).
    """
    d = config.data
    self.config, self.name = config, split
    self.source, problems = opened or random_access.open_source(config, split)
    splits.report_problems(problems, splits.describe(config, split), d.skip_bad)
    limit = splits.example_limit(config, split)
    self.size = min(len(self.source), limit) if limit else len(self.source)
    if not self.size:
      raise splits.DatasetError(f"{splits.describe(config, split)} has no examples.")
    self.keep_labels = split == d.eval_split and d.eval_resolution == "original"
    self.workers, self.prefetch = streaming.worker_count(config), max(1, d.prefetch)
    aug = config.augment
    self.prepare = streaming.Prepare(self.source, geometry.stored_size(config), resize_crop.base_scale(config),
                                     (aug.scale_min, aug.scale_max), geometry.train_size(config), d.skip_bad)
    self._train = self._eval = None  # the iterators kept between epochs

  def __len__(self) -> int:
    return self.size

  def train_batches(self, batch_size: int, seed: int, epoch: int,
                    state: dict[str, Any] | None = None) -> Iterator[tuple[dict[str, np.ndarray], dict[str, Any]]]:
    """This process's rows of every full batch of the epoch, each with the iterator state after it.

    The workers are started once: the next epoch continues the same iterator (which has been preparing its
    first batches meanwhile) when it is asked for in order.
    """
    steps = self.size // batch_size
    start = int(state["batch"]) if state else 0
    key, position = (batch_size, seed), (epoch - 1) * steps + start
    if self._train is None or self._train[:2] != (key, position):
      self.close()
      rows = batching.host_slice(batch_size)
      make = streaming.TrainBatch(self.prepare, self.size, batch_size, (rows.start, rows.stop), seed)
      # Epochs without end: the loop decides when to stop.
      self._train = (key, position, streaming.iterate(make, 2**40, self.workers, self.prefetch, position))
    it = self._train[2]
    done = start
    try:
      while done < steps:
        batch = next(it)
        done += 1
        yield batch, {"batch": done}
    finally:
      # Stopped inside the epoch, the iterator is ahead of any later request: the next one starts anew.
      self._train = (key, epoch * steps, it) if done == steps else None
      if done != steps:
        it.close()

  def eval_batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Every example once, padded; label canvases agreed over processes (see `batching.eval_batches`)."""
    count = -(-self.size // batch_size)
    if self._eval is None or self._eval[0] != batch_size:
      if self._eval is not None:
        self._eval[1].close()
      rows = batching.host_slice(batch_size)
      make = streaming.EvalBatch(self.prepare, self.size, batch_size, (rows.start, rows.stop), self.keep_labels)
      self._eval = (batch_size, streaming.iterate(make, 2**40, self.workers, self.prefetch))
    it = self._eval[1]
    done = 0
    try:
      for _ in range(count):
        batch = next(it)
        done += 1
        if self.keep_labels and jax.process_count() > 1:
          batch = _agree_canvas(batch)
        yield batch
    finally:
      if done != count:  # stopped inside the pass: the iterator is not at a pass's start any more
        it.close()
        self._eval = None

  def close(self) -> None:
    """Stops the worker processes (they are started again when needed)."""
    for held in (self._train, self._eval):
      if held is not None:
        held[-1].close()
    self._train = self._eval = None

  def samples(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images and masks at the stored size of the examples `idx`."""
    pairs = [resize_pair(*self.source[int(i)], self.prepare.stored) for i in idx]
    stored = self.prepare.stored
    return (np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, *stored, 3), np.uint8),
            np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, *stored), np.uint8))

  def mask_stream(self) -> Iterator[np.ndarray]:
    """Every mask at the stored size, read by the workers (of an iterator of its own)."""
    make = streaming.EvalBatch(self.prepare, self.size, 1, (0, 1), keep_labels=False)
    for batch in streaming.iterate(make, self.size, self.workers, self.prefetch):
      yield batch["mask"][0]


def _agree_canvas(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  largest = multihost_utils.process_allgather(np.array(batch["label"].shape[1:], np.int32)).reshape(-1, 2).max(0)
  labels = [lab[:h, :w] for lab, (h, w) in zip(batch["label"], batch["label_size"])]
  return {**batch, "label": label_canvas(labels, largest)}


def _choice(config: ml_collections.ConfigDict) -> str:
  """Which pipeline `data.pipeline` asks for: memory, stream, or "size" where "auto" decides by the size of
  the listed folder split."""
  d = config.data
  choice = d.pipeline
  if choice != "auto":
    return choice
  if resize_crop.base_scale(config) is not None:
    return "stream"
  return "size" if d.source == "folder" else "memory"


def _too_large(config: ml_collections.ConfigDict, examples: int) -> bool:
  h, w = geometry.stored_size(config)
  return examples * h * w * 4 > AUTO_MEMORY_BYTES


def use_streaming(config: ml_collections.ConfigDict, split: str) -> bool:
  """Whether `data.pipeline` (see the module docstring) streams `split`."""
  choice = _choice(config)
  if choice == "size":
    return _too_large(config, len(random_access.open_source(config, split)[0]))
  return choice == "stream"


def open_split(config: ml_collections.ConfigDict, split: str) -> InMemory | Streaming:
  """The split through the pipeline `data.pipeline` chooses (a streamed split is listed once).

  Raises:
    DatasetError: the split cannot be listed, has bad examples (unless `data.skip_bad`) or none at all.
  """
  choice = _choice(config)
  if choice == "memory":
    return InMemory(config, split)
  opened = random_access.open_source(config, split)
  if choice == "size" and not _too_large(config, len(opened[0])):
    return InMemory(config, split)
  return Streaming(config, split, opened)


def median_frequency(data: InMemory | Streaming, num_classes: int) -> np.ndarray:
  """SegNet's median-frequency class weights of the split's stored masks."""
  counts, present = np.zeros(num_classes), np.zeros(num_classes)
  for m in data.mask_stream():
    c, p = frequency_terms(m, num_classes)
    counts += c
    present += p
  return median_frequency_from_counts(counts, present)
