"""No lost work, clear errors: kills, non-finite losses, odd predict inputs, bad datasets, bad configs."""

import errno
import hashlib
import os
import subprocess

import kill_resume
import numpy as np
import pytest
import tiny
from PIL import Image

import jaxseg
from jaxseg import data
from jaxseg.cli import modes as cli
from jaxseg.config import checks as config_checks
from jaxseg.data import splits
from jaxseg.errors import DatasetError
from jaxseg.runtime import files
from jaxseg.training import checkpoints, loop
from jaxseg.viz import figures as visualize


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  loop.train_and_evaluate(tiny.tiny_config(num_epochs=1), str(workdir))
  return workdir


def _hashes(directory) -> dict[str, str]:
  out = {}
  for root, _, names in os.walk(directory):
    for f in names:
      path = os.path.join(root, f)
      with open(path, "rb") as fh:
        out[os.path.relpath(path, directory)] = hashlib.sha256(fh.read()).hexdigest()
  return out


def test_sigkill_at_chosen_points_resumes_from_the_newest_complete_checkpoint(tmp_path):
  # Killed after a checkpoint's files were written but before they were renamed into place (an epoch's and a
  # mid-epoch one), and mid-epoch; every rerun must resume from the newest complete checkpoint and end as the
  # uninterrupted run did (tests/kill_resume.py has the plan).
  kill_resume.write_folder_dataset(str(tmp_path / "data"))
  config = tiny.tiny_config(**kill_resume.settings(str(tmp_path)))
  reference = loop.train_and_evaluate(config, str(tmp_path / "uninterrupted"))[-1]
  summary = kill_resume.check(str(tmp_path / "killed"), reference)
  assert summary["problems"] == [], summary


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
  workdir = str(tmp_path)
  loop.train_and_evaluate(tiny.tiny_config(num_epochs=1), workdir)
  good = _hashes(tmp_path / "checkpoints")
  with pytest.raises(loop.TrainingError, match=r"non-finite at step \d+ \(epoch 2\)"):
    loop.train_and_evaluate(tiny.tiny_config(num_epochs=2, learning_rate=1e30), workdir)
  assert _hashes(tmp_path / "checkpoints") == good
  assert checkpoints.manager(workdir, read_only=True).all_steps() == [1]
  history = loop.train_and_evaluate(tiny.tiny_config(num_epochs=2), workdir)  # resumes from epoch 1
  assert [h["epoch"] for h in history] == [1, 2] and np.isfinite(history[-1]["train"]["loss"])
  capsys.readouterr()


def _write(path, array, **kwargs):
  Image.fromarray(array).save(path, **kwargs)


def test_predict_odd_inputs_predicts_what_it_can_and_names_the_rest(learned, tmp_path):
  _, workdir = learned
  photos = tiny.synthetic_photos(5, 40, 60)
  d = tmp_path / "in"
  d.mkdir()
  (tmp_path / "empty").mkdir()
  _write(d / "ok.png", photos[0])
  _write(d / "one_pixel.png", np.array([[[10, 200, 30]]], np.uint8))
  gray = np.asarray(Image.fromarray(photos[1]).convert("L"))
  Image.fromarray(gray.astype(np.uint16) * 257).save(d / "sixteen_bit.png")
  Image.fromarray(photos[2]).convert("CMYK").save(d / "cmyk.jpg", quality=95)
  pal = Image.fromarray(photos[3]).convert("P")
  pal.save(d / "palette_transparent.png", transparency=int(np.asarray(pal)[0, 0]))
  Image.fromarray(np.full((6000, 8000, 3), 128, np.uint8)).save(d / "huge.jpg", quality=50)
  (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
  notes = tmp_path / "notes.txt"
  notes.write_text("not an image")
  out = tmp_path / "out"
  out.mkdir()
  (out / "corrupt_mask.png").write_bytes(b"an earlier prediction")  # the failing input's own output name
  proc = tiny.run_cli("--workdir", str(workdir), "--mode", "predict", "--images", str(d), str(notes),
                      str(tmp_path / "empty"), "--output", str(out))
  assert proc.returncode == 1, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 3, proc.stderr[-3000:]
  assert any("corrupt.jpg: not a readable image" in e for e in errors)
  assert any("notes.txt: not a readable image" in e for e in errors)
  assert any("empty: directory has no image files" in e for e in errors)
  assert "Traceback" not in proc.stderr
  sizes = {"ok": (40, 60), "one_pixel": (1, 1), "sixteen_bit": (40, 60), "cmyk": (40, 60),
           "palette_transparent": (40, 60), "huge": (6000, 8000)}
  for name, shape in sizes.items():
    assert np.asarray(Image.open(out / f"{name}_mask.png")).shape == shape, name
    assert (out / f"{name}_overlay.png").stat().st_size > 0
  # By value: each odd file is predicted as the picture it holds, read here independently of jaxseg.
  predictor = jaxseg.load(str(workdir))
  rgba = np.asarray(Image.open(d / "palette_transparent.png").convert("RGBA"), np.float64)
  over_white = np.round(rgba[..., :3] * rgba[..., 3:] / 255 + 255 * (1 - rgba[..., 3:] / 255)).astype(np.uint8)
  pictures = {"ok": photos[0], "sixteen_bit": np.dstack([gray] * 3),
              "cmyk": np.asarray(Image.open(d / "cmyk.jpg").convert("RGB")), "palette_transparent": over_white}
  for name, picture in pictures.items():
    want = predictor(picture)
    assert len(np.unique(want)) > 1, name  # a picture the model segments, so a misread would show
    np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}_mask.png")), want, err_msg=name)
  assert (out / "corrupt_mask.png").read_bytes() == b"an earlier prediction"
  assert not list(out.glob("*tmp*"))


