"""CamVid speed at the config's sizes (configs/camvid.py: its crops and augmentations for the train step, whole
480x360 frames for eval) and the input pipeline's, from the real frames; `--set` changes config fields.

  python -m benchmarks.camvid --root data/camvid [--config configs/camvid.py] [--steps 5] [--json FILE]
      [--dtypes float32 mixed_bfloat16] [--repeats R] [--skip-keras] [--in-process] [--set FIELD=VALUE ...]

Each measurement runs in a fresh process (jaxseg's one per dtype and turn, Keras's one per turn). Prints
seconds per train step, images/s for training and for evaluation, the time of one epoch of the
training split at that rate, and how many times faster the host pipeline (cached arrays -> sharded device
batches) delivers batches than the train step consumes them; then the same model in Keras-TF (the twin of
benchmarks/keras_unet.py or keras_deeplab.py, encoder trained or frozen as the config says) on random data of
the same shapes, and the ratios.
"""

import argparse
import json
import sys
import tempfile
import time

import jax
import numpy as np

from benchmarks.harness import KERAS_TWINS, cpu_flags, fresh_process, machine, median_of, run_keras, timed, turns
from jaxseg.runtime import allocator


def _config(path: str, root: str, fields: list[str]):
  """The config at `path` reading `root`, with `fields` ("batch_size=4", ...) set."""
  from jaxseg.config import files as config_files  # pylint: disable=g-import-not-at-top
  overrides = config_files.parse_overrides(fields, "--set")
  # backbone_weights: speed does not depend on the weights' values
  return config_files.load_config(path, {**overrides, "data.root": root, "model.backbone_weights": "none"})


