"""Input pipeline: sources, trimap mapping, batching, determinism, padding, flips."""

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds
import tiny
from PIL import Image

from jaxseg import data
from jaxseg.data import sources


def test_synthetic_has_three_learnable_classes():
  images, masks = sources.synthetic_arrays(6, 64, seed=1)
  assert images.shape == (6, 64, 64, 3) and images.dtype == np.uint8
  assert masks.shape == (6, 64, 64) and set(np.unique(masks)) == {0, 1, 2}
  # The object is brighter or darker than background on average in some channel: a learnable signal.
  assert all(np.abs(images[i][masks[i] == 0].mean(0) - images[i][masks[i] == 1].mean(0)).max() > 5
             for i in range(6))
  again, _ = sources.synthetic_arrays(6, 64, seed=1)
  np.testing.assert_array_equal(images, again)


def test_folder_source_on_pets_mini(pets_mini):
  config = tiny.tiny_config(**{"data.source": "folder", "data.root": str(pets_mini), "image_size": 64})
  train = data.load_split(config, "train")
  test = data.load_split(config, "test")
  assert (len(train), len(test)) == (14, 6)
  assert train.images.shape == (14, 64, 64, 3) and train.masks.shape == (14, 64, 64)
  assert set(np.unique(train.masks)) == {0, 1, 2}
  # Trimap 1 (pet) -> 0, 2 (background) -> 1, 3 (boundary) -> 2, nearest resize keeps them exact.
  name = train.names[0]
  trimap = np.asarray(Image.open(pets_mini / "annotations" / "trimaps" / f"{name}.png"))
  small = np.asarray(Image.fromarray(trimap).resize((64, 64), Image.NEAREST)) - 1
  np.testing.assert_array_equal(train.masks[0], small)
  # Background dominates the border of these photos.
  assert np.mean(train.masks[:, 0, :] == 1) > 0.5


def test_tfds_source_maps_trimaps_to_classes():
  """tfds `oxford_iiit_pet` examples (served by tfds's mock with known content) become class ids
  pet 0, background 1, boundary 2, masks resized by nearest neighbour, images kept."""
  h, w = 40, 48
  trimap = np.full((h, w), 3, np.uint8)  # boundary...
  trimap[:, : w // 4] = 2  # ...a background band on the left...
  trimap[: h // 3, :] = 1  # ...and a pet band on top
  colours = np.array([[200, 10, 10], [10, 200, 10], [10, 10, 200]], np.uint8)
  names = [b"Abyssinian_1.jpg", b"beagle_2.jpg", b"Bombay_3.jpg"]

  def as_data_source(self, split, *args, **kwargs):  # tfds's ArrayRecord reader: examples as numpy
    del self, split, args, kwargs
    return [{"image": np.broadcast_to(colours[i], (h, w, 3)).copy(), "segmentation_mask": trimap[..., None],
             "file_name": names[i]} for i in range(3)]

  config = tiny.tiny_config(**{"data.source": "tfds"})
  with tfds.testing.mock_data(num_examples=3, as_data_source_fn=as_data_source):
    split = data.load_split(config, "train")
  assert split.names == ["Abyssinian_1.jpg", "beagle_2.jpg", "Bombay_3.jpg"]
  np.testing.assert_array_equal(split.images, np.broadcast_to(colours[:, None, None], (3, 32, 32, 3)))
  want = np.asarray(Image.fromarray(trimap).resize((32, 32), Image.NEAREST)).astype(int) - 1
  for mask in split.masks:
    np.testing.assert_array_equal(mask, want)
  assert mask[2, 16] == 0 and mask[25, 2] == 1 and mask[25, 25] == 2  # the bands, by value


def test_train_batches_are_deterministic_per_epoch_and_drop_the_remainder():
  split = data.Split(np.arange(7)[:, None, None, None] * np.ones((7, 2, 2, 3), np.uint8),
                               np.zeros((7, 2, 2), np.uint8), [str(i) for i in range(7)])
  ids = lambda epoch: [b["image"][:, 0, 0, 0].tolist() for b in data.train_batches(split, 3, 0, epoch)]
  assert len(ids(1)) == 2 and all(len(b) == 3 for b in ids(1))
  assert ids(1) == ids(1) and ids(1) != ids(2)
  assert len({i for b in ids(1) for i in b}) == 6


def test_eval_batches_see_every_example_once_with_padding_weighted_out():
  split = data.Split(np.arange(7)[:, None, None, None] * np.ones((7, 2, 2, 3), np.uint8),
                               np.zeros((7, 2, 2), np.uint8), [str(i) for i in range(7)])
  batches = list(data.eval_batches(split, 3))
  assert [len(b["image"]) for b in batches] == [3, 3, 3]
  seen = [int(i) for b in batches for i, w in zip(b["image"][:, 0, 0, 0], b["weight"]) if w > 0]
  assert seen == list(range(7))
  assert batches[-1]["weight"].tolist() == [1.0, 0.0, 0.0]


def test_flip_moves_image_and_mask_together():
  images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (16, 4, 5, 3)), jnp.uint8)
  masks = images[..., 0] % 3
  config = tiny.tiny_config()
  out_i, out_m = data.augment(jax.random.key(0), images, masks, tiny.augmentation(config, (4, 5)))
  out_i = np.asarray(jnp.round((out_i + 1.0) * 127.5)).astype(np.uint8)
  flipped = [bool(np.all(out_i[k] == images[k, :, ::-1])) for k in range(16)]
  same = [bool(np.all(out_i[k] == images[k])) for k in range(16)]
  assert 0 < sum(flipped) < 16 and all(f or s for f, s in zip(flipped, same))
  np.testing.assert_array_equal(out_m, out_i[..., 0] % 3)


def test_normalize_matches_keras_preprocess_input():
  import keras  # pylint: disable=g-import-not-at-top
  x = np.arange(0, 256, 5, dtype=np.uint8).reshape(1, -1, 1, 1).repeat(3, -1)
  want = keras.applications.mobilenet_v2.preprocess_input(x.astype(np.float32))
  np.testing.assert_allclose(data.normalize(jnp.asarray(x)), want, atol=1e-6)
