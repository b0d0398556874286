"""The U-Net and DeepLabV3+ over keras-hub backbones: weights from a preset directory and its image converter,
the encoder frozen while the head trains, the backbone recorded in checkpoints, and one-line refusals."""

import json

import jax
import numpy as np
import pytest
import tiny
from keras_hub_reference import keras_hub_backbone

from jaxseg import models
from jaxseg.config import checks as config_checks
from jaxseg.models import backbones
from jaxseg.training import checkpoints, loop
from jaxseg.training.run import Run

keras_hub = pytest.importorskip("keras_hub")

SCALE, OFFSET = (0.01, 0.02, 0.03), (-1.0, -0.5, 0.25)  # not ImageNet's, so that adopting them shows


@pytest.fixture(scope="module")
def resnet18_preset(tmp_path_factory):
  """A resnet18 classifier preset (backbone, head, image converter) as keras-hub's save_to_preset writes it."""
  backbone = keras_hub_backbone("resnet18")
  converter = keras_hub.layers.ResNetImageConverter(image_size=(64, 64), scale=list(SCALE), offset=list(OFFSET))
  task = keras_hub.models.ResNetImageClassifier(
      backbone=backbone, num_classes=4,
      preprocessor=keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter))
  path = tmp_path_factory.mktemp("preset") / "resnet18"
  task.save_to_preset(str(path))
  return str(path), backbone


def _config(**overrides):
  return tiny.tiny_config(**{"model.backbone": "resnet18", "model.name": "unet", "image_size": 64, **overrides})


@pytest.mark.parametrize("name", ["unet", "deeplabv3plus"])
def test_a_preset_seeds_the_encoder_and_its_converter_the_input(resnet18_preset, name):
  path, keras_backbone = resnet18_preset
  run = Run(_config(**{"model.name": name, "model.backbone_weights": path}), "/nonexistent")
  state, _ = run.fresh_state(load_encoder=True)
  assert tuple(run.config.model.input_scale) == SCALE and tuple(run.config.model.input_offset) == OFFSET
  assert run.model.input_transform == (SCALE, OFFSET)
  want = backbones.from_keras_hub("resnet18", keras_backbone)
  for got, ref in zip(jax.tree.leaves(state.params["encoder"]), jax.tree.leaves(want["params"])):
    np.testing.assert_array_equal(np.asarray(got), ref)
  # The model's encoder sees the images as keras-hub's converter makes them: pixels * scale + offset.
  images = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  _, inter = run.model.apply(variables, images, capture_intermediates=True, mutable=["intermediates"])
  features = inter["intermediates"]["encoder"]["__call__"][0]
  keras_input = (images + 1) * 127.5 * np.asarray(SCALE, np.float32) + np.asarray(OFFSET, np.float32)
  reference = backbones.create("resnet18", run.model.encoder_output_stride()).apply(want, keras_input)
  for stride in (4, 32):
    np.testing.assert_allclose(features[stride], reference[stride], atol=1e-4)


def test_a_frozen_backbone_stays_frozen_and_the_checkpoint_names_it(resnet18_preset, tmp_path):
  path, keras_backbone = resnet18_preset
  config = _config(**{"model.backbone_weights": path})
  loop.train_and_evaluate(config, str(tmp_path))
  run = Run(_config(), str(tmp_path), read_only=True)
  state, _ = run.restore_for_inference()
  # The restoring config names no normalisation: the trained one is taken from the checkpoint.
  assert run.model.input_transform == (SCALE, OFFSET)
  want = backbones.from_keras_hub("resnet18", keras_backbone)
  for got, ref in zip(jax.tree.leaves(state.params["encoder"]), jax.tree.leaves(want["params"])):
    np.testing.assert_array_equal(np.asarray(got), ref)
  _, meta = checkpoints.read_meta(run.mngr)
  assert meta["model"]["backbone"] == "resnet18" and json.loads(meta["config"])["model"]["input_scale"] == list(SCALE)
  with pytest.raises(checkpoints.CheckpointError, match="backbone: checkpoint has 'resnet18', config has 'resnet34'"):
    Run(_config(**{"model.backbone": "resnet34"}), str(tmp_path), read_only=True).restore_for_inference()


