"""Checks run before any work starts, each failing with one clear line naming the option to change."""

import errno
import os
import shutil
import tempfile

import ml_collections

from jaxseg.mobilenet_v2 import ALPHAS
from jaxseg.ops import IMPLS
from jaxseg.errors import UserError

MIN_FREE_BYTES = 200 * 2**20  # a checkpoint of the full model is ~75 MB; leave room for two


class ConfigError(UserError):
  """A config value or workdir that cannot work."""


def check_config(config: ml_collections.ConfigDict) -> None:
  """Validates the fields that would otherwise fail deep inside JAX or Orbax."""
  if config.image_size <= 0 or config.image_size % 32:
    raise ConfigError(f"config.image_size={config.image_size} must be a positive multiple of 32 (MobileNetV2 "
                      f"downsamples 5 times), e.g. {max(32, round(config.image_size / 32) * 32)}.")
  if config.model.alpha not in ALPHAS:
    raise ConfigError(f"config.model.alpha={config.model.alpha} is unsupported; choose one of {ALPHAS}.")
  if config.model.get("conv_impl", "auto") not in IMPLS:
    raise ConfigError(f"config.model.conv_impl={config.model.conv_impl!r} must be one of {IMPLS}.")
  if config.num_classes < 2:
    raise ConfigError(f"config.num_classes={config.num_classes} must be at least 2.")
  if config.dtype not in ("float32", "bfloat16"):
    raise ConfigError(f"config.dtype={config.dtype!r} must be 'float32' or 'bfloat16'.")
  if config.num_epochs < 0 or config.keep_checkpoints < 1 or config.log_every_steps < 1:
    raise ConfigError("config.num_epochs must be >= 0, keep_checkpoints and log_every_steps >= 1.")
  if not 0.0 <= config.target_accuracy <= 1.0:
    raise ConfigError(f"config.target_accuracy={config.target_accuracy} must be in [0, 1] (0 = off).")
  if config.encoder_bn_train and config.freeze_encoder:
    raise ConfigError("config.encoder_bn_train=True needs config.freeze_encoder=False (a frozen encoder keeps "
                      "its BatchNorm statistics).")
  if config.data.source not in ("tfds", "folder", "synthetic"):
    raise ConfigError(f"config.data.source={config.data.source!r} must be 'tfds', 'folder' or 'synthetic'.")


def check_workdir(workdir: str) -> None:
  """The workdir must be creatable, writable and have room for checkpoints."""
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test_"):
      pass
  except OSError as e:
    raise ConfigError(f"--workdir {workdir} is not writable ({e.strerror}); choose another --workdir.") from None
  free = shutil.disk_usage(workdir).free
  if free < MIN_FREE_BYTES:
    raise ConfigError(f"--workdir {workdir} has only {free / 2**20:.0f} MiB free; checkpoints need at least "
                      f"{MIN_FREE_BYTES // 2**20} MiB. Free space or choose another --workdir.")


def describe_os_error(e: OSError, what: str) -> str:
  """One line for an OSError met while writing `what`."""
  if e.errno == errno.ENOSPC:
    return f"the disk is full while writing {what}; free space and rerun the same command to resume."
  return f"cannot write {what}: {e.strerror or e}."
