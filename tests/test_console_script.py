"""The `jaxseg` console script that `pip install .` puts beside the interpreter: `jaxseg MODE [flags]` from any
directory, the package's default config without --config, recipes that import their siblings."""

import os
import subprocess
import sys

import pytest
import tiny

SCRIPT = os.path.join(os.path.dirname(sys.executable), "jaxseg")

pytestmark = pytest.mark.skipif(not os.path.isfile(SCRIPT), reason="the package is not installed here (pip install .)")


def _jaxseg(*args, cwd):
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package, as a user runs it
  return subprocess.run([SCRIPT, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_the_default_config_and_a_recipe_from_another_directory(tmp_path):
  default = _jaxseg("summary", cwd=tmp_path)
  assert default.returncode == 0, default.stderr[-2000:]
  assert "Total params: 6,504,227" in default.stdout  # the tutorial's U-Net at 128 px
  recipe = _jaxseg("summary", "--config", os.path.join(tiny.REPO, "configs", "camvid_long.py"), cwd=tmp_path)
  assert recipe.returncode == 0, recipe.stderr[-2000:]  # camvid_long imports configs.camvid
  assert "(None, 384, 480, 11)" in recipe.stdout  # CamVid's 480x360 frames padded to multiples of 32, 11 classes


def test_a_missing_mode_a_bad_field_or_a_broken_config_file_is_one_line(tmp_path):
  bad = tmp_path / "broken.py"
  bad.write_text("from configs import no_such_recipe\n")
  empty = tmp_path / "no_get_config.py"
  empty.write_text("name = 'not a config'\n")
  for args, message in (((), "usage: jaxseg {train,eval,predict,export,summary,inspect}"),
                        (("fit",), "usage: jaxseg"),
                        (("summary", "--config.bogus=1"), "error: bad config override among ['--config.bogus']"),
                        (("summary", "--config", str(bad)), f"error: cannot load config file {bad}: ModuleNotFound"),
                        (("summary", "--config", str(empty), "--config.batch_size=2"),
                         f"error: cannot load config file {empty}: AttributeError")):
    proc = _jaxseg(*args, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith(message), (args, proc.stderr[-2000:])
