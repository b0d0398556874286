"""Streaming input on Grain: examples are read, decoded and prepared while training consumes them.

Each element of the Grain dataset is one batch: this process's rows of one global batch, built in a worker
process (`data.workers`; 0 builds them in this process) from the split's random-access source
(`jaxseg.data.random_access`). Memory is bounded by workers x `data.prefetch` x batch, whatever the split's
size, and the first batch is ready once the split is listed. The order of an epoch depends only on (seed,
epoch), as in the in-memory pipeline, so the two give the same batches; the iterator's state (how many
batches it gave) is saved with every checkpoint and restored on resume. That count is the whole state:
a resumed iterator starts its dataset at that batch (no batch is built twice), whatever the number of
workers then, which Grain's own per-worker state would not allow. One iterator serves every epoch of a run
(and one every evaluation pass), so worker processes start once.
"""

import contextlib
import dataclasses
import os
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxseg.data import resize_crop
from jaxseg.data.images import resize_pair
from jaxseg.data.labels import IGNORE, label_canvas
from jaxseg.errors import DatasetError
from jaxseg.runtime import faults


def worker_count(config) -> int:
  """`data.workers`, -1 meaning the cores this process may use."""
  n = config.data.workers
  if n >= 0:
    return n
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _grain():
  import grain  # pylint: disable=import-outside-toplevel
  from absl import flags  # pylint: disable=import-outside-toplevel
  if not flags.FLAGS.is_parsed():  # Grain's workers read their settings from absl flags
    flags.FLAGS.mark_as_parsed()
  return grain


@dataclasses.dataclass
class Prepare:
  """How an example becomes model input: resized to the stored size, or (with `scale`) randomly rescaled
  relative to it and cropped (`jaxseg.data.resize_crop`); a bad example fails with its name, or with
  `skip_bad` becomes an all-IGNORE example that counts nowhere."""
  source: Any
  stored: tuple[int, int]
  scale: tuple[int, int] | None = None
  ratio_range: tuple[float, float] = (1.0, 1.0)
  crop: tuple[int, int] = (0, 0)
  skip_bad: bool = False

  def load(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Example i at its own size; None for a bad one with `skip_bad`."""
    try:
      return self.source[int(i)]
    except DatasetError as e:
      if self.skip_bad:
        return None
      raise DatasetError(f"{e} (--mode inspect checks every file before training).") from None

  def train(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Example i as a training input (image, mask), its randomness drawn from `rng`."""
    loaded = self.load(i)
    if loaded is None:
      return blank(self.crop if self.scale else self.stored)
    if self.scale:
      return resize_crop.random_resize_crop(*loaded, rng, self.scale, self.ratio_range, self.crop)
    return resize_pair(*loaded, self.stored)


def blank(hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  """A black image and all-IGNORE labels of size `hw`: what a skipped bad example becomes, counting nowhere."""
  return np.zeros((*hw, 3), np.uint8), np.full(hw, IGNORE, np.uint8)


@dataclasses.dataclass
class TrainBatch:
  """Global batch g of the run (epoch g // steps + 1, batch g % steps of it) -> this process's rows of it
  ({"image", "mask"}): the epoch's permutation of (seed, epoch) cut into `batch_size` pieces, each sorted and
  split over processes."""
  prepare: Prepare
  size: int
  batch_size: int
  rows: tuple[int, int]
  seed: int

  def __post_init__(self):
    self._order = (0, None)  # (epoch, its permutation): computed once per epoch per worker

  def order(self, epoch: int) -> np.ndarray:
    """The permutation of epoch `epoch`."""
    if self._order[0] != epoch:
      self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.size))
    return self._order[1]

  def __call__(self, g: int) -> dict[str, np.ndarray]:
    """This process's rows of global batch g."""
    epoch, b = g // (self.size // self.batch_size) + 1, g % (self.size // self.batch_size)
    batch = np.sort(self.order(epoch)[b * self.batch_size:(b + 1) * self.batch_size])
    idx = batch[self.rows[0]:self.rows[1]]
    pairs = [self.prepare.train(i, np.random.default_rng([self.seed, epoch, int(i)])) for i in idx]
    return {"image": np.stack([p[0] for p in pairs]), "mask": np.stack([p[1] for p in pairs])}


