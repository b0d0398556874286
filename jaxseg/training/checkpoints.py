"""Per-epoch Orbax checkpoints: train state plus a JSON record (epoch, metrics history, config).

Orbax writes each step into a temporary directory and renames it when complete, so a process killed
mid-save leaves no checkpoint that `latest_step` would pick up. Readers (eval, predict) open the manager
read-only: they never write, delete or clean up anything under the checkpoint directory. Each record carries
a CRC-32 of itself and of each part of the state, checked on every restore, so that bytes changed on disk
that still decode are found too (`jaxseg.training.intact` decides what to do about a damaged step).
"""

import errno
import json
import logging
import os
import shutil
import zlib
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from jaxseg.config import upgrade
from jaxseg.errors import UserError
from jaxseg.models import canonical_name, model_class
from jaxseg.runtime import faults


class _ReadOnlyNotices(logging.Filter):
  """Drops Orbax's notices that a read-only manager is read-only (what eval and predict ask for on purpose),
  and its complaint about a step's unreadable `_CHECKPOINT_METADATA` (timestamps only: the step restores
  without it, or `intact` names it damaged in one line); every other record passes."""

  def filter(self, record: logging.LogRecord) -> bool:
    if "orbax" not in record.pathname:
      return True
    message = record.getMessage()
    if record.levelno >= logging.ERROR:
      return "Failed to json parse Metadata file" not in message
    return "read_only=True" not in message and "directory is read only" not in message


logging.getLogger("absl").addFilter(_ReadOnlyNotices())


class CheckpointError(UserError):
  """A checkpoint that is missing, or was written for another model."""


def checkpoint_dir(workdir: str) -> str:
  """`<workdir>/checkpoints`, absolute."""
  return os.path.join(os.path.abspath(workdir), "checkpoints")


class _RenameWithFaultPoint(ocp.path.atomicity.AtomicRenameTemporaryPath):
  """Orbax's write-then-rename, with the fault point "save" (`jaxseg.runtime.faults`) between the two: where a
  process killed mid-save leaves a complete temporary directory and no checkpoint."""

  point = "save"

  async def finalize(self, *args, **kwargs):
    name = self.get_final().name
    faults.reached(self.point, int(name) if name.isdigit() else None)
    return await super().finalize(*args, **kwargs)


class _MidEpochRename(_RenameWithFaultPoint):
  point = "mid_epoch_save"


def manager(workdir: str, keep: int = 3, read_only: bool = False, directory: str = "") -> ocp.CheckpointManager:
  """An Orbax CheckpointManager under `<workdir>/checkpoints` (or `directory`, mid-epoch checkpoints) with items
  `state` and `meta`."""
  # A writer removes what a killed save left behind (never a finalized step); a reader touches nothing.
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only, read_only=read_only,
                                         enable_async_checkpointing=False,
                                         cleanup_tmp_directories=not read_only,
                                         temporary_path_class=_MidEpochRename if directory else _RenameWithFaultPoint)
  # Handlers named up front (not just item names), so that a reader can ask for a step's tree metadata.
  return ocp.CheckpointManager(directory or checkpoint_dir(workdir), options=options,
                               item_handlers={"state": ocp.StandardCheckpointHandler(),
                                              "meta": ocp.JsonCheckpointHandler()})


def save(mngr: ocp.CheckpointManager, step: int, state: dict[str, Any], meta: dict[str, Any]) -> None:
  """Saves `state` (a pytree of arrays) and `meta` (JSON-able) as `step`; returns when written.

  Raises:
    OSError (ENOSPC): the disk has no room for it, found before writing (Orbax's own failure on a full disk
      is a storm of background-thread tracebacks) or while writing; the newest complete checkpoint stays.
  """
  meta = {**meta, "digest": tree_digest(state)}
  meta["meta_crc"] = meta_digest(meta)
  need = sum(x.nbytes for x in jax.tree.leaves(state)) + len(json.dumps(meta)) + 4 * 2**20
  if shutil.disk_usage(mngr.directory).free < need:
    raise OSError(errno.ENOSPC, "No space left on device", str(mngr.directory))
  try:
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                             meta=ocp.args.JsonSave(meta)), force=True)
    mngr.wait_until_finished()
  except (ValueError, RuntimeError) as e:
    if "No space left on device" in str(e):
      raise OSError(errno.ENOSPC, "No space left on device", str(mngr.directory)) from e
    raise


