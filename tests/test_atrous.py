"""Atrous MobileNetV2 (output stride 16 and 8, for DeepLab): dilated depthwise convolutions against
`lax.conv_general_dilated`, the stride/rate schedule, and weights that port unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import ops
from jaxseg.models import LayerSpec
from jaxseg.models.backbones.mobilenet_v2 import MobileNetV2, block_strides
from jaxseg.ops.dense3x3 import live_taps


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_dilated_depthwise_matches_lax(dilation):
  rng = np.random.default_rng(dilation)
  x = jnp.asarray(rng.normal(size=(2, 12, 10, 5)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, 5, 1)), jnp.float32)
  want = jax.lax.conv_general_dilated(x, kernel.reshape(3, 3, 1, 5), (1, 1), [(dilation, dilation)] * 2,
                                      rhs_dilation=(dilation, dilation), feature_group_count=5,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=jax.lax.Precision.HIGHEST)
  for impl in ("gemm", "xla"):
    got = ops.depthwise_conv3x3(x, kernel, dilation=dilation, kernels=impl)
    np.testing.assert_allclose(got, want, atol=1e-5, err_msg=impl)


@pytest.mark.parametrize("dilation,size", [(1, (6, 5)), (2, (7, 9)), (6, (5, 8)), (18, (14, 14))])
def test_dense_conv3x3_values_and_gradients_match_lax(dilation, size):
  # (6, (5, 8)) drops the row taps only, (18, (14, 14)) every tap but the centre: dead taps are pruned.
  rng = np.random.default_rng(dilation)
  x = jnp.asarray(rng.normal(size=(2, *size, 6)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, 6, 4)), jnp.float32)
  cot = jnp.asarray(rng.normal(size=(2, *size, 4)), jnp.float32)

  def lax_conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), [(dilation, dilation)] * 2, rhs_dilation=(dilation,) * 2,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        precision=jax.lax.Precision.HIGHEST)

  want, want_vjp = jax.vjp(lax_conv, x, kernel)
  for impl in ("gemm", "xla"):
    got, got_vjp = jax.vjp(lambda x, k: ops.conv3x3(x, k, dilation=dilation, kernels=impl), x, kernel)
    np.testing.assert_allclose(got, want, atol=1e-4, err_msg=impl)
    for g, w, name in zip(got_vjp(cot), want_vjp(cot), ("input", "kernel")):
      np.testing.assert_allclose(g, w, atol=1e-3, rtol=1e-4, err_msg=f"{impl} {name} gradient")
  assert len(live_taps(*size, dilation)) == {1: 9, 2: 9, 6: 3, 18: 1}[dilation]


def test_the_deeplab_schedule():
  s16, s8 = block_strides(16), block_strides(8)
  assert block_strides(32) == [(1, 1), (2, 1), (1, 1), (2, 1), (1, 1), (1, 1), (2, 1), (1, 1), (1, 1), (1, 1),
                               (1, 1), (1, 1), (1, 1), (2, 1), (1, 1), (1, 1), (1, 1)]
  assert s16[:13] == block_strides(32)[:13] and s16[13] == (1, 1) and s16[14:] == [(1, 2)] * 3
  assert s8[6] == (1, 1) and s8[7:14] == [(1, 2)] * 7 and s8[14:] == [(1, 4)] * 3
  with pytest.raises(ValueError, match="output_stride"):
    block_strides(4)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_atrous_features_equal_the_lax_formulation_with_the_same_weights(output_stride):
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 64, 96, 3)), jnp.float32)
  plain = MobileNetV2(alpha=0.35, last_layer="block_16_project")
  variables = plain.init(jax.random.key(1), x)
  atrous = MobileNetV2(alpha=0.35, last_layer="block_16_project", output_stride=output_stride,
                       spec=LayerSpec(bn_momentum=0.999, kernels="gemm"))
  reference = atrous.clone(spec=atrous.spec.replace(kernels="xla"))
  # Same parameter tree: ImageNet weights port unchanged.
  shapes = lambda v: jax.tree.map(lambda a: a.shape, v)
  assert shapes(atrous.init(jax.random.key(2), x)) == shapes(variables)
  got, want = atrous.apply(variables, x), reference.apply(variables, x)
  assert got["block_16_project"].shape == (2, 64 // output_stride, 96 // output_stride, 112)
  assert got["block_3_expand_relu"].shape[1:3] == (16, 24)  # stride 4 features for the DeepLab decoder
  for name in ("block_6_expand_relu", "block_13_expand_relu", "block_16_project"):
    np.testing.assert_allclose(got[name], want[name], atol=1e-4, err_msg=name)
  # Before the first atrous block the networks agree with the stride-32 one exactly.
  first = "block_6_depthwise" if output_stride == 8 else "block_13_depthwise"
  np.testing.assert_array_equal(got[first.replace("depthwise", "expand_relu")],
                                plain.apply(variables, x)[first.replace("depthwise", "expand_relu")])
