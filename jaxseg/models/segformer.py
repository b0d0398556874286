"""SegFormer (Xie et al. 2021): a MiT encoder and the all-MLP decoder, layer for layer as keras-hub's
`SegFormerImageSegmenter`: each stage's features projected to `decoder_dim` channels, upsampled to stride 4,
concatenated (coarse first), fused by a 1x1 convolution + BatchNorm + ReLU, classified by a 1x1 convolution
and upsampled bilinearly to the input size."""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.models import backbones
from jaxseg.models.base import SegmentationModel
from jaxseg.models.deeplab import upsample_bilinear
from jaxseg.models.mobilenet_v2 import check_input_size


def default_decoder_dim(backbone: str) -> int:
  """The paper's decoder width: 256 for MiT-B0 and B1, 768 for B2-B5."""
  return 256 if backbone in ("mit_b0", "mit_b1") else 768


class SegFormer(SegmentationModel):
  """MiT encoder + all-MLP decoder; returns per-pixel logits at the input resolution.

  Attributes (besides `SegmentationModel`'s; `backbone` one of mit_b0..mit_b5):
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
    """SegFormer's encoder is a Mix Transformer."""
    if config.model.backbone == "mobilenet_v2" or backbones.family(config.model.backbone) != "mit":
      names = sorted(n for n in backbones.BACKBONES if backbones.family(n) == "mit")
      return (f"config.model.backbone={config.model.backbone!r}: SegFormer's encoder is a Mix Transformer; choose "
              f"one of {', '.join(names)}.")
    if config.model.decoder_dim < 0:
      return f"config.model.decoder_dim={config.model.decoder_dim} must be positive (0: the paper's width)."
    return ""

  def width(self) -> int:
    """The decoder's width."""
    return self.decoder_dim or default_decoder_dim(self.backbone)

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False, encoder_train: bool = False) -> jax.Array:
    """(B, H, W, num_classes) float32 logits of images (B, H, W, 3) in [-1, 1] (H, W multiples of 32); `train`:
    the decoder's BatchNorm uses and updates batch statistics (the encoder has none)."""
    check_input_size(images)
    feats = self.encode(images, encoder_train)
    dtype, size = self.spec.dtype, feats[4].shape[1:3]
    projected = [upsample_bilinear(nn.Dense(self.width(), dtype=dtype, name=f"linear_{i}")(feats[s]), size)
                 for i, s in enumerate((4, 8, 16, 32))]
    x = nn.Conv(self.width(), (1, 1), use_bias=False, dtype=dtype, name="linear_fuse")(
        jnp.concatenate(projected[::-1], -1).astype(dtype))
    x = nn.BatchNorm(use_running_average=not train, momentum=self.spec.bn_momentum, epsilon=1e-5, dtype=dtype,
                     name="linear_fuse_bn")(x)
    logits = nn.Conv(self.num_classes, (1, 1), dtype=dtype, name="logits")(nn.relu(x))
    return upsample_bilinear(logits.astype(jnp.float32), images.shape[1:3])

  def summary_rows(self, variables: dict[str, Any], intermediates: dict[str, Any],
                   size: Any) -> list[tuple[str, list[tuple[int, ...]], int]]:
    """The encoder's four stages, the projections, the fusion and the classifier."""
    taps = intermediates["encoder"]["__call__"][0]
    rows = [(f"encoder ({self.encoder_description()})", [taps[s].shape for s in (4, 8, 16, 32)], size("encoder"))]
    for i, s in enumerate((4, 8, 16, 32)):
      out = intermediates[f"linear_{i}"]["__call__"][0].shape
      rows.append((f"linear_{i} (Dense of stride {s}, bilinear to stride 4)", [out], size(f"linear_{i}")))
    fuse = intermediates["linear_fuse"]["__call__"][0].shape
    rows.append(("linear_fuse (1x1, BatchNorm, ReLU)", [fuse], size("linear_fuse") + size("linear_fuse_bn")))
    rows.append(("logits (1x1, bilinear upsampling)", [intermediates["__call__"][0].shape], size("logits")))
    return rows
