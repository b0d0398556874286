"""The Keras MobileNetV2 port gives Keras's features, from a model object and from every file format."""

import jax
import jax.numpy as jnp
import keras_reference
import numpy as np
import pytest
from PIL import Image

from jaxseg.models import UNET_TAPS, MobileNetV2
from jaxseg.models.backbones import keras_applications as port


def _pets(folder, size, count=4):
  paths = sorted((folder / "images").glob("*.jpg"))[:count]
  imgs = [np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)) for p in paths]
  return np.stack(imgs).astype(np.float32) / 127.5 - 1.0


def _check_taps(keras_base, variables, alpha, images):
  want = keras_reference.taps_model(keras_base)(images, training=False)
  model = MobileNetV2(alpha, last_layer=UNET_TAPS[-1])
  got = jax.jit(lambda v, x: model.apply(v, x))(variables, jnp.asarray(images))
  for name, ref in zip(UNET_TAPS, want):
    ref = np.asarray(ref)
    assert got[name].shape == ref.shape, name
    err = np.abs(np.asarray(got[name]) - ref).max()
    assert err <= 1e-4, f"{name}: max abs error {err} (feature scale {np.abs(ref).max():.2f})"


@pytest.mark.parametrize("alpha,size", [(1.0, 128), (1.0, 224), (0.35, 96)])
def test_taps_match_keras_on_random_inputs(alpha, size):
  base = keras_reference.mobilenet_v2(alpha, size)
  variables = port.from_keras_mobilenet_v2(base, alpha=alpha)
  images = np.random.default_rng(1).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
  _check_taps(base, variables, alpha, images)


@pytest.mark.parametrize("alpha,size", [(1.0, 128), (1.0, 224), (0.35, 96)])
def test_taps_match_keras_on_pet_photos(pets_mini, alpha, size):
  base = keras_reference.mobilenet_v2(alpha, size, seed=3)
  _check_taps(base, port.from_keras_mobilenet_v2(base), alpha, _pets(pets_mini, size))


def test_the_real_keras2_imagenet_file_ports_like_keras_loads_it(imagenet_h5, pets_mini):
  """The file real downloads bring (Keras 2 names: `depthwise_kernel`, layer_names attributes), read by
  jaxseg's own h5 reader, against Keras loading the same file."""
  import h5py  # pylint: disable=g-import-not-at-top
  with h5py.File(imagenet_h5, "r") as f:
    names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
    weights = [w.decode() if isinstance(w, bytes) else w for w in f["block_1_depthwise"].attrs["weight_names"]]
  assert "block_16_project" in names and any("depthwise_kernel" in w for w in weights)
  import keras  # pylint: disable=g-import-not-at-top
  base = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, include_top=False,
                                        weights=str(imagenet_h5))
  variables = port.from_keras_mobilenet_v2(str(imagenet_h5), alpha=1.0, input_size=224)
  _check_taps(base, variables, 1.0, _pets(pets_mini, 224))


def _save_legacy_h5(model, path):
  import h5py  # pylint: disable=g-import-not-at-top
  from keras.src.legacy.saving import legacy_h5_format  # pylint: disable=g-import-not-at-top
  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.mark.parametrize("fmt", ["legacy.h5", "model.weights.h5", "model.keras"])
def test_files_port_like_the_model(tmp_path, fmt):
  base = keras_reference.mobilenet_v2(0.35, 96, seed=5)
  path = tmp_path / fmt
  if fmt == "legacy.h5":
    _save_legacy_h5(base, path)
  elif fmt == "model.keras":
    base.save(path)
  else:
    base.save_weights(path)
  from_file = port.from_keras_mobilenet_v2(str(path), alpha=0.35)
  from_model = port.from_keras_mobilenet_v2(base)
  flat_file = jax.tree_util.tree_leaves_with_path(from_file)
  flat_model = dict(jax.tree_util.tree_leaves_with_path(from_model))
  assert len(flat_file) == len(flat_model) > 250
  for key, value in flat_file:
    np.testing.assert_array_equal(value, flat_model[key])


def test_file_of_other_alpha_or_resolution_is_refused(tmp_path):
  base = keras_reference.mobilenet_v2(0.35, 96)
  path = tmp_path / port.keras_weights_filename(0.35, 96)
  _save_legacy_h5(base, path)
  with pytest.raises(port.WeightsError, match=r"alpha 0.35.*expects alpha 1.0"):
    port.from_keras_mobilenet_v2(str(path), alpha=1.0)
  with pytest.raises(port.WeightsError, match=r"trained at 96 px.*runs at 128 px.*_0.35_128_no_top.h5"):
    port.from_keras_mobilenet_v2(str(path), alpha=0.35, input_size=128)
  assert port.from_keras_mobilenet_v2(str(path), alpha=0.35, input_size=96)["params"]["Conv1"]


def test_non_mobilenet_file_is_refused(tmp_path):
  import keras  # pylint: disable=g-import-not-at-top
  other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="conv")])
  legacy = tmp_path / "other.h5"
  _save_legacy_h5(other, legacy)
  with pytest.raises(port.WeightsError, match="not a MobileNetV2"):
    port.from_keras_mobilenet_v2(str(legacy))
  weights = tmp_path / "other.weights.h5"
  other.save_weights(weights)
  with pytest.raises(port.WeightsError, match="not a Keras MobileNetV2"):
    port.from_keras_mobilenet_v2(str(weights))
  with pytest.raises(port.WeightsError, match="does not exist"):
    port.from_keras_mobilenet_v2(str(tmp_path / "missing.h5"))
  (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
  with pytest.raises(port.WeightsError, match=r"junk\.h5: cannot be read"):
    port.from_keras_mobilenet_v2(str(tmp_path / "junk.h5"))


def test_keras3_weights_file_of_other_alpha_is_refused(tmp_path):
  path = tmp_path / "small.weights.h5"
  keras_reference.mobilenet_v2(0.35, 96).save_weights(path)
  with pytest.raises(port.WeightsError, match=r"alpha 0.35.*expects alpha 1.0"):
    port.from_keras_mobilenet_v2(str(path), alpha=1.0)