def _folder_dataset(root, n=4, size=(40, 48)):
  (root / "images").mkdir(parents=True)
  (root / "annotations" / "trimaps").mkdir(parents=True)
  rng = np.random.default_rng(1)
  names = [f"Cat_{i}" for i in range(n)]
  for name in names:
    _write(root / "images" / f"{name}.jpg", rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    _write(root / "annotations" / "trimaps" / f"{name}.png", rng.integers(1, 4, size, dtype=np.uint8))
  for split in ("trainval", "test"):
    (root / "annotations" / f"{split}.txt").write_text("".join(f"{n} 1 1 1\n" for n in names))
  return names


@pytest.mark.parametrize("damage,message", [
    ("missing_image", "Cat_2.jpg: file not found"),
    ("corrupt_image", "Cat_2.jpg: not a readable image"),
    ("missing_trimap", "Cat_2.png: mask file not found"),
    ("bad_values", "Cat_2.png: label value(s) 7 are not in config.data.class_map"),
    ("size_mismatch", "Cat_2.png: mask is 10x12 but its image"),
])
def test_bad_folder_examples_are_named_or_skipped(tmp_path, damage, message, capsys):
  root = tmp_path / "pets"
  _folder_dataset(root)
  img, tri = root / "images" / "Cat_2.jpg", root / "annotations" / "trimaps" / "Cat_2.png"
  if damage == "missing_image":
    img.unlink()
  elif damage == "corrupt_image":
    img.write_bytes(b"garbage")
  elif damage == "missing_trimap":
    tri.unlink()
  elif damage == "bad_values":
    _write(tri, np.full((40, 48), 7, np.uint8))
  else:
    _write(tri, np.ones((12, 10), np.uint8))
  config = tiny.tiny_config(**{"data.source": "folder", "data.root": str(root)})
  with pytest.raises(DatasetError) as e:
    data.load_split(config, "train")
  assert message in str(e.value) and "skip_bad" in str(e.value)
  config.data.skip_bad = True
  splits.clear_memory_cache()
  split = data.load_split(config, "train")
  assert split.names == ["Cat_0", "Cat_1", "Cat_3"]
  assert "skipped 1 bad example(s)" in capsys.readouterr().out


def test_unwritable_or_full_workdir_is_refused_before_work(tmp_path, monkeypatch):
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  with pytest.raises(config_checks.ConfigError, match="is not writable"):
    config_checks.check_workdir(str(blocker / "run"))
  monkeypatch.setattr(config_checks.shutil, "disk_usage", lambda p: type("U", (), {"free": 5 * 2**20})())
  with pytest.raises(config_checks.ConfigError, match="has only 5 MiB free"):
    config_checks.check_workdir(str(tmp_path / "run"))


@pytest.mark.parametrize("override,found", [
    ({"num_classes": 4, "data.class_names": ()},
     r"num_classes: checkpoint has 3, config has 4.*--config.num_classes=3"),
    ({"data.class_names": ("cat", "grass", "edge")},
     r"class_names: checkpoint has \['pet', 'background', 'boundary'\]"),
    ({"model.backbone": "mobilenet_v2_0.5"},
     r"backbone: checkpoint has 'mobilenet_v2_0.35', config has 'mobilenet_v2_0.5'.*--config.model.backbone="
     r"mobilenet_v2_0.35"),
    ({"image_size": 64}, r"image_size: checkpoint has 32, config has 64.*--config.image_size=32")])
def test_checkpoint_of_another_model_is_refused(trained, override, found):
  before = _hashes(trained / "checkpoints")
  with pytest.raises(checkpoints.CheckpointError, match=found):
    loop.train_and_evaluate(tiny.tiny_config(num_epochs=2, **override), str(trained))
  with pytest.raises(checkpoints.CheckpointError, match=found):
    loop.evaluate(tiny.tiny_config(**override), str(trained))
  assert _hashes(trained / "checkpoints") == before


def test_eval_and_predict_never_modify_a_checkpoint(trained, tmp_path):
  before = _hashes(trained / "checkpoints")
  assert tiny.run_cli("--workdir", str(trained), "--mode", "eval").returncode == 0
  image = tmp_path / "x.png"
  _write(image, np.zeros((20, 30, 3), np.uint8))
  assert tiny.run_cli("--workdir", str(trained), "--mode", "predict", "--images", str(image)).returncode == 0
  assert _hashes(trained / "checkpoints") == before


@pytest.fixture
def small_disk(tmp_path):
  """A 300 MiB tmpfs (root only; skips where mounting is not allowed), unmounted afterwards."""
  mount = tmp_path / "disk"
  mount.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300m", "tmpfs", str(mount)],
                    capture_output=True).returncode:
    pytest.skip("cannot mount a tmpfs here")
  try:
    yield mount
  finally:
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk, leave_bytes: int):
  st = os.statvfs(disk)
  filler = disk / "filler"
  with open(filler, "wb") as f:
    f.write(b"\0" * (st.f_bavail * st.f_frsize - leave_bytes))
  return filler