def tree_digest(state: dict[str, Any]) -> dict[str, str]:
  """Per top-level entry of `state` (e.g. "params"), a CRC-32 of every leaf's bytes in tree order.

  Arrays replicated over processes are read from their first local copy, so every process computes the same
  digest."""
  out = {}
  for key, value in state.items():
    crc = 0
    for leaf in jax.tree.leaves(value):
      if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        leaf = leaf.addressable_data(0)
      crc = zlib.crc32(np.ascontiguousarray(jax.device_get(leaf)).tobytes(), crc)
    out[key] = f"{crc:08x}"
  return out


def meta_digest(meta: dict[str, Any]) -> str:
  """CRC-32 of a checkpoint's JSON record without its own "meta_crc"."""
  as_read = json.loads(json.dumps({k: v for k, v in meta.items() if k != "meta_crc"}))  # as a reader sees it
  body = json.dumps(as_read, sort_keys=True)
  return f"{zlib.crc32(body.encode()):08x}"


def verify_meta(meta: dict[str, Any]) -> dict[str, Any]:
  """`meta` if its recorded checksum matches (or it has none: written by an earlier release)."""
  if "meta_crc" in meta and meta["meta_crc"] != meta_digest(meta):
    raise ValueError("its JSON record (meta/metadata) differs from what was saved")
  return meta


