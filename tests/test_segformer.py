"""SegFormer: logits equal to keras-hub's SegFormerImageSegmenter with random weights, equal parameter counts
for B0-B5, and a whole segmenter preset (a directory as keras-hub's save_to_preset writes it) loaded for
prediction and for fine-tuning on another class count."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny
from keras_hub_reference import keras_hub_backbone, randomize_neutral_terms

from jaxseg import models
from jaxseg.models import backbones, segformer_port
from jaxseg.models.segformer import default_decoder_dim

keras_hub = pytest.importorskip("keras_hub")
import keras  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

IDENTITY = ((1 / 127.5,) * 3, (-1.0,) * 3)  # the model's [-1, 1] input passed to the encoder as it is


def keras_segformer(name, num_classes, size=64, preprocessor=None):
  """keras-hub's SegFormerImageSegmenter over MiT `name`, random weights, built offline."""
  keras.utils.set_random_seed(0)  # the same weights whatever this process built before
  encoder = keras_hub_backbone(name, size)
  backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder,
                                                projection_filters=default_decoder_dim(name))
  return randomize_neutral_terms(keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=num_classes,
                                                             preprocessor=preprocessor))


def _model(name, num_classes, transform=IDENTITY):
  return models.SegFormer(num_classes=num_classes, backbone=name, input_transform=transform)


@pytest.mark.parametrize("name", ["mit_b0", "mit_b2"])
def test_logits_equal_keras_hubs_segmenter(name):
  segmenter = keras_segformer(name, 5)
  images = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
  want = np.asarray(segmenter(images, training=False))
  model = _model(name, 5)
  variables = segformer_port.port(segmenter, jax.eval_shape(lambda: model.init(jax.random.key(0), images)))
  got = np.asarray(jax.jit(model.apply)(variables, images))
  assert got.shape == want.shape == (2, 64, 64, 5)
  assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max()), np.abs(got - want).max()
  assert np.abs(want).max() > 0.1


# B3-B5 are B2's blocks repeated more times (depths 3-4-18-3, 3-8-27-3, 3-6-40-3 against 3-4-6-3): their port
# must fit keras-hub's model (every weight found, by name, in the shape jaxseg's parameter has) and count its
# parameters; the features of B0-B2 are compared in full (B0 and B1 differ in width, B1 and B2 in depth).
PORT_ONLY = ("mit_b3", "mit_b4", "mit_b5")


def _counts_and_port(name):
  """keras-hub's MiT encoder of `name` and its port; the SegFormer and MiT parameter counts checked."""
  segmenter = keras_segformer(name, 19)
  shapes = jax.eval_shape(lambda: _model(name, 19).init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))
  assert models.count_params(shapes)["total"] == segmenter.count_params()
  encoder = segmenter.backbone.image_encoder  # keras-hub's MiT (it assumes square maps)
  variables = backbones.from_keras_hub(name, encoder)
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables)) == encoder.count_params()
  return encoder, variables


@pytest.mark.parametrize("name", PORT_ONLY)
def test_the_largest_mits_port_and_their_segformers_count_as_keras_hubs(name):
  _counts_and_port(name)


@pytest.mark.parametrize("name", [f"mit_b{i}" for i in range(6) if f"mit_b{i}" not in PORT_ONLY])
def test_mit_features_and_segformer_parameter_counts_equal_keras_hubs(name):
  encoder, variables = _counts_and_port(name)
  images = np.random.default_rng(1).normal(0, 1, (2, 64, 64, 3)).astype(np.float32)
  got = backbones.create(name).apply(variables, images)
  extractor = keras.Model(encoder.inputs, dict(encoder.pyramid_outputs))
  want = {4 * 2 ** (int(k[1:]) - 1): np.asarray(v) for k, v in extractor(images, training=False).items()}
  assert sorted(want) == sorted(got) == [4, 8, 16, 32]
  for stride, value in want.items():
    assert got[stride].shape == value.shape, stride
    np.testing.assert_allclose(got[stride], value, atol=1e-4 * max(1.0, np.abs(value).max()), err_msg=str(stride))


SCALE, OFFSET = (0.017, 0.0175, 0.0174), (-2.1, -2.0, -1.8)


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
  """A mit_b0 SegFormer segmenter preset with its image converter, as keras-hub's save_to_preset writes it."""
  converter = keras_hub.layers.SegFormerImageConverter(image_size=(64, 64), scale=list(SCALE), offset=list(OFFSET))
  preprocessor = keras_hub.models.SegFormerImageSegmenterPreprocessor(image_converter=converter)
  segmenter = keras_segformer("mit_b0", 5, preprocessor=preprocessor)
  path = tmp_path_factory.mktemp("preset") / "segformer_b0"
  segmenter.save_to_preset(str(path))
  return str(path), segmenter


