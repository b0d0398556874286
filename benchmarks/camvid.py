"""CamVid speed at full resolution: train step (the config's crops and augmentations), eval at 480x360, and
the input pipeline, from the real frames.

  python -m benchmarks.camvid --root data/camvid [--config configs/camvid.py] [--steps 5] [--json FILE]

Prints seconds per train step, images/s for training and for evaluation, the time of one epoch of the
training split at that rate, and how many times faster the host pipeline (cached arrays -> sharded device
batches) delivers batches than the train step consumes them.
"""

import argparse
import importlib.util
import json
import tempfile
import sys
import time

import jax
import numpy as np

from jaxseg import allocator
from benchmarks.harness import cpu_flags, machine, timed


def _config(path: str, root: str):
  spec = importlib.util.spec_from_file_location("camvid_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.root = root
  config.encoder_weights = "none"  # speed does not depend on the weights' values
  return config


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", default="data/camvid", help="CamVid in the SegNet layout")
  parser.add_argument("--config", default="configs/camvid.py")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--json", default="", help="also write the results here")
  args = parser.parse_args(argv)

  from jaxseg import data, parallel  # pylint: disable=g-import-not-at-top
  from jaxseg.train.run import Run  # pylint: disable=g-import-not-at-top

  config = _config(args.config, args.root)
  t = time.perf_counter()
  train, val = data.load_split(config, config.data.train_split), data.load_split(config, config.data.eval_split)
  load_s = time.perf_counter() - t
  run = Run(config, tempfile.mkdtemp(prefix="jaxseg_camvid_bench_"))
  state, tx = run.fresh_state(load_encoder=False, total_steps=1000)
  jitted = run.jit_steps(tx, np.ones(config.num_classes, np.float32))
  box = {"state": state, "acc": run.zero_sums(), "eval_acc": run.zero_sums()}
  batch = parallel.to_global(next(data.train_batches(train, config.batch_size, 0, 1)), run.data)
  eval_batch = parallel.to_global(next(data.eval_batches(val, config.eval_batch_size)), run.data)

  def step():
    box["state"], box["acc"] = jitted.train(box["state"], box["acc"], batch)
    jax.block_until_ready(box["acc"])

  def evaluate():
    box["eval_acc"] = jitted.eval(box["state"], box["eval_acc"], eval_batch)
    jax.block_until_ready(box["eval_acc"])

  train_t = timed(step, args.steps, warmup=1)
  eval_t = timed(evaluate, args.steps, warmup=1)
  n, t = 0, time.perf_counter()
  for b in parallel.prefetch(data.train_batches(train, config.batch_size, 0, 2), run.data):
    jax.block_until_ready(b)
    n += 1
  pipeline_img_s = n * config.batch_size / (time.perf_counter() - t)
  train_img_s = config.batch_size / train_t["median"]
  out = {"machine": machine(), "cpu_flags": cpu_flags(), "batch": config.batch_size,
         "train_input": list(data.train_size(config)), "eval_input": list(data.stored_size(config)),
         "train_step_s": train_t["median"], "train_img_s": train_img_s,
         "epoch_s": len(train) / train_img_s + len(val) * eval_t["median"] / config.eval_batch_size,
         "eval_img_s": config.eval_batch_size / eval_t["median"], "pipeline_img_s": pipeline_img_s,
         "pipeline_ratio": pipeline_img_s / train_img_s, "load_split_s": load_s}
  print(f"{out['machine']}\n"
        f"train step (batch {config.batch_size}, {out['train_input'][0]}x{out['train_input'][1]} crops): "
        f"{out['train_step_s']:.2f} s = {train_img_s:.2f} img/s\n"
        f"eval at {out['eval_input'][1]}x{out['eval_input'][0]}: {out['eval_img_s']:.2f} img/s\n"
        f"one epoch ({len(train)} train + {len(val)} val frames): {out['epoch_s']:.0f} s\n"
        f"input pipeline: {pipeline_img_s:.0f} img/s, {out['pipeline_ratio']:.0f}x what training consumes")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)
  return 0


if __name__ == "__main__":
  allocator.reexec_tuned(["-m", "benchmarks.camvid", *sys.argv[1:]])
  raise SystemExit(main())
