"""The Winograd form of the stride-2 transposed convolution against `lax.conv_transpose` at full precision."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.ops import conv_transpose, winograd_transpose

HIGHEST = jax.lax.Precision.HIGHEST


def _reference(xs, kernel):
  with jax.default_matmul_precision("highest"):
    return conv_transpose.conv_transpose3x3_s2_reference(jnp.concatenate(xs, -1), kernel)


@pytest.mark.parametrize("n,m,sizes,cout", [(4, 4, (8,), 5), (5, 3, (3, 6), 7), (7, 8, (16, 4, 2), 1),
                                            (1, 1, (2,), 3), (6, 9, (5, 4), 33)])
def test_matches_lax(n, m, sizes, cout):
  """Even and odd map sizes (an odd one is padded by a zero tile row), one to three inputs."""
  rng = np.random.default_rng(n * 10 + m)
  xs = tuple(jnp.asarray(rng.normal(size=(2, n, m, c)), jnp.float32) for c in sizes)
  kernel = jnp.asarray(rng.normal(size=(3, 3, sum(sizes), cout)), jnp.float32)
  with jax.default_matmul_precision("highest"):
    got = jax.jit(winograd_transpose.winograd_conv_transpose3x3_s2)(xs, kernel)
  want = _reference(xs, kernel)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=2e-5 * float(jnp.abs(want).max()))


@pytest.mark.parametrize("n,m,sizes,cout", [(4, 4, (8,), 5), (5, 3, (3, 6), 7), (7, 8, (16, 4, 2), 1),
                                            (1, 1, (2,), 3)])
def test_backward_matches_autodiff_of_lax(n, m, sizes, cout):
  rng = np.random.default_rng(n * 10 + m + 1)
  xs = tuple(jnp.asarray(rng.normal(size=(2, n, m, c)), jnp.float32) for c in sizes)
  kernel = jnp.asarray(rng.normal(size=(3, 3, sum(sizes), cout)), jnp.float32)
  g = jnp.asarray(rng.normal(size=(2, 2 * n, 2 * m, cout)), jnp.float32)
  want_dxs, want_dk = jax.vjp(_reference, xs, kernel)[1](g)
  with jax.default_matmul_precision("highest"):
    dxs, dk = jax.jit(winograd_transpose.winograd_conv_transpose3x3_s2_vjp)(xs, kernel, g)
  for got, want in zip((*dxs, dk), (*want_dxs, want_dk)):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-5 * float(jnp.abs(want).max()))


def test_every_tap_lands_where_the_scatter_puts_it():
  """One input pixel, one kernel tap at a time: out[2i + a, 2j + b] = x[i, j] K[a, b], nothing elsewhere."""
  x = jnp.zeros((1, 4, 4, 1)).at[0, 1, 2, 0].set(1.0)
  for a in range(3):
    for b in range(3):
      kernel = jnp.zeros((3, 3, 1, 1)).at[a, b, 0, 0].set(2.0)
      out = np.asarray(winograd_transpose.winograd_conv_transpose3x3_s2((x,), kernel))[0, :, :, 0]
      want = np.zeros((8, 8), np.float32)
      want[2 + a, 4 + b] = 2.0
      np.testing.assert_array_equal(out, want)


def test_dispatch_in_the_custom_vjp():
  """Wide, large layers on CPU in float32 take the Winograd forward and backward inside the custom VJP;
  values and both gradients match autodiff of the `lax` form. Narrow layers, small maps and bf16 GEMMs do not."""
  rng = np.random.default_rng(0)
  # 2 x 16 x 16 tiles of 2x2 pixels (the odd width padded): exactly the threshold
  xs = (jnp.asarray(rng.normal(size=(2, 32, 31, 5)), jnp.float32),
        jnp.asarray(rng.normal(size=(2, 32, 31, 3)), jnp.float32))
  assert winograd_transpose.tile_count(xs[0].shape) == winograd_transpose.MIN_TILES
  kernel = jnp.asarray(rng.normal(size=(3, 3, 8, winograd_transpose.MIN_FEATURES_BACKWARD)), jnp.float32)
  on_cpu = jax.default_backend() == "cpu"
  assert conv_transpose.winograd_applies(xs, kernel) == on_cpu
  assert conv_transpose.winograd_applies(xs, kernel, backward=True) == on_cpu
  assert not conv_transpose.winograd_applies(xs, kernel[..., :winograd_transpose.MIN_FEATURES], backward=True)
  assert not conv_transpose.winograd_applies(xs, kernel, gemm_dtype=jnp.bfloat16)
  assert not conv_transpose.winograd_applies(xs, kernel[..., :winograd_transpose.MIN_FEATURES - 1])
  assert not conv_transpose.winograd_applies(tuple(x[:1] for x in xs), kernel)  # one image: 256 tiles
  cot = jnp.asarray(rng.normal(size=(2, 64, 62, kernel.shape[-1])), jnp.float32)
  loss = lambda f: lambda xs, k: jnp.sum(f(xs, k) * cot)
  with jax.default_matmul_precision("highest"):
    got = jax.value_and_grad(loss(conv_transpose.conv_transpose3x3_s2_gemm), argnums=(0, 1))(xs, kernel)
    want = jax.value_and_grad(loss(_reference), argnums=(0, 1))(xs, kernel)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, atol=2e-5 * max(1.0, float(jnp.abs(w).max())))
