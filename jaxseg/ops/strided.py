"""Strided dense convolutions (ResNet's and EfficientNet's stems, ResNet's stride-2 3x3s, MiT's and DINOv2's
patch embeddings) with a weight gradient written as GEMMs.

XLA:CPU computes the forward and the input gradient of a strided convolution at about the speed of a GEMM of
the same size, but its autodiffed weight gradient is a convolution with the batch as the feature axis, which
its convolution library runs far slower on some CPUs: 285 ms for ResNet-50's 7x7 stem (batch 2 at 480x384) on
an AVX2 AMD EPYC (Zen 3), against 56 ms in the form below (`benchmarks/README.md`). Here the weight gradient
is one GEMM per kernel row: the stride-spaced windows that the row's taps multiply, side by side as
(pixels, kw x Cin) columns, against the output gradient as (pixels, Cout).
"""

from functools import partial

import jax
import jax.numpy as jnp

from jaxseg.ops.common import lax_conv, tap

Padding = tuple[tuple[int, int], tuple[int, int]]


def strided_conv_gemm(x: jax.Array, kernel: jax.Array, *, stride: int, padding: Padding) -> jax.Array:
  """A dense convolution of x zero-padded by `padding`, at `stride`, with the hand-written VJP above.

  Args:
    x: (B, H, W, Cin).
    kernel: (kh, kw, Cin, Cout), cast to x's dtype.
    stride: the stride on both axes.
    padding: ((top, bottom), (left, right)) zeros.

  Returns:
    (B, (H + top + bottom - kh) // stride + 1, (W + left + right - kw) // stride + 1, Cout) in x's dtype.
  """
  padding = tuple(tuple(int(p) for p in side) for side in padding)
  return _strided_conv(x, kernel.astype(x.dtype), stride, padding)


def strided_conv_reference(x: jax.Array, kernel: jax.Array, *, stride: int, padding: Padding) -> jax.Array:
  """`strided_conv_gemm` as a `lax` convolution (the "xla" formulation)."""
  return lax_conv(x, kernel, stride=stride, padding=padding)


def weight_gradient(x: jax.Array, g: jax.Array, kernel_shape: tuple[int, ...], stride: int,
                    padding: Padding) -> jax.Array:
  """d(loss)/d(kernel) (kh, kw, Cin, Cout) in float32, from the input x and the output gradient g
  (B, Ho, Wo, Cout): for each kernel row, the windows of its kw taps as columns of one GEMM."""
  kh, kw, c, o = kernel_shape
  _, ho, wo, _ = g.shape
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  g_rows = g.reshape(-1, o)
  rows = []
  for a in range(kh):
    columns = jnp.concatenate([tap(xp, a, b, ho, wo, stride) for b in range(kw)], axis=-1).reshape(-1, kw * c)
    product = jax.lax.dot_general(columns, g_rows, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
    rows.append(product.reshape(kw, c, o))
  return jnp.stack(rows)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _strided_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
  return lax_conv(x, kernel, stride=stride, padding=padding)


def _fwd(x, kernel, stride, padding):
  return _strided_conv(x, kernel, stride, padding), (x, kernel)


def _bwd(stride, padding, residuals, g):
  x, kernel = residuals
  # The input gradient stays XLA's (a transposed convolution); unused where x is the image, and then dropped.
  (dx,) = jax.linear_transpose(lambda x_: lax_conv(x_, kernel, stride=stride, padding=padding), x)(g)
  dk = weight_gradient(x, g, kernel.shape, stride, padding)
  return dx, dk.astype(kernel.dtype)


_strided_conv.defvjp(_fwd, _bwd)