def test_fine_tuning_moves_the_backbone(tmp_path):
  config = _config(**{"model.name": "deeplabv3plus", "freeze_encoder": False, "model.output_stride": 8})
  run = Run(config, str(tmp_path / "x"))
  before, _ = run.fresh_state(load_encoder=True)
  before = jax.device_get(before.params["encoder"])
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  after, _ = Run(config, str(tmp_path / "run"), read_only=True).restore_for_inference()
  moved = [np.abs(np.asarray(a) - b).max() for a, b in zip(jax.tree.leaves(after.params["encoder"]),
                                                              jax.tree.leaves(before))]
  assert min(moved) > 0


@pytest.mark.parametrize("name", ["unet", "deeplabv3plus"])
def test_summary_rows_add_up_to_the_parameter_count(name):
  model = models.create_model(_config(**{"model.name": name}))
  rows, counts = models.summary.summary_rows(model, 64)
  assert sum(r[2] for r in rows) == counts["total"]
  assert "resnet18" in rows[1][0]
  text = models.format_summary(model, 64)
  assert f"Total params: {counts['total']:,}" in text


@pytest.mark.parametrize("overrides, message", [
    ({"model.backbone": "resnet17"}, "config.model.backbone='resnet17' is unknown"),
    ({"model.name": "unet_mobilenet_v2"}, "use config.model.name='unet'"),
    ({"model.backbone": "resnet_v2_18", "model.backbone_weights": "imagenet"}, "no ImageNet preset of resnet_v2_18"),
    ({"model.backbone_weights": "/no/such/preset"}, "/no/such/preset: no such file or directory"),
    ({"model.input_scale": (1.0,)}, "input_scale and input_offset must both be 3 values"),
])
def test_backbone_options_are_checked_in_one_line(overrides, message):
  with pytest.raises(config_checks.ConfigError, match=message.replace("(", r"\(")) as e:
    config_checks.check_config(_config(**overrides))
  assert "\n" not in str(e.value)


def test_a_checkpoint_written_before_backbones_had_names_is_mobilenet_v2s():
  config = tiny.tiny_config()
  meta = {"model": {"name": "unet_mobilenet_v2", "alpha": 0.35}}
  checkpoints.check_compatible(meta, config, "here")
  with pytest.raises(checkpoints.CheckpointError, match=r"backbone: checkpoint has 'mobilenet_v2_0\.35'"):
    checkpoints.check_compatible(meta, _config(), "here")
  saved = {"encoder_weights": "imagenet", "model": {"name": "unet_mobilenet_v2"}}
  upgraded = checkpoints.saved_config({"config": json.dumps(saved)})
  assert upgraded.model.backbone == "mobilenet_v2" and upgraded.model.backbone_weights == "imagenet"


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "mit_b0"])
def test_each_family_loads_a_save_to_preset_directory_through_backbone_weights(name, tmp_path):
  keras_backbone = keras_hub_backbone(name)
  keras_backbone.save_to_preset(str(tmp_path / "preset"))
  run = Run(_config(**{"model.backbone": name, "model.backbone_weights": str(tmp_path / "preset")}), "/nonexistent")
  state, _ = run.fresh_state(load_encoder=True)
  want = backbones.from_keras_hub(name, keras_backbone)
  assert len(jax.tree.leaves(state.params["encoder"])) == len(jax.tree.leaves(want["params"]))
  for got, ref in zip(jax.tree.leaves((state.params["encoder"], state.batch_stats.get("encoder", {}))),
                      jax.tree.leaves((want["params"], want.get("batch_stats", {})))):
    np.testing.assert_array_equal(np.asarray(got), ref)
  assert run.model.transform() == backbones.IMAGENET_TRANSFORM  # a backbone preset holds no converter
