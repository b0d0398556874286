"""DeepLabV3+ over an atrous MobileNetV2 (Chen et al. 2018): ASPP on the stride-16 (or 8) features, a light
decoder fusing stride-4 features, bilinear upsampling to the input size.

Layer names follow the Keras twin used in the tests (`aspp_0`, `aspp_1`..`aspp_3`, `aspp_pool`,
`aspp_project`, `low_level`, `decoder_0`, `decoder_1`, `logits`), each conv + BatchNorm pair a `ConvBN`.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models import conv_kernels
from jaxseg.models.base import SegmentationModel
from jaxseg.models.mobilenet_v2 import MobileNetV2, check_input_size

DEEPLAB_HIGH = "block_16_project_BN"  # the last block's output, at the output stride
DEEPLAB_LOW = "block_3_expand_relu"  # stride-4 features for the decoder


class ConvBN(nn.Module):
  """Conv (1x1, or 3x3 with a dilation; no bias), BatchNorm (eps 1e-3), ReLU. With `separable`, a 3x3 conv is
  a depthwise 3x3 + BatchNorm + ReLU followed by a pointwise 1x1 (Xception style)."""
  features: int
  kernel_size: int = 1
  dilation: int = 1
  separable: bool = False
  dtype: Any = jnp.float32
  bn_momentum: float = 0.99
  conv_impl: str = "auto"
  gemm_dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    bn = lambda name, y: nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-3,
                                      dtype=self.dtype, name=name)(y)
    x = x.astype(self.dtype)
    init = nn.initializers.he_normal()
    if self.kernel_size == 3 and self.separable:
      dw = self.param("depthwise", init, (3, 3, x.shape[-1], 1))
      x = nn.relu(bn("depthwise_bn", conv_kernels.depthwise_conv3x3(x, dw, 1, self.conv_impl, self.dilation)))
      kernel = self.param("kernel", init, (1, 1, x.shape[-1], self.features))
      x = conv_kernels.pointwise_conv(x, kernel, self.gemm_dtype, self.conv_impl)
    elif self.kernel_size == 3:
      kernel = self.param("kernel", init, (3, 3, x.shape[-1], self.features))
      x = conv_kernels.conv3x3(x, kernel, self.dilation, self.conv_impl, self.gemm_dtype)
    else:
      kernel = self.param("kernel", init, (1, 1, x.shape[-1], self.features))
      x = conv_kernels.pointwise_conv(x, kernel, self.gemm_dtype, self.conv_impl)
    return nn.relu(bn("bn", x))


def upsample_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Bilinear resize with half-pixel centres (Keras `UpSampling2D(interpolation="bilinear")`)."""
  return jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), "bilinear", antialias=False)


class DeepLabV3Plus(SegmentationModel):
  """Atrous MobileNetV2 + ASPP + decoder; returns per-pixel logits at the input resolution.

  Attributes (besides `SegmentationModel`'s):
    output_stride: 16 (ASPP rates 6/12/18) or 8 (12/24/36).
    aspp_filters: filters of every ASPP branch and of the decoder convs (256).
    low_level_filters: channels the stride-4 features are reduced to (48).
    separable: depthwise-separable atrous and decoder 3x3 convs.
  """
  output_stride: int = 16
  aspp_filters: int = 256
  low_level_filters: int = 48
  separable: bool = False

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False, encoder_train: bool = False) -> jax.Array:
    """(B, H, W, num_classes) float32 logits of images (B, H, W, 3) in [-1, 1] (H, W multiples of 32); `train`:
    head BatchNorm uses and updates batch statistics, `encoder_train`: the encoder's too (as for the U-Net)."""
    check_input_size(images)
    feats = MobileNetV2(self.alpha, last_layer=DEEPLAB_HIGH, dtype=self.dtype,
                        bn_momentum=self.encoder_bn_momentum, conv_impl=self.conv_impl,
                        output_stride=self.output_stride, gemm_dtype=self.gemm_dtype, name="encoder")(
        images, train=encoder_train)
    high, low = feats[DEEPLAB_HIGH], feats[DEEPLAB_LOW]
    conv = lambda name, f, k=1, d=1: ConvBN(f, k, d, self.separable, self.dtype, self.decoder_bn_momentum,
                                           self.conv_impl, self.gemm_dtype, name=name)
    rates = (6, 12, 18) if self.output_stride == 16 else (12, 24, 36)
    branches = [conv("aspp_0", self.aspp_filters)(high, train)]
    branches += [conv(f"aspp_{i + 1}", self.aspp_filters, 3, r)(high, train) for i, r in enumerate(rates)]
    pooled = jnp.mean(high.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(high.dtype)
    pooled = conv("aspp_pool", self.aspp_filters)(pooled, train)
    branches.append(jnp.broadcast_to(pooled, high.shape[:3] + (self.aspp_filters,)))
    x = conv("aspp_project", self.aspp_filters)(jnp.concatenate(branches, -1), train)
    x = upsample_bilinear(x, low.shape[1:3])
    x = jnp.concatenate([x, conv("low_level", self.low_level_filters)(low, train)], -1)
    x = conv("decoder_0", self.aspp_filters, 3)(x, train)
    x = conv("decoder_1", self.aspp_filters, 3)(x, train)
    kernel = self.param("logits_kernel", nn.initializers.glorot_uniform(), (1, 1, x.shape[-1], self.num_classes))
    bias = self.param("logits_bias", nn.initializers.zeros, (self.num_classes,))
    logits = conv_kernels.pointwise_conv(x, kernel, self.gemm_dtype, self.conv_impl) + bias.astype(x.dtype)
    return upsample_bilinear(logits.astype(jnp.float32), images.shape[1:3])
