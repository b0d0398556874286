"""Winograd F(4x4, 3x3): values and both gradients against `lax.conv_general_dilated` at full precision, at
sizes that are and are not multiples of the 4x4 tile, and where the CPU dispatch uses it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import ops
from jaxseg.ops import dense3x3, winograd


def _lax_conv(x, k):
  return dense3x3.conv3x3_reference(x, k, precision=jax.lax.Precision.HIGHEST)


def _rel_err(got, want):
  return float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))


@pytest.mark.parametrize("shape", [(2, 8, 8, 5, 4), (2, 7, 9, 5, 3), (3, 13, 6, 8, 16), (1, 1, 1, 4, 3),
                                   (1, 2, 5, 3, 2)])
def test_values_and_gradients_match_lax(shape):
  *x_shape, cout = shape
  rng = np.random.default_rng(sum(shape))
  x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, x_shape[-1], cout)), jnp.float32)
  cot = jnp.asarray(rng.normal(size=(*x_shape[:3], cout)), jnp.float32)
  want, want_vjp = jax.vjp(_lax_conv, x, k)
  got, got_vjp = jax.vjp(winograd.winograd_conv3x3, x, k)
  assert got.shape == want.shape
  assert _rel_err(got, want) < 2e-5
  for g, w, name in zip(got_vjp(cot), want_vjp(cot), ("input", "kernel")):
    assert g.shape == w.shape
    assert _rel_err(g, w) < 2e-5, name


def test_every_tap_and_tile_position_is_exact():
  # One-hot inputs and kernels: each output is a single product, so any transform error shows alone.
  x = jnp.zeros((1, 9, 9, 1)).at[0, 4, 5, 0].set(1.0)
  for a in range(3):
    for b in range(3):
      k = jnp.zeros((3, 3, 1, 1)).at[a, b, 0, 0].set(1.0)
      np.testing.assert_allclose(winograd.winograd_conv3x3(x, k), _lax_conv(x, k), atol=1e-6, err_msg=f"tap {a},{b}")


def test_the_cpu_float32_dispatch_uses_it_from_enough_tiles_and_mixed_precision_does_not():
  x = jnp.ones((4, 32, 32, 4), jnp.float32)  # 256 tiles
  k = jnp.ones((3, 3, 4, 4), jnp.float32)
  prims = lambda f: str(jax.make_jaxpr(f)(x, k))
  fp32 = prims(lambda x, k: ops.conv3x3(x, k, kernels="gemm"))
  mixed = prims(lambda x, k: ops.conv3x3(x, k, gemm_dtype=jnp.bfloat16, kernels="gemm"))
  dilated = prims(lambda x, k: ops.conv3x3(x, k, dilation=2, kernels="gemm"))
  assert jax.default_backend() == "cpu"
  assert "conv_general_dilated" not in fp32 and fp32.count("dot_general") >= 36  # 36 tile GEMMs
  assert "bf16" in mixed and mixed.count("dot_general") < 36
  assert "conv_general_dilated" in dilated  # atrous rates keep the lax forward
  small = prims(lambda x, k: ops.conv3x3(x[:1], k, kernels="gemm"))
  assert "conv_general_dilated" in small  # too few tiles to pay
