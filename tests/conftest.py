"""Shared test setup: quiet TensorFlow, Keras on its TensorFlow backend, paths to ../shared."""

import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # pylint: disable=g-import-not-at-top

REPO = pathlib.Path(__file__).resolve().parents[1]
PETS_MINI = REPO.parent / "shared" / "data" / "pets-mini"


@pytest.fixture
def pets_mini() -> pathlib.Path:
  """The 20-photo Oxford-IIIT Pet slice; skips the test where ../shared is absent."""
  if not (PETS_MINI / "annotations" / "trainval.txt").is_file():
    pytest.skip(f"{PETS_MINI} is absent")
  return PETS_MINI
