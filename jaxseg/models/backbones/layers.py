"""The convolution and BatchNorm that keras-hub's convolutional backbones are built of, as Flax layers named
after keras-hub's: explicit zero padding then "valid" (as keras-hub pads), float32 parameters.

Every convolution runs through a `jaxseg.ops` form under `conv_impl`: 1x1 at any stride, stride-1 3x3 dense with
"same" padding at any dilation, depthwise of any size, stride and dilation, and strided dense kxk (stems,
ResNet's strided 3x3s, MiT's patch embeddings and sequence reduction, DINOv2's patch embedding). The rest (a
dense kxk at stride 1 other than a 'same' 3x3, or strided and dilated at once) is a plain `lax` convolution.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg import ops


class Conv(nn.Module):
  """A convolution with `nn.Conv`'s parameters ("kernel" (k, k, Cin / groups, Cout), "bias")."""
  features: int
  kernel: int = 1
  stride: int = 1
  pad: int = 0
  rate: int = 1
  groups: int = 1
  bias: bool = False
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """The convolution of x (B, H, W, Cin)."""
    c_in = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (self.kernel, self.kernel, c_in // self.groups, self.features))
    x, k = x.astype(self.dtype), kernel.astype(self.dtype)
    same = self.stride == 1 and self.pad == self.rate * (self.kernel // 2)
    fast = ops.resolve_conv_impl(self.conv_impl) == "gemm"
    if self.kernel == 1 and self.pad == 0 and self.groups == 1 and (self.stride == 1 or fast):
      # A strided 1x1 reads every stride-th pixel; XLA:CPU's own weight gradient of it took 15x the forward.
      for axis in (1, 2) if self.stride > 1 else ():
        x = jax.lax.slice_in_dim(x, 0, x.shape[axis], stride=self.stride, axis=axis)
      y = ops.pointwise_conv(x, k, conv_impl=self.conv_impl)
    elif self.kernel == 3 and same and self.groups == 1:
      y = ops.conv3x3(x, k, dilation=self.rate, conv_impl=self.conv_impl)
    elif self.groups == c_in == self.features:
      y = ops.depthwise_conv(x, k.reshape(self.kernel, self.kernel, c_in, 1), stride=self.stride,
                             dilation=self.rate, padding=((self.pad, self.pad),) * 2, conv_impl=self.conv_impl)
    elif self.stride > 1 and self.rate == 1 and self.groups == 1:
      y = ops.strided_conv(x, k, stride=self.stride, padding=((self.pad, self.pad),) * 2, conv_impl=self.conv_impl)
    else:
      y = jax.lax.conv_general_dilated(x, k, (self.stride, self.stride), [(self.pad, self.pad)] * 2,
                                       rhs_dilation=(self.rate, self.rate), feature_group_count=self.groups,
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y


class Dense(nn.Module):
  """`nn.Dense`'s parameters ("kernel" (Cin, Cout), "bias") over the last axis, computed as a 1x1 convolution
  through `ops.pointwise_conv` under `conv_impl`: its weight gradient keeps the pixel-major layout of the
  output gradient (XLA:CPU's own dot had the transposed copy of it fused into the producing loop, the
  depthwise convolution's input gradient in MiT's Mix-FFN, which then ran several times slower)."""
  features: int
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x (..., Cin) -> (..., features)."""
    c_in = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (c_in, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    rows = x.astype(self.dtype).reshape(-1, 1, 1, c_in)  # every position a pixel: any leading shape
    y = ops.pointwise_conv(rows, kernel.astype(self.dtype)[None, None], conv_impl=self.conv_impl)
    return y.reshape(*x.shape[:-1], self.features) + bias.astype(self.dtype)


def conv(x: jax.Array, features: int, kernel: int = 1, stride: int = 1, pad: int = 0, rate: int = 1,
         groups: int = 1, bias: bool = False, *, dtype: Any, name: str, conv_impl: str = "auto") -> jax.Array:
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
    conv_impl: `jaxseg.ops` formulation where one applies.
  """
  return Conv(features, kernel, stride, pad, rate, groups, bias, dtype, conv_impl, name=name)(x)


class ConvMixin:
  """`_conv` for a backbone module with `dtype` and `conv_impl` fields: `conv` in them."""

  def _conv(self, x: jax.Array, features: int, kernel: int = 1, stride: int = 1, pad: int = 0, rate: int = 1,
            groups: int = 1, bias: bool = False, name: str = "") -> jax.Array:
    return conv(x, features, kernel, stride, pad, rate, groups, bias, dtype=self.dtype, name=name,
                conv_impl=self.conv_impl)


def batch_norm(x: jax.Array, train: bool, *, momentum: float, epsilon: float, dtype: Any, name: str) -> jax.Array:
  """BatchNorm over the last axis (`train`: batch statistics, updated averages); call from a compact method."""
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon, dtype=dtype, name=name)(x)


class LayerNorm(nn.Module):
  """`nn.LayerNorm`'s parameters ("scale", "bias") over the last axis, through `ops.layer_norm` under
  `conv_impl` (statistics in float32, the result in `dtype`)."""
  epsilon: float = 1e-6
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x (..., C) normalized over C."""
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    return ops.layer_norm(x, scale, bias, epsilon=self.epsilon, conv_impl=self.conv_impl).astype(self.dtype)
