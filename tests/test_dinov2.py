"""DINOv2 ported from keras-hub and the linear head over it: every layer's tokens equal to keras-hub's own model
with random weights, TensorFlow's bicubic resize of the position embeddings, parameter counts against
keras-hub's preset metadata, a save_to_preset directory trained from with the encoder frozen, and the head
against a plain computation."""

import jax
import numpy as np
import pytest
import tiny
from keras_hub_reference import randomize_neutral_terms

from jaxseg import models
from jaxseg.config import checks as config_checks
from jaxseg.models import backbones
from jaxseg.models.backbones import dinov2, keras_hub_port
from jaxseg.training import loop
from jaxseg.training.run import Run

keras_hub = pytest.importorskip("keras_hub")
import keras  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

SHALLOW = 2  # layers of the wide variants' test models (their width, heads and MLP are the real ones)


def _keras_dinov2(name, size, num_layers=None, seed=0):
  """keras-hub's DINOv2 with random weights everywhere: its random kernels and position table, random biases and
  norms (`randomize_neutral_terms`), and random layer scales and class, mask and register tokens instead of
  their neutral initial values."""
  arch = {**backbones.BACKBONES[name].arch, **({"num_layers": num_layers} if num_layers else {})}
  model = randomize_neutral_terms(keras_hub.models.DINOV2Backbone(
      **arch, image_shape=(size, size, 3), position_embedding_shape=(518, 518)), seed=seed)
  rng = np.random.default_rng(seed + 1)
  for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
    if type(layer).__name__ == "DINOV2LayerScale":
      layer.lambda1.assign(rng.uniform(0.5, 1.5, tuple(layer.lambda1.shape)).astype(np.float32))
  embed = model.embeddings
  for token in ("cls_token", "mask_token", "register_tokens"):
    if hasattr(embed, token):
      getattr(embed, token).assign(rng.normal(0, 1, tuple(getattr(embed, token).shape)).astype(np.float32))
  return model, arch


def _keras_tokens(model, images):
  extractor = keras.Model(model.inputs, {**model.pyramid_outputs, "output": model.output})
  return {k: np.asarray(v) for k, v in extractor({"images": images}, training=False).items()}


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name", sorted(dinov2.VARIANTS))
def test_every_layers_tokens_equal_keras_hubs(name):
  full = name == "dinov2_with_registers_small"  # one whole model; the others' first layers
  model, arch = _keras_dinov2(name, 98, None if full else SHALLOW)
  images = np.random.default_rng(1).normal(0, 1, (2, 98, 98, 3)).astype(np.float32)  # 7x7 patches, not 37x37
  module = dinov2.DINOv2(**arch)
  want_shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), np.zeros((1, 28, 28, 3), np.float32)))
  variables = keras_hub_port.port(model, want_shapes, dinov2.keras_variables)
  # keras-hub also keeps the position table interpolated for its image_shape: (1 + 7 * 7) rows more.
  assert _count(variables) == model.count_params() - 50 * arch["hidden_dim"]
  got, want = module.apply(variables, images), _keras_tokens(model, images)
  assert set(want) == set(got) and len(got) == arch["num_layers"] + 2
  for key, value in want.items():
    assert got[key].shape == value.shape, key
    np.testing.assert_allclose(got[key], value, atol=1e-4 * max(1.0, np.abs(value).max()), err_msg=key)


def test_parameter_counts_equal_keras_hubs_presets():
  """keras-hub's preset metadata counts the position table twice at 518 px (37 x 37 + 1 rows each)."""
  from keras_hub.src.models.dinov2 import dinov2_presets  # pylint: disable=g-import-not-at-top
  for name, arch in dinov2.VARIANTS.items():
    shapes = jax.eval_shape(lambda a=arch: dinov2.DINOv2(**a).init(jax.random.key(0), np.zeros((1, 28, 28, 3))))
    want = dinov2_presets.backbone_presets[name]["metadata"]["params"]
    assert _count(shapes) + (37 * 37 + 1) * arch["hidden_dim"] == want, name


