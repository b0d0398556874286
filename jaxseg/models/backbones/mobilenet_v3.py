"""MobileNetV3 (small and large) in Flax, layer for layer as keras-hub's `MobileNetBackbone`.

Layers carry keras-hub's names (`input_conv`, `block_0_0_conv1`, `block_2_1_se_conv_reduce`, ...), so that its
weights are copied by name. BatchNorm epsilon 1e-5; hard-swish and hard-sigmoid are relu6(x + 3) / 6 based,
as in Keras 3; every convolution pads explicitly and then runs "valid", as keras-hub's does.

The backbone returns the last activation at each stride (2, 4, 8, 16) and, at 32, the final 1x1 ConvBnAct
block (keras-hub's output). With `output_stride` 16 (or 8) the depthwise convolutions that would go past it
keep the resolution and dilate (the one that gave up its stride at the previous rate, every later one at the
new rate), with the same parameters.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.backbones import layers
from jaxseg.models.backbones.strides import Strides
from jaxseg.models.layers import LayerSpec

BN_EPSILON, BN_MOMENTUM = 1e-5, 0.9  # keras-hub's MobileNet BatchNorm settings
ACTIVATIONS = {"relu": nn.relu, "relu6": nn.relu6, "hard_swish": nn.hard_swish}


def adjust_channels(x: float, divisor: int = 8) -> int:
  """keras-hub's `adjust_channels`: a multiple of `divisor`, never more than 10% below x."""
  new_x = max(divisor, int(x + divisor / 2) // divisor * divisor)
  return new_x + divisor if new_x < 0.9 * x else new_x


class MobileNetV3(layers.ConvMixin, nn.Module):
  """keras-hub's `MobileNetBackbone` (its architecture arguments; see `VARIANTS`)."""
  stackwise_expansion: Sequence[Sequence[int]]
  stackwise_num_blocks: Sequence[int]
  stackwise_num_filters: Sequence[Sequence[int]]
  stackwise_kernel_size: Sequence[Sequence[int]]
  stackwise_num_strides: Sequence[Sequence[int]]
  stackwise_se_ratio: Sequence[Sequence[float | None]]
  stackwise_activation: Sequence[Sequence[str]]
  stackwise_padding: Sequence[Sequence[int]]
  depthwise_filters: int
  depthwise_stride: int
  depthwise_residual: bool
  last_layer_filter: int
  squeeze_and_excite: float | None = None
  input_activation: str = "hard_swish"
  input_num_filters: int = 16
  output_stride: int = 32
  spec: LayerSpec = LayerSpec()  # dtype, GEMM input dtype, kernel forms (BatchNorm keeps its own settings)

  def _bn(self, x: jax.Array, name: str, train: bool) -> jax.Array:
    return layers.batch_norm(x, train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=self.spec.dtype, name=name)

  def _squeeze_excite(self, x: jax.Array, ratio: float, name: str) -> jax.Array:
    se = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(x.dtype)
    se = nn.relu(self._conv(se, adjust_channels(x.shape[-1] * ratio), bias=True, name=f"{name}_conv_reduce"))
    return x * nn.hard_sigmoid(self._conv(se, x.shape[-1], bias=True, name=f"{name}_conv_expand"))

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[int, jax.Array]:
    """Feature maps {stride: (B, H / stride, W / stride, C)} of images x (B, H, W, 3), preprocessed as the
    weights expect."""
    strides = Strides(self.output_stride)
    stride, _ = strides.step(2)
    c_in = adjust_channels(self.input_num_filters)
    x = self._conv(x.astype(self.spec.dtype), c_in, 3, stride, 1, name="input_conv")
    x = ACTIVATIONS[self.input_activation](self._bn(x, "input_batch_norm", train))
    features = {strides.nominal: x}
    # block_0: depthwise 3x3 (+ squeeze-excite), pointwise 1x1
    inputs, (stride, _) = x, strides.step(self.depthwise_stride)
    rate = strides.previous_rate
    x = self._conv(x, c_in, 3, stride, rate, rate, c_in, name="block_0_0_conv1")
    x = nn.relu(self._bn(x, "block_0_0_bn1", train))
    if self.squeeze_and_excite:
      x = self._squeeze_excite(x, self.squeeze_and_excite, "block_0_0_squeeze_excite")
    x = self._bn(self._conv(x, self.depthwise_filters, name="block_0_0_conv2"), "block_0_0_bn2", train)
    x = x + inputs if self.depthwise_residual else x
    features[strides.nominal] = x
    for b, blocks in enumerate(self.stackwise_num_blocks):
      for i in range(blocks):
        name, act = f"block_{b + 1}_{i}", ACTIVATIONS[self.stackwise_activation[b][i]]
        inputs, filters = x, adjust_channels(self.stackwise_num_filters[b][i])
        nominal = self.stackwise_num_strides[b][i]
        stride, _ = strides.step(nominal)
        expanded = adjust_channels(self.stackwise_expansion[b][i])
        x = act(self._bn(self._conv(x, expanded, name=f"{name}_conv1"), f"{name}_bn1", train))
        k, pad = self.stackwise_kernel_size[b][i], self.stackwise_padding[b][i]
        x = self._conv(x, expanded, k, stride, pad * strides.previous_rate, strides.previous_rate, expanded,
                       name=f"{name}_conv2")
        x = act(self._bn(x, f"{name}_bn2", train))
        if self.stackwise_se_ratio[b][i]:
          x = self._squeeze_excite(x, self.stackwise_se_ratio[b][i], f"{name}_se")
        x = self._bn(self._conv(x, filters, name=f"{name}_conv3"), f"{name}_bn3", train)
        if nominal == 1 and inputs.shape[-1] == filters:
          x = inputs + x
        features[strides.nominal] = x
    name = f"block_{len(self.stackwise_num_blocks) + 1}_0"
    x = self._conv(x, adjust_channels(self.last_layer_filter), name=f"{name}_conv")
    features[32] = nn.hard_swish(self._bn(x, f"{name}_bn", train))
    return features


def _large() -> dict[str, Any]:
  return {"stackwise_num_blocks": (2, 3, 4, 2, 3),
          "stackwise_expansion": ((64, 72), (72, 120, 120), (240, 200, 184, 184), (480, 672), (672, 960, 960)),
          "stackwise_num_filters": ((24, 24), (40, 40, 40), (80, 80, 80, 80), (112, 112), (160, 160, 160)),
          "stackwise_kernel_size": ((3, 3), (5, 5, 5), (3, 3, 3, 3), (3, 3), (5, 5, 5)),
          "stackwise_num_strides": ((2, 1), (2, 1, 1), (2, 1, 1, 1), (1, 1), (2, 1, 1)),
          "stackwise_se_ratio": ((None, None), (0.25,) * 3, (None,) * 4, (0.25, 0.25), (0.25,) * 3),
          "stackwise_activation": (("relu",) * 2, ("relu",) * 3, ("hard_swish",) * 4, ("hard_swish",) * 2,
                                   ("hard_swish",) * 3),
          "stackwise_padding": ((1, 1), (2, 2, 2), (1, 1, 1, 1), (1, 1), (2, 2, 2)),
          "depthwise_filters": 16, "depthwise_stride": 1, "depthwise_residual": True, "squeeze_and_excite": None,
          "last_layer_filter": 960, "input_activation": "hard_swish", "input_num_filters": 16}


def _small(width: float) -> dict[str, Any]:
  if width == 0.5:
    expansion, filters, depthwise, last = ((40, 56), (64, 144, 144), (72, 72), (144, 288, 288)), \
        ((16, 16), (24, 24, 24), (24, 24), (48, 48, 48)), 8, 288
  else:
    expansion, filters, depthwise, last = ((72, 88), (96, 240, 240), (120, 144), (288, 576, 576)), \
        ((24, 24), (40, 40, 40), (48, 48), (96, 96, 96)), 16, 576
  return {"stackwise_num_blocks": (2, 3, 2, 3), "stackwise_expansion": expansion, "stackwise_num_filters": filters,
          "stackwise_kernel_size": ((3, 3), (5, 5, 5), (5, 5), (5, 5, 5)),
          "stackwise_num_strides": ((2, 1), (2, 1, 1), (1, 1), (2, 1, 1)),
          "stackwise_se_ratio": ((None, None), (0.25,) * 3, (0.25,) * 2, (0.25,) * 3),
          "stackwise_activation": (("relu",) * 2, ("hard_swish",) * 3, ("hard_swish",) * 2, ("hard_swish",) * 3),
          "stackwise_padding": ((1, 1), (2, 2, 2), (2, 2), (2, 2, 2)),
          "depthwise_filters": depthwise, "depthwise_stride": 2, "depthwise_residual": False,
          "squeeze_and_excite": 0.5, "last_layer_filter": last, "input_activation": "hard_swish",
          "input_num_filters": 16}


# Backbone name -> architecture arguments (those of keras-hub's presets mobilenet_v3_*).
VARIANTS = {"mobilenet_v3_small_050": _small(0.5), "mobilenet_v3_small": _small(1.0), "mobilenet_v3_large": _large()}
# Backbone name -> keras-hub preset of its ImageNet weights.
PRESETS = {"mobilenet_v3_small_050": "mobilenet_v3_small_050_imagenet",
           "mobilenet_v3_small": "mobilenet_v3_small_100_imagenet",
           "mobilenet_v3_large": "mobilenet_v3_large_100_imagenet"}