@dataclasses.dataclass
class EvalBatch:
  """Batch b of the split in order (b taken modulo the number of batches: pass after pass), padded at the
  end ("weight" 0), this process's rows; with `keep_labels`, each example's original labels at the top left
  of a canvas ("label", "label_size")."""
  prepare: Prepare
  size: int
  batch_size: int
  rows: tuple[int, int]
  keep_labels: bool

  def __call__(self, b: int) -> dict[str, np.ndarray]:
    """This process's rows of batch b."""
    b %= -(-self.size // self.batch_size)
    idx = np.arange(b * self.batch_size, (b + 1) * self.batch_size)
    weight = (idx < self.size).astype(np.float32)[self.rows[0]:self.rows[1]]
    images, masks, labels = [], [], []
    for i in np.minimum(idx, self.size - 1)[self.rows[0]:self.rows[1]]:
      loaded = self.prepare.load(i) or blank(self.prepare.stored)
      image, mask = resize_pair(*loaded, self.prepare.stored)
      images.append(image)
      masks.append(mask)
      labels.append(loaded[1])
    batch = {"image": np.stack(images), "mask": np.stack(masks), "weight": weight}
    if self.keep_labels:
      sizes = np.array([m.shape for m in labels], np.int32)
      batch["label"] = label_canvas(labels, sizes.max(0))
      batch["label_size"] = sizes
    return batch


def iterate(make_batch, count: int, workers: int, prefetch: int, start: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Batches `start` .. count - 1 of `make_batch`, built by `workers` processes (0: in this one), each
  `prefetch` batches ahead.

  Raises:
    DatasetError: an example could not be read (naming it).
  """
  grain = _grain()
  ds = grain.MapDataset.range(start, count).map(make_batch)
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
  if workers > 0:
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=prefetch),
                              worker_init_fn=ignore_stop_signals)
  # Grain starts its worker processes from threads that `iter` and the first `next` create.
  starting = workers > 0
  with _stop_signals_held(starting):
    it = iter(it_ds)
  try:
    while True:
      try:
        with _stop_signals_held(starting):
          batch = next(it)
        starting = False
      except StopIteration:
        return
      except DatasetError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        raise _dataset_error(e) from None
      _release_shared_memory_at_once()
      # Copied out of the workers' shared memory, released as soon as the copy is made.
      out = {k: np.array(v) for k, v in batch.items()}
      del batch
      yield out
  finally:
    close = getattr(it, "close", None)
    if close is not None:
      close()


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _stop_signals_held(hold: bool):
  """With `hold`, SIGINT and SIGTERM are blocked in this thread for the block's duration. A process spawned
  from it (or from a thread it starts) inherits the mask, so an input worker cannot be ended by them while it
  is still starting, before `ignore_stop_signals` runs in it; this process still gets them in its other
  threads, or here once the block ends."""
  if not hold:
    yield
    return
  # multiprocessing's resource tracker, started on first use, unblocks both in the thread that starts it.
  from multiprocessing import resource_tracker  # pylint: disable=import-outside-toplevel
  resource_tracker.ensure_running()
  previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
  try:
    yield
  finally:
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def ignore_stop_signals(worker_index: int = 0, *_) -> None:
  """In a worker: Ctrl-C and SIGTERM reach the whole process group (a shutdown, a preemption), and the
  training process alone decides what they mean: it finishes its step, saves and then stops the workers.
  A worker ended by them would only print a traceback or fail the step. The worker started with both
  blocked (`_stop_signals_held`): ignored from here on, one that arrived meanwhile is dropped."""
  faults.reached("input_worker", worker_index)
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def _release_shared_memory_at_once() -> None:
  """Grain unlinks a batch's shared memory in a background thread once the batch is dropped; one still queued
  when the program ends is reported as leaked by Python's resource tracker. Unlinked at once instead."""
  try:
    from grain._src.python.ipc import shared_memory_array  # pylint: disable=import-outside-toplevel
  except ImportError:
    return
  cls = shared_memory_array.SharedMemoryArray
  if getattr(cls, "_del_thread_pool", None) is not None and hasattr(cls, "_disable_async_del"):
    cls._disable_async_del()


def _dataset_error(e: Exception) -> Exception:
  """A worker's DatasetError comes back wrapped: unwrapped to its one line; anything else is re-raised."""
  seen = e
  while seen is not None:
    if isinstance(seen, DatasetError):
      return DatasetError(str(seen))
    text = str(seen)
    if "DatasetError: " in text:
      return DatasetError(text.split("DatasetError: ", 1)[1].splitlines()[0])
    seen = seen.__cause__ or seen.__context__
  return e
