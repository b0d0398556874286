"""On-device geometry: random scale, crop, flip and padding keep image and mask aligned; logits resized to
each label's own size agree with jax.image.resize."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny

from jaxseg import data
from jaxseg.data import transforms
from jaxseg.inference import forward
from jaxseg.training import steps


def _coordinate_pictures(h, w, b=6):
  """Images whose red channel is the column and green channel the row; masks holding the column (x) or
  the row (y)."""
  yy, xx = np.mgrid[0:h, 0:w]
  image = np.stack([xx, yy, np.zeros_like(xx)], -1).astype(np.uint8)
  return (jnp.asarray(np.repeat(image[None], b, 0)), jnp.asarray(np.repeat(xx[None], b, 0).astype(np.uint8)),
          jnp.asarray(np.repeat(yy[None], b, 0).astype(np.uint8)))


@pytest.mark.parametrize("scale,out", [((1.0, 1.0), (64, 96)), ((0.5, 2.0), (64, 96)), ((0.5, 2.0), (32, 64)),
                                       ((0.6, 0.7), (96, 128))])
def test_scale_crop_flip_and_padding_keep_image_and_mask_aligned(scale, out):
  h, w = 60, 90
  images, mask_x, mask_y = _coordinate_pictures(h, w)
  config = tiny.tiny_config(**{"augment.scale_min": scale[0], "augment.scale_max": scale[1]})
  key = jax.random.key(7)
  x, got_x = data.augment(key, images, mask_x, tiny.augmentation(config, out))
  _, got_y = data.augment(key, images, mask_y, tiny.augmentation(config, out))  # same key: same geometry
  x = (np.asarray(x) + 1.0) * 127.5
  got_x, got_y = np.asarray(got_x), np.asarray(got_y)
  assert x.shape == (6, *out, 3) and got_x.shape == (6, *out)
  labelled = got_x != 255
  np.testing.assert_array_equal(labelled, got_y != 255)
  assert labelled.mean() > 0.1
  # The image's interpolated source coordinate is within half a pixel of the mask's nearest one.
  assert np.abs(x[..., 0][labelled] - got_x[labelled]).max() <= 0.5 + 1e-3
  assert np.abs(x[..., 1][labelled] - got_y[labelled]).max() <= 0.5 + 1e-3
  # Outside the image: zero (mid-grey) image, ignored label; inside, some examples are mirrored.
  np.testing.assert_allclose(x[~labelled], 127.5, atol=1e-3)
  if scale == (1.0, 1.0):
    assert not labelled.all() and (~labelled).any(axis=(1, 2)).all()  # padded to the larger training size
  both = labelled[:, :, 1:] & labelled[:, :, :-1]
  step = np.diff(got_x.astype(int), axis=2)
  mirrored = [bool(np.all(step[i][both[i]] <= 0)) for i in range(6)]
  upright = [bool(np.all(step[i][both[i]] >= 0)) for i in range(6)]
  assert all(m != u for m, u in zip(mirrored, upright)) and 0 < sum(mirrored) < 6


def test_photometric_jitter_changes_colours_only():
  images, mask_x, _ = _coordinate_pictures(32, 32, b=4)
  images = images.at[..., 2].set(200)
  config = tiny.tiny_config(**{"augment.brightness": 0.2, "augment.contrast": 0.3, "augment.saturation": 0.3})
  x, m = data.augment(jax.random.key(1), images, mask_x, tiny.augmentation(config, (32, 32)))
  plain = tiny.tiny_config()
  x0, m0 = data.augment(jax.random.key(1), images, mask_x, tiny.augmentation(plain, (32, 32)))
  np.testing.assert_array_equal(m, m0)
  assert float(jnp.abs(x - x0).mean()) > 0.02 and float(x.min()) >= -1.0 and float(x.max()) <= 1.0


@pytest.mark.parametrize("b,c,s", [(0.2, 0.3, 0.4), (0.2, 0.0, 0.0), (0.0, 0.3, 0.0), (0.0, 0.0, 0.4),
                                   (0.0, 0.3, 0.4)])
def test_photometric_jitter_matches_its_steps_in_numpy(b, c, s):
  """The fused jitter against the three steps applied one after another, with the same random draws."""
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (3, 9, 11, 3)).astype(np.float32)
  images[0] = 250.0 - images[0] / 20  # near white: the clip matters
  aug = tiny.tiny_config(**{"augment.brightness": b, "augment.contrast": c, "augment.saturation": s}).augment
  key = jax.random.key(4)
  got = np.asarray(transforms._photometric(key, jnp.asarray(images), aug))
  kb, kc, ks = jax.random.split(key, 3)
  draw = lambda k, r: np.asarray(jax.random.uniform(k, (3, 1, 1, 1), minval=-r, maxval=r), np.float64)
  x = images.astype(np.float64)
  if b:
    x = x + 255.0 * draw(kb, b)
  if c:
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = mean + (x - mean) * (1.0 + draw(kc, c))
  if s:
    gray = (x * np.array([0.299, 0.587, 0.114])).sum(-1, keepdims=True)
    x = gray + (x - gray) * (1.0 + draw(ks, s))
  want = np.clip(x, 0.0, 255.0)
  np.testing.assert_allclose(got, want, atol=2e-3)
  assert np.abs(want - images).max() > 1.0  # the jitter did something


def test_eval_pads_to_multiples_of_32_and_crops_back():
  config = tiny.tiny_config(image_height=40, image_width=50)
  model = __import__("jaxseg.models", fromlist=["create_model"]).create_model(config)
  variables = __import__("jaxseg.models", fromlist=["x"]).init_variables(model, (64, 64))
  images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (2, 40, 50, 3)), jnp.uint8)
  got = forward.stored_logits(variables, images, model=model)
  padded = jnp.pad(data.normalize(images), ((0, 0), (0, 24), (0, 14), (0, 0)))
  want = model.apply(variables, padded, train=False)[:, :40, :50]
  assert got.shape == (2, 40, 50, 3)
  np.testing.assert_allclose(got, want, atol=1e-5)
  x, m = transforms.pad_to(data.normalize(images), jnp.zeros((2, 40, 50), jnp.uint8), (64, 64))
  assert x.shape == (2, 64, 64, 3) and bool(jnp.all(m[:, 40:] == 255)) and bool(jnp.all(m[:, :, 50:] == 255))


def test_logits_resized_to_each_label_size_match_jax_image_resize():
  rng = np.random.default_rng(3)
  logits = jnp.asarray(rng.normal(size=(3, 8, 12, 4)), jnp.float32)
  sizes = np.array([[20, 30], [8, 12], [13, 17]], np.int32)
  got = np.asarray(steps.resize_logits(logits, jnp.asarray(sizes), (20, 30)))
  for i, (h, w) in enumerate(sizes):
    want = jax.image.resize(logits[i], (h, w, 4), "linear", antialias=False)
    np.testing.assert_allclose(got[i, :h, :w], want, atol=1e-5)
    assert not got[i, h:].any() and not got[i, :, w:].any()
