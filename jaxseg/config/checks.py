"""The one place a config and a workdir are checked, before any work starts: each problem is one clear line
naming the option to change."""

import os
import shutil
import tempfile

import ml_collections

from jaxseg.config import upgrade
from jaxseg.data.labels import IGNORE
from jaxseg.data.layouts import LAYOUTS
from jaxseg.data.pipeline import PIPELINES
from jaxseg.data.sources import SOURCES
from jaxseg.errors import ConfigError
from jaxseg.inference import logits as inference
from jaxseg.models import KERNELS, LEGACY_NAMES, MODELS, backbones, canonical_name, model_class
from jaxseg.runtime import parallel
from jaxseg.runtime.precision import DTYPE_NAMES
from jaxseg.training.losses import LOSSES
from jaxseg.training.optimizers import OPTIMIZERS, SCHEDULES

MIN_FREE_BYTES = 200 * 2**20  # a checkpoint of the full model is ~75 MB; leave room for two


def check_config(config: ml_collections.ConfigDict) -> None:
  """Validates the fields that would otherwise fail deep inside JAX or Orbax; every field of the default config
  must be there (no module keeps a default of its own)."""
  for field in upgrade.RENAMED:
    *groups, name = field.split(".")
    where = config
    for group in groups:
      where = where.get(group, {})
    if name in where:
      raise ConfigError(f"{upgrade.renamed(field, where[name], 'config.')}; set that instead.")
  missing = upgrade.missing_field(config)
  if missing:
    raise ConfigError(f"config.{missing} is missing: build configs from jaxseg.config.defaults.get_config() "
                      "(config files: from configs/default.py) and change fields of it.")
  if config.image_size <= 0 or config.image_height < 0 or config.image_width < 0:
    raise ConfigError("config.image_size must be positive, image_height and image_width >= 0 (0 = image_size).")
  for field in ("crop_height", "crop_width"):
    value = config.augment[field]
    if value < 0 or value % 32:
      raise ConfigError(f"config.augment.{field}={value} must be a multiple of 32 (the encoders downsample 5 "
                        f"times; 0 = the whole example), e.g. {max(32, round(value / 32) * 32)}.")
  if not 0 < config.augment.scale_min <= config.augment.scale_max:
    raise ConfigError(f"config.augment.scale_min={config.augment.scale_min} and scale_max="
                      f"{config.augment.scale_max} must satisfy 0 < scale_min <= scale_max.")
  if not all(0.0 <= config.augment[f] < 1.0 for f in ("brightness", "contrast", "saturation")):
    raise ConfigError("config.augment.brightness, contrast and saturation must be in [0, 1).")
  _check_dataset(config)
  if canonical_name(config.model.name) not in MODELS:
    raise ConfigError(f"config.model.name={config.model.name!r} is unknown; choose one of {sorted(MODELS)}.")
  _check_backbone(config)
  problem = model_class(config.model.name).check_config(config) or inference.check(config)
  if problem:
    raise ConfigError(problem)
  if config.model.kernels not in KERNELS:
    raise ConfigError(f"config.model.kernels={config.model.kernels!r} must be one of {KERNELS}.")
  if not 2 <= config.num_classes < IGNORE:
    raise ConfigError(f"config.num_classes={config.num_classes} must be in 2..{IGNORE - 1}.")
  if config.dtype not in DTYPE_NAMES:
    raise ConfigError(f"config.dtype={config.dtype!r} must be one of {', '.join(DTYPE_NAMES)}.")
  if config.num_epochs < 0 or config.keep_checkpoints < 1 or config.log_every_steps < 1:
    raise ConfigError("config.num_epochs must be >= 0, keep_checkpoints and log_every_steps >= 1.")
  if config.checkpoint_every_steps < 0:
    raise ConfigError(f"config.checkpoint_every_steps={config.checkpoint_every_steps} must be >= 0 (0 = only at "
                      "the end of each epoch).")
  if not config.encoder_lr_scale > 0:
    raise ConfigError(f"config.encoder_lr_scale={config.encoder_lr_scale} must be > 0 (to keep the encoder fixed, "
                      "set config.freeze_encoder=True).")
  if not 0.0 <= config.target_accuracy <= 1.0:
    raise ConfigError(f"config.target_accuracy={config.target_accuracy} must be in [0, 1] (0 = off).")
  parallel.check_batch_size(config.batch_size, "batch_size")
  parallel.check_batch_size(config.eval_batch_size, "eval_batch_size")
  if config.model.aux_stride and config.freeze_encoder:
    raise ConfigError(f"config.model.aux_stride={config.model.aux_stride} needs config.freeze_encoder=False: "
                      "an auxiliary head trains the encoder, and a frozen one takes nothing from it.")
  if config.encoder_bn_train and config.freeze_encoder:
    raise ConfigError("config.encoder_bn_train=True needs config.freeze_encoder=False (a frozen encoder keeps "
                      "its BatchNorm statistics).")
  if config.data.source not in SOURCES:
    raise ConfigError(f"config.data.source={config.data.source!r} must be one of {sorted(SOURCES)}.")
  _check_pipeline(config)


