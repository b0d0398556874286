"""Models: the U-Net, DeepLabV3+ and SegFormer over the backbones of `jaxseg.models.backbones`, a linear head
over a ViT (DINOv2), ports of the Keras tutorial models and summaries; this module holds the registry,
construction from a config, and parameter bookkeeping.

A model registers here by name; everything else asks the registered class (`from_config`, `check_config`,
`IDENTITY_FIELDS`, `summary_rows`), never which model it is."""

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.models.backbones.mobilenet_v2 import OUTPUT_STRIDES, UNET_TAPS, MobileNetV2, make_divisible
from jaxseg.models.base import SegmentationModel
from jaxseg.models.deeplab import DeepLabV3Plus
from jaxseg.models.layers import LayerSpec
from jaxseg.models.linear import LinearHead
from jaxseg.models.segformer import SegFormer
from jaxseg.models.summary import count_params, format_summary
from jaxseg.models.unet import UNet
from jaxseg.ops import KERNELS

__all__ = [
  "KERNELS",
  "LEGACY_NAMES",
  "MODELS",
  "OUTPUT_STRIDES",
  "UNET_TAPS",
  "DeepLabV3Plus",
  "LayerSpec",
  "LinearHead",
  "MobileNetV2",
  "SegFormer",
  "SegmentationModel",
  "UNet",
  "canonical_name",
  "count_params",
  "create_model",
  "format_summary",
  "init_variables",
  "make_divisible",
  "model_class",
]

# Plain-dict registry: config.model.name -> model class.
MODELS: dict[str, type[SegmentationModel]] = {"unet": UNet, "deeplabv3plus": DeepLabV3Plus, "segformer": SegFormer,
                                              "linear": LinearHead}
# Names of earlier releases, where the name said the encoder: each is its model over backbone "mobilenet_v2".
LEGACY_NAMES = {"unet_mobilenet_v2": "unet", "deeplabv3plus_mobilenet_v2": "deeplabv3plus"}


def canonical_name(name: str) -> str:
  """`config.model.name` as `MODELS` knows it (an earlier release's name mapped to today's)."""
  return LEGACY_NAMES.get(name, name)


def model_class(name: str) -> type[SegmentationModel]:
  """The model class `config.model.name` names (today's or an earlier release's name)."""
  return MODELS[canonical_name(name)]


def create_model(config: ml_collections.ConfigDict) -> SegmentationModel:
  """Builds the model named by `config.model.name` from its own config fields.

  Args:
    config: the experiment config (uses `model.*`, `num_classes`, `dtype`), as checked by
      `jaxseg.config.checks.check_config`.

  Returns:
    An unbound Flax module.
  """
  return model_class(config.model.name).from_config(config)


def init_variables(model: SegmentationModel, image_size: int | tuple[int, int] = 64,
                   seed: int = 0) -> dict[str, Any]:
  """Random `{"params", "batch_stats"}` for `model` (their shapes do not depend on `image_size`, a multiple
  of 32 or a (height, width) of multiples of 32)."""
  h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
  key = jax.random.key(seed)
  if isinstance(key, jax.core.Tracer):  # inside jax.eval_shape or jit: the traceable form
    return _jitted_init(model, h, w)(key)
  return _compiled_init(model, h, w, tuple(sorted(init_compiler_options().items())))(key)


@functools.lru_cache(maxsize=8)
def _jitted_init(model: SegmentationModel, h: int, w: int):
  """`model.init` at (h, w), jitted once per process for every seed (models compare by their fields)."""
  return jax.jit(lambda key: model.init(key, jnp.zeros((1, h, w, 3), jnp.float32), train=False,
                                       mutable=("params", "batch_stats")))


# The init runs once and is mostly random bits and their scaling: on CPU, LLVM's level 1 compiles it in half
# the time of the default level (5 s against 10 s for the CamVid U-Net on 2 Zen 3 cores) into a program of the
# same speed and bit-identical values (level 0 would change last bits; tests/test_startup.py holds the identity).
INIT_COMPILER_OPTIONS = {"cpu": {"xla_backend_optimization_level": 1}}


def init_compiler_options() -> dict[str, int]:
  """XLA options for compiling the init on the default backend; none where XLA_FLAGS sets the level itself."""
  if "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", ""):
    return {}
  return INIT_COMPILER_OPTIONS.get(jax.default_backend(), {})


@functools.lru_cache(maxsize=8)
def _compiled_init(model: SegmentationModel, h: int, w: int, options: tuple[tuple[str, int], ...]):
  """`_jitted_init` compiled ahead of time with XLA `options`."""
  lowered = _jitted_init(model, h, w).lower(jax.random.key(0))
  return lowered.compile(compiler_options=dict(options) or None)