def verify_state(restored: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
  """`restored` if each of its entries matches the digest saved in `meta` (where there is one)."""
  saved = meta.get("digest") or {}
  got = tree_digest({k: v for k, v in restored.items() if k in saved})
  bad = sorted(k for k in got if got[k] != saved[k])
  if bad:
    raise ValueError(f"the arrays of {', '.join(bad)} differ from what was saved")
  return restored


# What identifies the model a checkpoint holds, for every architecture: meta["model"] key -> config field.
# Each architecture adds its own (`SegmentationModel.IDENTITY_FIELDS`).
_IDENTITY = {"name": "model.name", "backbone": "model.backbone", "num_classes": "num_classes",
             "image_size": "image_size",
             "image_height": "image_height", "image_width": "image_width", "class_names": "data.class_names",
             "aux_stride": "model.aux_stride"}


def _identity(config: ml_collections.ConfigDict) -> dict[str, str]:
  return {**_IDENTITY, **model_class(config.model.name).IDENTITY_FIELDS}


def _field(config: ml_collections.ConfigDict, path: str) -> Any:
  for part in path.split("."):
    config = config[part]
  if path == "model.name":
    return canonical_name(config)
  return list(config) if isinstance(config, (tuple, list)) else config  # as JSON gives it back


def _saved_identity(meta: dict[str, Any]) -> dict[str, Any]:
  """The identity a checkpoint records, in today's fields (`upgrade.upgraded_identity`)."""
  saved = upgrade.upgraded_identity(meta.get("model", {}))
  if "name" in saved:
    saved["name"] = canonical_name(saved["name"])
  return saved


def make_meta(config: ml_collections.ConfigDict, epoch: int, history: list[dict[str, Any]],
              stop_reason: str = "") -> dict[str, Any]:
  """The JSON record saved beside each state: epoch, metrics history, why training stopped, the config, and
  the model's identity (what `check_compatible` compares)."""
  return {"epoch": epoch, "history": history, "stop_reason": stop_reason, "config": config.to_json_best_effort(),
          "config_format": upgrade.FORMAT,
          "model": {key: _field(config, field) for key, field in _identity(config).items()}}


def saved_config(meta: dict[str, Any]) -> ml_collections.ConfigDict:
  """The config a checkpoint was written with, in today's fields (`jaxseg.config.upgrade`)."""
  return ml_collections.ConfigDict(upgrade.upgraded(json.loads(meta["config"]), meta.get("config_format", 1)))


def checked_steps(mngr: ocp.CheckpointManager, step: int | None = None) -> list[int]:
  """The checkpoint steps in `mngr`, newest first (the epochs' checkpoints are numbered by epoch).

  Raises:
    CheckpointError: there is none, or `step` (where given, an epoch) is not among them.
  """
  steps, where = sorted(mngr.all_steps(), reverse=True), mngr.directory
  if not steps:
    raise CheckpointError(f"no checkpoint in {where}: train first (--mode train) or pass the --workdir "
                          "of a trained run.")
  if step is not None and step not in steps:
    raise CheckpointError(f"no checkpoint of epoch {step} in {where}; epochs checkpointed: {sorted(steps)}.")
  return steps


def read_meta(mngr: ocp.CheckpointManager, step: int | None = None) -> tuple[int, dict[str, Any]]:
  """(step, meta) of `step` or the newest checkpoint.

  Raises:
    CheckpointError: when there is no (such) checkpoint.
  """
  steps = checked_steps(mngr, step)
  step = steps[0] if step is None else step
  meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  if not isinstance(meta, dict):
    raise ValueError("its JSON record (meta/metadata) is not an object")
  return step, verify_meta(meta)


def read_checked_meta(mngr: ocp.CheckpointManager, step: int, config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The meta of checkpoint `step`, refused (`check_compatible`) unless written for `config`'s model."""
  _, meta = read_meta(mngr, step)
  check_compatible(meta, config, mngr.directory)
  return meta


def check_compatible(meta: dict[str, Any], config: ml_collections.ConfigDict, where: str) -> None:
  """Refuses, before restoring, a checkpoint written for another model: another architecture or width, class
  count or image size (a run resumes, and is evaluated, at the size it was trained at)."""
  saved = _saved_identity(meta)
  diffs, fixes = [], []
  for key, field in _identity(config).items():
    value = _field(config, field)
    if key in saved and saved[key] != value:
      diffs.append(f"{key}: checkpoint has {saved[key]!r}, config has {value!r}")
      fixes.append(f"--config.{field}={saved[key]}")
  if diffs:
    raise CheckpointError(f"the checkpoint in {where} was written for another model ({'; '.join(diffs)}). "
                          f"Use the config it was trained with ({' '.join(fixes)}), or another --workdir.")


def restore_state(mngr: ocp.CheckpointManager, step: int, target: dict[str, Any],
                  meta: dict[str, Any]) -> dict[str, Any]:
  """Restores the `state` item of `step` into the structure, shapes and shardings of `target`, checked
  against the digest in its `meta`."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  saved = _saved_tree(mngr, step)
  if ("ema" in saved) != ("ema" in target):
    raise CheckpointError(f"checkpoint {step} in {mngr.directory} was trained "
                          f"{'with' if 'ema' in saved else 'without'} a moving average of the weights; resume "
                          f"it with {'a' if 'ema' in saved else 'no'} config.ema_decay as it was, or use another "
                          "--workdir.")
  if _flat_shapes(saved) != _flat_shapes(abstract):
    raise CheckpointError(f"checkpoint {step} in {mngr.directory} holds a state of another structure or "
                          "shape than this config's (another model or optimizer); use the config it was "
                          "trained with, or another --workdir.")
  return verify_state(_restore(mngr, step, abstract), meta)


def restore_variables(mngr: ocp.CheckpointManager, step: int, sharding: Any, meta: dict[str, Any]) -> dict[str, Any]:
  """`step`, `params`, `batch_stats` and (where it was saved with one) `ema` of checkpoint `step`, whatever
  optimizer state it was saved with: evaluation and prediction need none, and may run with another
  `freeze_encoder` than training did. Checked against the digest in its `meta`."""
  abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding),
                          _saved_tree(mngr, step))
  restored = _restore(mngr, step, abstract)
  return verify_state({k: restored[k] for k in ("step", "params", "batch_stats", "ema") if k in restored}, meta)


def _flat_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  """{"opt_state/0/mu/conv/kernel": shape, ...}: a tree's leaves by path, containers of any kind alike (Orbax
  records a named tuple as a dict of its fields)."""
  def name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        return str(getattr(key, attr))
    return str(key)
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {"/".join(name(k) for k in path): tuple(leaf.shape) for path, leaf in flat}


def _saved_tree(mngr: ocp.CheckpointManager, step: int) -> Any:
  """The tree of array metadata (shape, dtype) Orbax recorded for `step`'s state."""
  saved = mngr.item_metadata(step)["state"]
  saved = getattr(saved, "tree", saved)
  if saved is None:
    raise ValueError("its state metadata is missing")
  return saved


def _restore(mngr: ocp.CheckpointManager, step: int, abstract: Any) -> dict[str, Any]:
  return mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
