"""main.py as a user runs it: the summary, config overrides, and one-line errors."""

import pytest

import tiny


@pytest.mark.parametrize("config", ["configs/r128.py", "configs/r224.py"])
def test_summary_ends_with_the_keras_totals(config):
  proc = tiny.main_py(f"--config={config}", "--mode", "summary")
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.strip().splitlines()
  assert lines[-3:] == ["Total params: 6,504,227", "Trainable params: 4,660,323",
                        "Non-trainable params: 1,843,904"]
  size = config[-6:-3]
  assert any(f"(None, {size}, {size}, 3)" in line for line in lines)
  assert any(line.startswith("up_1 ") and "2,507,776" in line for line in lines)


def test_unknown_config_field_is_an_error():
  proc = tiny.main_py("--config.no_such_field=3", "--mode", "summary")
  assert proc.returncode != 0
  assert "no_such_field" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("flag,message", [
    ("--config.image_size=100", "config.image_size=100 must be a positive multiple of 32"),
    ("--config.model.alpha=0.6", "config.model.alpha=0.6 is unsupported"),
    ("--config.model.conv_impl=cudnn", "config.model.conv_impl='cudnn' must be one of"),
    ("--config.batch_size=0", "config.batch_size=0 must be a positive multiple of the device count"),
])
def test_bad_config_values_get_one_line(tmp_path, flag, message):
  proc = tiny.main_py(flag, "--workdir", str(tmp_path / "w"))
  assert proc.returncode == 2
  assert message in proc.stderr and "Traceback" not in proc.stderr
  assert not (tmp_path / "w" / "checkpoints").exists()
