"""Backbones ported from keras-hub: every feature map equal to keras-hub's own model with random weights and
BatchNorm statistics (EfficientNet B4-B7: the port fits and counts alike), equal parameter counts, and weights
read from a preset directory as keras-hub writes it."""

import jax
import numpy as np
import pytest
import tiny
from keras_hub_reference import keras_hub_backbone, randomize_neutral_terms

from jaxseg.models import backbones
from jaxseg.models.backbones import resnet

keras_hub = pytest.importorskip("keras_hub")
import keras  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


def _keras_resnet(name):
  return randomize_neutral_terms(keras_hub_backbone(name))


def _keras_features(model, images):
  outputs = dict(model.pyramid_outputs)
  if model.use_pre_activation:
    outputs["P5"] = model.output
  extractor = keras.Model(model.inputs, outputs)
  return {2 ** int(k[1:]): np.asarray(v) for k, v in extractor(images, training=False).items()}


def _last_at_each_stride(model, images):
  """{stride: the output of the last top-level layer at that stride} of a functional keras-hub backbone, and
  its output at 32."""
  size, outputs = images.shape[1], {}
  for layer in model.layers[1:]:
    h = layer.output.shape[1]
    if h and size % h == 0:
      outputs[size // h] = layer.output
  outputs[32] = model.output
  extractor = keras.Model(model.inputs, outputs)
  return {int(k): np.asarray(v) for k, v in extractor(images, training=False).items()}


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", sorted(resnet.VARIANTS))
def test_resnet_features_equal_keras_hub(name):
  model = _keras_resnet(name)
  images = np.random.default_rng(1).normal(0, 1, (2, 72, 88, 3)).astype(np.float32)  # odd sides from stride 16
  variables = backbones.from_keras_hub(name, model)
  assert _count(variables) == model.count_params()
  got = backbones.create(name).apply(variables, images)
  want = _keras_features(model, images)
  assert set(want) <= set(got) and got[2].shape[1:3] == (36, 44)
  for stride, value in want.items():
    assert got[stride].shape == value.shape, stride
    np.testing.assert_allclose(got[stride], value, atol=1e-4 * max(1.0, np.abs(value).max()), err_msg=str(stride))


def test_a_preset_directory_loads_and_another_architecture_is_refused(tmp_path):
  model = _keras_resnet("resnet18")
  model.save_to_preset(str(tmp_path / "preset"))
  images = np.random.default_rng(2).normal(0, 1, (1, 64, 64, 3)).astype(np.float32)
  got = backbones.create("resnet18").apply(backbones.from_keras_hub("resnet18", str(tmp_path / "preset")), images)
  np.testing.assert_allclose(got[32], _keras_features(model, images)[32], atol=1e-4)
  with pytest.raises(backbones.PortError, match="another architecture"):
    backbones.from_keras_hub("resnet34", model)
  with pytest.raises(backbones.PortError, match=r"no config\.json"):
    backbones.from_keras_hub("resnet18", str(tmp_path))


def _random_variables(name):
  """Random weights (`tiny.random_variables`) with random BatchNorm statistics and affine terms (no keras-hub
  model needed: the dense and strided networks are both jaxseg's)."""
  images = np.zeros((1, 64, 64, 3), np.float32)
  variables = tiny.random_variables(backbones.create(name), images)
  rng = np.random.default_rng(0)
  pick = {"mean": lambda s: rng.normal(0, 0.2, s), "var": lambda s: rng.uniform(0.5, 1.5, s),
          "scale": lambda s: rng.uniform(0.5, 1.5, s), "bias": lambda s: rng.normal(0, 0.2, s)}
  def randomize(path, v):
    key = path[-1].key
    is_norm = "bn" in str(path[-2].key) or key in ("mean", "var")
    return pick[key](v.shape).astype(np.float32) if is_norm and key in pick else v
  return jax.tree_util.tree_map_with_path(randomize, variables)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet_v2_50", "resnet_vd_50"])
def test_a_dilated_resnet_is_the_same_network_sampled_densely(name):
  # The atrous identity: with the strides of the last stacks traded for dilation, every other (every fourth)
  # position of the dense output is the strided network's output, exactly (inference BatchNorm is pointwise).
  images = np.random.default_rng(3).normal(0, 1, (1, 64, 96, 3)).astype(np.float32)
  variables = _random_variables(name)
  strided = backbones.create(name).apply(variables, images)
  for output_stride in (16, 8):
    dense = backbones.create(name, output_stride=output_stride).apply(variables, images)
    for stride in (16, 32):
      step = max(1, stride // output_stride)
      assert dense[stride].shape[1] == images.shape[1] // min(stride, output_stride)
      np.testing.assert_allclose(dense[stride][:, ::step, ::step], strided[stride], atol=1e-4,
                                 err_msg=f"{output_stride} {stride}")


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_a_dilated_mobilenet_v3_is_the_strided_one_but_for_its_squeeze_excite_means(name):
  # Squeeze-and-excite averages over every position, which the dense network has more of: the identity holds
  # up to the first dilated block exactly, and after it only nearly.
  images = np.random.default_rng(3).normal(0, 1, (1, 64, 96, 3)).astype(np.float32)
  variables = _random_variables(name)
  strided = backbones.create(name).apply(variables, images)
  dense = backbones.create(name, output_stride=16).apply(variables, images)
  for stride in (2, 4, 8, 16):
    np.testing.assert_allclose(dense[stride], strided[stride], atol=1e-5, err_msg=str(stride))
  assert dense[32].shape[1:3] == (4, 6)
  sampled, want = dense[32][:, ::2, ::2], strided[32]
  assert np.abs(sampled - want).max() <= 0.05 * np.abs(want).max(), np.abs(sampled - want).max()


@pytest.mark.parametrize("name, timm", [("mobilenet_v3_small_050", "mobilenetv3_small_050"),
                                        ("mobilenet_v3_small", "mobilenetv3_small_100"),
                                        ("mobilenet_v3_large", "mobilenetv3_large_100")])
def test_mobilenet_v3_features_equal_keras_hub(name, timm):
  from keras_hub.src.utils.timm import convert_mobilenet  # pylint: disable=g-import-not-at-top
  # keras-hub's own architecture table for its presets, independent of jaxseg's
  config = convert_mobilenet.convert_backbone_config({"architecture": timm})
  model = randomize_neutral_terms(keras_hub.models.MobileNetBackbone(**config, image_shape=(96, 96, 3)))
  images = np.random.default_rng(1).normal(0, 1, (2, 96, 96, 3)).astype(np.float32)
  variables = backbones.from_keras_hub(name, model)
  assert _count(variables) == model.count_params()
  got = backbones.create(name).apply(variables, images)
  want = _last_at_each_stride(model, images)
  assert sorted(want) == sorted(got) == [2, 4, 8, 16, 32]
  for stride, value in want.items():
    assert got[stride].shape == value.shape, stride
    np.testing.assert_allclose(got[stride], value, atol=1e-4 * max(1.0, np.abs(value).max()), err_msg=str(stride))


# B4-B7 are B3's stages wider and repeated more times: their features are not compared (seconds of Keras and
# XLA work each for no layer that B0-B3 lack); their port must fit keras-hub's model (every weight found, by
# name, in the shape jaxseg's parameter has) and count its parameters.
PORT_ONLY = ("efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7")


def _keras_efficientnet(name):
  from keras_hub.src.utils.timm import convert_efficientnet  # pylint: disable=g-import-not-at-top
  # keras-hub's own configuration of its presets (B6 and B7 scaled as the paper says; no preset exists)
  variant = name.split("_")[1]
  scaled = {"b6": (1.8, 2.6), "b7": (2.0, 3.1)}
  config = convert_efficientnet.convert_backbone_config(
      {"architecture": f"efficientnet_{'b0' if variant in scaled else variant}"})
  if variant in scaled:
    config["stackwise_width_coefficients"] = [scaled[variant][0]] * 7
    config["stackwise_depth_coefficients"] = [scaled[variant][1]] * 7
  # Random weights with BatchNorm gains above 1 make B5-B7 chaotic (a 1e-9 difference grows to 1e-1 by
  # stride 32, even in float64): gains below 1 keep every variant well-conditioned, so that a port error,
  # not rounding, is what shows.
  return randomize_neutral_terms(keras_hub.models.EfficientNetBackbone(**config), gamma_range=(0.25, 0.75))


@pytest.mark.parametrize("name", PORT_ONLY)
def test_the_largest_efficientnets_port_from_keras_hub(name):
  model = _keras_efficientnet(name)
  assert _count(backbones.from_keras_hub(name, model)) == model.count_params()


@pytest.mark.parametrize("name", sorted(n for n in backbones.BACKBONES if n.startswith("efficientnet")
                                        and n not in PORT_ONLY))
def test_efficientnet_features_equal_keras_hub(name):
  model = _keras_efficientnet(name)
  images = np.random.default_rng(1).normal(0, 1, (1, 64, 96, 3)).astype(np.float32)
  variables = backbones.from_keras_hub(name, model)
  assert _count(variables) == model.count_params()
  got = backbones.create(name).apply(variables, images)
  extractor = keras.Model(model.inputs, dict(model.pyramid_outputs))
  want = {2 ** int(k[1:]): np.asarray(v) for k, v in extractor(images, training=False).items()}
  assert sorted(want) == sorted(got) == [2, 4, 8, 16, 32]
  for stride, value in want.items():
    assert got[stride].shape == value.shape, stride
    np.testing.assert_allclose(got[stride], value, atol=1e-4 * max(1.0, np.abs(value).max()), err_msg=str(stride))


def test_mit_takes_maps_of_any_shape():
  variables = tiny.random_variables(backbones.create("mit_b0"), np.zeros((1, 64, 64, 3), np.float32))
  got = backbones.create("mit_b0").apply(variables, np.zeros((1, 64, 96, 3), np.float32))
  assert [got[s].shape[1:3] for s in (4, 8, 16, 32)] == [(16, 24), (8, 12), (4, 6), (2, 3)]


@pytest.mark.parametrize("kernels", ["gemm", "xla"])
@pytest.mark.parametrize("shape", [(2, 5, 3, 8), (7, 8)])
def test_the_dense_layer_is_flaxs_dense_in_values_and_gradients(kernels, shape):
  from flax import linen as nn  # pylint: disable=g-import-not-at-top

  from jaxseg.models.backbones import layers  # pylint: disable=g-import-not-at-top
  from jaxseg.models.layers import LayerSpec  # pylint: disable=g-import-not-at-top
  x = jax.numpy.asarray(np.random.default_rng(0).normal(0, 1, shape), jax.numpy.float32)
  ours, reference = layers.Dense(6, spec=LayerSpec(kernels=kernels)), nn.Dense(6)
  params = reference.init(jax.random.key(0), x)["params"]
  params = {**params, "bias": jax.numpy.linspace(-1, 1, 6)}  # not the neutral zeros
  assert jax.tree.map(np.shape, ours.init(jax.random.key(0), x)["params"]) == jax.tree.map(np.shape, params)

  def loss(module):
    return lambda p, x: jax.numpy.sum(jax.numpy.sin(module.apply({"params": p}, x)))
  np.testing.assert_allclose(ours.apply({"params": params}, x), reference.apply({"params": params}, x),
                             rtol=1e-5, atol=1e-5)
  got, want = (jax.grad(loss(m), argnums=(0, 1))(params, x) for m in (ours, reference))
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
