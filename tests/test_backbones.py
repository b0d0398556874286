"""Backbones ported from keras-hub: every feature map equal to keras-hub's own model with random weights and
BatchNorm statistics, equal parameter counts, and weights read from a preset directory as keras-hub writes it."""

import jax
import numpy as np
import pytest

from jaxseg.models import backbones
from jaxseg.models.backbones import resnet

keras_hub = pytest.importorskip("keras_hub")
import keras  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


def _keras_resnet(name):
  arch = {k: list(v) if isinstance(v, tuple) else v for k, v in resnet.VARIANTS[name].items()}
  model = keras_hub.models.ResNetBackbone(**arch)
  rng = np.random.default_rng(0)
  for layer in model.layers:  # random BatchNorm statistics and affine terms, not the neutral initial ones
    if isinstance(layer, keras.layers.BatchNormalization):
      gamma, beta, mean, var = layer.get_weights()
      layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                         rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
  return model


def _keras_features(model, images):
  outputs = dict(model.pyramid_outputs)
  if model.use_pre_activation:
    outputs["P5"] = model.output
  extractor = keras.Model(model.inputs, outputs)
  return {2 ** int(k[1:]): np.asarray(v) for k, v in extractor(images, training=False).items()}


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


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet_v2_50", "resnet_vd_50"])
def test_a_dilated_resnet_is_the_same_network_sampled_densely(name):
  # The atrous identity: with the strides of the last stacks traded for dilation, every other (every fourth)
  # position of the dense output is the strided network's output, exactly (inference BatchNorm is pointwise).
  images = np.random.default_rng(3).normal(0, 1, (1, 64, 96, 3)).astype(np.float32)
  variables = backbones.from_keras_hub(name, _keras_resnet(name))
  strided = backbones.create(name).apply(variables, images)
  for output_stride in (16, 8):
    dense = backbones.create(name, output_stride=output_stride).apply(variables, images)
    for stride in (16, 32):
      step = max(1, stride // output_stride)
      assert dense[stride].shape[1] == images.shape[1] // min(stride, output_stride)
      np.testing.assert_allclose(dense[stride][:, ::step, ::step], strided[stride], atol=1e-4,
                                 err_msg=f"{output_stride} {stride}")
