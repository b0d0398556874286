"""One training per workdir: a second training is refused while the first runs (two real processes), readers
are not; a lock left by a process that is gone is taken over; one from another host is respected."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import tiny
from conftest import REPO

from jaxseg.training import loop, workdir_lock


def _wait_for(predicate, timeout: float, proc=None) -> None:
  deadline = time.monotonic() + timeout
  while not predicate():
    assert proc is None or proc.poll() is None, proc.communicate()[0][-3000:]
    assert time.monotonic() < deadline, "timed out"
    time.sleep(0.2)


def test_a_second_training_is_refused_while_the_first_runs_and_readers_are_not(tmp_path):
  workdir = str(tmp_path / "run")
  first = subprocess.Popen([sys.executable, "main.py", "--config", "tests/tiny_config.py", "--workdir", workdir,
                            "--config.num_epochs=100000", "--config.keep_checkpoints=100000"], cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
  try:
    lock = os.path.join(workdir, workdir_lock.LOCK_NAME)
    _wait_for(lambda: os.path.isdir(os.path.join(workdir, "checkpoints", "1")), 240, first)
    with open(lock, encoding="utf-8") as f:
      holder = json.load(f)
    assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
    second = tiny.run_cli("--workdir", workdir, "--config.num_epochs=3")
    assert second.returncode == 2
    assert "Traceback" not in second.stdout + second.stderr
    message = [line for line in (second.stdout + second.stderr).splitlines() if "in use by a training" in line]
    assert len(message) == 1 and f"(PID {first.pid})" in message[0] and holder["started"] in message[0], message
    reader = tiny.run_cli("--workdir", workdir, "--mode", "eval", "--epoch", "1")
    assert reader.returncode == 0, reader.stderr[-3000:]
    assert first.poll() is None
  finally:
    first.send_signal(signal.SIGTERM)  # stops after the step it is in, saving, and lets go of the lock
    out = first.communicate(timeout=120)[0]
  assert first.returncode == 0, out[-3000:]
  assert not os.path.exists(lock)


def _write_lock(workdir, **record) -> str:
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, workdir_lock.LOCK_NAME)
  with open(path, "w", encoding="utf-8") as f:
    f.write(record.pop("raw") if "raw" in record else json.dumps(record))
  return path


def _gone_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


@pytest.mark.parametrize("record,said", [
    ({"host": socket.gethostname(), "pid": None, "started": "2026-01-01T00:00:00"}, "no longer runs"),
    ({"host": socket.gethostname(), "pid": os.getpid(), "process_start": "1", "started": "x"}, "no longer runs"),
    ({"raw": "{\"host\": \"trunc"}, "held no readable record"),
], ids=["exited", "pid_reused", "garbled"])
def test_a_lock_whose_training_is_gone_is_taken_over(tmp_path, capsys, record, said):
  workdir = str(tmp_path / "run")
  if "pid" in record and record["pid"] is None:
    record["pid"] = _gone_pid()
  lock = _write_lock(workdir, **record)
  loop.train_and_evaluate(tiny.tiny_config(), workdir)
  out = capsys.readouterr().out
  assert f"Taking over {lock}: " in out and said in out
  assert not os.path.exists(lock)  # released at the end


def test_a_lock_of_another_host_or_a_live_process_is_respected(tmp_path):
  workdir = str(tmp_path / "run")
  lock = _write_lock(workdir, host="elsewhere", pid=1234, started="2026-11-30T09:00:00+00:00")
  with pytest.raises(workdir_lock.WorkdirBusy, match=r"in use by a training started 2026-11-30T09:00:00\+00:00 "
                     r"on elsewhere \(PID 1234\)"):
    loop.train_and_evaluate(tiny.tiny_config(), workdir)
  _write_lock(workdir, host=socket.gethostname(), pid=os.getppid(), started="now")  # alive, start unknown
  with pytest.raises(workdir_lock.WorkdirBusy, match="in use by a training"):
    loop.train_and_evaluate(tiny.tiny_config(), workdir)
  assert os.path.exists(lock) and not os.path.exists(os.path.join(workdir, "checkpoints"))
