"""Checkpoints written by earlier jaxseg versions restore unchanged: the same logits, and training resumes
from them. Two versions: one before the kernels moved to `jaxseg.ops` and models took one layer spec (config
format 1: MobileNetV2's U-Net and DeepLabV3+), and the last before backbones became registry entries and
MobileNetV2's width went into its name (format 2: DeepLabV3+ over MobileNetV2 0.35, SegFormer over MiT-B0,
the U-Net over keras-hub's ResNet-18).

Each version is taken from this repository's own history (`git archive`) and run in one fresh process for
its models; the tests skip where the history is absent (a shallow or exported copy).
"""

import json
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
PREVIOUS = "2257f11"  # the last commit with `model.alpha` (config format 2)

MODELS = {"unet_mobilenet_v2": {}, "deeplabv3plus_mobilenet_v2": {"model.output_stride": 8}}
# name -> overrides of the tiny config (MobileNetV2 0.35 in both versions: `model.alpha` then, its name now).
PREVIOUS_MODELS = {
    "deeplab_mnv2": {"model.name": "deeplabv3plus", "model.output_stride": 8},
    "segformer_mit_b0": {"model.name": "segformer", "model.backbone": "mit_b0"},
    "unet_resnet18": {"model.name": "unet", "model.backbone": "resnet18"},
}

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


_TRAIN_AND_LOGITS_PREVIOUS = """
import json, sys
import numpy as np
import jaxseg
import tiny
from jaxseg import data
from jaxseg.training import loop
root, images, models = sys.argv[1], np.load(sys.argv[2]), json.loads(sys.argv[3])
for name, overrides in models.items():
  loop.train_and_evaluate(tiny.tiny_config(**overrides), f"{root}/{name}")
  predictor = jaxseg.load(f"{root}/{name}")
  np.save(f"{root}/{name}.npy", np.asarray(predictor.run.model.apply(predictor.variables, data.normalize(images))))
"""


def _version_tree(commit: str, tmp_path_factory):
  """This repository's files at `commit`, extracted into a fresh directory (skips without that history)."""
  found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
  if found.returncode:
    pytest.skip(f"commit {commit} is not in this copy's git history")
  tree = tmp_path_factory.mktemp(f"tree_{commit}")
  archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], capture_output=True,
                           check=True).stdout
  subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
  return tree


@pytest.fixture(scope="module")
def previous_runs(tmp_path_factory):
  """Checkpoints of `PREVIOUS_MODELS` written by the previous version, and its logits."""
  tree, runs = _version_tree(PREVIOUS, tmp_path_factory), tmp_path_factory.mktemp("previous_runs")
  np.save(runs / "images.npy", tiny.synthetic_photos(3, 32, 32))
  env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'tests'}"}
  models = json.dumps(PREVIOUS_MODELS)
  proc = subprocess.run([sys.executable, "-c", _TRAIN_AND_LOGITS_PREVIOUS, str(runs), str(runs / "images.npy"),
                         models], cwd=tree, capture_output=True, text=True, timeout=900, env=env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return runs


@pytest.fixture(scope="module")
def earlier_runs(tmp_path_factory):
  """Checkpoints of both models written by the earlier version, and its logits, from one fresh process in
  the earlier version's files (extracted from git)."""
  tree, runs = _version_tree(EARLIER, tmp_path_factory), tmp_path_factory.mktemp("earlier_runs")
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


@pytest.mark.parametrize("name", list(PREVIOUS_MODELS))
def test_a_checkpoint_of_the_previous_version_restores_and_resumes(previous_runs, tmp_path, name):
  workdir = tmp_path / "run"
  shutil.copytree(previous_runs / name, workdir)
  predictor = jaxseg.load(str(workdir))
  assert "alpha" not in predictor.config.model  # its saved config, brought to today's fields
  images = data.normalize(np.load(previous_runs / "images.npy"))
  got = np.asarray(predictor.run.model.apply(predictor.variables, images))
  np.testing.assert_allclose(got, np.load(previous_runs / f"{name}.npy"), atol=1e-5)
  history = loop.train_and_evaluate(tiny.tiny_config(**PREVIOUS_MODELS[name], num_epochs=2), str(workdir))
  assert [h["epoch"] for h in history] == [1, 2]
