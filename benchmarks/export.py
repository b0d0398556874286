"""Exported models on this CPU: file size and single-image latency of each export format, beside jaxseg's own
jitted prediction of the same function, for a config's model (random weights: speed does not depend on them).

  python -m benchmarks.export [--config configs/r224.py] [--formats saved_model tflite stablehlo]
      [--steps 20] [--json FILE]

Each format is exported from a checkpoint written for the purpose (with the export's own parity check),
reloaded in its runtime (TensorFlow, the LiteRT interpreter with its default XNNPACK delegate,
`jax.export.deserialize`) and timed on one uint8 image, after a warm-up call.
"""

import argparse
import json
import os
import sys
import tempfile

import jax
import numpy as np

from benchmarks.harness import cpu_flags, machine, timed
from jaxseg.runtime import allocator


def _config(path: str):
  from jaxseg.config import files as config_files  # pylint: disable=g-import-not-at-top
  config = config_files.load_config(path)
  config.model.backbone_weights = "none"
  config.dtype = "float32"
  return config


def _checkpoint(config, workdir: str) -> None:
  """A step-1 checkpoint of a freshly initialised model (what `export` restores)."""
  from jaxseg.training import checkpoints  # pylint: disable=g-import-not-at-top
  from jaxseg.training.run import Run  # pylint: disable=g-import-not-at-top
  run = Run(config, workdir)
  state, _ = run.fresh_state(load_encoder=False)
  checkpoints.save(run.mngr, 1, jax.device_get(state.to_dict()), checkpoints.make_meta(config, 1, []))
  run.mngr.close()


def main(argv=None) -> int:
  from jaxseg import data  # pylint: disable=g-import-not-at-top
  from jaxseg.inference import export as deploy
  from jaxseg.inference import predict
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/r224.py")
  parser.add_argument("--formats", nargs="+", default=list(deploy.FORMATS))
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--json", default="")
  args = parser.parse_args(argv)

  config = _config(args.config)
  workdir = tempfile.mkdtemp(prefix="jaxseg_export_bench_")
  _checkpoint(config, workdir)
  size = data.stored_size(config)
  image = np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8)
  predictor = predict.Predictor(workdir, config)
  fn = jax.jit(deploy.serving_function(predictor.run.model, predictor.variables))
  own = timed(lambda: jax.block_until_ready(fn(image)), args.steps, warmup=2)
  out = {"machine": machine(), "cpu_flags": cpu_flags(), "config": args.config, "model": config.model.name,
         "input": [1, *size, 3], "jaxseg_predict_ms": 1000 * own["median"], "formats": {}}
  print(f"{config.model.name} at {size[0]}x{size[1]}, one image, {machine()}")
  print(f"  jaxseg (jitted, same function): {out['jaxseg_predict_ms']:.1f} ms")
  for fmt in args.formats:
    result = deploy.export(workdir, fmt, output=os.path.join(workdir, "export", fmt), config=config)
    run = deploy.load_exported(result.output, fmt)
    t = timed(lambda: run(image), args.steps, warmup=2)
    out["formats"][fmt] = {"size_bytes": result.size_bytes, "latency_ms": 1000 * t["median"],
                           "latency_min_ms": 1000 * t["min"], "check": result.check}
    print(f"  {fmt}: {result.size_bytes / 2**20:.1f} MiB, {1000 * t['median']:.1f} ms "
          f"({1000 * t['median'] / out['jaxseg_predict_ms']:.2f}x jaxseg); check max |diff| "
          f"{result.check['logits_max_abs_diff']:.1e}, classes {100 * result.check['class_agreement']:.2f}%",
          flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)
  return 0


if __name__ == "__main__":
  allocator.reexec_tuned(["-m", "benchmarks.export", *sys.argv[1:]])
  raise SystemExit(main())
