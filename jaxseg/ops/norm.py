"""Layer normalization over the last axis, its statistics as matrix-vector products.

XLA:CPU reduces the short minor axis of a transformer's tokens (32-512 channels) one row at a time; the same
sums as a product with a constant column of 1/C run through the GEMM library and take MiT-B0's forward at 416
px from about 51 to 28 ms (`benchmarks/README.md`). The hand-written VJP keeps the backward free of the
rank-1 products autodiff would make of those columns.

`layer_norm` is the fast form, `layer_norm_reference` the plain one (the two-pass mean and variance that Keras'
`LayerNormalization` computes); `tests/test_ops.py` holds the two to equal values and gradients.
"""

from functools import partial

import jax
import jax.numpy as jnp

from jaxseg.ops.common import row_dot


def layer_norm_reference(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float) -> jax.Array:
  """(x - mean) / sqrt(var + epsilon) * scale + bias over the last axis, statistics in float32."""
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, -1, keepdims=True)
  var = jnp.mean(jnp.square(x32 - mean), -1, keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + epsilon) * scale + bias).astype(x.dtype)


def _row_mean(x: jax.Array) -> jax.Array:
  """The mean of each row of x (..., C): (..., 1)."""
  return row_dot(x, 1.0 / x.shape[-1])


def _forward(x, scale, bias, epsilon):
  x32 = x.astype(jnp.float32)
  centred = x32 - _row_mean(x32)
  rstd = jax.lax.rsqrt(_row_mean(jnp.square(centred)) + epsilon)
  normed = centred * rstd
  return (normed * scale + bias).astype(x.dtype), (normed, rstd)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float) -> jax.Array:
  """`layer_norm_reference` with row means as matrix-vector products.

  Args:
    x: (..., C), float32 or bfloat16 (statistics in float32, the result in x's dtype).
    scale: (C,) float32.
    bias: (C,) float32.
    epsilon: added to the variance.
  """
  return _forward(x, scale, bias, epsilon)[0]


def _fwd(x, scale, bias, epsilon):
  y, (normed, rstd) = _forward(x, scale, bias, epsilon)
  return y, (normed, rstd, scale)


def _bwd(epsilon, res, g):
  del epsilon
  normed, rstd, scale = res  # (g has the output's dtype, which is x's)
  g32 = g.astype(jnp.float32)
  rows = (-1, g32.shape[-1])
  d_scale = jnp.sum((g32 * normed).reshape(rows), 0)
  d_bias = jnp.sum(g32.reshape(rows), 0)
  gs = g32 * scale
  dx = rstd * (gs - _row_mean(gs) - normed * _row_mean(gs * normed))
  return dx.astype(g.dtype), d_scale.astype(scale.dtype), d_bias.astype(scale.dtype)


layer_norm.defvjp(_fwd, _bwd)
