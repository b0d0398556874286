"""The bilinear upsampling and the max pool's fast forms against `jax.image.resize` and `lax.reduce_window`:
values and gradients, whole factors and not, edges, ties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.ops import pool, resize


def _value_and_vjp(f, x, seed=0):
  y, vjp = jax.vjp(f, x)
  g = jnp.asarray(np.random.default_rng(seed).normal(size=y.shape), jnp.float32)
  return y, vjp(g)[0]


@pytest.mark.parametrize("shape,size", [
    ((2, 5, 7, 3), (10, 14)),    # factor 2
    ((1, 3, 4, 2), (24, 32)),    # factor 8: SegFormer's stride 32 to stride 4
    ((2, 4, 4, 1), (12, 4)),     # one axis only
    ((1, 1, 1, 2), (4, 4)),      # a single pixel: both edges at once
    ((1, 6, 6, 2), (9, 9)),      # not a whole factor: the reference itself
    ((1, 6, 6, 2), (6, 6)),      # identity
])
def test_upsample_bilinear(shape, size):
  x = jnp.asarray(np.random.default_rng(sum(shape)).normal(size=shape), jnp.float32)
  got = _value_and_vjp(jax.jit(lambda x: resize.upsample_bilinear(x, size)), x)
  want = _value_and_vjp(lambda x: resize.upsample_bilinear_reference(x, size), x)
  for g, w in zip(got, want):
    assert g.shape == w.shape
    np.testing.assert_allclose(g, w, atol=2e-6)


@pytest.mark.parametrize("shape,window,stride", [((2, 11, 13, 3), 3, 2), ((1, 10, 10, 2), 3, 2),
                                                  ((2, 9, 8, 4), 2, 2), ((1, 7, 7, 2), 3, 1)])
def test_max_pool(shape, window, stride):
  x = jnp.asarray(np.random.default_rng(sum(shape)).normal(size=shape), jnp.float32)
  got = _value_and_vjp(jax.jit(lambda x: pool.max_pool(x, window, stride)), x)
  want = _value_and_vjp(lambda x: pool.max_pool_reference(x, window, stride), x)
  for g, w in zip(got, want):
    assert g.shape == w.shape
    np.testing.assert_allclose(g, w, atol=1e-6)


def test_max_pool_gives_a_tie_one_gradient_at_its_first_position():
  """After a ReLU whole windows are zero: each output's gradient goes once, to the window's first position."""
  x = jnp.zeros((1, 5, 5, 1)).at[0, 4, 4, 0].set(1.0)
  y, vjp = jax.vjp(lambda x: pool.max_pool(x, 3, 2), x)
  dx = np.asarray(vjp(jnp.ones_like(y))[0])[0, :, :, 0]
  want = np.zeros((5, 5))
  want[0, 0] = want[0, 2] = want[2, 0] = 1.0  # the all-zero windows' first positions
  want[4, 4] = 1.0  # the window holding the one
  np.testing.assert_array_equal(dx, want)