def _check_pipeline(config: ml_collections.ConfigDict) -> None:
  d = config.data
  if d.pipeline not in PIPELINES:
    raise ConfigError(f"config.data.pipeline={d.pipeline!r} must be one of {PIPELINES}.")
  if d.workers < -1 or d.prefetch < 1:
    raise ConfigError(f"config.data.workers={d.workers} must be >= -1 (-1 = the cores available, 0 = in-process) "
                      f"and config.data.prefetch={d.prefetch} >= 1.")
  scale = tuple(d.scale or (0, 0))
  if len(scale) != 2 or min(scale) < 0 or (min(scale) == 0 and max(scale) > 0):
    raise ConfigError(f"config.data.scale={scale} must be two positive sides (long, short), e.g. (2048, 1024), "
                      "or (0, 0) to resize every example to the stored size.")
  if min(scale) > 0 and d.pipeline == "memory":
    raise ConfigError("config.data.scale keeps every example at its own size, which only "
                      "config.data.pipeline='stream' (or 'auto') reads.")


def _check_dataset(config: ml_collections.ConfigDict) -> None:
  d = config.data
  if d.class_names and len(d.class_names) != config.num_classes:
    raise ConfigError(f"config.data.class_names has {len(d.class_names)} names but config.num_classes is "
                      f"{config.num_classes}; give one name per class.")
  if any(len(tuple(c)) != 3 or not all(0 <= int(v) <= 255 for v in c) for c in d.class_colors):
    raise ConfigError("config.data.class_colors must be (r, g, b) triples in 0-255.")
  choices = {"layout": ("auto", *LAYOUTS), "mask_format": ("index", "color"), "eval_resolution": ("original", "model")}
  for field, allowed in choices.items():
    if d[field] not in allowed:
      raise ConfigError(f"config.data.{field}={d[field]!r} must be one of {allowed}.")
  if "holdout" in (d.train_split, d.eval_split) and not d.holdout:
    raise ConfigError("config.data.eval_split='holdout' scores the training files config.data.holdout picks; set "
                      "it too, e.g. --config.data.holdout='0006R0_*'.")
  if d.holdout and d.source != "folder":
    raise ConfigError(f"config.data.holdout={d.holdout!r} picks training files by name, which needs "
                      f"config.data.source='folder' (it is {d.source!r}).")
  if d.tfds_file_format not in ("tfrecord", "array_record"):
    raise ConfigError(f"config.data.tfds_file_format={d.tfds_file_format!r} must be 'tfrecord' or 'array_record'.")
  _check_optimizer(config)
  if config.loss.name not in LOSSES:
    raise ConfigError(f"config.loss.name={config.loss.name!r} must be one of {LOSSES}.")
  if not 0.0 < config.loss.ohem_threshold <= 1.0 or config.loss.ohem_min_kept < 0:
    raise ConfigError("config.loss.ohem_threshold must be in (0, 1] and config.loss.ohem_min_kept at least 0.")
  if not 0.0 <= config.loss.label_smoothing < 1.0 or config.loss.aux_weight < 0:
    raise ConfigError("config.loss.label_smoothing must be in [0, 1) and config.loss.aux_weight at least 0.")
  if config.model.aux_stride and not config.loss.aux_weight:
    raise ConfigError(f"config.loss.aux_weight=0 leaves the auxiliary head of config.model.aux_stride="
                      f"{config.model.aux_stride} untrained; give it a weight (e.g. 0.4) or set aux_stride=0.")
  if config.loss.label_smoothing and "cross_entropy" not in config.loss.name and not config.model.aux_stride:
    raise ConfigError(f"config.loss.label_smoothing smooths cross-entropy, and config.loss.name="
                      f"{config.loss.name!r} has none; use a cross-entropy loss or label_smoothing=0.")
  bins = config.loss.lovasz_bins
  if not isinstance(bins, int) or not (bins == 0 or 2 <= bins <= 2**20):
    raise ConfigError(f"config.loss.lovasz_bins={bins!r} must be 0 (sort the errors) or a number of bins from 2 "
                      "to 1048576 (e.g. 65536).")
  if bins and "lovasz" not in config.loss.name:
    raise ConfigError(f"config.loss.lovasz_bins ranks Lovasz-softmax's errors, and config.loss.name="
                      f"{config.loss.name!r} has no Lovasz term; use a lovasz loss or lovasz_bins=0.")
  if not 0.0 <= config.ema_decay < 1.0:
    raise ConfigError(f"config.ema_decay={config.ema_decay} must be in [0, 1) (e.g. 0.999; 0 = off).")


