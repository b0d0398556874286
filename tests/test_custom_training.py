"""The trainer as a library: `jaxseg.train` with the user's own optax optimizer (the encoder still frozen as
configured), and the documented example that trains a model class the user registers."""

import importlib.util

import jax
import numpy as np
import optax
import pytest
import tiny
from conftest import REPO

import jaxseg
from jaxseg import models
from jaxseg.training.run import Run


def _params(config, workdir: str, trained: bool):
  run = Run(config, workdir, read_only=True)
  state = run.restore_for_inference()[0] if trained else run.fresh_state(load_encoder=False)[0]
  return jax.device_get(state.params)


def _same(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("freeze", [False, True])
def test_train_uses_the_users_optimizer_and_still_freezes_the_encoder(tmp_path, freeze):
  config = tiny.tiny_config(freeze_encoder=freeze)
  # A learning rate of zero: nothing may move. The config's own Adam at 1e-3 would move every parameter.
  still = str(tmp_path / "still")
  history = jaxseg.train(config, still, optimizer=optax.sgd(0.0))
  assert len(history) == 1 and np.isfinite(history[0]["train"]["loss"])
  assert _same(_params(config, still, True), _params(config, still, False))
  # A moving optimizer moves the head, and the encoder only where it is not frozen.
  moved = str(tmp_path / "moved")
  jaxseg.train(config, moved, optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1)))
  before, after = _params(config, moved, False), _params(config, moved, True)
  head = [k for k in before if k != "encoder"]
  assert not _same({k: before[k] for k in head}, {k: after[k] for k in head})
  assert _same(before["encoder"], after["encoder"]) == freeze


def test_the_custom_model_example_trains_a_registered_model_with_its_own_optimizer(tmp_path, capsys):
  spec = importlib.util.spec_from_file_location("custom_model", REPO / "docs" / "examples" / "custom_model.py")
  example = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(example)
    history = example.main(["--workdir", str(tmp_path / "fcn"), "--epochs", "3"])
  finally:
    models.MODELS.pop("fcn", None)  # the registry is the process's: leave it as the other tests expect
  assert [h["epoch"] for h in history] == [1, 2, 3]
  losses = [h["train"]["loss"] for h in history]
  assert losses[-1] < 0.8 * losses[0], losses
  assert history[-1]["val"]["accuracy"] > history[0]["val"]["accuracy"]
  assert "a 128x96 photo -> mask (96, 128)" in capsys.readouterr().out
