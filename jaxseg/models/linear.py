"""A linear head over DINOv2 features (the DINOv2 paper's linear segmentation evaluation, usually with the
encoder frozen): the patch tokens of the last `linear_layers` layers, each after the backbone's final
LayerNorm and beside its class token, concatenated, BatchNorm, one 1x1 convolution to the classes, and
bilinear upsampling from the patch grid (stride 14) to the input.

Images are padded with zeros (the mean colour, after normalisation) to whole patches, evenly on both sides
(as DINOv2's own segmentation code does); the logits are cropped back, so any height and width work.
"""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.models import backbones
from jaxseg.models.backbones import layers
from jaxseg.models.base import SegmentationModel
from jaxseg.models.deeplab import upsample_bilinear


def _padding(size: int, patch: int) -> tuple[int, int]:
  extra = -size % patch
  return extra // 2, extra - extra // 2


class LinearHead(SegmentationModel):
  """DINOv2 encoder + BatchNorm + 1x1 classifier; returns per-pixel logits at the input resolution.

  Attributes (besides `SegmentationModel`'s; `backbone` a DINOv2 variant):
    linear_layers: how many of the last layers are read (1: the last only; 4: the paper's multi-layer probe).
  """
  linear_layers: int = 4

  IDENTITY_FIELDS: ClassVar[dict[str, str]] = {"linear_layers": "model.linear_layers"}

  @classmethod
  def config_fields(cls, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The head's own field: `model.linear_layers`."""
    return {"linear_layers": config.model.linear_layers}

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> str:
    """The encoder is a ViT (DINOv2) with at least `linear_layers` layers."""
    name = config.model.backbone
    if not backbones.BACKBONES[name].tokens:
      vits = sorted(n for n, e in backbones.BACKBONES.items() if e.tokens)
      return f"config.model.backbone={name!r}: the linear head reads a ViT; choose one of {', '.join(vits)}."
    depth = backbones.BACKBONES[name].arch["num_layers"]
    if not 1 <= config.model.linear_layers <= depth:
      return f"config.model.linear_layers={config.model.linear_layers} must be between 1 and {depth} for {name}."
    return ""

  def encoder_module(self, **kwargs: Any) -> nn.Module:
    """The DINOv2 encoder, its layers' outputs normalized by its final LayerNorm."""
    return backbones.create(self.backbone, self.encoder_output_stride(), self.spec, name="encoder",
                            apply_layernorm=True, **kwargs)

  def encoder_description(self) -> str:
    """The encoder in a summary row."""
    return f"{self.backbone}, stride 14, last {self.linear_layers} layers"

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False, encoder_train: bool = False) -> jax.Array:
    """(B, H, W, num_classes) float32 logits of images (B, H, W, 3) in [-1, 1], any H and W; `train`: the
    head's BatchNorm uses and updates batch statistics (the encoder has none)."""
    del encoder_train  # no BatchNorm in the encoder
    arch = backbones.BACKBONES[self.backbone].arch
    patch, (h, w) = arch["patch_size"], images.shape[1:3]
    pads = (_padding(h, patch), _padding(w, patch))
    x = jnp.pad(self.backbone_input(images), ((0, 0), *pads, (0, 0)))
    tokens = self.encoder_module()(x, False)
    grid = (x.shape[1] // patch, x.shape[2] // patch)
    feats = []
    for layer in range(arch["num_layers"] - self.linear_layers + 1, arch["num_layers"] + 1):
      cls, patches = backbones.patch_maps(tokens[f"stage{layer}"], grid, arch["num_register_tokens"])
      feats += [patches, jnp.broadcast_to(cls[:, None, None], patches.shape)]
    dtype = self.spec.dtype
    x = nn.BatchNorm(use_running_average=not train, momentum=self.spec.bn_momentum, epsilon=1e-5, dtype=dtype,
                     name="bn")(jnp.concatenate(feats, axis=-1))
    logits = layers.Conv(self.num_classes, 1, bias=True, spec=self.spec,
                         name="logits")(x)
    logits = upsample_bilinear(logits.astype(jnp.float32), (x.shape[1] * patch, x.shape[2] * patch))
    logits = jax.lax.slice_in_dim(logits, pads[0][0], pads[0][0] + h, axis=1)  # lax slices: see dinov2.patch_maps
    return jax.lax.slice_in_dim(logits, pads[1][0], pads[1][0] + w, axis=2)

  def summary_rows(self, variables: dict[str, Any], intermediates: dict[str, Any],
                   size: Any) -> list[tuple[str, list[tuple[int, ...]], int]]:
    """The encoder's output, the normalized features and the classifier."""
    out = intermediates["encoder"]["__call__"][0]["output"].shape
    bn = intermediates["bn"]["__call__"][0].shape
    return [(f"encoder ({self.encoder_description()})", [out], size("encoder")),
            ("bn (patch and class tokens of each layer read, BatchNorm)", [bn], size("bn")),
            ("logits (1x1, bilinear upsampling, padding cropped)", [intermediates["__call__"][0].shape],
             size("logits"))]
