"""The convolution and BatchNorm that keras-hub's convolutional backbones are built of, as Flax layers named
after keras-hub's: explicit zero padding then "valid" (as keras-hub pads), float32 parameters."""

from typing import Any

import flax.linen as nn
import jax


def conv(x: jax.Array, features: int, kernel: int = 1, stride: int = 1, pad: int = 0, rate: int = 1,
         groups: int = 1, bias: bool = False, *, dtype: Any, name: str) -> jax.Array:
  """A `kernel` x `kernel` convolution of x padded by `pad` on every side (call from a compact method).

  Args:
    x: (B, H, W, C) input.
    features: output channels.
    kernel: kernel size.
    stride: stride.
    pad: zeros added on each side before the "valid" convolution.
    rate: dilation.
    groups: feature groups (= channels for a depthwise convolution).
    bias: add a bias.
    dtype: computation dtype.
    name: the Keras layer's name.
  """
  return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((pad, pad), (pad, pad)),
                 kernel_dilation=rate, feature_group_count=groups, use_bias=bias, dtype=dtype, name=name)(x)


def batch_norm(x: jax.Array, train: bool, *, momentum: float, epsilon: float, dtype: Any, name: str) -> jax.Array:
  """BatchNorm over the last axis (`train`: batch statistics, updated averages); call from a compact method."""
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon, dtype=dtype, name=name)(x)
