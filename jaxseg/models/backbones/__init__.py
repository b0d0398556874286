"""Backbones: image encoders that return feature maps by stride, and their keras-hub weights.

backbone = backbones.create("resnet50")                # a Flax module: images -> {4: ..., 8: ..., 16: ..., 32: ...}
variables = backbones.from_keras_hub("resnet50", keras_hub_model_or_preset_dir)
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.backbones import keras_hub_port, resnet
from jaxseg.models.backbones.keras_hub_port import PortError

# Plain-dict registry: backbone name -> (module class, architecture arguments).
BACKBONES = {name: (resnet.ResNet, arch) for name, arch in resnet.VARIANTS.items()}


def create(name: str) -> nn.Module:
  """The backbone `name` (a key of `BACKBONES`)."""
  module, arch = BACKBONES[name]
  return module(**arch)


def from_keras_hub(name: str, source: Any) -> dict[str, Any]:
  """Variables of backbone `name` from a keras-hub model, or a preset directory or name.

  Raises:
    PortError: the model is of another architecture, or the preset cannot be read.
  """
  keras_model = keras_hub_port.load_backbone(source) if isinstance(source, str) else source
  want = jax.eval_shape(lambda: create(name).init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))
  return keras_hub_port.port(keras_model, want)


__all__ = ["BACKBONES", "PortError", "create", "from_keras_hub"]
