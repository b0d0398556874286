"""EfficientNet (B0-B7, Lite0) in Flax, layer for layer as keras-hub's `EfficientNetBackbone` with its MBConv
("v1") blocks, the configuration of keras-hub's ImageNet presets (converted from timm).

Layers carry keras-hub's names (`stem_conv`, `block2a_expand_conv`, `block2a_dwconv`, `block2a_se_reduce`,
`top_bn`, ...), so that its weights are copied by name. The stem pads by one and then runs "valid", depthwise
convolutions pad by k // 2, as keras-hub's do. Keras's stochastic depth (dropout of whole blocks while
training) is left out: fine-tuning here trains every block.

The backbone returns keras-hub's pyramid outputs: the last activation at strides 2, 4, 8 and 16, and at 32 the
final 1x1 convolution's. With `output_stride` 16 (or 8) depthwise convolutions past it keep the resolution and
dilate (`strides.Strides`), with the same parameters.
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.backbones import layers
from jaxseg.models.backbones.strides import Strides
from jaxseg.models.layers import LayerSpec

ACTIVATIONS = {"swish": nn.swish, "relu6": nn.relu6, "relu": nn.relu}


def round_filters(filters: float, width: float, divisor: int = 8) -> int:
  """keras-hub's `round_filters` with its presets' settings (the divisor as minimum, at most 10% down)."""
  filters *= width
  new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
  return int(new + divisor if new < 0.9 * filters else new)


class EfficientNet(layers.ConvMixin, nn.Module):
  """keras-hub's `EfficientNetBackbone` with "v1" blocks (its architecture arguments; see `VARIANTS`)."""
  width_coefficient: float
  depth_coefficient: float
  kernel_sizes: Sequence[int] = (3, 3, 5, 3, 5, 5, 3)
  num_repeats: Sequence[int] = (1, 2, 2, 3, 3, 4, 1)
  input_filters: Sequence[int] = (32, 16, 24, 40, 80, 112, 192)
  output_filters: Sequence[int] = (16, 24, 40, 80, 112, 192, 320)
  expansion_ratios: Sequence[int] = (1, 6, 6, 6, 6, 6, 6)
  strides: Sequence[int] = (1, 2, 2, 2, 1, 2, 1)
  se_ratio: float = 0.25
  activation: str = "swish"
  num_features: int = 1280
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  output_stride: int = 32
  spec: LayerSpec = LayerSpec()  # dtype, GEMM input dtype, kernel forms (BatchNorm keeps its own settings)

  def _bn(self, x: jax.Array, name: str, train: bool, momentum: float = 0.99) -> jax.Array:
    return layers.batch_norm(x, train, momentum=momentum, epsilon=self.bn_epsilon, dtype=self.spec.dtype, name=name)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[int, jax.Array]:
    """Feature maps {stride: (B, H / stride, W / stride, C)} of images x (B, H, W, 3), preprocessed as the
    weights expect."""
    act = ACTIVATIONS[self.activation]
    strides = Strides(self.output_stride)
    strides.step(2)
    x = self._conv(x.astype(self.spec.dtype), round_filters(self.input_filters[0], self.width_coefficient), 3, 2, 1,
                   name="stem_conv")
    x = act(self._bn(x, "stem_bn", train, self.bn_momentum))
    features = {2: x}
    for i, kernel in enumerate(self.kernel_sizes):
      c_in = round_filters(self.input_filters[i], self.width_coefficient)
      c_out = round_filters(self.output_filters[i], self.width_coefficient)
      for j in range(math.ceil(self.depth_coefficient * self.num_repeats[i])):
        nominal = self.strides[i] if j == 0 else 1
        c_in = c_in if j == 0 else c_out
        stride, _ = strides.step(nominal)
        x = self._block(x, c_in, c_out, kernel, stride, strides.previous_rate, self.expansion_ratios[i],
                        f"block{i + 1}{chr(j + 97)}_", nominal == 1 and c_in == c_out, train)
        features[strides.nominal] = x
    x = self._conv(x, round_filters(self.num_features, self.width_coefficient), name="top_conv")
    features[32] = act(self._bn(x, "top_bn", train, self.bn_momentum))
    return features

  def _block(self, inputs: jax.Array, c_in: int, c_out: int, kernel: int, stride: int, rate: int, expand: int,
             name: str, residual: bool, train: bool) -> jax.Array:
    """MBConv: expand 1x1, depthwise kxk, squeeze-excite, project 1x1 (+ the input where shapes allow)."""
    act, filters, x = ACTIVATIONS[self.activation], c_in * expand, inputs
    if expand != 1:
      x = act(self._bn(self._conv(x, filters, name=name + "expand_conv"), name + "expand_bn", train))
    x = self._conv(x, filters, kernel, stride, kernel // 2 * rate, rate, filters, name=name + "dwconv")
    x = act(self._bn(x, name + "dwconv_bn", train))
    if 0 < self.se_ratio <= 1:
      se = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(x.dtype)
      se = act(self._conv(se, max(1, int(c_in * self.se_ratio)), bias=True, name=name + "se_reduce"))
      x = x * nn.sigmoid(self._conv(se, filters, bias=True, name=name + "se_expand"))
    x = self._bn(self._conv(x, c_out, name=name + "project"), name + "project_bn", train)
    return x + inputs if residual else x


_SCALES = {"b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2), "b3": (1.2, 1.4), "b4": (1.4, 1.8),
           "b5": (1.6, 2.2), "b6": (1.8, 2.6), "b7": (2.0, 3.1)}
# Backbone name -> architecture arguments (keras-hub's presets efficientnet_b0..b5 and lite0; b6 and b7 by
# the paper's scaling, for which keras-hub has no preset).
VARIANTS = {**{f"efficientnet_{v}": {"width_coefficient": w, "depth_coefficient": d} for v, (w, d) in _SCALES.items()},
            "efficientnet_lite0": {"width_coefficient": 1.0, "depth_coefficient": 1.0, "se_ratio": 0.0,
                                   "activation": "relu6"}}
# Backbone name -> keras-hub preset of its ImageNet weights.
PRESETS = {"efficientnet_b0": "efficientnet_b0_ra_imagenet", "efficientnet_b1": "efficientnet_b1_ft_imagenet",
           "efficientnet_b2": "efficientnet_b2_ra_imagenet", "efficientnet_b3": "efficientnet_b3_ra2_imagenet",
           "efficientnet_b4": "efficientnet_b4_ra2_imagenet", "efficientnet_b5": "efficientnet_b5_sw_imagenet",
           "efficientnet_lite0": "efficientnet_lite0_ra_imagenet"}
