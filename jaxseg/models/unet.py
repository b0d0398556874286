"""The TensorFlow segmentation tutorial's U-Net: pix2pix upsample blocks over MobileNetV2 skips."""

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.base import SegmentationModel
from jaxseg.models.layers import ConvTranspose3x3S2, LayerSpec
from jaxseg.models.mobilenet_v2 import UNET_TAPS, MobileNetV2, check_input_size


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
  """MobileNetV2 encoder + pix2pix decoder; returns per-pixel logits at the input resolution.

  Attributes (besides `SegmentationModel`'s; `num_classes` 3 for the Oxford-IIIT Pet trimaps):
    decoder_filters: filters of the upsample blocks, coarse to fine.
  """
  decoder_filters: Sequence[int] = (512, 256, 128, 64)

  ENCODER_OUTPUT: ClassVar[str] = UNET_TAPS[-1]

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
    feats = MobileNetV2(**self.encoder_fields(), name="encoder")(images, train=encoder_train)
    skips = [feats[name] for name in UNET_TAPS[:-1]]
    x = [feats[UNET_TAPS[-1]]]
    for i, (filters, skip) in enumerate(zip(self.decoder_filters, reversed(skips))):
      x = [Upsample(filters, self.spec, name=f"up_{i}")(x, train), skip]
    logits = ConvTranspose3x3S2(self.num_classes, use_bias=True, kernel_init=nn.initializers.glorot_uniform(),
                                spec=self.spec, name="logits")(x)
    return logits.astype(jnp.float32)

  def summary_rows(self, variables: dict[str, Any], intermediates: dict[str, Any],
                   size: Any) -> list[tuple[str, list[tuple[int, ...]], int]]:
    """The encoder's taps, each upsample block and skip concatenation, and the logits."""
    taps = intermediates["encoder"]["__call__"][0]
    rows = [(f"encoder (MobileNetV2 alpha={self.alpha}, to {UNET_TAPS[-1]})",
             [taps[n].shape for n in UNET_TAPS], size("encoder"))]
    skips = [taps[n] for n in UNET_TAPS[:-1]][::-1]
    for i, skip in enumerate(skips):
      out = intermediates[f"up_{i}"]["__call__"][0].shape
      rows.append((f"up_{i} (Upsample: ConvTranspose, BatchNorm, ReLU)", [out], size(f"up_{i}")))
      rows.append((f"concat_{i} (+ {UNET_TAPS[len(skips) - 1 - i]})", [(*out[:-1], out[-1] + skip.shape[-1])], 0))
    rows.append(("logits (ConvTranspose)", [intermediates["logits"]["__call__"][0].shape], size("logits")))
    return rows
