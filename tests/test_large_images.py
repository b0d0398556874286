"""Photos of any size: class ids computed a band of rows at a time (PIL's bilinear rule), overlays blended in
bands, and images above the pixel limit refused in one line unless --max-pixels allows them."""

import numpy as np
import pytest
import tiny
from PIL import Image

from jaxseg.data import images
from jaxseg.data.labels import Classes
from jaxseg.errors import DatasetError
from jaxseg.inference import logits as inference
from jaxseg.viz import figures as visualize


def _pil_mask(logits, h, w):
  """The reference: every channel resized by PIL (float images), then argmax."""
  up = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(logits[..., c]), mode="F").resize(
      (w, h), Image.BILINEAR)) for c in range(logits.shape[-1])], -1)
  return up


@pytest.mark.parametrize("size,out", [((8, 8), (37, 53)), ((7, 12), (7, 40)), ((5, 3), (64, 64))])
def test_banded_upsampling_is_pils_bilinear(monkeypatch, size, out):
  rng = np.random.default_rng(sum(size) + sum(out))
  logits = rng.normal(size=(*size, 5)).astype(np.float32)
  monkeypatch.setattr(inference, "BAND_VALUES", 3 * out[1] * 5)  # three rows a band: seams between bands
  got = inference.logits_to_mask(logits, out)
  ref = _pil_mask(logits, *out)
  top2 = np.sort(ref, -1)[..., -2:]
  clear = top2[..., 1] - top2[..., 0] > 1e-4  # away from ties, where rounding may pick either
  np.testing.assert_array_equal(got[clear], np.argmax(ref, -1)[clear])
  assert clear.mean() > 0.99


def test_the_banded_overlay_equals_the_whole_one(tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 255, (25, 2**18 + 1, 3), dtype=np.uint8)  # bands of 3 rows: 9 of them
  mask = rng.integers(0, 3, (25, 2**18 + 1)).astype(np.uint8)
  classes = Classes(("a", "b", "c"), ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
  whole = (image * 0.55 + classes.colorize(mask) * 0.45).astype(np.uint8)
  visualize.save_overlay(str(tmp_path / "overlay.png"), image, mask, classes)
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "overlay.png"))[:25], whole)


@pytest.mark.parametrize("width", [1, 30])
def test_a_photo_narrower_than_the_legend_keeps_its_pixels_beside_a_white_margin(tmp_path, width):
  rng = np.random.default_rng(width)
  image = rng.integers(0, 255, (4, width, 3), dtype=np.uint8)
  mask = rng.integers(0, 3, (4, width)).astype(np.uint8)
  classes = Classes(("cat", "dog", "background"), ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
  visualize.save_overlay(str(tmp_path / "overlay.png"), image, mask, classes)
  got = np.asarray(Image.open(tmp_path / "overlay.png"))
  assert got.shape[1] > width + 50 and got.shape[0] > 4 + 10  # the three names legible below
  np.testing.assert_array_equal(got[:4, :width], (image * 0.55 + classes.colorize(mask) * 0.45).astype(np.uint8))
  assert (got[:4, width:] == 255).all()
  assert (got[4:] != 255).any(axis=-1).sum() > 50  # swatches and text were drawn


def test_an_image_above_the_pixel_limit_is_refused_in_one_line_unless_allowed(tmp_path):
  path = tmp_path / "big.png"
  Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(path)
  try:
    images.set_max_pixels(1999)
    with pytest.raises(DatasetError) as e:
      images.read_rgb(str(path))
    assert str(e.value).startswith(f"{path}: 50x40 = 2,000 pixels is above the limit of 1,999")
    assert "--max-pixels=2000" in str(e.value) and "\n" not in str(e.value)
    images.set_max_pixels(2000)
    assert images.read_rgb(str(path)).shape == (40, 50, 3)
  finally:
    images.set_max_pixels(0)
  assert images.read_rgb(str(path)).shape == (40, 50, 3)  # PIL's own limit again
  assert Image.MAX_IMAGE_PIXELS == images.PIL_LIMIT // 2  # PIL's guard is left as it was


@pytest.mark.slow
def test_predict_refuses_a_large_photo_in_one_line_and_takes_it_with_max_pixels(learned, tmp_path):
  config, workdir = learned
  photo = tmp_path / "photo.png"
  Image.fromarray(tiny.synthetic_photos(1, 60, 80)[0]).save(photo)
  out = tmp_path / "out"
  args = ["--workdir", str(workdir), "--mode", "predict", "--images", str(photo), "--output", str(out),
          *[f"--config.{k}={v}" for k, v in tiny.LEARNING.items()]]
  refused = tiny.run_cli(*args, "--max-pixels=4799")
  errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
  assert refused.returncode == 1 and len(errors) == 1 and "--max-pixels=4800" in errors[0], refused.stderr
  taken = tiny.run_cli(*args, "--max-pixels=4800")
  assert taken.returncode == 0, taken.stderr[-2000:]
  mask = np.asarray(Image.open(out / "photo_mask.png"))
  assert mask.shape == (60, 80) and mask.max() < config.num_classes
