"""The convolution and BatchNorm that keras-hub's convolutional backbones are built of, as Flax layers named
after keras-hub's: explicit zero padding then "valid" (as keras-hub pads), float32 parameters.

Every convolution runs through a `jaxseg.ops` form under `kernels`: 1x1 at any stride, stride-1 3x3 dense with
"same" padding at any dilation, depthwise of any size, stride and dilation, and strided dense kxk (stems,
ResNet's strided 3x3s, MiT's patch embeddings and sequence reduction, DINOv2's patch embedding). The rest (a
dense kxk at stride 1 other than a 'same' 3x3, or strided and dilated at once) is a plain `lax` convolution.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg import ops
from jaxseg.models.layers import LayerSpec


class Conv(nn.Module):
  """A convolution with `nn.Conv`'s parameters ("kernel" (k, k, Cin / groups, Cout), "bias")."""
  features: int
  kernel: int = 1
  stride: int = 1
  pad: int = 0
  rate: int = 1
  groups: int = 1
  bias: bool = False
  spec: LayerSpec = LayerSpec()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """The convolution of x (B, H, W, Cin), in the spec's dtype; a dense one on its GEMM input dtype."""
    c_in = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (self.kernel, self.kernel, c_in // self.groups, self.features))
    dtype, gemm_dtype, kernels = self.spec.dtype, self.spec.gemm_dtype, self.spec.kernels
    x, k = x.astype(dtype), kernel.astype(dtype)
    same = self.stride == 1 and self.pad == self.rate * (self.kernel // 2)
    fast = ops.resolve_kernels(kernels) == "gemm"
    if self.kernel == 1 and self.pad == 0 and self.groups == 1 and (self.stride == 1 or fast):
      # A strided 1x1 reads every stride-th pixel; XLA:CPU's own weight gradient of it took 15x the forward.
      for axis in (1, 2) if self.stride > 1 else ():
        x = jax.lax.slice_in_dim(x, 0, x.shape[axis], stride=self.stride, axis=axis)
      y = ops.pointwise_conv(x, k, gemm_dtype=gemm_dtype, kernels=kernels)
    elif self.kernel == 3 and same and self.groups == 1:
      y = ops.conv3x3(x, k, dilation=self.rate, gemm_dtype=gemm_dtype, kernels=kernels)
    elif self.groups == c_in == self.features:
      y = ops.depthwise_conv(x, k.reshape(self.kernel, self.kernel, c_in, 1), stride=self.stride,
                             dilation=self.rate, padding=((self.pad, self.pad),) * 2, kernels=kernels)
    elif self.stride > 1 and self.rate == 1 and self.groups == 1:
      y = ops.strided_conv(x, k, stride=self.stride, padding=((self.pad, self.pad),) * 2, gemm_dtype=gemm_dtype,
                           kernels=kernels)
    else:
      g = gemm_dtype or dtype
      y = jax.lax.conv_general_dilated(x.astype(g), k.astype(g), (self.stride, self.stride),
                                       [(self.pad, self.pad)] * 2, rhs_dilation=(self.rate, self.rate),
                                       feature_group_count=self.groups, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       preferred_element_type=jnp.float32).astype(dtype)
    if self.bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(dtype)
    return y


class Dense(nn.Module):
  """`nn.Dense`'s parameters ("kernel" (Cin, Cout), "bias") over the last axis, computed as a 1x1 convolution
  through `ops.pointwise_conv` under `kernels`: its weight gradient keeps the pixel-major layout of the
  output gradient (XLA:CPU's own dot had the transposed copy of it fused into the producing loop, the
  depthwise convolution's input gradient in MiT's Mix-FFN, which then ran several times slower)."""
  features: int
  spec: LayerSpec = LayerSpec()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x (..., Cin) -> (..., features) in the spec's dtype, on its GEMM input dtype."""
    c_in = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (c_in, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    dtype = self.spec.dtype
    rows = x.astype(dtype).reshape(-1, 1, 1, c_in)  # every position a pixel: any leading shape
    y = ops.pointwise_conv(rows, kernel.astype(dtype)[None, None], gemm_dtype=self.spec.gemm_dtype,
                           kernels=self.spec.kernels)
    return y.reshape(*x.shape[:-1], self.features) + bias.astype(dtype)


def conv(x: jax.Array, features: int, kernel: int = 1, stride: int = 1, pad: int = 0, rate: int = 1,
         groups: int = 1, bias: bool = False, *, spec: LayerSpec, name: str) -> jax.Array:
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
    spec: compute dtype, GEMM input dtype and the `jaxseg.ops` kernel forms.
    name: the Keras layer's name.
  """
  return Conv(features, kernel, stride, pad, rate, groups, bias, spec, name=name)(x)


class ConvMixin:
  """`_conv` for a backbone module with a `spec` field: `conv` under it."""

  def _conv(self, x: jax.Array, features: int, kernel: int = 1, stride: int = 1, pad: int = 0, rate: int = 1,
            groups: int = 1, bias: bool = False, name: str = "") -> jax.Array:
    return conv(x, features, kernel, stride, pad, rate, groups, bias, spec=self.spec, name=name)


def batch_norm(x: jax.Array, train: bool, *, momentum: float, epsilon: float, dtype: Any, name: str) -> jax.Array:
  """BatchNorm over the last axis (`train`: batch statistics, updated averages); call from a compact method."""
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon, dtype=dtype, name=name)(x)


class LayerNorm(nn.Module):
  """`nn.LayerNorm`'s parameters ("scale", "bias") over the last axis, through `ops.layer_norm` under
  the spec's `kernels` (statistics in float32, the result in the spec's dtype)."""
  epsilon: float = 1e-6
  spec: LayerSpec = LayerSpec()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x (..., C) normalized over C."""
    c = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    return ops.layer_norm(x, scale, bias, epsilon=self.epsilon, kernels=self.spec.kernels).astype(self.spec.dtype)
