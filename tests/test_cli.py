"""main.py as a user runs it: the summary, config overrides, and one-line errors."""

import re

import numpy as np
import pytest
import tiny
from conftest import REPO
from PIL import Image

from jaxseg.cli import modes as cli
from jaxseg.config import files as config_files


@pytest.mark.parametrize("config", ["configs/r128.py", "configs/r224.py"])
def test_summary_ends_with_the_keras_totals(config, capsys, monkeypatch):
  monkeypatch.chdir(REPO)
  assert cli.run(config_files.load_config(config), "summary") == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert lines[-3:] == ["Total params: 6,504,227", "Trainable params: 4,660,323",
                        "Non-trainable params: 1,843,904"]
  size = config[-6:-3]
  assert any(f"(None, {size}, {size}, 3)" in line for line in lines)
  assert any(line.startswith("up_1 ") and "2,507,776" in line for line in lines)


def test_unknown_config_field_is_an_error():
  proc = tiny.main_py("--config.no_such_field=3", "--mode", "summary")
  assert proc.returncode != 0
  assert "no_such_field" in proc.stderr and "Traceback" not in proc.stderr


def test_the_removed_alpha_flag_names_the_backbone_to_use():
  proc = tiny.main_py("--mode", "eval", "--config.model.alpha=0.5")
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert proc.stderr.strip() == ("error: --config.model.alpha is now part of the backbone's name: "
                                 "--config.model.backbone=mobilenet_v2_0.5 (widths 0.35, 0.5, 0.75, 1.0, 1.3, 1.4; "
                                 "1.0 is mobilenet_v2).")


def test_a_renamed_config_field_on_the_command_line_names_its_replacement():
  proc = tiny.main_py("--mode", "summary", "--config.model.conv_impl=xla")
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert proc.stderr.strip() == ("error: --config.model.conv_impl is now --config.model.kernels (it picks the "
                                 "layer norm and softmax forms too).")


def test_the_renamed_step_flag_names_its_new_name():
  proc = tiny.main_py("--mode", "eval", "--step", "2")
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert proc.stderr.strip() == ("error: --step is now --epoch (checkpoints are numbered by the epoch that wrote "
                                 "them): --epoch=2.")


@pytest.mark.parametrize("field,value,message", [
    ("augment.crop_height", 100, "config.augment.crop_height=100 must be a multiple of 32"),
    ("model.alpha", 0.5, "config.model.alpha is now part of the backbone's name: config.model.backbone="
                         "mobilenet_v2_0.5 (widths 0.35, 0.5, 0.75, 1.0, 1.3, 1.4; 1.0 is mobilenet_v2); set that"),
    ("model.backbone", "mobilenet_v2_0.6", "config.model.backbone='mobilenet_v2_0.6' is unknown"),
    ("model.kernels", "cudnn", "config.model.kernels='cudnn' must be one of"),
    ("model.conv_impl", "xla", "config.model.conv_impl is now config.model.kernels"),
    ("batch_size", 0, "config.batch_size=0 must be a positive multiple of the device count"),
    ("data.tfds_file_format", "parquet", "config.data.tfds_file_format='parquet' must be 'tfrecord' or"),
])
def test_bad_config_values_get_one_line(tmp_path, capsys, field, value, message):
  # What main.py runs once its flags are parsed (test_fuzz_readers gives main.py's parser every field).
  assert cli.run(tiny.tiny_config(**{field: value}), "train", str(tmp_path / "w")) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
  assert not (tmp_path / "w" / "checkpoints").exists()


# Everything train, eval and predict may print: jaxseg's own lines and its progress bars.
_OWN_LINE = re.compile(r"^(Starting a new run|Resuming from|Precision: |First step done |epoch |Final \w+ pixel|"
                       r"epoch \d+ checkpoint: \w+ loss|\{\"epoch\"|"
                       r"Predicted \d+ image|predict:|class +IoU +prec +recall +labelled +predicted$|"
                       r"\w+ +(\d\.\d{4}|nan) +(\d\.\d{4}|nan) +(\d\.\d{4}|nan) +\d+ +\d+$|\s*$)")


def test_train_eval_and_predict_print_only_their_own_lines(tmp_path):
  workdir = str(tmp_path / "w")
  photo = tmp_path / "photo.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(photo)
  runs = {"train": tiny.main_py("--workdir", workdir),
          "eval": tiny.main_py("--workdir", workdir, "--mode", "eval"),
          "predict": tiny.main_py("--workdir", workdir, "--mode", "predict", "--images", str(photo))}
  for mode, proc in runs.items():
    assert proc.returncode == 0, (mode, proc.stderr[-2000:])
    lines = (proc.stdout + "\n" + proc.stderr).replace("\r", "\n").splitlines()
    foreign = [line for line in lines if not _OWN_LINE.match(line)]
    assert not foreign, (mode, foreign[:5])
