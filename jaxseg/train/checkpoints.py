"""Per-epoch Orbax checkpoints: train state plus a JSON record (epoch, metrics history, config).

Orbax writes each step into a temporary directory and renames it when complete, so a process killed
mid-save leaves no checkpoint that `latest_step` would pick up. Readers (eval, predict) open the manager
read-only: they never write, delete or clean up anything under the checkpoint directory.
"""

import errno
import json
import logging
import os
import shutil
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp

from jaxseg.errors import UserError
from jaxseg.models import canonical_name, model_class


class _ReadOnlyNotices(logging.Filter):
  """Drops Orbax's notices that a read-only manager is read-only (what eval and predict ask for on purpose);
  every other record, Orbax's real warnings and errors included, passes."""

  def filter(self, record: logging.LogRecord) -> bool:
    if "orbax" not in record.pathname or record.levelno >= logging.ERROR:
      return True
    message = record.getMessage()
    return "read_only=True" not in message and "directory is read only" not in message


logging.getLogger("absl").addFilter(_ReadOnlyNotices())


class CheckpointError(UserError):
  """A checkpoint that is missing, or was written for another model."""


def checkpoint_dir(workdir: str) -> str:
  """`<workdir>/checkpoints`, absolute."""
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def manager(workdir: str, keep: int = 3, read_only: bool = False, directory: str = "") -> ocp.CheckpointManager:
  """An Orbax CheckpointManager under `<workdir>/checkpoints` (or `directory`) with items `state` and `meta`."""
  # A writer removes what a killed save left behind (never a finalized step); a reader touches nothing.
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only, read_only=read_only,
                                         enable_async_checkpointing=False,
                                         cleanup_tmp_directories=not read_only)
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


# What identifies the model a checkpoint holds, for every architecture: meta["model"] key -> config field.
# Each architecture adds its own (`SegmentationModel.IDENTITY_FIELDS`).
_IDENTITY = {"name": "model.name", "backbone": "model.backbone", "alpha": "model.alpha", "num_classes": "num_classes",
             "image_size": "image_size",
             "image_height": "image_height", "image_width": "image_width", "class_names": "data.class_names"}


def _identity(config: ml_collections.ConfigDict) -> dict[str, str]:
  return {**_IDENTITY, **model_class(config.model.name).IDENTITY_FIELDS}


def _field(config: ml_collections.ConfigDict, path: str) -> Any:
  for part in path.split("."):
    config = config[part]
  if path == "model.name":
    return canonical_name(config)
  return list(config) if isinstance(config, (tuple, list)) else config  # as JSON gives it back


def _saved_identity(meta: dict[str, Any]) -> dict[str, Any]:
  """The identity a checkpoint records; one written before backbones were named is MobileNetV2's."""
  saved = dict(meta.get("model", {}))
  if "name" in saved:
    saved["name"] = canonical_name(saved["name"])
    saved.setdefault("backbone", "mobilenet_v2")
  return saved


def make_meta(config: ml_collections.ConfigDict, epoch: int, history: list[dict[str, Any]],
              stop_reason: str = "") -> dict[str, Any]:
  """The JSON record saved beside each state: epoch, metrics history, why training stopped, the config, and
  the model's identity (what `check_compatible` compares)."""
  return {"epoch": epoch, "history": history, "stop_reason": stop_reason, "config": config.to_json_best_effort(),
          "model": {key: _field(config, field) for key, field in _identity(config).items()}}


def upgraded_config(saved: dict[str, Any]) -> dict[str, Any]:
  """A config saved by an earlier release in today's fields: the encoder was MobileNetV2, its weights the
  top-level `encoder_weights`."""
  saved = {**saved, "model": dict(saved["model"])}
  if "backbone" not in saved["model"]:
    saved["model"].update(backbone="mobilenet_v2", backbone_weights=saved.pop("encoder_weights", "none"),
                          input_scale=(), input_offset=())
  return saved


def read_meta(mngr: ocp.CheckpointManager, step: int | None = None) -> tuple[int, dict[str, Any]]:
  """(step, meta) of `step` or the newest checkpoint.

  Raises:
    CheckpointError: when there is no (such) checkpoint.
  """
  steps = mngr.all_steps()
  where = mngr.directory
  if not steps:
    raise CheckpointError(f"no checkpoint in {where}: train first (--mode train) or pass the --workdir "
                          "of a trained run.")
  if step is None:
    step = max(steps)
  elif step not in steps:
    raise CheckpointError(f"no checkpoint for step {step} in {where}; available: {sorted(steps)}.")
  meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  return step, meta


def check_compatible(meta: dict[str, Any], config: ml_collections.ConfigDict, where: str) -> None:
  """Refuses, before restoring, a checkpoint written for another model: another architecture, alpha, class
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


def restore_state(mngr: ocp.CheckpointManager, step: int, target: dict[str, Any]) -> dict[str, Any]:
  """Restores the `state` item of `step` into the structure, shapes and shardings of `target`."""
  return _restore(mngr, step, jax.tree.map(ocp.utils.to_shape_dtype_struct, target))


def restore_variables(mngr: ocp.CheckpointManager, step: int, sharding: Any) -> dict[str, Any]:
  """`step`, `params` and `batch_stats` of checkpoint `step`, whatever optimizer state it was saved with:
  evaluation and prediction need none, and may run with another `freeze_encoder` than training did."""
  saved = mngr.item_metadata(step)["state"]
  saved = getattr(saved, "tree", saved)
  abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), saved)
  restored = _restore(mngr, step, abstract)
  return {k: restored[k] for k in ("step", "params", "batch_stats")}


def _restore(mngr: ocp.CheckpointManager, step: int, abstract: Any) -> dict[str, Any]:
  try:
    return mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"checkpoint step {step} in {mngr.directory} does not fit this model "
                          f"({type(e).__name__}: {str(e)[:200]}).") from e
