"""What every segmentation model over MobileNetV2 is configured by (the registry builds each from a config
with these fields)."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class SegmentationModel(nn.Module):
  """Fields shared by the U-Net and DeepLabV3+.

  Attributes:
    num_classes: output channels.
    alpha: MobileNetV2 width multiplier.
    dtype: compute dtype (float32 or bfloat16); parameters and logits stay float32.
    gemm_dtype: the dtype GEMM inputs are cast to, accumulated in float32 (None: `dtype`; see
      `jaxseg.precision`).
    encoder_bn_momentum: encoder BatchNorm momentum (Keras MobileNetV2: 0.999).
    decoder_bn_momentum: BatchNorm momentum after the encoder (Keras default: 0.99).
    conv_impl: "auto", "gemm", "xla" or "lite": how convolutions are formulated (see `jaxseg.models.conv_kernels`).
  """
  num_classes: int = 3
  alpha: float = 1.0
  dtype: Any = jnp.float32
  gemm_dtype: Any = None
  encoder_bn_momentum: float = 0.999
  decoder_bn_momentum: float = 0.99
  conv_impl: str = "auto"
