"""The layer spec every model passes down once, and the Keras-equivalent layers built from it.

A `LayerSpec` holds what every convolution and BatchNorm of a model shares (compute dtype, GEMM input dtype,
the `kernels` formulation, BatchNorm momentum and epsilon); modules take it as one field and build their
layers from it (`spec.batch_norm(train)`, `partial(Conv, spec=spec)`), instead of threading each setting
through every constructor.
"""

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg import ops


@dataclasses.dataclass(frozen=True)
class LayerSpec:
  """How a model's layers compute.

  Attributes:
    dtype: compute dtype (float32 or bfloat16); parameters stay float32.
    gemm_dtype: the dtype GEMM inputs are cast to, accumulated in float32 (None: `dtype`; see
      `jaxseg.runtime.precision`).
    kernels: "auto", "gemm", "xla" or "lite": how convolutions are formulated (`jaxseg.ops.dispatch`).
    bn_momentum: BatchNorm moving-average momentum (Keras default 0.99; MobileNetV2's encoder 0.999).
    bn_epsilon: BatchNorm epsilon (Keras: 1e-3).
  """
  dtype: Any = jnp.float32
  gemm_dtype: Any = None
  kernels: str = "auto"
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3

  def replace(self, **changes: Any) -> "LayerSpec":
    """A copy with `changes` (e.g. the encoder's BatchNorm momentum)."""
    return dataclasses.replace(self, **changes)

  def batch_norm(self, train: bool) -> Callable[..., nn.BatchNorm]:
    """`nn.BatchNorm` with this spec's momentum, epsilon and dtype; batch statistics when `train`."""
    return partial(nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                   epsilon=self.bn_epsilon, dtype=self.dtype)


def relu6(x: jax.Array) -> jax.Array:
  """ReLU capped at 6 (MobileNetV2's activation)."""
  return jnp.clip(x, 0, 6)


class Conv(nn.Module):
  """Keras `Conv2D` without bias: 1x1 as a GEMM, or a strided 3x3 on few channels (MobileNetV2's stem).

  Attributes:
    features: output channels.
    kernel_size: 1, or 3 (with `strides`).
    strides: the stride of a 3x3 kernel.
    spec: the layer spec.
  """
  features: int
  kernel_size: int = 1
  strides: int = 1
  spec: LayerSpec = LayerSpec()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """The convolution of x (B, H, W, Cin), in the spec's dtype."""
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.glorot_uniform(), (k, k, x.shape[-1], self.features))
    x = x.astype(self.spec.dtype)
    if k == 1 and self.strides == 1:
      return ops.pointwise_conv(x, kernel, gemm_dtype=self.spec.gemm_dtype, kernels=self.spec.kernels)
    return ops.stem_conv3x3(x, kernel, stride=self.strides, kernels=self.spec.kernels)


class DepthwiseConv(nn.Module):
  """Keras `DepthwiseConv2D(3)` without bias; kernel (3, 3, C, 1)."""
  strides: int = 1
  dilation: int = 1
  spec: LayerSpec = LayerSpec()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """The depthwise convolution of x (B, H, W, C), in the spec's dtype."""
    kernel = self.param("kernel", nn.initializers.glorot_uniform(), (3, 3, x.shape[-1], 1))
    return ops.depthwise_conv3x3(x.astype(self.spec.dtype), kernel, stride=self.strides, dilation=self.dilation,
                                 kernels=self.spec.kernels)


class ConvTranspose3x3S2(nn.Module):
  """Keras `Conv2DTranspose(features, 3, strides=2, padding="same")` over concatenated inputs.

  The kernel is stored as (3, 3, Cin, Cout), Keras's (3, 3, Cout, Cin) with the last two axes swapped;
  the inputs are never concatenated (see `jaxseg.ops.conv_transpose`).
  """
  features: int
  use_bias: bool = False
  kernel_init: Any = nn.initializers.normal(0.02)
  spec: LayerSpec = LayerSpec()

  @nn.compact
  def __call__(self, inputs: Sequence[jax.Array]) -> jax.Array:
    """(B, 2n, 2m, features) from inputs (B, n, m, C_k), in the spec's dtype."""
    cin = sum(x.shape[-1] for x in inputs)
    kernel = self.param("kernel", self.kernel_init, (3, 3, cin, self.features))
    y = ops.conv_transpose3x3_s2([x.astype(self.spec.dtype) for x in inputs], kernel,
                                 gemm_dtype=self.spec.gemm_dtype, kernels=self.spec.kernels)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.spec.dtype)
    return y


class ConvBN(nn.Module):
  """Conv (1x1, or 3x3 with a dilation; no bias), BatchNorm (eps 1e-3), ReLU. With `separable`, a 3x3 conv is
  a depthwise 3x3 + BatchNorm + ReLU followed by a pointwise 1x1 (Xception style)."""
  features: int
  kernel_size: int = 1
  dilation: int = 1
  separable: bool = False
  spec: LayerSpec = LayerSpec()

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """The block on x (B, H, W, Cin); `train`: BatchNorm uses and updates batch statistics."""
    batch_norm = self.spec.batch_norm(train)
    pointwise = partial(ops.pointwise_conv, gemm_dtype=self.spec.gemm_dtype, kernels=self.spec.kernels)
    x = x.astype(self.spec.dtype)
    init = nn.initializers.he_normal()
    if self.kernel_size == 3 and self.separable:
      dw = self.param("depthwise", init, (3, 3, x.shape[-1], 1))
      x = ops.depthwise_conv3x3(x, dw, dilation=self.dilation, kernels=self.spec.kernels)
      x = nn.relu(batch_norm(name="depthwise_bn")(x))
      x = pointwise(x, self.param("kernel", init, (1, 1, x.shape[-1], self.features)))
    elif self.kernel_size == 3:
      kernel = self.param("kernel", init, (3, 3, x.shape[-1], self.features))
      x = ops.conv3x3(x, kernel, dilation=self.dilation, gemm_dtype=self.spec.gemm_dtype,
                      kernels=self.spec.kernels)
    else:
      x = pointwise(x, self.param("kernel", init, (1, 1, x.shape[-1], self.features)))
    return nn.relu(batch_norm(name="bn")(x))