def _check_optimizer(config: ml_collections.ConfigDict) -> None:
  """The optimizer and schedule fields (`jaxseg.training.optimizers`)."""
  if config.optimizer not in OPTIMIZERS:
    raise ConfigError(f"config.optimizer={config.optimizer!r} must be one of {OPTIMIZERS}.")
  if config.lr_schedule not in SCHEDULES:
    raise ConfigError(f"config.lr_schedule={config.lr_schedule!r} must be one of {SCHEDULES}.")
  if config.weight_decay < 0:
    raise ConfigError(f"config.weight_decay={config.weight_decay} must be at least 0 (e.g. 5e-4; 0 = none).")
  if not 0.0 <= config.momentum < 1.0:
    raise ConfigError(f"config.momentum={config.momentum} must be in [0, 1) (e.g. 0.9; 0 = none).")
  if config.nesterov and (config.optimizer != "sgd" or not config.momentum):
    raise ConfigError(f"config.nesterov=True needs config.optimizer='sgd' with config.momentum above 0 (they are "
                      f"{config.optimizer!r}, {config.momentum}).")
  if config.lr_power <= 0:
    raise ConfigError(f"config.lr_power={config.lr_power} must be above 0 (e.g. 0.9).")
  if not 0.0 <= config.warmup_epochs < max(config.num_epochs, 1):
    raise ConfigError(f"config.warmup_epochs={config.warmup_epochs} must be in [0, num_epochs) "
                      f"(num_epochs={config.num_epochs}).")


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



def _check_backbone(config: ml_collections.ConfigDict) -> None:
  """`model.backbone` is known, fits the model name, and `model.backbone_weights` names something usable."""
  m = config.model
  if m.backbone not in backbones.BACKBONES:
    raise ConfigError(f"config.model.backbone={m.backbone!r} is unknown; choose one of "
                      f"{', '.join(backbones.BACKBONES)}.")
  entry = backbones.BACKBONES[m.backbone]
  if m.name in LEGACY_NAMES and not entry.keras_file:
    raise ConfigError(f"config.model.name={m.name!r} is MobileNetV2's; with config.model.backbone={m.backbone!r} "
                      f"use config.model.name={LEGACY_NAMES[m.name]!r}.")
  if len(m.input_scale) != len(m.input_offset) or len(m.input_scale) not in (0, 3):
    raise ConfigError("config.model.input_scale and input_offset must both be 3 values (per RGB channel, "
                      "applied to [0, 255] pixels) or both empty (the backbone's own normalisation).")
  if m.aux_stride and (entry.tokens or m.aux_stride not in entry.strides):
    raise ConfigError(f"config.model.aux_stride={m.aux_stride} must be 0 (no auxiliary head) or a stride of "
                      f"{m.backbone}'s feature maps{'' if entry.tokens else f' {list(entry.strides)}'}.")
  weights = m.backbone_weights
  if entry.keras_file or weights in ("none", ""):
    return
  if weights == "imagenet" and not entry.preset:
    raise ConfigError(f"config.model.backbone_weights=imagenet: keras-hub has no ImageNet preset of {m.backbone}; "
                      "pass a keras-hub preset name or directory, or none.")
  looks_like_path = os.sep in weights or weights.startswith(".") or weights.endswith((".h5", ".keras"))
  if looks_like_path and not os.path.exists(weights):
    raise ConfigError(f"config.model.backbone_weights={weights}: no such file or directory; pass a directory "
                      "written by keras-hub's save_to_preset, a preset name, imagenet or none.")
