"""The weights' exponential moving average: the recurrence against numpy, what evaluation, prediction and
checkpoints do with it, and checkpoints without one unchanged."""

import jax
import numpy as np
import pytest
import tiny

from jaxseg import data
from jaxseg.config.checks import ConfigError, check_config
from jaxseg.training import checkpoints, loop
from jaxseg.training.run import Run


def test_the_average_follows_its_recurrence_step_by_step(tmp_path):
  config = tiny.tiny_config(ema_decay=0.9, freeze_encoder=False)
  run = Run(config, str(tmp_path))
  state, tx = run.fresh_state(load_encoder=False, total_steps=4)
  jitted = run.jit_steps(tx)
  split = data.open_split(config, config.data.train_split)
  want = jax.tree.map(np.asarray, jax.device_get(state.params))
  sums = run.zero_sums()
  for t, (batch, _) in zip(range(4), split.train_batches(config.batch_size, config.seed, 1, None)):
    state, sums = jitted.train(state, sums, jax.device_put(batch, run.batch_sharding))
    decay = min(0.9, (1 + t) / (10 + t))  # 0.1, 0.18, 0.25, 0.31: the warm-up bound, not 0.9 yet
    want = jax.tree.map(lambda e, p, d=decay: d * e + (1 - d) * np.asarray(p), want, jax.device_get(state.params))
  got = jax.device_get(state.ema)
  for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
  assert any(np.abs(g - p).max() > 1e-4 for g, p in zip(jax.tree.leaves(got),
                                                          jax.tree.leaves(jax.device_get(state.params))))


def test_evaluation_prediction_and_checkpoints_use_the_average(tmp_path):
  config = tiny.tiny_config(ema_decay=0.8, num_epochs=2)
  history = loop.train_and_evaluate(config, str(tmp_path))
  run = Run(config, str(tmp_path), read_only=True)
  saved, _, _, _ = run.restore()
  saved = jax.device_get(saved)
  assert saved.ema is not None
  inference, _ = run.restore_for_inference()
  for got, ema in zip(jax.tree.leaves(jax.device_get(inference.params)), jax.tree.leaves(saved.ema)):
    np.testing.assert_array_equal(got, ema)
  # The epoch's figures are the average's: evaluating the raw weights gives others, the average the same.
  raw = saved.replace(ema=None)
  as_averaged = saved.replace(params=saved.ema, ema=None)
  jitted = run.jit_steps(tx=None)
  split = data.open_split(config, config.data.eval_split)
  put = lambda s: jax.device_put(s, run.rep)
  assert run.evaluate(jitted.evaluate, put(as_averaged), split)["loss"] == pytest.approx(history[-1]["val"]["loss"],
                                                                                         rel=1e-5)
  assert run.evaluate(jitted.evaluate, put(raw), split)["loss"] != pytest.approx(history[-1]["val"]["loss"],
                                                                                 rel=1e-5)
  assert loop.evaluate(config, str(tmp_path))["loss"] == pytest.approx(history[-1]["val"]["loss"], rel=1e-5)


def test_without_an_average_checkpoints_keep_their_structure(tmp_path):
  config = tiny.tiny_config(num_epochs=1)
  loop.train_and_evaluate(config, str(tmp_path))
  mngr = checkpoints.manager(str(tmp_path), 3, read_only=True)
  assert set(mngr.item_metadata(1)["state"]) == {"step", "params", "batch_stats", "opt_state"}


def test_resuming_with_the_average_switched_is_refused_in_one_line(tmp_path):
  loop.train_and_evaluate(tiny.tiny_config(num_epochs=1), str(tmp_path))
  with pytest.raises(checkpoints.CheckpointError, match="trained without a moving average of the weights"):
    loop.train_and_evaluate(tiny.tiny_config(num_epochs=2, ema_decay=0.9), str(tmp_path))
  assert checkpoints.manager(str(tmp_path), 3, read_only=True).all_steps() == [1]  # nothing moved aside


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_a_decay_outside_its_range_is_refused(decay):
  with pytest.raises(ConfigError, match=r"config\.ema_decay"):
    check_config(tiny.tiny_config(ema_decay=decay))
