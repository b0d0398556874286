"""Softmax over the last axis, its sums as matrix-vector products.

The same observation as `norm.py`: inside a fusion, XLA:CPU sums a short minor axis (MiT's 169-1024 keys)
one row at a time, in the forward's normalizer and again in the backward's sum of gradient times
probability. As products with a column of ones they run through the GEMM library; MiT-B0's train step at 416
px goes from about 360 to 343 ms (`benchmarks/README.md`). The maximum subtracted for stability stays an XLA
reduction.

Rows of `LONG_ROWS` keys or more (a ViT's attention: DINOv2's 901 keys at 420 px) go the other way: there
XLA's own reductions are faster than the products (2.0 against 3.9 ms forward for 8 x 901 x 901), and
`softmax_long` keeps them, with a hand-written VJP that writes the backward as one sum, as `softmax` does (the
VJP `jax.nn.softmax` carries made DINOv2-S's attention backward about a fifth slower).

`softmax` and `softmax_long` are the fast forms, `softmax_reference` the plain one (`jax.nn.softmax`);
`tests/test_ops.py` holds them to equal values and gradients.
"""

import jax
import jax.numpy as jnp

from jaxseg.ops.common import row_dot


def softmax_reference(x: jax.Array) -> jax.Array:
  """exp(x) / sum(exp(x)) over the last axis (`jax.nn.softmax`)."""
  return jax.nn.softmax(x, axis=-1)


@jax.custom_vjp
def softmax(x: jax.Array) -> jax.Array:
  """`softmax_reference` with the row sums as matrix-vector products.

  Args:
    x: (..., K) logits, float32.
  """
  e = jnp.exp(x - jax.lax.stop_gradient(jnp.max(x, -1, keepdims=True)))
  return e / row_dot(e, 1.0)


def _fwd(x):
  p = softmax(x)
  return p, p


def _bwd(p, g):
  return (p * (g - row_dot(g * p, 1.0)),)


softmax.defvjp(_fwd, _bwd)


LONG_ROWS = 512  # keys per row from which `softmax_long` is the faster form


@jax.custom_vjp
def softmax_long(x: jax.Array) -> jax.Array:
  """`softmax_reference` (XLA's reductions) with a plain hand-written VJP.

  Args:
    x: (..., K) logits, float32.
  """
  return jax.nn.softmax(x, axis=-1)


def _long_fwd(x):
  p = softmax_long(x)
  return p, p


def _long_bwd(p, g):
  return (p * (g - jnp.sum(g * p, -1, keepdims=True)),)


softmax_long.defvjp(_long_fwd, _long_bwd)
