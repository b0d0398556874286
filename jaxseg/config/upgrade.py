"""Configs saved with checkpoints by earlier releases, in today's fields and with today's defaults.

A checkpoint records its config as JSON and, since format 2, the format it was written in (`FORMAT`, the
meta's "config_format"). A saved config is brought forward once, here, when it is read back; every other
module reads today's fields with no default of its own (the defaults live in `jaxseg.config.defaults` only).
"""

import copy
from collections.abc import Callable
from typing import Any

from jaxseg.config import defaults

# The config format this release writes. 1: configs of earlier releases (no "config_format" in the meta).
FORMAT = 3

# Fields whose value is a mapping of the user's own keys (not a group of fields): taken whole, never merged.
MAPPINGS = {"data.class_map"}

# What a release without these fields did, where today's default differs: a saved config that lacks one
# keeps that behaviour rather than taking today's default.
EARLIER_BEHAVIOUR = {("data", "pipeline"): "memory", ("data", "tfds_file_format"): "tfrecord",
                     ("model", "decoder_bn_debias"): False}


def _merge(base: dict[str, Any], saved: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  """`base` (changed in place) with `saved`'s values over it, groups of fields merged (a saved non-dict replaces
  a default group, e.g. `distributed=False`; a `MAPPINGS` value replaces the default whole); fields only `saved`
  has are kept."""
  for key, value in saved.items():
    if isinstance(value, dict) and isinstance(base.get(key), dict) and prefix + key not in MAPPINGS:
      _merge(base[key], value, f"{prefix}{key}.")
    else:
      base[key] = copy.deepcopy(value)
  return base


def backbone_with_width(backbone: str, alpha: Any) -> str:
  """The backbone name of formats 1 and 2's `model.backbone` and `model.alpha` (MobileNetV2's width
  multiplier, today in the name: "mobilenet_v2_0.35"; 1.0 is the plain name)."""
  if backbone != "mobilenet_v2" or alpha is None or float(alpha) == 1.0:
    return backbone
  return f"mobilenet_v2_{float(alpha)}"


def mobilenet_v2_name(alpha: Any) -> str:
  """MobileNetV2's backbone name at width multiplier `alpha`."""
  return backbone_with_width("mobilenet_v2", alpha)


def _alpha_renamed(alpha: Any, prefix: str) -> str:
  try:
    name = mobilenet_v2_name(alpha)
  except (TypeError, ValueError):
    name = "mobilenet_v2_<width>"
  return (f"part of the backbone's name: {prefix}model.backbone={name} (widths 0.35, 0.5, 0.75, 1.0, 1.3, 1.4; "
          "1.0 is mobilenet_v2)")


# Fields no config may set any more: field -> what replaced it, from the value given and how fields are
# written where it was given ("config." in a file, "--config." on a command line).
RENAMED: dict[str, Callable[[Any, str], str]] = {
    "model.alpha": _alpha_renamed,
    "model.conv_impl": lambda value, prefix: f"{prefix}model.kernels (it picks the layer norm and softmax forms "
                                             "too)",
}


def renamed(field: str, value: Any, prefix: str) -> str:
  """"PREFIXfield is now ..." for a field of `RENAMED`, or "" for any other."""
  if field not in RENAMED:
    return ""
  return f"{prefix}{field} is now {RENAMED[field](value, prefix)}"


def upgraded_identity(saved: dict[str, Any]) -> dict[str, Any]:
  """A checkpoint's recorded model identity (meta "model") in today's fields: one written before backbones
  were named is MobileNetV2's, and MobileNetV2's width multiplier is in the backbone's name."""
  saved = dict(saved)
  if "name" in saved:
    saved.setdefault("backbone", "mobilenet_v2")
  if "alpha" in saved:
    saved["backbone"] = backbone_with_width(saved.get("backbone", "mobilenet_v2"), saved.pop("alpha"))
  return saved


def upgraded(saved: dict[str, Any], fmt: int = 1) -> dict[str, Any]:
  """The config dict `saved` (written in format `fmt`) in today's fields, missing ones at today's defaults.

  Format 1 -> 2: the encoder of a config without `model.backbone` was the Keras MobileNetV2, its weights the
  top-level `encoder_weights`; `model.kernels` was `model.conv_impl`; fields in `EARLIER_BEHAVIOUR` it lacks
  keep what that release did. 2 -> 3: `model.alpha` went into MobileNetV2's backbone name, and MobileNetV2,
  which ignored `model.input_scale` / `input_offset` before, keeps taking [-1, 1] as it is.
  """
  saved = {**saved, "model": dict(saved.get("model", {})), "data": dict(saved.get("data", {}))}
  if fmt < 2:
    model = saved["model"]
    if "backbone" not in model:
      model.update(backbone="mobilenet_v2", backbone_weights=saved.pop("encoder_weights", "none"),
                   input_scale=(), input_offset=())
    if "conv_impl" in model:
      model["kernels"] = model.pop("conv_impl")
    for (group, field), value in EARLIER_BEHAVIOUR.items():
      saved[group].setdefault(field, value)
  if fmt < 3:
    saved["model"] = upgraded_identity(saved["model"])  # (backbone named by format 2's upgrade above)
    if saved["model"]["backbone"].startswith("mobilenet_v2"):  # which took no input normalisation then
      saved["model"].update(input_scale=(), input_offset=())
  return _merge(defaults.get_config().to_dict(), saved)  # (a fresh dict of the defaults, merged into)


def missing_field(config: Any) -> str:
  """The first field of the default config that `config` (a ConfigDict) lacks, dotted, or ""."""

  def walk(want: dict[str, Any], have: Any, prefix: str) -> str:
    for key, value in want.items():
      if key not in have:
        return prefix + key
      if isinstance(value, dict) and hasattr(have[key], "keys") and prefix + key not in MAPPINGS:
        found = walk(value, have[key], f"{prefix}{key}.")
        if found:
          return found
    return ""

  return walk(defaults.get_config().to_dict(), config, "")
