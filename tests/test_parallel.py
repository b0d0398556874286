"""Data parallelism: 8 simulated CPU devices give the 1-device losses, eval metrics and predictions, and
continue a 1-device checkpoint identically; bad batch sizes; per-host shards."""

import json
import os
import subprocess
import sys

import dp_losses
import jax
import numpy as np
import pytest
from conftest import REPO, TEST_XLA_FLAGS

from jaxseg import data
from jaxseg.data import batching


def _run(devices: int, batch_size: int, workdir, mode: str) -> dict:
  env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}",
         "XLA_FLAGS": f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count={devices}"}
  proc = subprocess.run([sys.executable, str(REPO / "tests" / "dp_losses.py"), str(batch_size),
                         str(workdir), mode], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_devices_compute_what_one_device_does_and_refuse_an_odd_batch(tmp_path, capsys):
  if jax.device_count() != 1:
    pytest.skip("compares 8 devices with this process's one")
  dp_losses.main(8, str(tmp_path / "run"), "save")  # here, on this process's one device
  one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  eight = _run(8, 8, tmp_path / "run", "restore")  # restores the 1-device checkpoint
  assert "config.batch_size=6 must be a positive multiple of the device count (8" in eight["batch_error"]
  assert one["devices"] == 1 and eight["devices"] == 8
  assert eight["param_devices"] == 8  # replicated over the mesh, not left on one device
  np.testing.assert_allclose(eight["losses"], one["losses"], atol=1e-4)
  assert abs(one["losses"][0] - one["losses"][2]) > 1e-3  # one fixed batch: the updates moved the loss
  # Eval over a padded split and predict of padded batches: the same on 8 devices.
  assert eight["val_confusion"] == one["val_confusion"] and sum(map(sum, one["val_confusion"])) == 5 * 32 * 32
  np.testing.assert_allclose(eight["val_loss"], one["val_loss"], atol=1e-4)
  assert np.mean(np.array(eight["predicted"]) == np.array(one["predicted"])) > 0.999
  # A checkpoint written on 1 device restores on 8 and continues as the 1-device run did.
  np.testing.assert_allclose(eight["later_losses"], one["later_losses"], atol=1e-4)


def test_each_host_reads_its_own_shard_of_the_global_batch(monkeypatch):
  """Two simulated hosts: their shards are disjoint and together make the one-host batch."""
  split = data.Split(np.arange(12)[:, None, None, None] * np.ones((12, 1, 1, 3), np.uint8),
                               np.zeros((12, 1, 1), np.uint8), [str(i) for i in range(12)])
  ids = lambda: [b["image"][:, 0, 0, 0].tolist() for b in data.train_batches(split, 4, 0, 3)]
  whole = ids()
  monkeypatch.setattr(batching.jax, "process_count", lambda: 2)
  shards = []
  for host in (0, 1):
    monkeypatch.setattr(batching.jax, "process_index", lambda host=host: host)
    shards.append(ids())
  assert len(shards[0]) == len(shards[1]) == len(whole) == 3
  for b, (h0, h1) in enumerate(zip(*shards, strict=True)):
    assert len(h0) == len(h1) == 2 and sorted(h0 + h1) == sorted(whole[b])
