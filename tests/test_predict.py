"""Prediction: geometry at the input's own size, every output file, jaxseg.load, compare."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxseg
import tiny
from jaxseg import compare
from jaxseg.train import loop


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny run with two epochs of checkpoints."""
  workdir = tmp_path_factory.mktemp("run")
  config = tiny.tiny_config(num_epochs=2)
  loop.train_and_evaluate(config, str(workdir))
  return config, workdir


def _pattern(h, w):
  """Classes that tell a transpose, a flip or a shift apart: a top band, a left band, the rest."""
  classes = np.full((h, w), 2, np.uint8)
  classes[:, : w // 4] = 1
  classes[: h // 3, :] = 0
  return classes


def _colour_model(predictor):
  """Replaces the network by logits = RGB, so the right answer is known: class = brightest channel."""
  predictor._logits = lambda variables, x: jnp.asarray(x, jnp.float32)
  return predictor


@pytest.mark.parametrize("h,w", [(37, 90), (120, 45), (33, 33), (1, 1), (250, 7)])
def test_mask_lines_up_with_the_input_at_its_own_size(trained, h, w):
  config, workdir = trained
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


def test_load_takes_pil_and_arrays_of_any_layout(trained):
  _, workdir = trained
  predictor = jaxseg.load(str(workdir))
  assert predictor.step == 2
  rgb = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
  for image in (rgb, rgb[..., 0], rgb[..., :1], np.dstack([rgb, rgb[..., :1]]), rgb / 255.0,
                Image.fromarray(rgb), Image.fromarray(rgb).convert("L"), Image.fromarray(rgb).convert("P")):
    mask = predictor(image)
    assert mask.shape == (50, 70) and mask.max() <= 2
  np.testing.assert_array_equal(predictor(rgb), predictor(Image.fromarray(rgb)))
  assert jaxseg.load(str(workdir), step=1).step == 1


def _exif_rotated_jpeg(path, h, w):
  img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8))
  exif = Image.Exif()
  exif[0x0112] = 6  # rotate 90 degrees clockwise to display
  img.save(path, exif=exif)


def test_predict_mode_writes_masks_overlays_and_a_panel(trained, tmp_path):
  _, workdir = trained
  inputs = tmp_path / "in"
  inputs.mkdir()
  rng = np.random.default_rng(2)
  Image.fromarray(rng.integers(0, 255, (45, 80, 3), dtype=np.uint8)).save(inputs / "land.jpg")
  Image.fromarray(rng.integers(0, 255, (90, 31, 4), dtype=np.uint8), "RGBA").save(inputs / "rgba.png")
  Image.fromarray(rng.integers(0, 255, (33, 33), dtype=np.uint8)).save(inputs / "gray.png")
  _exif_rotated_jpeg(inputs / "turned.jpg", 20, 40)
  extra = tmp_path / "single.png"
  Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(extra)
  out = tmp_path / "out"
  proc = tiny.main_py("--workdir", str(workdir), "--mode", "predict", "--images", str(inputs), str(extra),
                      "--output", str(out))
  assert proc.returncode == 0, proc.stderr[-3000:]
  sizes = {"land": (45, 80), "rgba": (90, 31), "gray": (33, 33), "turned": (40, 20), "single": (64, 64)}
  for name, (h, w) in sizes.items():
    mask = np.asarray(Image.open(out / f"{name}_mask.png"))
    assert mask.shape == (h, w) and mask.dtype == np.uint8 and mask.max() <= 2, name
    overlay = np.asarray(Image.open(out / f"{name}_overlay.png"))
    assert overlay.shape[1] == w and overlay.shape[0] > h and overlay.shape[2] == 3, name
  assert np.asarray(Image.open(out / "panel.png")).shape[0] > 100


def test_compare_prints_a_table_and_overlays_curves(trained, tmp_path, capsys):
  _, workdir = trained
  other = tmp_path / "r224"
  other.mkdir()
  history = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  for h in history:
    h["val"]["accuracy"] = 0.5 + 0.1 * h["epoch"]
  (other / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
  fig = tmp_path / "cmp.png"
  assert compare.main([str(workdir), str(other), "--output", str(fig)]) == 0
  out = capsys.readouterr().out
  row = [line for line in out.splitlines() if line.startswith("r224")][0].split()
  assert row[1] == "2" and row[2] == "0.7000" and row[3] == "2"
  assert "train-val gap" in out and Image.open(fig).size[0] > 500
  assert compare.main([str(tmp_path / "missing")]) == 2
