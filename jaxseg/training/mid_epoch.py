"""Checkpoints inside an epoch: every `checkpoint_every_steps` steps and when training is asked to stop.

They live apart from the per-epoch checkpoints (`<workdir>/checkpoints_mid_epoch/`, the newest one only) so
that evaluation, prediction, export and `keep_checkpoints` see epochs alone. Each holds the train state, the
epoch's metric sums so far and where in the epoch it stopped (the input order depends only on (seed, epoch),
the input iterator's state is saved with them); a resumed epoch ends with the metrics an uninterrupted
one would have. Once the epoch's own checkpoint is written they are removed.
"""

import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections

from jaxseg.training import checkpoints, intact

DIRECTORY = "checkpoints_mid_epoch"


class MidEpoch:
  """The mid-epoch checkpoints of one workdir; the Orbax manager is made only when first needed."""

  def __init__(self, workdir: str):
    self.directory = os.path.join(os.path.abspath(workdir), DIRECTORY)
    self._mngr = None

  def _manager(self):
    if self._mngr is None:
      self._mngr = checkpoints.manager("", keep=1, directory=self.directory)
    return self._mngr

  def save(self, global_step: int, state: dict[str, Any], sums: dict[str, jax.Array],
           meta: dict[str, Any], epoch: int, batch: int, input_state: dict[str, Any] | None = None) -> None:
    """Saves `state` and the epoch's `sums` after `batch` batches of epoch `epoch` (global step
    `global_step`), with the input iterator's state there (JSON-serializable)."""
    meta = {**meta, "mid_epoch": {"epoch": epoch, "batch": batch, "input": input_state or {"batch": batch}}}
    checkpoints.save(self._manager(), global_step, {"state": state, "sums": sums}, meta)

  def resume(self, config: ml_collections.ConfigDict, epochs_done: int, state: dict[str, Any],
             sums: dict[str, jax.Array], say: Callable[[str], None]
             ) -> tuple[int, dict[str, Any], dict[str, Any]] | None:
    """(step, meta, {"state", "sums"}) of the newest mid-epoch checkpoint that continues `epochs_done` complete
    epochs, restored into the structure and shardings of the given state and sums; or None.

    One of an epoch already checkpointed (the run stopped between the two saves) is stale and removed; a
    damaged one is moved aside (the epoch then restarts from its beginning), with a line through `say`.
    """
    if not os.path.isdir(self.directory):
      return None
    mngr = self._manager()
    if mngr.latest_step() is None:
      return None

    def read(step: int) -> tuple[dict[str, Any], dict[str, Any]]:
      meta = checkpoints.read_checked_meta(mngr, step, config)
      if meta["mid_epoch"]["epoch"] != epochs_done + 1:
        return meta, {}
      return meta, checkpoints.restore_state(mngr, step, {"state": state, "sums": sums}, meta)

    found = intact.restore_newest(mngr, read, writer=True, say=say, unit="step")
    if found is None:
      return None
    step, (meta, restored) = found
    if not restored:
      self.discard()
      return None
    return step, meta, restored

  def discard(self) -> None:
    """Removes every mid-epoch checkpoint (after the epoch's own checkpoint is written)."""
    if os.path.isdir(self.directory):
      mngr = self._manager()
      for step in mngr.all_steps():
        mngr.delete(step)
