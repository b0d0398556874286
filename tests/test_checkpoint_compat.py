"""Checkpoints written by an earlier jaxseg (before the kernels moved to `jaxseg.ops` and models took one
layer spec) restore unchanged: the same logits, and training resumes from them.

The earlier version is taken from this repository's own history (`git archive`) and run in one fresh process
for both models; the test skips where the history is absent (a shallow or exported copy).
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tiny
from conftest import REPO

import jaxseg
from jaxseg import data
from jaxseg.training import loop

EARLIER = "15e7f49"  # the last commit of the earlier layout

MODELS = {"unet_mobilenet_v2": {}, "deeplabv3plus_mobilenet_v2": {"model.output_stride": 8}}

# Run inside the earlier tree, once for both models: train the tiny config one epoch, then the logits of the
# restored checkpoint on fixed images.
_TRAIN_AND_LOGITS = """
import sys
import numpy as np
import jaxseg
import tiny_config
from jaxseg import data
from jaxseg.train import loop  # the earlier layout's name of jaxseg.training
root, images = sys.argv[1], np.load(sys.argv[2])
for name, output_stride in (("unet_mobilenet_v2", 16), ("deeplabv3plus_mobilenet_v2", 8)):
  config = tiny_config.get_config()
  config.model.name, config.model.output_stride = name, output_stride
  loop.train_and_evaluate(config, f"{root}/{name}")
  predictor = jaxseg.load(f"{root}/{name}")
  np.save(f"{root}/{name}.npy", np.asarray(predictor.run.model.apply(predictor.variables, data.normalize(images))))
"""


@pytest.fixture(scope="module")
def earlier_runs(tmp_path_factory):
  """Checkpoints of both models written by the earlier version, and its logits, from one fresh process in
  the earlier version's files (extracted from git)."""
  found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{EARLIER}^{{commit}}"], capture_output=True)
  if found.returncode:
    pytest.skip(f"commit {EARLIER} is not in this copy's git history")
  tree, runs = tmp_path_factory.mktemp("earlier"), tmp_path_factory.mktemp("earlier_runs")
  archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", EARLIER], capture_output=True,
                           check=True).stdout
  subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
  np.save(runs / "images.npy", tiny.synthetic_photos(3, 32, 32))
  env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'tests'}"}
  proc = subprocess.run([sys.executable, "-c", _TRAIN_AND_LOGITS, str(runs), str(runs / "images.npy")], cwd=tree,
                        capture_output=True, text=True, timeout=900, env=env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return runs


@pytest.mark.parametrize("name", list(MODELS))
def test_a_checkpoint_of_the_earlier_layout_restores_and_resumes(earlier_runs, tmp_path, name):
  workdir = tmp_path / "run"
  shutil.copytree(earlier_runs / name, workdir)
  # This version: the same logits from the same checkpoint.
  predictor = jaxseg.load(str(workdir))
  images = data.normalize(np.load(earlier_runs / "images.npy"))
  got = np.asarray(predictor.run.model.apply(predictor.variables, images))
  np.testing.assert_allclose(got, np.load(earlier_runs / f"{name}.npy"), atol=1e-5)

  # ... and training resumes from it, the identity check passing (a refusal would raise).
  config = tiny.tiny_config(**{"model.name": name, "num_epochs": 2, **MODELS[name]})
  history = loop.train_and_evaluate(config, str(workdir))
  assert [h["epoch"] for h in history] == [1, 2]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["1", "2"]
