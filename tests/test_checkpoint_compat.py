"""Checkpoints written by an earlier jaxseg (before the kernels moved to `jaxseg.ops` and models took one
layer spec) restore unchanged: the same logits, and training resumes from them.

The earlier version is taken from this repository's own history (`git archive`) and run in a fresh process;
the test skips where the history is absent (a shallow or exported copy).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tiny
from conftest import REPO

EARLIER = "15e7f49"  # the last commit of the earlier layout

# Run inside the earlier tree: the logits of a restored checkpoint on fixed images.
_LOGITS = """
import sys
import numpy as np
import jaxseg
from jaxseg import data
predictor = jaxseg.load(sys.argv[1])
x = data.normalize(np.load(sys.argv[2]))
np.save(sys.argv[3], np.asarray(predictor.run.model.apply(predictor.variables, x)))
"""


@pytest.fixture(scope="module")
def earlier_tree(tmp_path_factory):
  """The earlier version's files, extracted from git."""
  found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{EARLIER}^{{commit}}"], capture_output=True)
  if found.returncode:
    pytest.skip(f"commit {EARLIER} is not in this copy's git history")
  tree = tmp_path_factory.mktemp("earlier")
  archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", EARLIER], capture_output=True,
                           check=True).stdout
  subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
  return tree


def _run(tree, *args):
  env = {**os.environ, "PYTHONPATH": str(tree)}
  return subprocess.run([sys.executable, *args], cwd=tree, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["unet_mobilenet_v2", "deeplabv3plus_mobilenet_v2"])
def test_a_checkpoint_of_the_earlier_layout_restores_and_resumes(earlier_tree, tmp_path, name):
  workdir, images = tmp_path / "run", tmp_path / "images.npy"
  model = [f"--config.model.name={name}"] + (["--config.model.output_stride=8"] if "deeplab" in name else [])
  trained = _run(earlier_tree, "main.py", "--config", "tests/tiny_config.py", "--workdir", str(workdir), *model)
  assert trained.returncode == 0, trained.stderr[-2000:]
  np.save(images, tiny.synthetic_photos(3, 32, 32))
  want = tmp_path / "want.npy"
  restored = _run(earlier_tree, "-c", _LOGITS, str(workdir), str(images), str(want))
  assert restored.returncode == 0, restored.stderr[-2000:]

  # This version: the same logits from the same checkpoint, in a fresh process.
  got = tmp_path / "got.npy"
  restored = _run(REPO, "-c", _LOGITS, str(workdir), str(images), str(got))
  assert restored.returncode == 0, restored.stderr[-2000:]
  np.testing.assert_allclose(np.load(got), np.load(want), atol=1e-5)

  # ... and training resumes from it, the identity check passing (a one-line refusal would exit 1).
  resumed = tiny.main_py("--workdir", str(workdir), "--config.num_epochs=2", *model)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["1", "2"]