@pytest.mark.parametrize(("n_in", "n_out"), [(37, 16), (37, 3), (37, 50), (5, 8), (16, 37), (37, 37)])
def test_the_position_resize_is_tensorflows_bicubic(n_in, n_out):
  grid = np.random.default_rng(0).normal(0, 1, (1, n_in, n_in, 2)).astype(np.float32)
  want = tf.image.resize(grid, (n_out, n_out + 3), method="bicubic").numpy()[0]  # non-square too
  table = np.concatenate([np.ones((1, 1, 2), np.float32), grid.reshape(1, -1, 2)], axis=1)
  got = np.asarray(dinov2.interpolate_positions(table, (n_out, n_out + 3)))
  np.testing.assert_array_equal(got[0, 0], 1.0)  # the class token's row is not resized
  np.testing.assert_allclose(got[0, 1:].reshape(want.shape), want, atol=2e-6)


def _linear_config(**overrides):
  return tiny.tiny_config(**{"model.name": "linear", "model.backbone": "dinov2_small", "image_size": 32,
                             **overrides})


def test_the_head_is_padding_features_batchnorm_a_1x1_and_bilinear_upsampling():
  config = _linear_config(**{"model.linear_layers": 2})
  model = models.create_model(config)
  variables = models.init_variables(model, 28)
  rng = np.random.default_rng(3)
  variables = jax.tree.map(lambda v: v + rng.normal(0, 0.1, v.shape).astype(np.float32), variables)
  images = rng.uniform(-1, 1, (2, 20, 45, 3)).astype(np.float32)  # pads to 28 x 56: (4, 4) and (5, 6) pixels
  got = np.asarray(model.apply(variables, images))
  # The same by hand: the normalised, padded pixels through the encoder, layers 11 and 12 read.
  scale, offset = (np.asarray(v, np.float32) for v in model.transform())
  x = np.pad((images + 1) * 127.5 * scale + offset, ((0, 0), (4, 4), (5, 6), (0, 0)))
  encoder = backbones.create("dinov2_small", apply_layernorm=True)
  tokens = encoder.apply({"params": variables["params"]["encoder"]}, x)
  feats = []
  for key in ("stage11", "stage12"):
    t = np.asarray(tokens[key])
    feats += [t[:, 1:].reshape(2, 2, 4, -1), np.broadcast_to(t[:, :1, None], (2, 2, 4, t.shape[-1]))]
  f = np.concatenate(feats, -1)
  bn, stats = variables["params"]["bn"], variables["batch_stats"]["bn"]
  f = (f - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) * bn["scale"] + bn["bias"]
  head = variables["params"]["logits"]
  logits = f @ np.asarray(head["kernel"])[0, 0] + head["bias"]
  want = tf.image.resize(logits, (28, 56), method="bilinear").numpy()[:, 4:24, 5:50]
  assert got.shape == (2, 20, 45, 3)
  np.testing.assert_allclose(got, want, atol=2e-4 * np.abs(want).max())


def test_a_preset_directory_seeds_a_frozen_encoder_and_other_models_are_refused(tmp_path):
  model, _ = _keras_dinov2("dinov2_small", 224)
  model.save_to_preset(str(tmp_path / "preset"))
  config = _linear_config(**{"model.backbone_weights": str(tmp_path / "preset"), "freeze_encoder": True})
  want = backbones.from_keras_hub("dinov2_small", model)["params"]
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  state, _ = Run(config, str(tmp_path / "run"), read_only=True).restore_for_inference()
  for got, ref in zip(jax.tree.leaves(state.params["encoder"]), jax.tree.leaves(want)):
    np.testing.assert_array_equal(np.asarray(got), ref)  # ported, then frozen through training
  with pytest.raises(backbones.PortError, match="another architecture"):
    backbones.from_keras_hub("dinov2_base", model)
  for name in ("unet", "deeplabv3plus"):
    with pytest.raises(config_checks.ConfigError, match=r"config\.model\.name=linear"):
      config_checks.check_config(_linear_config(**{"model.name": name}))
  with pytest.raises(config_checks.ConfigError, match="linear head reads a ViT"):
    config_checks.check_config(_linear_config(**{"model.backbone": "resnet18"}))
  with pytest.raises(config_checks.ConfigError, match="between 1 and 12"):
    config_checks.check_config(_linear_config(**{"model.linear_layers": 13}))
