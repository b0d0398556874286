"""The depthwise and stem convolutions' hand-written VJPs against autodiff of `lax` convolutions, at full
precision: widths below, at and across several weight-gradient chunks, odd sizes, both strides, atrous rates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.ops import dense3x3, depthwise

HIGHEST = jax.lax.Precision.HIGHEST


def _lax_depthwise(x, k, stride, dilation):
  return depthwise.depthwise_reference(x, k, stride=stride, dilation=dilation, precision=HIGHEST)


def _check(f, ref, x, k, tol=2e-5):
  rng = np.random.default_rng(1)
  want, want_vjp = jax.vjp(ref, x, k)
  got, got_vjp = jax.vjp(f, x, k)
  cot = jnp.asarray(rng.normal(size=want.shape), jnp.float32)
  for g, w in zip((got, *got_vjp(cot)), (want, *want_vjp(cot))):
    assert g.shape == w.shape
    np.testing.assert_allclose(g, w, atol=tol * max(1.0, float(jnp.abs(w).max())))


@pytest.mark.parametrize("shape,stride,dilation", [
    ((2, 6, 19, 5), 1, 1),   # two chunks and a remainder
    ((2, 5, 16, 3), 1, 1),   # exactly two chunks
    ((2, 9, 33, 4), 2, 1),   # odd sizes at stride 2: symmetric padding
    ((1, 8, 34, 4), 2, 1),   # even sizes at stride 2: correct_pad's (0, 1)
    ((2, 12, 10, 5), 1, 2),
    ((2, 7, 9, 3), 1, 4),    # rate larger than half the map: taps reaching only padding
])
def test_depthwise_values_and_gradients(shape, stride, dilation):
  rng = np.random.default_rng(sum(shape) + stride + dilation)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, shape[-1], 1)), jnp.float32)
  _check(jax.jit(lambda x, k: depthwise.depthwise_conv3x3_gemm(x, k, stride=stride, dilation=dilation)),
         lambda x, k: _lax_depthwise(x, k, stride, dilation), x, k)


@pytest.mark.parametrize("shape,kernel,stride,dilation,pad", [
    ((2, 9, 11, 5), 5, 1, 1, 2),    # EfficientNet's and MobileNetV3's 5x5
    ((2, 11, 10, 4), 5, 2, 1, 2),   # 5x5 at stride 2, symmetric padding (keras-hub's explicit ZeroPadding)
    ((2, 10, 12, 3), 3, 2, 1, 1),   # 3x3 at stride 2, symmetric padding on even sizes: not correct_pad's
    ((1, 8, 8, 3), 5, 1, 2, 4),     # atrous 5x5
    ((2, 13, 17, 2), 7, 4, 1, 3),   # stride larger than two: several phases without some taps
    ((1, 9, 9, 2), 3, 1, 1, 0),     # no padding
])
def test_any_depthwise_values_and_gradients(shape, kernel, stride, dilation, pad):
  rng = np.random.default_rng(sum(shape) + kernel)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  k = jnp.asarray(rng.normal(size=(kernel, kernel, shape[-1], 1)), jnp.float32)
  pads = ((pad, pad), (pad, pad))
  _check(jax.jit(lambda x, k: depthwise.depthwise_conv_gemm(x, k, stride=stride, dilation=dilation, padding=pads)),
         lambda x, k: depthwise.depthwise_reference(x, k, stride=stride, dilation=dilation, padding=pads,
                                                    precision=HIGHEST), x, k)


def test_depthwise_weight_gradient_sees_every_tap():
  """A one-hot output gradient against a one-hot input: exactly the tap joining them gets weight gradient."""
  x = jnp.zeros((1, 6, 6, 1)).at[0, 2, 3, 0].set(1.0)
  k = jnp.zeros((3, 3, 1, 1))
  for a in range(3):
    for b in range(3):
      g = jnp.zeros((1, 6, 6, 1)).at[0, 3 - a, 4 - b, 0].set(1.0)  # out[i] reads x[i - 1 + a]
      dk = jax.vjp(lambda k: depthwise.depthwise_conv3x3_gemm(x, k, stride=1), k)[1](g)[0]
      want = np.zeros((3, 3, 1, 1), np.float32)
      want[a, b] = 1.0
      np.testing.assert_array_equal(dk, want)


@pytest.mark.parametrize("shape,stride", [((2, 9, 20, 3), 2), ((2, 8, 8, 3), 2), ((1, 7, 6, 2), 1)])
def test_stem_values_and_gradients(shape, stride):
  rng = np.random.default_rng(sum(shape))
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, shape[-1], 6)), jnp.float32)

  def ref(x, k):
    return dense3x3.conv3x3_reference(x, k, stride=stride, precision=HIGHEST)

  _check(jax.jit(lambda x, k: dense3x3.stem_conv3x3_gemm(x, k, stride=stride)), ref, x, k)


def test_bfloat16_inputs_keep_their_dtype():
  x = jnp.ones((1, 8, 8, 4), jnp.bfloat16)
  k = jnp.ones((3, 3, 4, 1), jnp.float32)
  y, vjp = jax.vjp(lambda x, k: depthwise.depthwise_conv3x3_gemm(x, k, stride=2), x, k)
  dx, dk = vjp(jnp.ones_like(y))
  assert (y.dtype, dx.dtype, dk.dtype) == (jnp.bfloat16, jnp.bfloat16, jnp.float32)
  # Every input pixel of an all-ones 8x8 map at stride 2 (pad (0, 1)) lies under 1, 2 or 4 taps.
  assert sorted(np.unique(np.asarray(dx, np.float32)).tolist()) == [1.0, 2.0, 4.0]
