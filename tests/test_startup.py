"""What starting costs: the persistent compilation cache's settings, the time since the process started, the
fault points resilience tests kill at, and programs compiled once per process."""

import signal
import time

import jax
import numpy as np
import pytest
import tiny

from jaxseg import models
from jaxseg.errors import UserError
from jaxseg.runtime import faults
from jaxseg.training import loop, startup, steps
from jaxseg.training.run import Run


@pytest.fixture
def jax_cache_settings():
  """Puts JAX's compilation cache settings back as they were after the test."""
  names = ("jax_compilation_cache_dir", "jax_enable_compilation_cache", "jax_persistent_cache_min_compile_time_secs")
  saved = {name: getattr(jax.config, name) for name in names}
  yield
  for name, value in saved.items():
    jax.config.update(name, value)


def test_the_compilation_cache_is_on_by_default_movable_and_can_be_switched_off(
    tmp_path, monkeypatch, jax_cache_settings):
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "env"))
  config = tiny.tiny_config(compilation_cache=str(tmp_path / "mine"))
  assert startup.enable_compilation_cache(config) == str(tmp_path / "env")  # the environment's choice wins
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert startup.enable_compilation_cache(tiny.tiny_config()) == str(tmp_path / "xdg" / "jaxseg" / "xla")
  assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xdg" / "jaxseg" / "xla")
  assert startup.enable_compilation_cache(config) == str(tmp_path / "mine") and (tmp_path / "mine").is_dir()
  assert startup.enable_compilation_cache(tiny.tiny_config(compilation_cache="none")) is None
  assert not jax.config.jax_enable_compilation_cache


def test_seconds_since_start_counts_from_the_process_start():
  first = startup.seconds_since_start()
  assert 0 < first < 24 * 3600
  time.sleep(0.05)
  assert startup.seconds_since_start() >= first + 0.04


def test_a_fault_point_signals_only_where_it_is_named(monkeypatch):
  got = []
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
  try:
    monkeypatch.setenv(faults.VARIABLE, "term@step=3, kill@save=9")
    faults.reached("step", 2)
    faults.reached("save", 3)
    assert got == []
    faults.reached("step", 3)
    assert got == [signal.SIGTERM]
  finally:
    signal.signal(signal.SIGTERM, previous)
  monkeypatch.setenv(faults.VARIABLE, "explode@step=1")
  with pytest.raises(UserError, match="JAXSEG_FAULT="):
    faults.reached("step", 1)


def test_runs_of_one_program_share_their_compiled_steps(tmp_path):
  """A second run of the same model and config (whatever its length, logging or checkpointing) gets the
  compiled steps of the first; another learning rate, seed or class weights get their own."""
  def jitted(**overrides):
    run = Run(tiny.tiny_config(**overrides), str(tmp_path / "w"))
    _, tx = run.fresh_state(load_encoder=False, total_steps=8)
    return run.jit_steps(tx)

  first = jitted()
  assert jitted(num_epochs=7, log_every_steps=1, keep_checkpoints=1, **{"data.synthetic_train_size": 4}) is first
  for other in ({"learning_rate": 0.5}, {"seed": 1}, {"random_flip": False}, {"loss.name": "dice"}):
    assert jitted(**other) is not first, other
  # A schedule that decays over the run depends on its length.
  assert jitted(lr_schedule="cosine") is jitted(lr_schedule="cosine", num_epochs=5)  # total_steps given above
  key = steps.program_key
  cosine = tiny.tiny_config(lr_schedule="cosine")
  assert key(cosine, 8) != key(cosine, 16) and key(tiny.tiny_config(), 8) == key(tiny.tiny_config(), 16)


def test_a_second_training_in_a_process_traces_and_compiles_nothing(tmp_path):
  config = tiny.tiny_config()
  loop.train_and_evaluate(config, str(tmp_path / "a"))
  events = []
  listener = lambda event, duration, **kwargs: events.append(event)
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    loop.train_and_evaluate(tiny.tiny_config(num_epochs=2), str(tmp_path / "b"))
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  assert "/jax/core/compile/backend_compile_duration" not in events
  assert "/jax/core/compile/jaxpr_trace_duration" not in events


def test_initial_variables_are_the_same_for_a_seed_from_the_cached_init():
  model = models.create_model(tiny.tiny_config())
  a, b = models.init_variables(model, 32, seed=3), models.init_variables(model, 32, seed=3)
  c = models.init_variables(model, 32, seed=4)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(jax.tree.leaves(a["params"])[0], jax.tree.leaves(c["params"])[0])


@pytest.mark.parametrize("name", ["unet", "deeplabv3plus"])
def test_the_cheaper_compiled_init_draws_the_default_compiles_values(name, monkeypatch):
  # What a seed gives must not depend on how the init was compiled: the default optimisation level (named
  # explicitly) and the level the library compiles the init at agree bit for bit, for each seed; under
  # jax.eval_shape the traceable form gives the same shapes.
  monkeypatch.setenv("XLA_FLAGS", "")  # the suite's own flags set a level, which the library would keep
  assert models.init_compiler_options() == models.INIT_COMPILER_OPTIONS["cpu"]
  model = models.create_model(tiny.tiny_config(**{"model.name": name}))
  default = models._jitted_init(model, 32, 32).lower(jax.random.key(0)).compile(  # pylint: disable=protected-access
      compiler_options={"xla_backend_optimization_level": 3})
  for seed in (0, 7):
    got, want = models.init_variables(model, 32, seed), default(jax.random.key(seed))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  shapes = jax.eval_shape(lambda: models.init_variables(model, 32))
  assert jax.tree.map(lambda x: (x.shape, x.dtype), shapes) == jax.tree.map(lambda x: (x.shape, x.dtype), got)
  monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=2")
  assert models.init_compiler_options() == {}  # a level the environment sets is kept
