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
  size, batch = args.resolution, args.batch
  if args.model == "deeplab":
    model = keras_deeplab.build_deeplab(size, size, alpha=args.alpha, freeze_encoder=True)  # as jaxseg's default
  else:
    model = keras_unet.build_unet(size, alpha=args.alpha)
  model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  y = rng.integers(0, 3, (batch, size, size))
  # Already on the device (as a tf.data / jax pipeline would deliver it): time the model, not the copy.
  x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
  t = time.perf_counter()
  model.train_on_batch(x, y)
  first = time.perf_counter() - t
  train = harness.timed(lambda: model.train_on_batch(x, y), args.steps)
  model.predict_on_batch(x)
  evaluate = harness.timed(lambda: model.predict_on_batch(x), args.steps)
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
