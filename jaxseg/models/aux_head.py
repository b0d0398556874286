"""An auxiliary head: extra supervision on an intermediate stride of the encoder, during training only.

PSPNet introduced it and MMSegmentation's recipes keep it (an `FCNHead` on the stride-16 features, its
cross-entropy weighted 0.4): the encoder's middle stages get a gradient that does not pass through the
decoder, which helps a light decoder over a deep encoder. Its logits are sown into the "aux" collection (one
entry, wherever the head sits); a train step that asks for that collection adds their loss
(`jaxseg.training.losses.Loss.auxiliary`), and nothing else reads them, so under `jax.jit` the head is dead
code outside training.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg import ops
from jaxseg.models.backbones.layers import Conv
from jaxseg.models.layers import ConvBN, LayerSpec

COLLECTION = "aux"  # the variable collection the auxiliary logits are sown into
MODULE = "aux_head"  # the head's name in a model's variables


class AuxiliaryHead(nn.Module):
  """3x3 conv + BatchNorm + ReLU, a 1x1 classifier with bias, bilinear upsampling to the labels' size; the
  logits are returned and sown into the "aux" collection.

  Attributes:
    num_classes: output channels.
    features: channels of the 3x3 convolution (MMSegmentation's `FCNHead` default, 256).
    spec: the layer spec (the decoder's).
  """
  num_classes: int
  features: int = 256
  spec: LayerSpec = LayerSpec()

  @nn.compact
  def __call__(self, x: jax.Array, size: tuple[int, int], train: bool) -> jax.Array:
    """(B, *size, num_classes) float32 logits of features x (B, h, w, C); `train`: BatchNorm uses and updates
    batch statistics."""
    x = ConvBN(self.features, 3, spec=self.spec, name="conv")(x, train)
    logits = Conv(self.num_classes, bias=True, spec=self.spec, name="classifier")(x)
    logits = ops.upsample_bilinear(logits.astype(jnp.float32), size)
    self.sow(COLLECTION, "logits", logits)
    return logits