def test_a_segmenter_preset_predicts_without_training(preset):
  import jaxseg  # pylint: disable=g-import-not-at-top
  path, segmenter = preset
  predictor = jaxseg.load(path)
  assert predictor.config.model.backbone == "mit_b0" and predictor.config.num_classes == 5
  assert predictor.run.model.input_transform == (SCALE, OFFSET)
  photo = tiny.synthetic_photos(1, 64, 64)[0]
  mask = predictor(photo)
  logits = segmenter(photo[None].astype(np.float32) * np.float32(SCALE) + np.float32(OFFSET), training=False)
  want = np.asarray(logits)[0].argmax(-1)
  assert mask.shape == (64, 64) and (mask == want).mean() >= 0.999, (mask == want).mean()
  assert len(np.unique(want)) > 1


def test_predict_mode_uses_the_preset_where_the_workdir_has_no_checkpoint(preset, tmp_path):
  from jaxseg.inference import predict  # pylint: disable=g-import-not-at-top
  path, _ = preset
  photo = tmp_path / "photo.png"
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.fromarray(tiny.synthetic_photos(1, 48, 80)[0]).save(photo)
  config = tiny.tiny_config(**{"model.name": "segformer", "model.backbone": "mit_b0", "model.backbone_weights": path})
  failures = predict.predict_files(config, str(tmp_path / "run"), [str(photo)], str(tmp_path / "out"))
  assert not failures
  mask = np.asarray(Image.open(tmp_path / "out" / "photo_mask.png"))
  assert mask.shape == (48, 80) and mask.max() < 5


def test_fine_tuning_on_another_class_count_replaces_only_the_classifier(preset, capsys):
  from jaxseg.training.run import Run  # pylint: disable=g-import-not-at-top
  path, segmenter = preset
  config = tiny.tiny_config(**{"model.name": "segformer", "model.backbone": "mit_b0", "model.backbone_weights": path,
                               "image_size": 64})
  run = Run(config, "/nonexistent")
  state, _ = run.fresh_state(load_encoder=True)
  out = capsys.readouterr().out
  assert "5-class classifier replaced by a new one for 3 classes" in out and out.count("\n") == 1
  want = segformer_port.segmenter_variables(segmenter)["params"]
  for name in ("encoder", "linear_0", "linear_fuse", "linear_fuse_bn"):
    for got, ref in zip(jax.tree.leaves(state.params[name]), jax.tree.leaves(want[name])):
      np.testing.assert_array_equal(np.asarray(got), ref, err_msg=name)
  assert state.params["logits"]["kernel"].shape == (1, 1, 256, 3)


def test_fine_tuning_a_preset_with_an_auxiliary_head_adds_a_new_head(preset):
  from jaxseg.training.run import Run  # pylint: disable=g-import-not-at-top
  path, segmenter = preset
  config = tiny.tiny_config(**{"model.name": "segformer", "model.backbone": "mit_b0", "model.backbone_weights": path,
                               "image_size": 64, "num_classes": 5, "data.class_names": (), "freeze_encoder": False,
                               "model.aux_stride": 16})
  state, _ = Run(config, "/nonexistent").fresh_state(load_encoder=True)
  want = segformer_port.segmenter_variables(segmenter)["params"]
  for got, ref in zip(jax.tree.leaves(state.params["logits"]), jax.tree.leaves(want["logits"])):
    np.testing.assert_array_equal(np.asarray(got), ref)
  assert state.params["aux_head"]["classifier"]["kernel"].shape == (1, 1, 256, 5)


def test_a_preset_of_another_size_is_refused_in_one_line(preset):
  from jaxseg.errors import UserError  # pylint: disable=g-import-not-at-top
  from jaxseg.training.run import Run  # pylint: disable=g-import-not-at-top
  path, _ = preset
  config = tiny.tiny_config(**{"model.name": "segformer", "model.backbone": "mit_b1", "model.backbone_weights": path})
  with pytest.raises(UserError, match=re.escape("set --config.model.backbone=mit_b0 --config.model.decoder_dim=256")):
    Run(config, "/nonexistent").fresh_state(load_encoder=True)


def test_its_summary_adds_up_to_its_parameter_count():
  model = _model("mit_b0", 19)
  rows, counts = models.summary.summary_rows(model, 64)
  assert sum(r[2] for r in rows) == counts["total"] and "linear_fuse" in rows[-2][0]
  assert f"Total params: {counts['total']:,}" in models.format_summary(model, 64)
