"""Optional dependencies: a feature whose package is missing says, in one line, what to install."""

import importlib
import importlib.util
from types import ModuleType

from jaxseg.errors import UserError


class MissingDependency(UserError):
  """A package a feature needs is not installed."""


def check(module: str, feature: str, install: str) -> None:
  """Raises `MissingDependency` unless `module` can be imported; imports nothing (a check before any work).

  Args:
    module: the module, e.g. "tensorflow".
    feature: what needs it, for the message.
    install: what to pip-install.
  """
  try:
    found = importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):  # a parent package is missing, or the module was blocked
    found = False
  if not found:
    raise _missing(module, feature, install, "not found")


def _missing(module: str, feature: str, install: str, why: str) -> MissingDependency:
  return MissingDependency(f"{feature} needs the Python package {module.split('.')[0]}, which is not installed "
                           f"({why}): pip install '{install}'")


def require(module: str, feature: str, install: str) -> ModuleType:
  """Imports `module`, or raises `MissingDependency` naming `feature` and the pip command.

  Args:
    module: the module to import, e.g. "tensorflow".
    feature: what needs it, for the message (e.g. "--format saved_model").
    install: what to pip-install, e.g. "jaxseg[tf]".

  Returns:
    The imported module.
  """
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise _missing(module, feature, install, str(e)) from e
