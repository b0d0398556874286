"""Sliding windows, scales and flips against hand computations, and through `jaxseg.load` against the model
applied by hand."""

import jax.numpy as jnp
import numpy as np
import pytest
import tiny
from PIL import Image

import jaxseg
from jaxseg import data
from jaxseg.config.checks import ConfigError, check_config
from jaxseg.inference import logits as inference
from jaxseg.training import loop, tiled_eval


def test_window_starts_cover_the_axis_and_end_at_its_edge():
  assert inference.window_starts(10, 4, 3) == [0, 3, 6]
  assert inference.window_starts(11, 4, 3) == [0, 3, 6, 7]
  assert inference.window_starts(3, 4, 2) == [0]  # smaller than the window: one, padded
  assert inference.window_starts(8, 4, 4) == [0, 4]


def _window_means(batch):
  """A fake model: every pixel of a window gets the window's mean (of channel 0), so overlaps average values
  that differ from window to window."""
  means = batch[..., :1].astype(np.float32).mean(axis=(1, 2, 3), keepdims=True)
  return np.broadcast_to(means, (*batch.shape[:3], 1)).copy()


@pytest.mark.parametrize("h,w,window,stride", [(9, 11, (4, 5), (3, 4)), (4, 13, (4, 5), (2, 2)),
                                               (3, 3, (4, 4), (1, 1))])
def test_slide_averages_each_pixel_over_the_windows_that_cover_it(h, w, window, stride):
  image = np.random.default_rng(h * w).integers(0, 255, (h, w, 3), dtype=np.uint8)
  got = inference.slide(image, window, stride, _window_means, batch_size=3)
  padded = np.zeros((max(h, window[0]), max(w, window[1])), np.float64)
  padded[:h, :w] = image[..., 0]
  want = np.zeros((h, w))
  for y in range(h):  # by hand: every window over pixel (y, x), its mean (padding counted as zeros)
    for x in range(w):
      vals = [padded[a:a + window[0], b:b + window[1]].mean()
              for a in inference.window_starts(h, window[0], stride[0])
              for b in inference.window_starts(w, window[1], stride[1])
              if a <= y < a + window[0] and b <= x < b + window[1]]
      want[y, x] = np.mean(vals)
  np.testing.assert_allclose(got[..., 0], want, rtol=1e-5)


def test_maps_of_flips_come_back_mirrored_and_scales_at_their_sizes():
  image = np.random.default_rng(0).integers(0, 255, (6, 10, 3), dtype=np.uint8)
  identity = lambda batch: batch.astype(np.float32)  # logits = the pixels: a flip not undone would show
  config = tiny.tiny_config(**{"eval.mode": "slide", "eval.flip": True, "eval.stride": (2, 3)})
  plain, mirrored = inference.logit_maps(image, config, identity, (4, 5), batch_size=2)
  np.testing.assert_allclose(plain, image, rtol=1e-6)
  np.testing.assert_allclose(mirrored, image, rtol=1e-6)
  config = tiny.tiny_config(**{"eval.scales": (0.5, 1.5)})
  maps = inference.logit_maps(image, config, identity, (8, 12), batch_size=1)
  assert [m.shape for m in maps] == [(4, 6, 3), (12, 18, 3)]
  np.testing.assert_allclose(maps[1], np.asarray(Image.fromarray(image).resize((18, 12), Image.BILINEAR)))


def test_summed_maps_of_two_sizes_give_the_argmax_of_their_sum():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(4, 6, 3)).astype(np.float32), rng.normal(size=(8, 12, 3)).astype(np.float32)
  got = inference.maps_to_mask([a, b], (8, 12))
  up = np.stack([np.asarray(Image.fromarray(a[..., c], mode="F").resize((12, 8), Image.BILINEAR))
                 for c in range(3)], -1)
  total = up + b
  clear = np.diff(np.sort(total, -1)[..., -2:], axis=-1)[..., 0] > 1e-4
  np.testing.assert_array_equal(got[clear], np.argmax(total, -1)[clear])


def test_bad_eval_settings_are_one_line():
  for override, words in (({"eval.mode": "tiles"}, "eval.mode"), ({"eval.scales": (0.0,)}, "eval.scales")):
    with pytest.raises(ConfigError, match=words):
      check_config(tiny.tiny_config(**override))


@pytest.mark.slow
def test_load_with_a_flip_sums_the_model_on_the_photo_and_its_mirror(learned):
  config, workdir = learned
  flipped = config.copy_and_resolve_references()
  flipped.eval.flip = True
  predictor = jaxseg.load(str(workdir), config=flipped)
  photo = tiny.synthetic_photos(1, 32, 32, seed=9)[0]  # at the stored size: no resizing involved
  got = predictor(photo)
  model, variables = predictor.run.model, predictor.variables
  logits = lambda x: np.asarray(model.apply(variables, data.normalize(jnp.asarray(x[None])), train=False))[0]
  want = np.argmax(logits(photo) + logits(photo[:, ::-1])[:, ::-1], -1)
  np.testing.assert_array_equal(got, want)


def test_sliding_window_evaluation_of_one_window_per_example_equals_the_batched_evaluation(learned):
  # With windows as large as the examples there is one window each: the example-by-example path (read at
  # its own size, windows, upsampled class ids, numpy confusion) must score as the jitted batched one.
  config, workdir = learned
  plain = loop.evaluate(config, str(workdir))
  tiled = loop.evaluate(tiny.learning_config(**{"eval.mode": "slide"}), str(workdir))
  assert tiled["confusion"] == plain["confusion"] and np.isnan(tiled["loss"])
  assert tiled["mean_iou"] == pytest.approx(plain["mean_iou"])
  flipped = loop.evaluate(tiny.learning_config(**{"eval.flip": True}), str(workdir))
  assert flipped["confusion"] != plain["confusion"]  # the mirror's logits were added
  assert np.sum(flipped["confusion"]) == np.sum(plain["confusion"])


def test_confusion_counts_label_prediction_pairs_and_leaves_ignore_out():
  labels = np.array([[0, 1, 2], [255, 1, 1]], np.uint8)
  predicted = np.array([[0, 2, 2], [0, 1, 0]], np.uint8)
  want = np.zeros((3, 3), int)
  for lab, pred in zip(labels.ravel(), predicted.ravel()):
    if lab != 255:
      want[lab, pred] += 1
  np.testing.assert_array_equal(tiled_eval.confusion(labels, predicted, 3), want)
