"""Training's parts called on their own: `build` (config -> model and first variables), the checkpoint
`store` (save, restore into a target, read back for inference, read-only readers) and the `Run` that
composes them."""

import json
import os

import jax
import numpy as np
import optax
import pytest
import tiny

from jaxseg.config import upgrade
from jaxseg.training import build, checkpoints
from jaxseg.training.run import Run
from jaxseg.training.state import create_state
from jaxseg.training.store import CheckpointStore


def _same(a, b) -> bool:
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


def test_build_gives_the_variables_a_run_starts_from():
  config = tiny.tiny_config()
  variables, config_out, model = build.build(config, pretrained=False)
  assert config_out is config and model == Run(config, "/nonexistent", read_only=True).model
  state, _ = Run(config, "/nonexistent", read_only=True).fresh_state(load_encoder=False)
  assert _same(variables["params"], jax.device_get(state.params))
  other, _, _ = build.build(tiny.tiny_config(seed=config.seed + 1), pretrained=False)
  assert not _same(variables["params"], other["params"])  # the seed decides


def test_a_checkpoint_store_saves_and_restores_and_its_readers_write_nothing(tmp_path):
  config = tiny.tiny_config()
  variables = build.build(config, pretrained=False)[0]
  state = create_state(variables["params"], variables["batch_stats"], optax.sgd(0.1), ema=False)
  store = CheckpointStore(str(tmp_path), keep=2)
  assert store.latest_epoch() is None
  store.save(3, state.to_dict(), config, [{"epoch": 3}])
  assert store.latest_epoch() == 3 and store.directory.endswith("checkpoints")
  restored, epoch, meta = store.restore(state.to_dict(), config)
  assert epoch == 3 and json.loads(meta["config"])["name"] == config.name and meta["history"] == [{"epoch": 3}]
  assert _same(restored["params"], state.params)
  files = lambda: sorted((r, f, os.path.getmtime(os.path.join(r, f))) for r, _, fs in os.walk(tmp_path) for f in fs)
  before = files()
  reader = CheckpointStore(str(tmp_path), read_only=True)
  got, epoch, _ = reader.restore_variables(config, None)
  assert epoch == 3 and _same(got["params"], state.params)
  with pytest.raises(checkpoints.CheckpointError, match="no checkpoint of epoch 4"):
    reader.restore_variables(config, None, epoch=4)
  # A checkpoint of another model is refused before anything is read.
  with pytest.raises(checkpoints.CheckpointError, match="num_classes: checkpoint has 3"):
    reader.restore_variables(tiny.tiny_config(num_classes=4, **{"data.class_names": ()}), None)
  assert files() == before
  with pytest.raises(ValueError, match="read-only"):
    reader.save(4, state.to_dict(), config, [])
  assert files() == before


def test_trained_settings_come_back_with_the_checkpoint():
  config = tiny.tiny_config()
  model = build.build(config, pretrained=False)[2]
  trained = config.copy_and_resolve_references()
  trained.model.input_scale, trained.model.input_offset = (0.01, 0.02, 0.03), (-1.0, -2.0, -3.0)
  trained.model.decoder_bn_momentum = 0.9
  meta = {"config": trained.to_json_best_effort(), "config_format": upgrade.FORMAT}
  got, got_model = build.with_trained_settings(config, model, meta, inference=True)
  assert got_model.transform() == ((0.01, 0.02, 0.03), (-1.0, -2.0, -3.0))
  # A MobileNetV2 of an earlier format took [-1, 1] as it was, whatever its config said: so it still does.
  earlier, earlier_model = build.with_trained_settings(config, model, {**meta, "config_format": 2}, inference=True)
  assert earlier_model.transform() == model.transform() and not len(earlier.model.input_scale)
  assert got.model.decoder_bn_momentum == 0.9 and config.model.decoder_bn_momentum != 0.9  # a copy
  resumed, _ = build.with_trained_settings(config, model, meta, inference=False)
  assert resumed.model.decoder_bn_momentum == config.model.decoder_bn_momentum  # training keeps its own
