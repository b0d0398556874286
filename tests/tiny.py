"""Helpers for end-to-end tests: the tiny config with overrides, running main.py in a fresh process."""

import os
import subprocess
import sys

import tiny_config as tiny_config_file

from conftest import REPO


def tiny_config(**overrides):
  """tiny_config.get_config() with dotted-key overrides, e.g. tiny_config(**{"data.source": "tfds"})."""
  config = tiny_config_file.get_config()
  for key, value in overrides.items():
    target = config
    *path, last = key.split(".")
    for p in path:
      target = target[p]
    target[last] = value
  return config


def main_py(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
  """Runs `python main.py --config tests/tiny_config.py ARGS` from the repo root in a fresh process."""
  cmd = [sys.executable, "main.py", "--config", "tests/tiny_config.py", *args]
  if any(a.startswith("--config=") or a == "--config" for a in args):
    cmd = [sys.executable, "main.py", *args]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, "PYTHONPATH": str(REPO)})


def learning_config(**overrides):
  """A tiny config that learns the synthetic task within seconds (val accuracy ~0.79 against a majority
  class of ~0.64 after 10 epochs), so that its predictions depend on the input."""
  settings = {"data.synthetic_train_size": 64, "data.synthetic_eval_size": 16, "batch_size": 8,
              "num_epochs": 10, "learning_rate": 3e-3, "freeze_encoder": False, "encoder_bn_train": True,
              "model.encoder_bn_momentum": 0.9, "model.decoder_bn_momentum": 0.9}
  return tiny_config(**{**settings, **overrides})


def synthetic_photos(n, h, w, seed=5):
  """(n, h, w, 3) uint8 pictures of the synthetic task (what the learned model segments), any size."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from jaxseg.data import sources  # pylint: disable=g-import-not-at-top
  images, _ = sources.synthetic_arrays(n, max(h, w), seed=seed)
  return np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR)) for im in images])
