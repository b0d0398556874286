"""SegFormer (Xie et al. 2021): the all-MLP decoder over a MiT encoder (or any backbone of strides 4-32), layer
for layer as keras-hub's `SegFormerImageSegmenter`: each stage's features projected to `decoder_dim` channels,
upsampled to stride 4, concatenated (coarse first), fused by a 1x1 convolution + BatchNorm + ReLU, classified
by a 1x1 convolution and upsampled bilinearly to the input size."""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg import ops
from jaxseg.models import backbones, segformer_port
from jaxseg.models.backbones import layers
from jaxseg.models.base import SegmentationModel, check_input_size, feature_map_refusal
from jaxseg.models.deeplab import upsample_bilinear
from jaxseg.models.layers import LayerSpec


def default_decoder_dim(backbone: str) -> int:
  """The paper's decoder width for the backbone's entry (MiT: 256 for B0 and B1, 768 for B2-B5); 256 for a
  backbone the paper did not use."""
  return backbones.BACKBONES[backbone].decoder_width or 256


class FuseProjections(nn.Module):
  """keras-hub's `linear_fuse`: a 1x1 convolution of the projections upsampled to stride 4 and concatenated.

  Computed as the sum over projections of its block of kernel rows applied first, then upsampled: both maps
  are linear and act on different axes (pixels, channels), so they commute. At stride 4 that leaves one
  `width`-deep GEMM instead of a 4 x `width`-deep one, and no concatenation (the train step of SegFormer-B0
  at 416x416 took about a third less). The parameter is the one (1, 1, 4 x width, width) kernel, rows in
  keras-hub's order.

  Attributes:
    features: output channels.
    spec: compute dtype, GEMM input dtype and `jaxseg.ops` kernel forms.
  """
  features: int
  spec: LayerSpec = LayerSpec()

  @nn.compact
  def __call__(self, inputs: list[jax.Array], size: tuple[int, int]) -> jax.Array:
    """The fused (B, *size, features) map of `inputs` (each (B, h, w, C_i)), in their concatenation's order."""
    widths = [x.shape[-1] for x in inputs]
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (1, 1, sum(widths), self.features))
    out, start = None, 0
    for x, width in zip(inputs, widths):
      block = kernel[:, :, start:start + width].astype(self.spec.dtype)
      y = upsample_bilinear(ops.pointwise_conv(x.astype(self.spec.dtype), block, gemm_dtype=self.spec.gemm_dtype,
                                               kernels=self.spec.kernels), size)
      out, start = y if out is None else out + y, start + width
    return out


class SegFormer(SegmentationModel):
  """Encoder (MiT, or any backbone of strides 4-32) + all-MLP decoder; returns per-pixel logits at the input
  resolution.

  Attributes (besides `SegmentationModel`'s):
    decoder_dim: channels of the projected features and of the fusion (0: `default_decoder_dim`).
  """
  decoder_dim: int = 0

  IDENTITY_FIELDS: ClassVar[dict[str, str]] = {"decoder_dim": "model.decoder_dim"}

  @classmethod
  def config_fields(cls, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """SegFormer's own field: `model.decoder_dim`."""
    return {"decoder_dim": config.model.decoder_dim}

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> str:
    """SegFormer's encoder returns feature maps at strides 4 to 32 (not a ViT's tokens)."""
    refusal = feature_map_refusal(config.model.backbone, "SegFormer")
    if refusal:
      return refusal
    if config.model.decoder_dim < 0:
      return f"config.model.decoder_dim={config.model.decoder_dim} must be positive (0: the paper's width)."
    return ""

  @classmethod
  def whole_model_weights(cls, source: str) -> bool:
    """A keras-hub SegFormer segmenter preset holds the whole model."""
    return segformer_port.is_segmenter_preset(source)

  def pretrained_model(self, variables: dict[str, Any], source: str) -> tuple[dict[str, Any], Any, str]:
    """`variables` replaced by the segmenter preset `source`'s (`segformer_port.into_model`)."""
    return segformer_port.into_model(variables, source, self.backbone, self.width())

  def width(self) -> int:
    """The decoder's width."""
    return self.decoder_dim or default_decoder_dim(self.backbone)

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False, encoder_train: bool = False) -> jax.Array:
    """(B, H, W, num_classes) float32 logits of images (B, H, W, 3) in [-1, 1] (H, W multiples of 32); `train`:
    the decoder's BatchNorm uses and updates batch statistics; `encoder_train`: the encoder's, where it has
    BatchNorm (MiT has none)."""
    check_input_size(images)
    feats = self.encode(images, encoder_train)
    self.auxiliary(feats, images.shape[1:3], train)
    dtype, size = self.spec.dtype, feats[4].shape[1:3]
    projected = [layers.Dense(self.width(), spec=self.spec, name=f"linear_{i}")(feats[s])
                 for i, s in enumerate((4, 8, 16, 32))]
    x = FuseProjections(self.width(), self.spec, name="linear_fuse")(projected[::-1], size)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.spec.bn_momentum, epsilon=1e-5, dtype=dtype,
                     name="linear_fuse_bn")(x)
    # layers.Conv: a 1x1 convolution as a GEMM (XLA:CPU's convolution form took 20x as long to train).
    logits = layers.Conv(self.num_classes, 1, bias=True, spec=self.spec,
                         name="logits")(nn.relu(x))
    return upsample_bilinear(logits.astype(jnp.float32), images.shape[1:3])

  def summary_rows(self, variables: dict[str, Any], intermediates: dict[str, Any],
                   size: Any) -> list[tuple[str, list[tuple[int, ...]], int]]:
    """The encoder's four stages, the projections, the fusion and the classifier."""
    taps = intermediates["encoder"]["__call__"][0]
    rows = [(f"encoder ({self.encoder_description()})", [taps[s].shape for s in (4, 8, 16, 32)], size("encoder"))]
    for i, s in enumerate((4, 8, 16, 32)):
      out = intermediates[f"linear_{i}"]["__call__"][0].shape
      rows.append((f"linear_{i} (Dense of stride {s})", [out], size(f"linear_{i}")))
    fuse = intermediates["linear_fuse"]["__call__"][0].shape
    rows.append(("linear_fuse (1x1, bilinear to stride 4; BatchNorm, ReLU)", [fuse],
                 size("linear_fuse") + size("linear_fuse_bn")))
    rows.append(("logits (1x1, bilinear upsampling)", [intermediates["__call__"][0].shape], size("logits")))
    return rows
