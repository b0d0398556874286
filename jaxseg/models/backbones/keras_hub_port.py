"""keras-hub backbones -> jaxseg backbone variables, layer by layer by name.

A keras-hub model is read from a live Keras model, a preset directory written by keras-hub's
`save_to_preset` (read offline), or a preset name (keras-hub downloads it where there is a network).
"""

import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxseg.errors import UserError
from jaxseg.runtime import extras


class PortError(UserError):
  """A keras-hub model that does not match the backbone it is ported into."""


def keras_variables(model) -> dict[str, dict[str, Any]]:
  """{"params", "batch_stats"} of a Keras model's weighted layers, nested ones included, by layer name, in
  Flax's names: Conv2D (grouped and depthwise too: (kh, kw, in / groups, out) in both frameworks) and Dense
  kernel / bias, BatchNormalization and LayerNormalization scale / bias (+ BatchNorm mean / var)."""
  import keras  # pylint: disable=import-outside-toplevel
  params, stats = {}, {}
  for layer in model._flatten_layers(include_self=False, recursive=True):  # pylint: disable=protected-access
    if layer._layers or not layer.weights:  # pylint: disable=protected-access  (weights held by sublayers)
      continue
    if layer.name in params:
      raise PortError(f"keras-hub layer name {layer.name} occurs twice; jaxseg ports by name.")
    w = [np.asarray(v) for v in layer.get_weights()]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
      params[layer.name] = {"kernel": np.swapaxes(w[0], 2, 3), **({"bias": w[1]} if len(w) > 1 else {})}
    elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
      params[layer.name] = {"kernel": w[0], **({"bias": w[1]} if len(w) > 1 else {})}
    elif isinstance(layer, keras.layers.BatchNormalization):
      params[layer.name] = {"scale": w[0], "bias": w[1]}
      stats[layer.name] = {"mean": w[2], "var": w[3]}
    elif isinstance(layer, keras.layers.LayerNormalization):
      params[layer.name] = {"scale": w[0], "bias": w[1]}
    else:
      raise PortError(f"keras-hub layer {layer.name} ({type(layer).__name__}) has weights jaxseg does not port.")
  return {"params": params, "batch_stats": stats}


def load_backbone(weights: str, task: str = "") -> Any:
  """A keras-hub backbone (or, with `task`, that model class of `keras_hub.models`, e.g.
  "SegFormerImageSegmenter") from a preset directory or name.

  Raises:
    PortError: the directory holds no keras-hub preset, or the name cannot be fetched.
  """
  keras_hub = extras.require("keras_hub", "keras-hub presets", "jaxseg[keras]")
  if os.path.isdir(weights) and not os.path.isfile(os.path.join(weights, "config.json")):
    raise PortError(f"{weights} is not a keras-hub preset directory (no config.json; keras-hub's "
                    "save_to_preset writes one).")
  try:
    return getattr(keras_hub.models, task or "Backbone").from_preset(weights)
  except Exception as e:  # pylint: disable=broad-except
    raise PortError(f"could not load keras-hub preset {weights!r} ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:160] if str(e) else ''}); pass a preset directory written by "
                    "keras-hub's save_to_preset, or run once where the preset can be downloaded.") from None


def image_transform(preset: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
  """(scale, offset) per channel of the image converter a keras-hub preset holds (applied to [0, 255]
  pixels), or None where it holds none (a backbone saved on its own)."""
  keras_hub = extras.require("keras_hub", "keras-hub backbone weights", "jaxseg[keras]")
  try:
    converter = keras_hub.layers.ImageConverter.from_preset(preset)
  except Exception:  # pylint: disable=broad-except  (no converter in this preset)
    return None
  scale = converter.scale if converter.scale is not None else 1.0
  offset = converter.offset if converter.offset is not None else 0.0
  per_channel = lambda v: tuple(float(x) for x in np.broadcast_to(np.asarray(v, np.float64), (3,)))
  return per_channel(scale), per_channel(offset)


def port(model, want: dict[str, Any], extract: Any = None) -> dict[str, Any]:
  """The keras-hub `model`'s weights in the structure of `want` (a backbone's initialised variables).

  Args:
    model: a keras-hub model.
    want: the variables (or shape structs) to fill.
    extract: model -> {"params", "batch_stats"} in `want`'s names; `keras_variables` (by layer name) if None.

  Raises:
    PortError: naming the first layer missing or of another shape.
  """
  try:
    got = (extract or keras_variables)(model)
  except (AttributeError, ValueError, IndexError) as e:
    raise PortError(f"the keras-hub model {type(model).__name__} is not of the backbone's family ({e}).") from None
  out = {}
  for collection in ("params", "batch_stats"):
    if collection not in want and not got[collection]:
      continue
    mine, theirs = len(jax.tree.leaves(want.get(collection, {}))), len(jax.tree.leaves(got[collection]))
    if mine != theirs:
      raise PortError(f"the keras-hub model has {theirs} {collection} arrays, the backbone {mine}: "
                      "another architecture.")
    out[collection] = fill(want[collection], got[collection],
                           lambda name, value, leaf: f"keras-hub layer {name}: {value} where the backbone has {leaf}: "
                                                     "another architecture.")
  return out


def fill(want: Any, found: dict[str, Any], problem: Callable[[str, Any, Any], str]) -> Any:
  """`want`'s structure (a tree of arrays or shape structs) with each leaf taken from `found` (a nested dict of
  the same names, which may hold more) as float32.

  Raises:
    PortError: `problem(name, found shape or None, wanted shape)` for the first leaf missing or of another shape.
  """
  theirs = dict(jax.tree_util.tree_flatten_with_path(found)[0])
  leaves = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(want)[0]:
    value = theirs.get(path)
    if value is None or tuple(np.shape(value)) != tuple(leaf.shape):
      name = "/".join(str(getattr(k, "key", k)) for k in path)
      raise PortError(problem(name, None if value is None else tuple(np.shape(value)), tuple(leaf.shape)))
    leaves.append(np.asarray(value, np.float32))
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(want), leaves)
