"""Prediction: masks equal the model, geometry at the input's own size, every image layout by value, every
output file, jaxseg.load, compare."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny
from PIL import Image

import jaxseg
import jaxseg.data
from jaxseg import models
from jaxseg.cli import compare
from jaxseg.training.run import Run


def _pattern(h, w):
  """Classes that tell a transpose, a flip or a shift apart: a top band, a left band, the rest."""
  classes = np.full((h, w), 2, np.uint8)
  classes[:, : w // 4] = 1
  classes[: h // 3, :] = 0
  return classes


def _colour_model(predictor):
  """Replaces the network by logits = RGB, so the right answer is known: class = brightest channel."""
  predictor.run._logits = lambda variables, x: jnp.asarray(x, jnp.float32)  # what Run.logits_fn calls
  return predictor


@pytest.mark.parametrize("h,w", [(37, 90), (120, 45), (33, 33), (1, 1), (250, 7)])
def test_mask_lines_up_with_the_input_at_its_own_size(learned, h, w):
  _, workdir = learned
  predictor = _colour_model(jaxseg.load(str(workdir)))
  want = _pattern(h, w)
  image = (np.eye(3, dtype=np.uint8)[want] * 200 + 20).astype(np.uint8)
  mask = predictor(image)
  assert mask.shape == (h, w) and mask.dtype == np.uint8
  # Away from region edges (resampling may move an edge by a pixel) the answer is exact.
  edge = np.zeros((h, w), bool)
  for axis in (0, 1):
    edge |= np.abs(np.diff(want.astype(int), axis=axis, prepend=want.take([0], axis))) > 0
    edge |= np.abs(np.diff(want.astype(int), axis=axis, append=want.take([-1], axis))) > 0
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  near = ndimage.binary_dilation(edge, iterations=2) if h > 4 and w > 4 else np.ones_like(edge)
  np.testing.assert_array_equal(mask[~near], want[~near])
  assert np.mean(mask == want) >= (0.9 if h > 4 and w > 4 else 0.0)


def _model_masks(config, workdir, images: np.ndarray, out_hw=None) -> np.ndarray:
  """The reference: the newest checkpoint restored on its own, the decoder's BatchNorm averages
  bias-corrected (numpy), images resized to the training size (bilinear) and scaled to [-1, 1], the model
  applied, logits resized to `out_hw` with jax.image.resize, argmax."""
  state = jax.device_get(Run(config, str(workdir), read_only=True).restore()[0])
  w = config.model.decoder_bn_momentum ** int(state.step)
  debias = lambda bn: {"mean": bn["mean"] / (1 - w), "var": (bn["var"] - w) / (1 - w)}
  stats = {k: v if k == "encoder" else {"bn": debias(v["bn"])} for k, v in state.batch_stats.items()}
  size = config.image_size
  x = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
  x = jnp.asarray(x, jnp.float32) / 127.5 - 1.0
  logits = models.create_model(config).apply({"params": state.params, "batch_stats": stats}, x)
  if out_hw is not None:
    logits = jax.image.resize(logits, (len(images), *out_hw, logits.shape[-1]), "linear")
  return np.asarray(jnp.argmax(logits, -1), np.uint8)


def test_predicted_masks_equal_the_restored_model(learned, tmp_path):
  config, workdir = learned
  predictor = jaxseg.load(str(workdir))
  assert predictor.epoch == config.num_epochs
  at_size = tiny.synthetic_photos(3, 32, 32)
  want = _model_masks(config, workdir, at_size)
  assert len(np.unique(want)) == 3  # the model tells classes apart, so a wrong input scaling would show
  np.testing.assert_array_equal(np.stack(predictor.predict_batch(list(at_size))), want)
  # Another size: the logits are resized to the photo before the argmax (resampling differs slightly).
  other = tiny.synthetic_photos(3, 50, 70)
  got = np.stack(predictor.predict_batch(list(other)))
  assert np.mean(got == _model_masks(config, workdir, other, (50, 70))) > 0.99
  # --mode predict writes the same masks.
  for i, image in enumerate(other):
    Image.fromarray(image).save(tmp_path / f"p{i}.png")
  proc = tiny.run_cli("--workdir", str(workdir), "--mode", "predict", "--images", str(tmp_path),
                      "--output", str(tmp_path / "out"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  for i in range(3):
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / f"p{i}_mask.png")), got[i])


def test_every_image_layout_is_read_as_the_same_picture(learned, tmp_path):
  _, workdir = learned
  predictor = jaxseg.load(str(workdir))
  rgb = tiny.synthetic_photos(1, 50, 70)[0]
  gray = np.asarray(Image.fromarray(rgb).convert("L"))
  alpha = np.random.default_rng(0).integers(0, 256, gray.shape, dtype=np.uint8)
  rgba = np.dstack([rgb, alpha])
  over_white = np.round(rgb * (alpha[..., None] / 255.0) + 255.0 * (1 - alpha[..., None] / 255.0))
  cases = {  # name -> (input, the RGB picture it must be read as)
      "PIL RGB": (Image.fromarray(rgb), rgb),
      "float in [0, 1]": (rgb / 255.0, rgb),
      "uint16": (rgb.astype(np.uint16) * 257, rgb),
      "gray (H, W)": (gray, np.dstack([gray] * 3)),
      "gray (H, W, 1)": (gray[..., None], np.dstack([gray] * 3)),
      "PIL L": (Image.fromarray(gray), np.dstack([gray] * 3)),
      "PIL P": (Image.fromarray(rgb).convert("P"), np.asarray(Image.fromarray(rgb).convert("P").convert("RGB"))),
      "RGBA array": (rgba, over_white.astype(np.uint8)),
      "PIL RGBA": (Image.fromarray(rgba, "RGBA"), over_white.astype(np.uint8)),
  }
  for name, (image, picture) in cases.items():
    got, want = predictor(image), predictor(picture)
    assert got.shape == (50, 70) and np.mean(got == want) > 0.995, name
  # A 16-bit PNG file is scaled, not clipped: it reads as the 8-bit picture it was made from.
  Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "g16.png")
  np.testing.assert_array_equal(jaxseg.data.read_rgb(str(tmp_path / "g16.png")), np.dstack([gray] * 3))
  Image.fromarray((gray // 2).astype(np.uint16)).save(tmp_path / "dark16.png")  # 16-bit samples <= 127
  assert jaxseg.data.read_rgb(str(tmp_path / "dark16.png")).max() <= 1  # near black, not an 8-bit picture
  config = learned[0]
  assert jaxseg.load(str(workdir), epoch=config.num_epochs - 1).epoch == config.num_epochs - 1


def _exif_rotated_jpeg(path, pixels):
  img = Image.fromarray(pixels)
  exif = Image.Exif()
  exif[0x0112] = 6  # rotate 90 degrees clockwise to display
  img.save(path, exif=exif, quality=95)


def test_predict_mode_writes_masks_overlays_and_a_panel(learned, tmp_path):
  _, workdir = learned
  inputs = tmp_path / "in"
  inputs.mkdir()
  photos = tiny.synthetic_photos(4, 45, 80)
  Image.fromarray(photos[0]).save(inputs / "land.jpg", quality=95)
  Image.fromarray(np.dstack([photos[1], np.full((45, 80), 200, np.uint8)]), "RGBA").save(inputs / "rgba.png")
  Image.fromarray(photos[2][:33, :33]).convert("L").save(inputs / "gray.png")
  _exif_rotated_jpeg(inputs / "turned.jpg", photos[3][:20, :40])
  extra = tmp_path / "single.png"
  Image.fromarray(photos[0][:, :64]).save(extra)
  out = tmp_path / "out"
  proc = tiny.run_cli("--workdir", str(workdir), "--mode", "predict", "--images", str(inputs), str(extra),
                      "--output", str(out))
  assert proc.returncode == 0, proc.stderr[-3000:]
  predictor = jaxseg.load(str(workdir))
  files = {"land": inputs / "land.jpg", "rgba": inputs / "rgba.png", "gray": inputs / "gray.png",
           "turned": inputs / "turned.jpg", "single": extra}
  sizes = {"land": (45, 80), "rgba": (45, 80), "gray": (33, 33), "turned": (40, 20), "single": (45, 64)}
  for name, (h, w) in sizes.items():
    mask = np.asarray(Image.open(out / f"{name}_mask.png"))
    assert mask.shape == (h, w) and mask.dtype == np.uint8, name
    # The CLI and the Python API read a file alike (EXIF orientation included) and predict alike.
    with Image.open(files[name]) as im:
      np.testing.assert_array_equal(mask, predictor(im), err_msg=name)
    overlay = np.asarray(Image.open(out / f"{name}_overlay.png"))
    # At the photo's resolution; a photo narrower than the legend has a white margin on its right.
    assert overlay.shape[1] >= w and overlay.shape[0] > h and overlay.shape[2] == 3, name
    assert (overlay[:h, w:] == 255).all() and not (overlay[:h, :w] == 255).all(), name
  assert len(np.unique(np.asarray(Image.open(out / "land_mask.png")))) > 1
  with Image.open(out / "land_mask.png") as im:  # a palette PNG: value = class id, shown in class colours
    assert im.mode == "P"
    palette = np.array(im.getpalette()[:9]).reshape(3, 3)
  np.testing.assert_array_equal(palette, predictor.config.data.class_colors)
  assert np.asarray(Image.open(out / "panel.png")).shape[0] > 100


def test_compare_prints_a_table_and_overlays_curves(learned, tmp_path, capsys):
  _, workdir = learned
  other = tmp_path / "r224"
  other.mkdir()
  history = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  for h in history:
    h["val"]["accuracy"] = 0.5 + 0.01 * h["epoch"]
  (other / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
  fig = tmp_path / "cmp.png"
  assert compare.main([str(workdir), str(other), "--output", str(fig)]) == 0
  out = capsys.readouterr().out
  row = next(line for line in out.splitlines() if line.startswith("r224")).split()
  assert row[1] == "10" and row[2] == "test" and row[3] == "0.6000" and row[4] == "10"
  assert "train gap" in out and "split" in out and "IoU pet" in out and "IoU boundary" in out
  assert Image.open(fig).size[0] > 500
  assert compare.main([str(tmp_path / "missing")]) == 2
