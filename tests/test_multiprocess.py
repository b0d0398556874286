"""Two processes on localhost train the tiny model together (jax.distributed, gloo CPU collectives) and match
one process with the same global batch over the same number of devices (two); their one set of checkpoints is
then restored and evaluated by a single process.

The reference has two devices too because the device count changes the arithmetic, not the maths: the "rbg"
key's per-example draws depend on how the batch is sharded, and over 16 Adam steps (whose first updates are
about lr * sign(gradient)) rounding differences in near-zero gradients grow to ~1e-3 in the loss. One process
with two devices and two processes with one each compute the same program.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

import ml_collections
import numpy as np
import pytest
import tiny
import two_processes
from conftest import REPO, TEST_XLA_FLAGS

from jaxseg.runtime import distributed
from jaxseg.training import loop


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(cmd, env):
  """Starts `cmd` with its output going to temporary files (closed by `_finish`)."""
  out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # noqa: SIM115
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err), out, err


def _finish(proc, out, err):
  """(exit code, stdout, stderr) of a process `_start` started."""
  with out, err:
    proc.wait(timeout=600)
    out.seek(0)
    err.seek(0)
    return proc.returncode, out.read(), err.read()


@pytest.mark.slow
def test_two_processes_train_as_one_and_a_single_process_evaluates_their_checkpoint(tmp_path):
  """Each process trains in memory, then streaming (tests/two_processes.py, through `jaxseg.cli.modes.run`); the
  reference process, started after them, trains both too, with two devices of its own."""
  port = _free_port()
  env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "XLA_FLAGS": TEST_XLA_FLAGS}
  script = [sys.executable, str(REPO / "tests" / "two_processes.py")]
  pair = [_start([*script, str(tmp_path / "two"), f"127.0.0.1:{port}", str(i)], env) for i in range(2)]
  outs = [_finish(*p) for p in pair]  # output goes to files: neither process can stall on a full pipe
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  two_devices = {**env, "XLA_FLAGS": f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count=2"}
  code, _, err = _finish(*_start([*script, str(tmp_path / "one")], two_devices))
  assert code == 0, err[-3000:]
  # the first process reports each run's final figures, the second nothing
  assert outs[0][1].count("Final test pixel accuracy") == 2 and "Final test" not in outs[1][1]
  for pipeline in two_processes.PIPELINES:
    workdir = tmp_path / "two" / pipeline
    two = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    one = [json.loads(line) for line in (tmp_path / "one" / pipeline / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in two] == [h["step"] for h in one] == [8, 16]
    for a, b in zip(two, one):
      for part in ("train", "val"):
        np.testing.assert_allclose(a[part]["loss"], b[part]["loss"], atol=1e-4, err_msg=pipeline)
        assert a[part]["confusion"] == b[part]["confusion"], pipeline
    assert sorted(os.listdir(workdir / "checkpoints")) == ["1", "2"]

    # This process (one device) evaluates the checkpoint the two wrote.
    config = two_processes.config(pipeline)
    scores = loop.evaluate(config, str(workdir))
    assert json.loads((workdir / "eval" / "epoch_2_test.json").read_text())["epoch"] == two_processes.EPOCHS
    np.testing.assert_allclose(scores["loss"], two[-1]["val"]["loss"], rtol=1e-5)


def test_distributed_settings_from_fields_and_environment(monkeypatch):
  config = tiny.tiny_config()
  assert distributed.settings(config) is None  # one process: nothing to join
  config.distributed.enabled = True
  assert distributed.settings(config) == {}  # the cluster's auto-detection
  config.distributed.enabled = False
  config.distributed.coordinator = "localhost:1234"
  with pytest.raises(distributed.DistributedError, match="num_processes"):
    distributed.settings(config)
  monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
  monkeypatch.setenv("JAX_PROCESS_ID", "3")
  assert distributed.settings(config) == {"coordinator_address": "localhost:1234", "num_processes": 4,
                                          "process_id": 3, "coordinator_bind_address": "localhost:1234"}
  config.distributed.coordinator, config.distributed.process_id = "10.1.2.3:80", 0
  assert "coordinator_bind_address" not in distributed.settings(config)  # a real network: JAX's default
  config.distributed.num_processes, config.distributed.process_id = 2, 1
  monkeypatch.setattr(distributed.jax.distributed, "is_initialized", lambda: True)  # as in a second run
  distributed.initialize(tiny.tiny_config())  # one process: nothing to join, nothing to compare
  with pytest.raises(distributed.DistributedError, match=r"as process 0 of 1; config\.distributed asks for "
                                                           r"process 1 of 2"):
    distributed.initialize(config)
  config.distributed.num_processes, config.distributed.process_id = 1, 0
  distributed.initialize(config)  # the cluster it has joined: stays joined
  old = config.to_dict()
  old["distributed"] = False  # as configs saved by earlier versions hold it
  assert distributed.settings(ml_collections.ConfigDict(old)) is None