def _one_error_line(err: str) -> list[str]:
  lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error: ")]
  assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
  return lines


def test_a_full_disk_while_checkpointing_is_one_line_and_a_rerun_resumes(small_disk, monkeypatch, capsys):
  workdir = str(small_disk / "run")
  assert cli.run(tiny.tiny_config(num_epochs=1), "train", workdir) == 0
  good = _hashes(small_disk / "run" / "checkpoints" / "1")
  filler = _fill(small_disk, 200_000)  # far less than a checkpoint
  monkeypatch.setattr(config_checks, "MIN_FREE_BYTES", 0)  # get past the start-up check, fail mid-run
  capsys.readouterr()
  assert cli.run(tiny.tiny_config(num_epochs=2), "train", workdir) == 2
  [line] = _one_error_line(capsys.readouterr().err)
  assert "the disk is full while writing" in line and "rerun the same command" in line
  assert checkpoints.manager(workdir, read_only=True).all_steps() == [1]
  assert _hashes(small_disk / "run" / "checkpoints" / "1") == good
  filler.unlink()
  assert cli.run(tiny.tiny_config(num_epochs=2), "train", workdir) == 0
  assert "Resuming from" in capsys.readouterr().out
  assert checkpoints.manager(workdir, read_only=True).all_steps() == [1, 2]


def test_a_picture_that_cannot_be_written_is_one_line_and_keeps_the_checkpoints(tmp_path, monkeypatch, capsys):
  workdir = str(tmp_path / "run")
  assert cli.run(tiny.tiny_config(num_epochs=1), "train", workdir) == 0
  original = visualize._save_figure  # pylint: disable=protected-access

  def full_disk(fig, path):
    if path.endswith("epoch_02.png"):
      with files.atomic_path(path) as tmp:
        open(tmp, "wb").close()  # a started write that then fails, as on a full disk
        raise OSError(errno.ENOSPC, "No space left on device", path)
    original(fig, path)

  monkeypatch.setattr(visualize, "_save_figure", full_disk)
  capsys.readouterr()
  assert cli.run(tiny.tiny_config(num_epochs=2), "train", workdir) == 2
  [line] = _one_error_line(capsys.readouterr().err)
  assert "the disk is full while writing" in line and "epoch_02.png" in line
  assert checkpoints.manager(workdir, read_only=True).all_steps() == [1, 2]  # saved before the pictures
  assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["epoch_00.png", "epoch_01.png"]
  monkeypatch.setattr(visualize, "_save_figure", original)
  assert cli.run(tiny.tiny_config(num_epochs=2), "train", workdir) == 0
