"""Each fast form of `jaxseg.ops` against the plain `lax` reference beside it: forward and both gradients;
the "xla" and "lite" formulations against "gemm"."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import ops
from jaxseg.ops import common, conv_transpose, dense3x3, depthwise, norm, pointwise, softmax, strided


def _rand(rng, *shape):
  return jnp.asarray(rng.normal(size=shape), jnp.float32)


def _assert_close(a, b, tol=1e-4):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.shape == y.shape
    scale = max(1.0, float(jnp.abs(y).max()))
    assert float(jnp.abs(x - y).max()) <= tol * scale


# cout 16: 144 GEMM columns, the weight gradient through `pixel_gemm_t`; the others below NARROW_GEMM_COLUMNS.
@pytest.mark.parametrize("n,m,sizes,cout", [(4, 4, (8,), 5), (5, 3, (3, 6), 7), (7, 8, (16, 4, 2), 1),
                                            (1, 1, (2,), 3), (3, 5, (4, 6), 16)])
def test_conv_transpose_matches_lax(n, m, sizes, cout):
  rng = np.random.default_rng(n * 100 + m)
  xs = tuple(_rand(rng, 2, n, m, c) for c in sizes)
  kernel = _rand(rng, 3, 3, sum(sizes), cout)
  ref = lambda xs, k: conv_transpose.conv_transpose3x3_s2_reference(jnp.concatenate(xs, -1), k)
  _assert_close(conv_transpose.conv_transpose3x3_s2_gemm(xs, kernel), ref(xs, kernel))
  _assert_close(ops.conv_transpose3x3_s2(xs, kernel, kernels="lite"), ref(xs, kernel))  # the four-phase form
  cot = _rand(rng, 2, 2 * n, 2 * m, cout)
  grads = lambda f: jax.grad(lambda xs, k: jnp.sum(f(xs, k) * cot), argnums=(0, 1))(xs, kernel)
  _assert_close(jax.jit(lambda: grads(conv_transpose.conv_transpose3x3_s2_gemm))(), grads(ref))


def test_conv_transpose_reference_is_a_scatter():
  """Pins the reference itself to the definition: out[2i + a, 2j + b] += x[i, j] @ K[a, b], cropped."""
  rng = np.random.default_rng(0)
  x, k = _rand(rng, 1, 3, 2, 4), _rand(rng, 3, 3, 4, 2)
  out = np.zeros((1, 7, 5, 2), np.float32)
  for i in range(3):
    for j in range(2):
      for a in range(3):
        for b in range(3):
          out[0, 2 * i + a, 2 * j + b] += np.asarray(x[0, i, j] @ k[a, b])
  np.testing.assert_allclose(conv_transpose.conv_transpose3x3_s2_reference(x, k), out[:, :6, :4], atol=1e-5)


@pytest.mark.parametrize("size,stride", [(8, 1), (8, 2), (7, 2), (5, 1)])
def test_depthwise_matches_lax(size, stride):
  rng = np.random.default_rng(size + stride)
  x, k = _rand(rng, 2, size, size + 1, 6), _rand(rng, 3, 3, 6, 1)
  ref = lambda x, k: depthwise.depthwise_reference(x, k, stride=stride)
  _assert_close(depthwise.depthwise_conv3x3_gemm(x, k, stride=stride), ref(x, k))
  cot = _rand(rng, *ref(x, k).shape)
  grads = lambda f: jax.grad(lambda x, k: jnp.sum(f(x, k) * cot), argnums=(0, 1))(x, k)
  _assert_close(grads(lambda x, k: depthwise.depthwise_conv3x3_gemm(x, k, stride=stride)), grads(ref))


@pytest.mark.parametrize("size", [8, 9])
def test_stem_and_pointwise_match_lax(size):
  rng = np.random.default_rng(size)
  x, k = _rand(rng, 2, size, size, 3), _rand(rng, 3, 3, 3, 4)
  ref = lambda x, k: dense3x3.conv3x3_reference(x, k, stride=2)
  _assert_close(dense3x3.stem_conv3x3_gemm(x, k, stride=2), ref(x, k))
  cot = _rand(rng, *ref(x, k).shape)
  grads = lambda f: jax.grad(lambda x, k: jnp.sum(f(x, k) * cot), argnums=(0, 1))(x, k)
  _assert_close(grads(lambda x, k: dense3x3.stem_conv3x3_gemm(x, k, stride=2)), grads(ref))
  k1 = _rand(rng, 1, 1, 3, 5)
  ref1 = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=common.DIMENSIONS)
  _assert_close(pointwise.pointwise_conv_gemm(x, k1), ref1(x, k1))
  _assert_close(pointwise.pointwise_reference(x, k1), ref1(x, k1))
  cot1 = _rand(rng, *ref1(x, k1).shape)
  grads1 = lambda f: jax.grad(lambda x, k: jnp.sum(f(x, k) * cot1), argnums=(0, 1))(x, k1)
  _assert_close(grads1(lambda x, k: pointwise.pointwise_conv_gemm(x, k)), grads1(ref1))


# ResNet's 7x7 stem, a strided 3x3 on odd sizes, DINOv2's patch embedding (rows and columns left over), MiT's
# sequence reduction, and uneven padding.
@pytest.mark.parametrize("kernel,stride,padding,size,cin", [(7, 2, ((3, 3), (3, 3)), (13, 10), 3),
                                                           (3, 2, ((1, 1), (1, 1)), (9, 8), 5),
                                                           (4, 4, ((0, 0), (0, 0)), (11, 14), 3),
                                                           (2, 2, ((0, 0), (0, 0)), (6, 8), 6),
                                                           (3, 2, ((0, 1), (1, 0)), (8, 7), 2)])
def test_strided_conv_matches_lax(kernel, stride, padding, size, cin):
  rng = np.random.default_rng(kernel * 10 + stride)
  x, k = _rand(rng, 2, *size, cin), _rand(rng, kernel, kernel, cin, 4)
  ref = lambda x, k: strided.strided_conv_reference(x, k, stride=stride, padding=padding)
  mine = lambda x, k: ops.strided_conv(x, k, stride=stride, padding=padding, kernels="gemm")
  _assert_close(mine(x, k), ref(x, k))
  _assert_close(ops.strided_conv(x, k, stride=stride, padding=padding, kernels="xla"), ref(x, k))
  cot = _rand(rng, *ref(x, k).shape)
  grads = lambda f: jax.grad(lambda x, k: jnp.sum(f(x, k) * cot), argnums=(0, 1))(x, k)
  _assert_close(jax.jit(lambda: grads(mine))(), grads(ref))


@pytest.mark.parametrize("stride,impl", [(1, "xla"), (2, "xla"), (1, "lite"), (2, "lite")])
def test_lax_formulations_compute_the_same_maths(stride, impl):
  """kernels="xla" (what "auto" picks on TPU) and "lite" (LiteRT export) against the GEMM formulations,
  every layer kind."""
  rng = np.random.default_rng(stride)
  x = _rand(rng, 2, 8, 6, 4)
  dk, sk, pk = _rand(rng, 3, 3, 4, 1), _rand(rng, 3, 3, 4, 5), _rand(rng, 1, 1, 4, 3)
  gemm = {"kernels": "gemm"}
  _assert_close(ops.depthwise_conv3x3(x, dk, stride=stride, kernels=impl),
                ops.depthwise_conv3x3(x, dk, stride=stride, **gemm))
  _assert_close(ops.stem_conv3x3(x, sk, stride=stride, kernels=impl), ops.stem_conv3x3(x, sk, stride=stride, **gemm))
  _assert_close(ops.pointwise_conv(x, pk, kernels=impl), ops.pointwise_conv(x, pk, **gemm))
  ck = _rand(rng, 3, 3, 4, 6)
  _assert_close(ops.conv3x3(x, ck, dilation=stride, kernels=impl), ops.conv3x3(x, ck, dilation=stride, **gemm))
  xs, tk = (x, _rand(rng, 2, 8, 6, 3)), _rand(rng, 3, 3, 7, 2)
  _assert_close(ops.conv_transpose3x3_s2(xs, tk, kernels=impl), ops.conv_transpose3x3_s2(xs, tk, **gemm))
  assert ops.resolve_kernels("auto") == ("xla" if jax.default_backend() == "tpu" else "gemm")
  with pytest.raises(ValueError, match="kernels must be one of"):
    ops.resolve_kernels("cudnn")


def test_same_padding_is_tensorflows():
  assert common.same_padding(128, 3, 2) == (0, 1)
  assert common.same_padding(127, 3, 2) == (1, 1)
  assert common.same_padding(10, 3, 1) == (1, 1)
  assert common.same_padding(14, 2 * 18 + 1, 1) == (18, 18)  # an atrous rate beyond the map
  assert [common.ceil_div(n, 4) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("shape,dtype", [((2, 7, 5, 32), jnp.float32), ((3, 169, 64), jnp.float32),
                                         ((2, 6, 160), jnp.bfloat16)])
def test_layer_norm_matches_its_reference_and_numpy(shape, dtype):
  rng = np.random.default_rng(shape[-1])
  x = (_rand(rng, *shape) * 3 + 5).astype(dtype)  # an offset mean: the variance is taken about it
  scale, bias = _rand(rng, shape[-1]), _rand(rng, shape[-1])
  x64 = np.asarray(x, np.float64)
  centred = x64 - x64.mean(-1, keepdims=True)
  expected = centred / np.sqrt((centred**2).mean(-1, keepdims=True) + 1e-5) * np.asarray(scale) + np.asarray(bias)
  tol = 1e-4 if dtype == jnp.float32 else 2e-2
  ref = norm.layer_norm_reference(x, scale, bias, 1e-5)
  fast = jax.jit(lambda *a: ops.layer_norm(*a, epsilon=1e-5, kernels="gemm"))(x, scale, bias)
  assert ref.dtype == fast.dtype == dtype
  _assert_close(ref.astype(jnp.float32), jnp.asarray(expected, jnp.float32), tol)
  _assert_close(fast.astype(jnp.float32), ref.astype(jnp.float32), tol)
  cot = _rand(rng, *shape).astype(dtype)
  grads = lambda f: jax.grad(lambda *a: jnp.sum((f(*a) * cot).astype(jnp.float32)), argnums=(0, 1, 2))(x, scale, bias)
  want = grads(lambda *a: norm.layer_norm_reference(*a, 1e-5))
  got = jax.jit(lambda: grads(lambda *a: norm.layer_norm(*a, 1e-5)))()
  assert [g.dtype for g in got] == [g.dtype for g in want]
  _assert_close([g.astype(jnp.float32) for g in got], [g.astype(jnp.float32) for g in want], tol)


@pytest.mark.parametrize("shape", [(2, 1, 50, 169), (3, 7, 13), (4, 1), (2, 3, 600)])
def test_softmax_matches_its_reference_and_numpy(shape):
  rng = np.random.default_rng(shape[-1])
  x = _rand(rng, *shape) * 4 + 85  # exp would overflow float32 unless the maximum is taken out first
  x64 = np.asarray(x, np.float64)
  expected = np.exp(x64 - x64.max(-1, keepdims=True))
  expected /= expected.sum(-1, keepdims=True)
  fast = jax.jit(lambda x: ops.softmax_last(x, kernels="gemm"))(x)
  _assert_close(softmax.softmax_reference(x), jnp.asarray(expected, jnp.float32), 1e-5)
  _assert_close(fast, jnp.asarray(expected, jnp.float32), 1e-5)
  cot = _rand(rng, *shape)
  grads = lambda f: jax.grad(lambda x: jnp.sum(f(x) * cot))(x)
  _assert_close(jax.jit(lambda: grads(lambda x: ops.softmax_last(x, kernels="gemm")))(),
                grads(softmax.softmax_reference), 1e-5)
  for fast_form in (softmax.softmax, softmax.softmax_long):  # both, whichever the size rule picks here
    _assert_close(jax.jit(lambda f=fast_form: grads(f))(), grads(softmax.softmax_reference), 1e-5)
