"""The TensorFlow segmentation tutorial's U-Net: pix2pix upsample blocks over an encoder's skips (MobileNetV2's
expansion layers in the tutorial; any backbone's stride 16, 8, 4 and 2 features)."""

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.models.base import SegmentationModel, check_input_size, feature_map_refusal
from jaxseg.models.layers import ConvTranspose3x3S2, LayerSpec


class Upsample(nn.Module):
  """pix2pix `upsample(filters, 3)`: ConvTranspose (no bias, N(0, 0.02)), BatchNorm, ReLU."""
  features: int
  spec: LayerSpec = LayerSpec()

  @nn.compact
  def __call__(self, inputs: Sequence[jax.Array], train: bool) -> jax.Array:
    """Upsamples the concatenation of `inputs` by 2; `train`: BatchNorm uses and updates batch statistics."""
    x = ConvTranspose3x3S2(self.features, spec=self.spec, name="conv_transpose")(inputs)
    return nn.relu(self.spec.batch_norm(train)(name="bn")(x))


class UNet(SegmentationModel):
  """Encoder + pix2pix decoder; returns per-pixel logits at the input resolution.

  Each upsample block doubles the resolution from stride 32 and is concatenated with the encoder's features at
  the new stride where the encoder has them (a backbone without stride-2 features, such as MiT, goes on
  without a skip there).

  Attributes (besides `SegmentationModel`'s; `num_classes` 3 for the Oxford-IIIT Pet trimaps):
    decoder_filters: filters of the upsample blocks (to strides 16, 8, 4, 2).
  """
  decoder_filters: Sequence[int] = (512, 256, 128, 64)

  # The tutorial's bottleneck: MobileNetV2's last projection, before its BatchNorm.
  TOP_BEFORE_NORM: ClassVar[bool] = True

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> str:
    """Refuses an encoder without feature maps at strides 4 to 32 (a ViT)."""
    return feature_map_refusal(config.model.backbone, "the U-Net")

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
    feats = self.encode(images, encoder_train)
    self.auxiliary(feats, images.shape[1:3], train)
    x = [feats[32]]
    for i, filters in enumerate(self.decoder_filters):
      x = [Upsample(filters, self.spec, name=f"up_{i}")(x, train)]
      if 32 >> (i + 1) in feats:
        x.append(feats[32 >> (i + 1)].astype(x[0].dtype))
    logits = ConvTranspose3x3S2(self.num_classes, use_bias=True, kernel_init=nn.initializers.glorot_uniform(),
                                spec=self.spec, name="logits")(x)
    return logits.astype(jnp.float32)

  def summary_rows(self, variables: dict[str, Any], intermediates: dict[str, Any],
                   size: Any) -> list[tuple[str, list[tuple[int, ...]], int]]:
    """The encoder's taps, each upsample block and skip concatenation, and the logits."""
    taps = intermediates["encoder"]["__call__"][0]
    rows = [(f"encoder ({self.encoder_description()})", [taps[s].shape for s in sorted(taps)], size("encoder"))]
    for i in range(len(self.decoder_filters)):
      out = intermediates[f"up_{i}"]["__call__"][0].shape
      rows.append((f"up_{i} (Upsample: ConvTranspose, BatchNorm, ReLU)", [out], size(f"up_{i}")))
      if 32 >> (i + 1) in taps:
        skip = taps[32 >> (i + 1)]
        rows.append((f"concat_{i} (+ stride {32 >> (i + 1)})", [(*out[:-1], out[-1] + skip.shape[-1])], 0))
    rows.append(("logits (ConvTranspose)", [intermediates["logits"]["__call__"][0].shape], size("logits")))
    return rows
