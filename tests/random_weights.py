"""Weights of the right shapes for tests that need some, without compiling `module.init`.

`module.init` draws each parameter with its own threefry hash: compiled whole, that is seconds of XLA work
for a backbone; run op by op, longer. Tests that only need weights of the right shapes (two formulations of
one network given the same weights, output shapes) draw them with numpy instead.
"""

import functools

import jax
import numpy as np


def variables(module, *args, seed: int = 0, **kwargs):
  """Variables of `module.init(key, *args, **kwargs)`'s shapes, drawn with numpy: kernels and embeddings
  LeCun-normal (std 1/sqrt(fan-in)), scales and variances 1, everything else (biases, means) 0."""
  shapes = jax.eval_shape(functools.partial(module.init, **kwargs), jax.random.key(0), *args)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    if name in ("scale", "var", "gamma") or name.endswith("_var"):
      return np.ones(leaf.shape, leaf.dtype)
    if len(leaf.shape) >= 2:
      fan_in = int(np.prod(leaf.shape[:-1])) or 1
      return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)
    return np.zeros(leaf.shape, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)
