"""Models: the conv kernels, MobileNetV2, the U-Net, Keras weight porting and summaries; this module holds
the registry, construction from a config, and parameter bookkeeping."""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jaxseg import precision
from jaxseg.models.conv_kernels import CONV_IMPLS
from jaxseg.models.deeplab import DeepLabV3Plus
from jaxseg.models.summary import count_params, format_summary
from jaxseg.models.mobilenet_v2 import ALPHAS, OUTPUT_STRIDES, UNET_TAPS, MobileNetV2, make_divisible
from jaxseg.models.unet import UNet

__all__ = ["MobileNetV2", "UNet", "DeepLabV3Plus", "OUTPUT_STRIDES", "MODELS", "CONV_IMPLS",
           "create_model", "init_variables",
           "count_params", "format_summary", "ALPHAS", "UNET_TAPS", "make_divisible"]

# Plain-dict registry: config.model.name -> constructor.
MODELS = {"unet_mobilenet_v2": UNet, "deeplabv3plus_mobilenet_v2": DeepLabV3Plus}


def create_model(config: ml_collections.ConfigDict) -> UNet | DeepLabV3Plus:
  """Builds the model named by `config.model.name`.

  Args:
    config: the experiment config (uses `model.*`, `num_classes`, `dtype`), as checked by
      `jaxseg.config_checks.check_config`.

  Returns:
    An unbound Flax module.
  """
  m = config.model
  policy = precision.precision(config.dtype)
  extra = {"output_stride": m.output_stride, "separable": m.separable} if m.name.startswith("deeplab") else {}
  return MODELS[m.name](num_classes=config.num_classes, alpha=m.alpha, dtype=policy.compute, gemm_dtype=policy.gemm,
                        encoder_bn_momentum=m.encoder_bn_momentum, decoder_bn_momentum=m.decoder_bn_momentum,
                        conv_impl=m.conv_impl, **extra)


def init_variables(model: UNet | DeepLabV3Plus, image_size: int | tuple[int, int] = 64,
                   seed: int = 0) -> dict[str, Any]:
  """Random `{"params", "batch_stats"}` for `model` (their shapes do not depend on `image_size`, a multiple
  of 32 or a (height, width) of multiples of 32)."""
  h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
  dummy = jnp.zeros((1, h, w, 3), jnp.float32)
  return jax.jit(lambda k: model.init(k, dummy, train=False))(jax.random.key(seed))
