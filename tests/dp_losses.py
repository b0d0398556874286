"""Run in a subprocess by test_parallel.py on all local devices: train steps, eval, predict, checkpoints.

  python tests/dp_losses.py BATCH_SIZE WORKDIR (save|restore)

Trains three steps on one fixed batch (so the losses differ only through the updates), evaluates a padded
5-example split, predicts 5 images, then either saves a checkpoint in WORKDIR and trains two more steps, or
restores WORKDIR's checkpoint (written by another device count) and trains the same two steps. Prints one
JSON line with all the numbers, and what a batch of (devices - 2) raised.
"""

import json
import sys

import jax
import numpy as np
import tiny_config

from jaxseg.data import pipeline, splits
from jaxseg.runtime import parallel
from jaxseg.training import checkpoints
from jaxseg.training.run import Run


def _step(run, train_fn, state, batch):
  acc = run.zero_sums()
  state, acc = train_fn(state, acc, parallel.to_global(batch, run.batch_sharding))
  sums = jax.device_get(acc)
  return state, float(sums["loss_sum"] / sums["weight_sum"])


def main(batch_size: int, workdir: str, mode: str) -> None:
  config = tiny_config.get_config()
  config.batch_size = config.eval_batch_size = batch_size
  error = ""
  try:
    bad = tiny_config.get_config()
    bad.batch_size = jax.device_count() - 2
    Run(bad, workdir + "_unused")
  except parallel.ShardingError as e:
    error = str(e)
  run = Run(config, workdir)
  state, tx = run.fresh_state(load_encoder=False)
  jitted = run.jit_steps(tx)
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 255, (batch_size, 32, 32, 3), dtype=np.uint8),
           "mask": rng.integers(0, 3, (batch_size, 32, 32), dtype=np.uint8)}
  losses = []
  for _ in range(3):
    state, loss = _step(run, jitted.train, state, batch)
    losses.append(loss)
  split = splits.Split(batch["image"][:5], batch["mask"][:5], [str(i) for i in range(5)])
  val = run.evaluate(jitted.evaluate, state, pipeline.InMemory(config, "val", split))
  predicted = run.predict_uint8(jitted.predict, state, split.images)
  if mode == "save":
    checkpoints.save(run.mngr, 3, state.to_dict(), checkpoints.make_meta(config, 3, []))
  else:
    state = run.restore()[0]
  later = []
  for _ in range(2):
    state, loss = _step(run, jitted.train, state, batch)
    later.append(loss)
  shards = len(state.params["up_0"]["bn"]["scale"].sharding.device_set)
  print(json.dumps({"devices": jax.device_count(), "losses": losses, "later_losses": later,
                    "val_confusion": val["confusion"], "val_loss": val["loss"],
                    "predicted": predicted.tolist(), "param_devices": shards, "batch_error": error}))


if __name__ == "__main__":
  main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
