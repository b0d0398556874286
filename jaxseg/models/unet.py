"""The TensorFlow segmentation tutorial's U-Net: pix2pix upsample blocks over MobileNetV2 skips."""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models import conv_kernels
from jaxseg.models.base import SegmentationModel
from jaxseg.models.mobilenet_v2 import UNET_TAPS, MobileNetV2, check_input_size


class ConvTranspose3x3S2(nn.Module):
  """Keras `Conv2DTranspose(features, 3, strides=2, padding="same")` over concatenated inputs.

  The kernel is stored as (3, 3, Cin, Cout), Keras's (3, 3, Cout, Cin) with the last two axes swapped;
  the inputs are never concatenated (see `conv_kernels.conv_transpose3x3_s2_gemm`).
  """
  features: int
  use_bias: bool = False
  kernel_init: Any = nn.initializers.normal(0.02)
  dtype: Any = jnp.float32
  conv_impl: str = "auto"
  gemm_dtype: Any = None

  @nn.compact
  def __call__(self, inputs: Sequence[jax.Array]) -> jax.Array:
    cin = sum(x.shape[-1] for x in inputs)
    kernel = self.param("kernel", self.kernel_init, (3, 3, cin, self.features))
    y = conv_kernels.conv_transpose3x3_s2([x.astype(self.dtype) for x in inputs], kernel, self.conv_impl,
                                         self.gemm_dtype)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y


class Upsample(nn.Module):
  """pix2pix `upsample(filters, 3)`: ConvTranspose (no bias, N(0, 0.02)), BatchNorm, ReLU."""
  features: int
  dtype: Any = jnp.float32
  bn_momentum: float = 0.99  # Keras BatchNormalization default
  conv_impl: str = "auto"
  gemm_dtype: Any = None

  @nn.compact
  def __call__(self, inputs: Sequence[jax.Array], train: bool) -> jax.Array:
    x = ConvTranspose3x3S2(self.features, dtype=self.dtype, conv_impl=self.conv_impl, gemm_dtype=self.gemm_dtype,
                           name="conv_transpose")(inputs)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-3, dtype=self.dtype,
                     name="bn")(x)
    return nn.relu(x)


class UNet(SegmentationModel):
  """MobileNetV2 encoder + pix2pix decoder; returns per-pixel logits at the input resolution.

  Attributes (besides `SegmentationModel`'s; `num_classes` 3 for the Oxford-IIIT Pet trimaps):
    decoder_filters: filters of the upsample blocks, coarse to fine.
  """
  decoder_filters: Sequence[int] = (512, 256, 128, 64)

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False, encoder_train: bool = False) -> jax.Array:
    """Computes logits.

    Args:
      images: (B, H, W, 3) in [-1, 1], H and W multiples of 32.
      train: decoder BatchNorm uses (and updates) batch statistics.
      encoder_train: encoder BatchNorm too; off by default, the encoder is a frozen feature extractor
        (also when fine-tuning, as Keras recommends).

    Returns:
      (B, H, W, num_classes) float32 logits.
    """
    check_input_size(images)
    feats = MobileNetV2(self.alpha, last_layer=UNET_TAPS[-1], dtype=self.dtype,
                        bn_momentum=self.encoder_bn_momentum, conv_impl=self.conv_impl, gemm_dtype=self.gemm_dtype,
                        name="encoder")(
        images, train=encoder_train)
    skips = [feats[name] for name in UNET_TAPS[:-1]]
    x = [feats[UNET_TAPS[-1]]]
    for i, (filters, skip) in enumerate(zip(self.decoder_filters, reversed(skips))):
      x = [Upsample(filters, self.dtype, self.decoder_bn_momentum, self.conv_impl, self.gemm_dtype,
                    name=f"up_{i}")(x, train), skip]
    logits = ConvTranspose3x3S2(self.num_classes, use_bias=True, kernel_init=nn.initializers.glorot_uniform(),
                                dtype=self.dtype, conv_impl=self.conv_impl, gemm_dtype=self.gemm_dtype,
                                name="logits")(x)
    return logits.astype(jnp.float32)
