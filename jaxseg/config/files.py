"""Config files as Python modules (`get_config()`), loaded by path with dotted-key overrides: what main.py's
`--config` and `--config.field=value` flags do, for notebooks and scripts."""

import ast
import importlib.util
import os
import sys
from typing import Any

import ml_collections

from jaxseg.errors import ConfigError


def importable_configs(path: str | None) -> None:
  """Puts the folder above a `configs` package holding `path` on sys.path, so that a recipe's
  `from configs import default` works whatever the working directory."""
  folder = os.path.dirname(os.path.abspath(path)) if path else ""
  if path and os.path.isfile(os.path.join(folder, "__init__.py")) and os.path.basename(folder) == "configs":
    root = os.path.dirname(folder)
    if root not in sys.path:
      sys.path.insert(0, root)


def load_config(path: str, overrides: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
  """`get_config()` of the config file at `path`, with `overrides` ({"data.source": "folder", ...}) applied.

  Args:
    path: a config file such as configs/r224.py (a recipe of a `configs` folder may import its siblings).
    overrides: dotted field names -> values; each field must exist in the config.

  Raises:
    ConfigError: a missing or broken file, or an override of a field that does not exist.
  """
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path} not found (the configs are in configs/, e.g. configs/r224.py).")
  importable_configs(path)
  spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    config = module.get_config()
  except Exception as e:  # pylint: disable=broad-except  # any failure of the user's file, named in one line
    raise ConfigError(f"cannot load config file {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                      ". A config file defines get_config() and imports what it builds on (e.g. from configs import "
                      "camvid).") from None
  for key, value in (overrides or {}).items():
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      raise ConfigError(f"config override {key!r}: no such field in {path} (see jaxseg/config/defaults.py).")
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise ConfigError(f"config override {key}={value!r}: {e}") from None
  return config


def parse_value(text: str) -> Any:
  """A `--config.field=value` value: a Python literal ("4", "(64, 96)", "True") or else the string itself."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_overrides(fields: list[str], option: str = "--set") -> dict[str, Any]:
  """{"batch_size": 4, ...} from ["batch_size=4", ...], for `load_config`'s overrides.

  Raises:
    ConfigError: an entry without "=" (named with `option`, the flag that gave it).
  """
  overrides = {}
  for field in fields:
    key, has_value, value = field.partition("=")
    if not has_value:
      raise ConfigError(f"{option} {field}: give FIELD=VALUE, e.g. batch_size=4.")
    overrides[key] = parse_value(value)
  return overrides