def bench(config, steps: int) -> dict:
  """jaxseg on the real frames: train step (with the config's augmentations), eval, input pipeline."""
  from jaxseg import data  # pylint: disable=g-import-not-at-top
  from jaxseg.runtime import parallel
  from jaxseg.training.run import Run  # pylint: disable=g-import-not-at-top

  t = time.perf_counter()
  train, val = data.load_split(config, config.data.train_split), data.load_split(config, config.data.eval_split)
  load_s = time.perf_counter() - t
  run = Run(config, tempfile.mkdtemp(prefix="jaxseg_camvid_bench_"))
  state, tx = run.fresh_state(load_encoder=False, total_steps=1000)
  jitted = run.jit_steps(tx, np.ones(config.num_classes, np.float32))
  box = {"state": state, "acc": run.zero_sums(), "eval_acc": run.zero_sums()}
  batch = parallel.to_global(next(data.train_batches(train, config.batch_size, 0, 1)), run.batch_sharding)
  eval_batch = parallel.to_global(next(data.eval_batches(val, config.eval_batch_size)), run.batch_sharding)

  def step():
    box["state"], box["acc"] = jitted.train(box["state"], box["acc"], batch)
    jax.block_until_ready(box["acc"])

  def evaluate():
    box["eval_acc"] = jitted.evaluate(box["state"], box["eval_acc"], eval_batch)
    jax.block_until_ready(box["eval_acc"])

  train_t = timed(step, steps, warmup=1)
  eval_t = timed(evaluate, steps, warmup=1)
  n, t = 0, time.perf_counter()
  for b in parallel.prefetch(data.train_batches(train, config.batch_size, 0, 2), run.batch_sharding):
    jax.block_until_ready(b)
    n += 1
  pipeline_img_s = n * config.batch_size / (time.perf_counter() - t)
  train_img_s = config.batch_size / train_t["median"]
  return {"dtype": config.dtype, "train_input": list(data.train_size(config)),
          "eval_input": list(data.model_size(config)), "train_step_s": train_t["median"],
          "train_img_s": train_img_s,
          "epoch_s": len(train) / train_img_s + len(val) * eval_t["median"] / config.eval_batch_size,
          "eval_img_s": config.eval_batch_size / eval_t["median"], "pipeline_img_s": pipeline_img_s,
          "pipeline_ratio": pipeline_img_s / train_img_s, "load_split_s": load_s,
          "train_frames": len(train), "val_frames": len(val)}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", default="data/camvid", help="CamVid in the SegNet layout")
  parser.add_argument("--config", default="configs/camvid.py")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--dtypes", nargs="+", default=["float32", "mixed_bfloat16"],
                      help="jaxseg precisions to time (config.dtype values)")
  parser.add_argument("--repeats", type=int, default=1,
                      help="time jaxseg (the first dtype) and Keras-TF this many times each, taking turns; "
                           "report medians")
  parser.add_argument("--skip-keras", action="store_true", help="no Keras-TF twin")
  parser.add_argument("--in-process", action="store_true",
                      help="time jaxseg in this process (default: a fresh process per dtype and turn)")
  parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                      help="config fields to change, e.g. batch_size=4 augment.crop_height=128")
  parser.add_argument("--json", default="", help="also write the results here")
  args = parser.parse_args(argv)

  from jaxseg import data  # pylint: disable=g-import-not-at-top
  from jaxseg.errors import UserError  # pylint: disable=g-import-not-at-top
  try:
    config = _config(args.config, args.root, args.set)
  except UserError as e:
    raise SystemExit(f"error: {e}") from None
  out = {"machine": machine(), "cpu_flags": cpu_flags(), "batch": config.batch_size, "repeats": args.repeats,
         "jaxseg": []}

  def measure(dtype: str) -> dict:
    if args.in_process:
      config.dtype = dtype
      return bench(config, args.steps)
    r = fresh_process("benchmarks.camvid", ["--in-process", "--skip-keras", "--root", args.root, "--config",
                                            args.config, "--steps", str(args.steps), "--dtypes", dtype,
                                            "--set", *args.set])
    if "error" in r:
      raise SystemExit(f"jaxseg ({dtype}) failed: {r['error']}")
    return r["jaxseg"][0]

  (th, tw), (eh, ew) = data.train_size(config), data.model_size(config)
  model = KERAS_TWINS[config.model.name]
  extra = ["--width", str(tw), "--eval-size", str(eh), str(ew), "--num-classes", str(config.num_classes)]
  extra += [] if config.freeze_encoder else ["--fine-tune"]
  # jaxseg and Keras-TF take turns, so that a drift in the machine's load falls on both.
  first, keras = [], []
  for _ in range(args.repeats):
    first.append(measure(args.dtypes[0]))
    if not args.skip_keras:
      keras.append(run_keras("tensorflow", th, config.batch_size, args.steps, 3600, model=model, extra=extra))
  out["jaxseg"] = [median_of(first)] + [measure(d) for d in args.dtypes[1:]]
  for r in out["jaxseg"]:
    print(f"jaxseg {r['dtype']}: train step (batch {config.batch_size}, {th}x{tw} crops, augmented on the device) "
          f"{r['train_step_s']:.3f} s = {r['train_img_s']:.2f} img/s; eval at {ew}x{eh} (the {config.image_width}x"
          f"{config.image_height} frames padded) {r['eval_img_s']:.2f} img/s; one epoch ({r['train_frames']} "
          f"train + {r['val_frames']} val frames) {r['epoch_s']:.0f} s; input pipeline "
          f"{r['pipeline_img_s']:.0f} img/s = {r['pipeline_ratio']:.0f}x what training consumes", flush=True)
  if keras:
    k = out["keras_tensorflow"] = median_of(keras)
    if "error" in k:
      print(f"Keras-TF: {k['error']}")
    else:
      if args.repeats > 1:
        print(f"train steps of the {args.repeats} turns: {turns(out['jaxseg'][0], k)} (medians below)")
      print(f"Keras-TF (same model, random data of the same shapes): train step {k['train_step_s']:.3f} s, "
            f"eval {k['eval_img_s']:.2f} img/s")
      for r in out["jaxseg"]:
        print(f"  jaxseg {r['dtype']} / Keras-TF: train step {r['train_step_s'] / k['train_step_s']:.2f}x, "
              f"eval time {k['eval_img_s'] / r['eval_img_s']:.2f}x")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)
  return 0


if __name__ == "__main__":
  allocator.reexec_tuned(["-m", "benchmarks.camvid", *sys.argv[1:]])
  raise SystemExit(main())
