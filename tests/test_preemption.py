"""Stopping inside an epoch and resuming there: SIGTERM, a stop at a given step, and periodic mid-epoch
checkpoints after a crash. Each resumed run must end with the history of an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tiny
from conftest import REPO

from jaxseg.train import loop, mid_epoch
from jaxseg.train.preemption import StopRequest

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


@pytest.mark.slow
def test_sigterm_finishes_the_step_saves_and_exits_0_then_the_rerun_resumes(tmp_path, uninterrupted):
  settings = [f"--config.{k}={v}" for k, v in tiny.LEARNING.items()] + [f"--config.num_epochs={EPOCHS}"]
  cmd = [sys.executable, "main.py", "--config", "tests/tiny_config.py", "--workdir", str(tmp_path), *settings]
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while not (tmp_path / "checkpoints" / "1").is_dir() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-2000:]
  stopped = [line for line in out.splitlines() if line.startswith("SIGTERM received: stopped")]
  assert len(stopped) == 1 and "rerun the same command to resume" in stopped[0], out
  assert "Traceback" not in err
  rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0 and "Resuming from" in rerun.stdout, rerun.stderr[-2000:]
  history = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  _assert_same_history(history, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_to_the_whole_process_group_of_a_streamed_run_is_one_line(tmp_path, sig):
  # A shutdown (SIGTERM) or Ctrl-C (SIGINT) reaches the input workers too: they leave the stop to the
  # training process, which saves and exits 0 without a traceback from any of them.
  settings = [f"--config.{k}={v}" for k, v in tiny.LEARNING.items()]
  cmd = [sys.executable, "main.py", "--config", "tests/tiny_config.py", "--workdir", str(tmp_path), *settings,
         "--config.num_epochs=30", "--config.data.pipeline=stream", "--config.data.workers=2"]
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  deadline = time.time() + 300
  while not (tmp_path / "checkpoints" / "1").is_dir() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  os.killpg(proc.pid, sig)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-2000:]
  name = signal.Signals(sig).name
  assert len([line for line in out.splitlines() if line.startswith(f"{name} received: stopped")]) == 1, out
  assert "Traceback" not in err and "Error" not in err, err[-2000:]
