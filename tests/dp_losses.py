"""Run in a subprocess by test_parallel.py: three train steps of the tiny model on all local devices.

Prints one JSON line {"devices": n, "losses": [...], "batch_error": what a batch of n - 2 raised}.
"""

import json
import sys

import jax
import numpy as np

import tiny_config
from jaxseg import parallel
from jaxseg.train.run import Run


def main(batch_size: int) -> None:
  config = tiny_config.get_config()
  config.batch_size = config.eval_batch_size = batch_size
  error = ""
  try:
    bad = tiny_config.get_config()
    bad.batch_size = jax.device_count() - 2
    Run(bad, "/tmp/unused_dp_workdir")
  except parallel.ShardingError as e:
    error = str(e)
  run = Run(config, "/tmp/unused_dp_workdir")
  state, tx = run.fresh_state(load_encoder=False)
  train_fn = run.jit_steps(tx).train
  rng = np.random.default_rng(0)
  losses = []
  for _ in range(3):
    batch = {"image": rng.integers(0, 255, (batch_size, 32, 32, 3), dtype=np.uint8),
             "mask": rng.integers(0, 3, (batch_size, 32, 32), dtype=np.uint8)}
    acc = run.zero_sums()
    state, acc = train_fn(state, acc, parallel.to_global(batch, run.data))
    sums = jax.device_get(acc)
    losses.append(float(sums["loss_sum"] / sums["weight_sum"]))
  shards = len(state.params["up_0"]["bn"]["scale"].sharding.device_set)
  print(json.dumps({"devices": jax.device_count(), "losses": losses, "param_devices": shards,
                    "batch_error": error}))


if __name__ == "__main__":
  main(int(sys.argv[1]))
