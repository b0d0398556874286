"""The checkpoint store of a workdir: the epochs' checkpoints, written and read back checked (the model they
were written for, their digests), damaged ones skipped (readers) or moved aside (training)."""

from typing import Any

import jax
import ml_collections

from jaxseg.training import checkpoints, intact


def _say(line: str) -> None:
  if jax.process_index() == 0:
    print(line)


class CheckpointStore:
  """The checkpoints in `workdir/checkpoints`, numbered by the epoch that wrote them."""

  def __init__(self, workdir: str, keep: int = 3, read_only: bool = False):
    """
    Args:
      workdir: holds `checkpoints/`.
      keep: how many epochs' checkpoints are kept (the newest).
      read_only: nothing is written, moved or cleaned up (evaluation, prediction).
    """
    self.read_only = read_only
    self.mngr = checkpoints.manager(workdir, keep, read_only=read_only)

  @property
  def directory(self) -> str:
    """Where the checkpoints are."""
    return str(self.mngr.directory)

  def latest_epoch(self) -> int | None:
    """The newest checkpoint's epoch, or None where there is none (intact or not)."""
    return self.mngr.latest_step()

  def save(self, epoch: int, state: dict[str, Any], config: ml_collections.ConfigDict,
           history: list[dict[str, Any]], stop_reason: str = "") -> None:
    """Writes `state` (a `TrainState.to_dict()`) as epoch `epoch`'s checkpoint, with its config and history.

    Raises:
      ValueError: the store is read-only.
    """
    if self.read_only:
      raise ValueError(f"the checkpoint store {self.directory} is read-only")
    checkpoints.save(self.mngr, epoch, state, checkpoints.make_meta(config, epoch, history, stop_reason))

  def restore(self, target: dict[str, Any], config: ml_collections.ConfigDict
              ) -> tuple[dict[str, Any], int, dict[str, Any]] | None:
    """(state dict, epoch, meta) of the newest checkpoint that restores into `target` (a state dict of the
    structure, shapes and shardings wanted) and was written for `config`'s model; damaged newer ones are moved
    aside where the store writes, and None is returned where every one was (start afresh).

    Raises:
      CheckpointError: there is no checkpoint, or it was written for another model.
      DamagedCheckpoint: a read-only store whose checkpoints are all damaged.
    """

    def read(epoch: int) -> tuple[dict[str, Any], dict[str, Any]]:
      meta = checkpoints.read_checked_meta(self.mngr, epoch, config)
      return checkpoints.restore_state(self.mngr, epoch, target, meta), meta

    found = intact.restore_newest(self.mngr, read, writer=not self.read_only, say=_say)
    if found is None:
      return None
    epoch, (restored, meta) = found
    return restored, epoch, meta

  def restore_variables(self, config: ml_collections.ConfigDict, sharding: Any,
                        epoch: int | None = None) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """(variables {"step", "params", "batch_stats"[, "ema"]}, epoch, meta) of the checkpoint of `epoch` (the
    newest intact one where None), placed with `sharding`; checked against `config`'s model; a damaged
    checkpoint is named and skipped, never changed.

    Raises:
      CheckpointError / DamagedCheckpoint: no (intact) checkpoint, or none of that epoch.
    """

    def read(step: int) -> tuple[dict[str, Any], dict[str, Any]]:
      meta = checkpoints.read_checked_meta(self.mngr, step, config)
      return checkpoints.restore_variables(self.mngr, step, sharding, meta), meta

    epoch, (restored, meta) = intact.restore_newest(self.mngr, read, epoch, say=_say)
    return restored, epoch, meta
