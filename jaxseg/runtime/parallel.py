"""Data parallelism with `jax.jit` over a 1-D device mesh, and a device prefetcher.

The batch is split over the `data` axis, parameters and optimizer state are replicated; under jit the
BatchNorm statistics are then computed over the global batch, as on one device.
"""

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxseg.data.batching import host_slice
from jaxseg.errors import UserError


class ShardingError(UserError):
  """A batch size that cannot be split over the devices."""


def make_mesh() -> Mesh:
  """A mesh over every device of every host, with one axis named `data`."""
  return Mesh(np.asarray(jax.devices()), ("data",))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Batches split along their first axis over the mesh's `data` axis."""
  return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  """Arrays held whole on every device of the mesh."""
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, name: str, mesh: Mesh | None = None) -> None:
  """Raises ShardingError unless `batch_size` splits evenly over the devices (and hosts)."""
  n = mesh.size if mesh is not None else jax.device_count()
  if batch_size <= 0 or batch_size % n or batch_size % jax.process_count():
    raise ShardingError(f"config.{name}={batch_size} must be a positive multiple of the device count ({n} "
                        f"{jax.devices()[0].platform} device(s)); e.g. --config.{name}={max(n, batch_size // n * n)}.")


def to_global(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """This host's rows of a global batch -> global arrays split over the mesh."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def fitted_batch(n: int, cap: int, mesh: Mesh) -> int:
  """The batch size for `n` inputs: n rounded up to a multiple of the device count, at most `cap` (a
  multiple of it), so that a single photo is not padded to a whole eval batch."""
  return min(cap, -(-n // mesh.size) * mesh.size)


def map_padded(fn: Callable[[jax.Array], jax.Array], images: np.ndarray, batch_size: int,
               sharding: NamedSharding) -> np.ndarray:
  """`fn` over `images` in fixed-size batches (the last one zero-padded, so `fn` compiles once).

  Args:
    fn: a jitted function of one (batch_size, ...) global array.
    images: (N, ...) host array, N >= 1.
    batch_size: the global batch size `fn` was meant for (a multiple of the device count).
    sharding: how to split a batch over the devices.

  Returns:
    The N leading rows of the outputs, concatenated on the host.
  """
  out = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
    result = fn(to_global({"x": padded[host_slice(batch_size)]}, sharding)["x"])
    if jax.process_count() > 1:  # each process holds only its rows of the result
      result = multihost_utils.process_allgather(result, tiled=True)
    out.append(np.asarray(jax.device_get(result))[:len(chunk)])
  return np.concatenate(out)


def prefetch(batches: Iterable[dict[str, np.ndarray]], sharding: NamedSharding,
             depth: int = 2) -> Iterator[dict[str, jax.Array]]:
  """Moves batches to the devices in a background thread, `depth` ahead of the consumer; (batch, extra)
  pairs stay pairs, the extra (e.g. the input iterator's state) passed along as it is."""
  q: queue.Queue = queue.Queue(maxsize=depth)
  done = object()
  stop = threading.Event()

  def producer():
    try:
      for batch in batches:
        if stop.is_set():
          return
        q.put((to_global(batch[0], sharding), batch[1]) if isinstance(batch, tuple) else to_global(batch, sharding))
      q.put(done)
    except BaseException as e:  # pylint: disable=broad-except
      q.put(e)

  thread = threading.Thread(target=producer, daemon=True)
  thread.start()
  try:
    while True:
      item: Any = q.get()
      if item is done:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
    while thread.is_alive():  # unblock a producer waiting on a full queue
      try:
        q.get_nowait()
      except queue.Empty:
        thread.join(timeout=0.05)
