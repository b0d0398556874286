"""Stopping inside an epoch and resuming there: SIGTERM, a stop at a given step, and periodic mid-epoch
checkpoints after a crash. Each resumed run must end with the history of an uninterrupted one."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tiny
from conftest import REPO

from jaxseg.training import loop, mid_epoch
from jaxseg.training.preemption import StopRequest

EPOCHS = 3  # 8 steps an epoch (64 examples, batch 8)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """The history of the run the interrupted ones must reproduce."""
  return loop.train_and_evaluate(tiny.learning_config(num_epochs=EPOCHS), str(tmp_path_factory.mktemp("whole")))


def _assert_same_history(got, want):
  assert [h["epoch"] for h in got] == [h["epoch"] for h in want]
  for g, w in zip(got, want):
    assert g["step"] == w["step"]
    for part in ("train", "val"):
      for key in ("loss", "accuracy", "mean_iou"):
        np.testing.assert_allclose(g[part][key], w[part][key], rtol=1e-5, err_msg=f"{part} {key} {g['epoch']}")
      assert g[part]["confusion"] == w[part]["confusion"]


def test_a_stop_inside_an_epoch_saves_there_and_the_rerun_ends_as_an_uninterrupted_run(
    tmp_path, monkeypatch, capsys, uninterrupted):
  config = tiny.learning_config(num_epochs=EPOCHS)
  real = StopRequest.requested

  def stop_at_11(self, step):
    if step == 11:  # epoch 2, batch 3
      self.signal_name = "SIGTERM"
    return real(self, step)

  monkeypatch.setattr(StopRequest, "requested", stop_at_11)
  first = loop.train_and_evaluate(config, str(tmp_path))
  out = capsys.readouterr().out
  assert "SIGTERM received: stopped at step 11 (epoch 2, batch 3 of 8)" in out and len(first) == 1
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1"]
  assert sorted(os.listdir(tmp_path / mid_epoch.DIRECTORY)) == ["11"]
  monkeypatch.setattr(StopRequest, "requested", real)
  history = loop.train_and_evaluate(config, str(tmp_path))
  assert "at epoch 2, batch 3 of 8" in capsys.readouterr().out
  _assert_same_history(history, uninterrupted)
  assert not os.listdir(tmp_path / mid_epoch.DIRECTORY)  # removed once epoch 2 was checkpointed


class _Crash(Exception):
  pass


def test_periodic_mid_epoch_checkpoints_survive_a_crash(tmp_path, monkeypatch, capsys, uninterrupted):
  config = tiny.learning_config(num_epochs=EPOCHS, checkpoint_every_steps=3)
  real = mid_epoch.MidEpoch.save
  saved = []

  def save_then_crash(self, step, *args, **kwargs):
    real(self, step, *args, **kwargs)
    saved.append(step)
    if step == 18:  # epoch 3, batch 2: the process dies right after this save
      raise _Crash

  monkeypatch.setattr(mid_epoch.MidEpoch, "save", save_then_crash)
  with pytest.raises(_Crash):
    loop.train_and_evaluate(config, str(tmp_path))
  assert saved == [3, 6, 9, 12, 15, 18]  # 8 and 16 are epoch ends: the epochs' own checkpoints
  monkeypatch.setattr(mid_epoch.MidEpoch, "save", real)
  history = loop.train_and_evaluate(config, str(tmp_path))
  assert "at epoch 3, batch 2 of 8" in capsys.readouterr().out
  _assert_same_history(history, uninterrupted)


def test_a_stale_mid_epoch_checkpoint_is_ignored(tmp_path, monkeypatch, uninterrupted):
  """A mid-epoch checkpoint of an epoch that was then checkpointed whole (a kill between the epoch's save and
  the removal) does not send the run back."""
  config = tiny.learning_config(num_epochs=EPOCHS, checkpoint_every_steps=3)
  monkeypatch.setattr(mid_epoch.MidEpoch, "discard", lambda self: None)  # as if killed before removing them
  loop.train_and_evaluate(tiny.learning_config(num_epochs=2, checkpoint_every_steps=3), str(tmp_path))
  assert os.listdir(tmp_path / mid_epoch.DIRECTORY) == ["15"]  # epoch 2's, older than checkpoint 2
  monkeypatch.undo()
  _assert_same_history(loop.train_and_evaluate(config, str(tmp_path)), uninterrupted)


def _main_py(workdir, fault: str, *flags: str, **popen) -> subprocess.CompletedProcess:
  """main.py on the learning config in a fresh process that signals itself at `fault` (`JAXSEG_FAULT`)."""
  settings = [f"--config.{k}={v}" for k, v in tiny.LEARNING.items()]
  cmd = [sys.executable, "main.py", "--config", "tests/tiny_config.py", "--workdir", str(workdir), *settings, *flags]
  env = {**os.environ, "PYTHONPATH": str(REPO), "JAXSEG_FAULT": fault}
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, **popen)


def test_sigterm_finishes_the_step_saves_and_exits_0_then_the_rerun_resumes(tmp_path, capsys, uninterrupted):
  proc = _main_py(tmp_path, "term@step=11", f"--config.num_epochs={EPOCHS}")  # epoch 2, batch 3
  assert proc.returncode == 0, proc.stderr[-2000:]
  stopped = [line for line in proc.stdout.splitlines() if line.startswith("SIGTERM received: stopped")]
  assert len(stopped) == 1 and "at step 11 (epoch 2, batch 3 of 8)" in stopped[0], proc.stdout
  assert "rerun the same command to resume" in stopped[0] and "Traceback" not in proc.stderr
  assert sorted(os.listdir(tmp_path / mid_epoch.DIRECTORY)) == ["11"]
  history = loop.train_and_evaluate(tiny.learning_config(num_epochs=EPOCHS), str(tmp_path))  # the rerun
  assert "at epoch 2, batch 3 of 8" in capsys.readouterr().out
  _assert_same_history(history, uninterrupted)


@pytest.mark.parametrize("fault,name,step", [("term_group@step=3", "SIGTERM", 3), ("int_group@step=3", "SIGINT", 3),
                                             ("term_group@input_worker=0", "SIGTERM", 1)],
                         ids=["SIGTERM", "SIGINT", "SIGTERM_while_workers_start"])
def test_a_stop_signal_to_the_whole_process_group_of_a_streamed_run_is_one_line(tmp_path, fault, name, step):
  # A shutdown (SIGTERM) or Ctrl-C (SIGINT) reaches the input workers too, also while they are still starting:
  # they leave the stop to the training process, which saves and exits 0 without a traceback from any of them.
  proc = _main_py(tmp_path, fault, "--config.num_epochs=2", "--config.data.pipeline=stream",
                  "--config.data.workers=2", start_new_session=True,
                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  assert proc.returncode == 0, proc.stderr[-2000:]
  stopped = [line for line in proc.stdout.splitlines() if line.startswith(f"{name} received: stopped")]
  assert len(stopped) == 1 and f"stopped at step {step} " in stopped[0], proc.stdout
  assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr[-2000:]
  assert os.listdir(tmp_path / mid_epoch.DIRECTORY) == [str(step)]
