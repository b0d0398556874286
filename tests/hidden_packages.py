"""Makes installed packages unimportable in this process, as if they were not installed: for checks of what the
base install does without its extras' packages, run in an environment that has them.

`hide(names)` puts one finder in place of `sys.meta_path`'s, which asks them for every module but `names` and
their submodules, so `import tensorflow` raises ModuleNotFoundError and `importlib.util.find_spec("tensorflow")`
returns None, as in a virtual environment without TensorFlow. Call it before anything imports them.
"""

import importlib.abc
import sys

# The packages of jaxseg's extras and what they bring: [tf] TensorFlow (and its TensorBoard), [keras] Keras,
# keras-hub and tensorflow-text, [torch] PyTorch.
EXTRAS = ("tensorflow", "tensorflow_text", "tensorboard", "tf_keras", "keras", "keras_hub", "torch")


class _Hidden(importlib.abc.MetaPathFinder):
  def __init__(self, names, finders):
    self.names, self.finders = tuple(names), finders

  def find_spec(self, name, path, target=None):
    if any(name == n or name.startswith(n + ".") for n in self.names):
      return None
    for finder in self.finders:
      spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
      if spec is not None:
        return spec
    return None

  def invalidate_caches(self):
    for finder in self.finders:
      if hasattr(finder, "invalidate_caches"):
        finder.invalidate_caches()


def hide(names=EXTRAS) -> None:
  """Makes `names` (top-level package names) unimportable from now on in this process."""
  present = [n for n in names if n in sys.modules]
  if present:
    raise RuntimeError(f"already imported, cannot be hidden: {present}")
  sys.meta_path[:] = [_Hidden(names, list(sys.meta_path))]
