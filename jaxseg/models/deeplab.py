"""DeepLabV3+ (Chen et al. 2018) over an atrous encoder (MobileNetV2, ResNet, ...): ASPP on the stride-16 (or
8) features, a light decoder fusing stride-4 features, bilinear upsampling to the input size.

Layer names follow the Keras twin used in the tests (`aspp_0`, `aspp_1`..`aspp_3`, `aspp_pool`,
`aspp_project`, `low_level`, `decoder_0`, `decoder_1`, `logits`), each conv + BatchNorm pair a `ConvBN`.
"""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg import ops
from jaxseg.models import backbones
from jaxseg.models.base import SegmentationModel, check_input_size, feature_map_refusal
from jaxseg.models.layers import ConvBN


def upsample_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Bilinear resize with half-pixel centres (Keras `UpSampling2D(interpolation="bilinear")`)."""
  return ops.upsample_bilinear(x, size)


class DeepLabV3Plus(SegmentationModel):
  """Atrous encoder + ASPP + decoder; returns per-pixel logits at the input resolution.

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

  IDENTITY_FIELDS: ClassVar[dict[str, str]] = {"output_stride": "model.output_stride",
                                               "separable": "model.separable"}

  @classmethod
  def config_fields(cls, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """DeepLabV3+'s own fields: `model.output_stride` and `model.separable`."""
    return {"output_stride": config.model.output_stride, "separable": config.model.separable}

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> str:
    """Refuses an output stride other than 16 or 8, and an encoder that cannot dilate."""
    if config.model.output_stride not in (8, 16):
      return f"config.model.output_stride={config.model.output_stride} must be 16 or 8 for DeepLabV3+."
    name = config.model.backbone
    refusal = feature_map_refusal(name, "DeepLabV3+")
    if refusal:
      return refusal
    if not backbones.BACKBONES[name].dilates:
      dilating = sorted({e.family for e in backbones.BACKBONES.values() if e.dilates})
      return (f"config.model.backbone={name!r} cannot trade strides for dilation, which DeepLabV3+ needs; use "
              f"config.model.name=unet or segformer, or a backbone of the families {dilating}.")
    return ""

  def encoder_output_stride(self) -> int:
    """DeepLabV3+ reads its encoder at `output_stride`."""
    return self.output_stride

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False, encoder_train: bool = False) -> jax.Array:
    """(B, H, W, num_classes) float32 logits of images (B, H, W, 3) in [-1, 1] (H, W multiples of 32); `train`:
    head BatchNorm uses and updates batch statistics, `encoder_train`: the encoder's too (as for the U-Net)."""
    check_input_size(images)
    feats = self.encode(images, encoder_train)
    self.auxiliary(feats, images.shape[1:3], train)
    high, low = feats[32].astype(self.spec.dtype), feats[4].astype(self.spec.dtype)
    conv = lambda name, f, k=1, d=1: ConvBN(f, k, d, self.separable, self.spec, name=name)
    rates = (6, 12, 18) if self.output_stride == 16 else (12, 24, 36)
    branches = [conv("aspp_0", self.aspp_filters)(high, train)]
    branches += [conv(f"aspp_{i + 1}", self.aspp_filters, 3, r)(high, train) for i, r in enumerate(rates)]
    pooled = jnp.mean(high.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(high.dtype)
    pooled = conv("aspp_pool", self.aspp_filters)(pooled, train)
    branches.append(jnp.broadcast_to(pooled, (*high.shape[:3], self.aspp_filters)))
    x = conv("aspp_project", self.aspp_filters)(jnp.concatenate(branches, -1), train)
    x = upsample_bilinear(x, low.shape[1:3])
    x = jnp.concatenate([x, conv("low_level", self.low_level_filters)(low, train)], -1)
    x = conv("decoder_0", self.aspp_filters, 3)(x, train)
    x = conv("decoder_1", self.aspp_filters, 3)(x, train)
    kernel = self.param("logits_kernel", nn.initializers.glorot_uniform(), (1, 1, x.shape[-1], self.num_classes))
    bias = self.param("logits_bias", nn.initializers.zeros, (self.num_classes,))
    logits = ops.pointwise_conv(x, kernel, gemm_dtype=self.spec.gemm_dtype, kernels=self.spec.kernels)
    logits = logits + bias.astype(x.dtype)
    return upsample_bilinear(logits.astype(jnp.float32), images.shape[1:3])

  def summary_rows(self, variables: dict[str, Any], intermediates: dict[str, Any],
                   size: Any) -> list[tuple[str, list[tuple[int, ...]], int]]:
    """The encoder, each ASPP branch, the decoder convolutions and the logits."""
    taps = intermediates["encoder"]["__call__"][0]
    what = f"{self.encoder_description()}; stride 4"
    rows = [(f"encoder ({what})", [taps[4].shape, taps[32].shape], size("encoder"))]
    for name, what in (("aspp_0", "ASPP 1x1"), ("aspp_1", "ASPP atrous 3x3"), ("aspp_2", "ASPP atrous 3x3"),
                       ("aspp_3", "ASPP atrous 3x3"), ("aspp_pool", "ASPP image pooling"),
                       ("aspp_project", "ASPP projection 1x1"), ("low_level", "low-level 1x1"),
                       ("decoder_0", "decoder 3x3"), ("decoder_1", "decoder 3x3")):
      rows.append((f"{name} ({what}, BatchNorm, ReLU)", [intermediates[name]["__call__"][0].shape], size(name)))
    logits = size("logits_kernel") + size("logits_bias")
    rows.append(("logits (1x1, bilinear upsampling)", [intermediates["__call__"][0].shape], logits))
    return rows
