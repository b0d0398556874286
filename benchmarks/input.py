"""Input pipeline speed and memory on an on-disk dataset it writes: time to the first batch, steady frames/s
and peak memory, per worker count, at N and 10 x N frames; beside the train step's own rate.

  python -m benchmarks.input [--frames 40] [--size 1024x512] [--format jpeg] [--workers 0 1 2]
      [--batch 8] [--batches 12] [--crop 512x1024] [--scale 2048x1024] [--train-step] [--json FILE]

Each measurement runs in a fresh process: it opens the training split through `data.open_split` ("stream":
Grain workers decoding, rescaling and cropping; "memory": every frame decoded and held first) and reads
batches. Peak memory is the largest sum of resident memory over the process and its workers, sampled every
20 ms. With --train-step it also times one train step of the config's model on batches of the crop size, so
that the table says how many workers keep that step fed.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np

from benchmarks.harness import fresh_process, machine


def write_dataset(root: str, frames: int, size: tuple[int, int], fmt: str, num_classes: int = 19) -> None:
  """`frames` photo-like images (smooth colour fields with noise) of `size` (width, height) in `fmt` and
  label PNGs, listed in train.txt ("lists" layout); files already there are reused."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.join(root, "img"), exist_ok=True)
  rng = np.random.default_rng(0)
  w, h = size
  lines = []
  for i in range(frames):
    image, label = f"img/{i}.{'jpg' if fmt == 'jpeg' else 'png'}", f"img/{i}_label.png"
    lines.append(f"{image} {label}\n")
    if os.path.exists(os.path.join(root, label)):
      continue
    coarse = rng.integers(0, 255, (h // 32 + 1, w // 32 + 1, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR), np.int16)
    photo = np.clip(smooth + rng.integers(-12, 13, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(os.path.join(root, image), quality=90)
    blocks = rng.integers(0, num_classes, (h // 64 + 1, w // 64 + 1), dtype=np.uint8)
    Image.fromarray(blocks).resize((w, h), Image.NEAREST).save(os.path.join(root, label))
  with open(os.path.join(root, "train.txt"), "w") as f:
    f.write("".join(lines))


class PeakMemory:
  """The largest resident memory of this process plus its children, sampled in a thread."""

  def __init__(self, every_s: float = 0.02):
    import psutil  # pylint: disable=g-import-not-at-top
    self.proc, self.every_s, self.peak, self._stop = psutil.Process(), every_s, 0, threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()

  def _run(self):
    while not self._stop.is_set():
      total = 0
      for p in [self.proc, *self.proc.children(recursive=True)]:
        with contextlib.suppress(Exception):  # a worker that just ended
          total += p.memory_info().rss
      self.peak = max(self.peak, total)
      time.sleep(self.every_s)

  def stop(self) -> int:
    self._stop.set()
    self._thread.join()
    return self.peak


def _config(root: str, pipeline: str, workers: int, batch: int, crop, scale, stored):
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.data.source, config.data.root, config.data.layout = "folder", root, "lists"
  config.data.train_split = config.data.eval_split = "train"
  config.num_classes = 19
  config.data.class_names = tuple(f"c{i}" for i in range(19))
  config.data.class_colors = tuple((i, i, i) for i in range(19))
  config.data.class_map = {}
  config.data.pipeline, config.data.workers, config.batch_size = pipeline, workers, batch
  config.image_height, config.image_width = stored
  config.augment.crop_height, config.augment.crop_width = crop
  if pipeline == "stream" and min(scale) > 0:
    config.data.scale = scale
  config.augment.scale_min, config.augment.scale_max = 0.5, 2.0
  config.model.name, config.model.backbone_weights, config.freeze_encoder = "deeplabv3plus", "none", False
  return config


def measure(root: str, pipeline: str, workers: int, batch: int, batches: int, crop, scale, stored) -> dict:
  """Seconds to list the split and to the first batch, frames/s after it, peak resident memory."""
  from jaxseg import data  # pylint: disable=g-import-not-at-top
  config = _config(root, pipeline, workers, batch, crop, scale, stored)
  memory = PeakMemory()
  start = time.perf_counter()
  split = data.open_split(config, "train")
  listed = time.perf_counter() - start
  it = (b for epoch in range(1, 1000) for b in split.train_batches(batch, seed=0, epoch=epoch))
  next(it)
  first = time.perf_counter() - start
  t = time.perf_counter()
  n = 0
  for _ in range(batches):
    next(it)
    n += batch
  rate = n / (time.perf_counter() - t)
  del it
  return {"pipeline": pipeline, "workers": workers, "frames": len(split), "listed_s": listed,
          "first_batch_s": first, "frames_per_s": rate, "peak_rss_gb": memory.stop() / 2**30}


def train_step_rate(crop, batch: int, steps: int = 3) -> float:
  """Images/s of the DeepLabV3+ train step (encoder fine-tuned, fp32) on `crop`-sized batches."""
  import jax  # pylint: disable=g-import-not-at-top

  from jaxseg.runtime import parallel  # pylint: disable=g-import-not-at-top
  from jaxseg.training.run import Run  # pylint: disable=g-import-not-at-top
  config = _config("", "memory", 0, batch, crop, (0, 0), crop)
  config.data.source, config.dtype = "synthetic", "float32"
  run = Run(config, tempfile.mkdtemp(prefix="jaxseg_input_bench_"))
  state, tx = run.fresh_state(load_encoder=False, total_steps=100)
  jitted = run.jit_steps(tx)
  rng = np.random.default_rng(0)
  host = {"image": rng.integers(0, 255, (batch, *crop, 3), dtype=np.uint8),
          "mask": rng.integers(0, 19, (batch, *crop), dtype=np.uint8)}
  box = {"state": state, "acc": run.zero_sums()}
  device = parallel.to_global(host, run.batch_sharding)
  box["state"], box["acc"] = jitted.train(box["state"], box["acc"], device)  # compile
  jax.block_until_ready(box["acc"])
  t = time.perf_counter()
  for _ in range(steps):
    box["state"], box["acc"] = jitted.train(box["state"], box["acc"], device)
  jax.block_until_ready(box["acc"])
  return steps * batch / (time.perf_counter() - t)


def _pair(text: str) -> tuple[int, int]:
  a, b = text.lower().split("x")
  return int(a), int(b)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--frames", type=int, default=40, help="N; the dataset is measured at N and 10 x N")
  p.add_argument("--size", default="1024x512", help="frame width x height")
  p.add_argument("--format", choices=("jpeg", "png"), default="jpeg")
  p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--batches", type=int, default=12, help="batches timed after the first")
  p.add_argument("--crop", default="256x512", help="training crop, height x width")
  p.add_argument("--scale", default="1024x512", help="base scale, long x short side (0x0: resize to --stored)")
  p.add_argument("--stored", default="", help="stored size, height x width (default: the crop); the memory "
                 "pipeline, and the stream without a scale, resize to it")
  p.add_argument("--memory", action="store_true", help="also the in-memory pipeline")
  p.add_argument("--train-step", action="store_true", help="also the train step's rate at the crop")
  p.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "jaxseg_input_bench"))
  p.add_argument("--json", default="")
  p.add_argument("--child", default="", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  crop, scale = _pair(args.crop), _pair(args.scale)
  stored = _pair(args.stored) if args.stored else crop
  if args.child:  # one measurement, written to --json
    kind, root, workers = args.child.split(",")
    out = (measure(root, kind, int(workers), args.batch, args.batches, crop, scale, stored) if kind != "step"
           else {"train_step_img_s": train_step_rate(crop, args.batch)})
    with open(args.json, "w") as f:
      json.dump(out, f)
    return 0
  results = {"machine": machine(), "args": vars(args), "runs": []}
  shared = ["--batch", str(args.batch), "--batches", str(args.batches), "--crop", args.crop, "--scale", args.scale,
            "--stored", args.stored]
  for n in (args.frames, 10 * args.frames):
    root = os.path.join(args.dir, f"{args.size}_{args.format}_{n}")
    write_dataset(root, n, _pair(args.size), args.format)
    kinds = [("stream", w) for w in args.workers] + ([("memory", 0)] if args.memory else [])
    for kind, workers in kinds:
      r = fresh_process("benchmarks.input", [*shared, "--child", f"{kind},{root},{workers}"])
      if "error" in r:
        print(f"{n} frames {kind} workers {workers}: {r['error']}")
        continue
      results["runs"].append(r)
      print(f"{n:6d} frames  {kind:6s} workers {workers}: listed {r['listed_s']:.2f} s, first batch "
            f"{r['first_batch_s']:.2f} s, {r['frames_per_s']:.1f} frames/s, peak {r['peak_rss_gb']:.2f} GB",
            flush=True)
  if args.train_step:
    step = fresh_process("benchmarks.input", [*shared, "--child", "step,,0"]).get("train_step_img_s", float("nan"))
    results["train_step_img_s"] = step
    print(f"train step (DeepLabV3+, fp32, {crop[0]}x{crop[1]} crops, batch {args.batch}): {step:.2f} img/s")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
