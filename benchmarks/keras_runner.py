"""The Keras side of the benchmarks, run in its own process with KERAS_BACKEND set (tensorflow or jax).

Prints one JSON line: train step, first-call (compile) time, eval images/s, single-image predict latency,
for the tutorial U-Net (or the DeepLabV3+ twin) with Keras's default compile settings, on random data of the
benchmark's shape.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def main(argv=None) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--backend", required=True)
  parser.add_argument("--resolution", type=int, required=True)
  parser.add_argument("--width", type=int, help="input width if not --resolution (non-square inputs)")
  parser.add_argument("--eval-size", type=int, nargs=2, metavar=("H", "W"),
                      help="time evaluation at this size (a second model) instead of the training size")
  parser.add_argument("--num-classes", type=int, default=3)
  parser.add_argument("--fine-tune", action="store_true", help="train the encoder too")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--alpha", type=float, default=1.0)
  parser.add_argument("--model", default="unet", choices=["unet", "deeplab"])
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                      help="bfloat16: Keras's mixed_bfloat16 policy (float32 variables)")
  args = parser.parse_args(argv)
  os.environ["KERAS_BACKEND"] = args.backend
  import keras  # pylint: disable=g-import-not-at-top

  from benchmarks import harness, keras_deeplab, keras_unet  # pylint: disable=g-import-not-at-top

  assert keras.backend.backend() == args.backend, keras.backend.backend()
  if args.dtype == "bfloat16":
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
  h, w, batch, c = args.resolution, args.width or args.resolution, args.batch, args.num_classes

  def build(h, w):
    if args.model == "deeplab":  # encoder frozen unless --fine-tune, as jaxseg's default
      return keras_deeplab.build_deeplab(h, w, c, alpha=args.alpha, freeze_encoder=not args.fine_tune)
    return keras_unet.build_unet((h, w), c, alpha=args.alpha, freeze_encoder=not args.fine_tune)

  model = build(h, w)
  model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
  rng = np.random.default_rng(0)
  # Already on the device (as a tf.data / jax pipeline would deliver it): time the model, not the copy.
  images = lambda h, w: keras.ops.convert_to_tensor(rng.uniform(-1, 1, (batch, h, w, 3)).astype(np.float32))
  x, y = images(h, w), keras.ops.convert_to_tensor(rng.integers(0, c, (batch, h, w)))
  t = time.perf_counter()
  model.train_on_batch(x, y)
  first = time.perf_counter() - t
  train = harness.timed(lambda: model.train_on_batch(x, y), args.steps)
  eval_model, eval_x = (build(*args.eval_size), images(*args.eval_size)) if args.eval_size else (model, x)
  eval_model.predict_on_batch(eval_x)
  evaluate = harness.timed(lambda: eval_model.predict_on_batch(eval_x), args.steps)
  one = x[:1]
  latency = harness.timed(lambda: model.predict_on_batch(one), max(args.steps, 5), warmup=2)
  print(json.dumps({"backend": args.backend, "dtype": args.dtype,
                    "jit_compile": str(getattr(model, "jit_compile", "?")),
                    "train_step_s": train["median"], "train_step_min_s": train["min"],
                    "train_step_max_s": train["max"], "compile_s": first, "eval_img_s": batch / evaluate["median"],
                    "eval_batch_s": evaluate["median"], "predict_latency_ms": 1000 * latency["median"],
                    "params": int(model.count_params())}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
