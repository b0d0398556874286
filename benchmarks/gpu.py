"""Accelerator throughput: jaxseg against Keras-JAX and the same model in PyTorch, on one card, and the
fraction of the card's memory-bandwidth roofline that jaxseg reaches.

  python -m benchmarks.gpu [--resolution 128 224] [--batch 256] [--steps 20] [--dtypes float32 bfloat16]
      [--impls xla gemm] [--torch eager compiled] [--skip-keras-jax] [--json FILE]

Images/s are measured as a training loop runs: `steps` back-to-back steps on a device-resident batch, one
sync at the end. Keras-JAX and PyTorch run in subprocesses (each framework takes the card's memory for
itself). Runs on CPU too (small settings), which is how the tests keep it working without a GPU.
"""

import argparse
import json
import os
import sys
from typing import Any

from benchmarks import harness

# A first estimate of the memory-bandwidth roofline (~61 MB of traffic per image): ~55k training images/s at
# 128 px, bf16, on an H100. Traffic per image grows with the pixel count, so it scales with (128 / res)^2.
REFERENCE_ROOFLINE_128 = 55_000.0

TORCH_VARIANTS = {  # name -> bench_torch flags
    "eager": [],
    "compiled": ["--compile", "--channels-last"],
}


def measure_bandwidth(megabytes: int = 1024, repeats: int = 10) -> float:
  """Bytes/s that one elementwise XLA kernel streams (read + write) through the default device's memory."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  x = jnp.ones((megabytes * 2**20 // 4,), jnp.float32)
  add = jax.jit(lambda x: x + 1.0)
  box = [add(x)]
  return harness.throughput(lambda: box.__setitem__(0, add(box[0])), lambda: box[0].block_until_ready(),
                          repeats, 2 * x.nbytes)


def _cost(compiled) -> dict[str, float]:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return {"flops": float(cost.get("flops", 0.0)), "bytes": float(cost.get("bytes accessed", 0.0))}


def bench_jaxseg(resolution: int, batch: int, steps: int, dtype: str, impl: str, alpha: float) -> dict[str, Any]:
  """Train and inference images/s, compile time, and XLA's flop and byte counts per training image."""
  import jax  # pylint: disable=g-import-not-at-top

  p = harness.prepare(resolution, batch, dtype, impl, alpha)
  compiled, data, eval_data = p["compiled"], p["batch"], p["eval_batch"]
  box = {"state": p["state"], "acc": p["acc"], "eval": p["eval_acc"]}
  cost = _cost(compiled)

  def train_step():
    box["state"], box["acc"] = compiled(box["state"], box["acc"], data)

  train_img_s = harness.throughput(train_step, lambda: jax.block_until_ready(box["acc"]), steps, batch)

  def eval_step():
    box["eval"] = p["eval_fn"](box["state"], box["eval"], eval_data)

  eval_img_s = harness.throughput(eval_step, lambda: jax.block_until_ready(box["eval"]), steps, batch)
  return {"dtype": dtype, "impl": impl, "train_img_s": train_img_s, "eval_img_s": eval_img_s,
          "compile_s": p["compile_s"], "flops_per_image": cost["flops"] / batch,
          "bytes_per_image": cost["bytes"] / batch}


def bench_torch(variant: str, resolution: int, batch: int, steps: int, dtype: str, alpha: float,
                timeout: int) -> dict[str, Any]:
  cmd = [sys.executable, "-m", "benchmarks.torch_runner", "--resolution", str(resolution), "--batch", str(batch),
         "--steps", str(steps), "--alpha", str(alpha), *TORCH_VARIANTS[variant]]
  if dtype == "bfloat16":
    cmd.append("--bf16")
  return {"variant": variant, "dtype": dtype, **harness.run_json_subprocess(cmd, {}, timeout)}


def roofline(result: dict[str, Any], bandwidth: float) -> dict[str, float]:
  """Roofline images/s for a jaxseg entry: measured bandwidth over XLA's bytes per image, and the first
  estimate (`REFERENCE_ROOFLINE_128`)."""
  out = {"reference_img_s": REFERENCE_ROOFLINE_128 * (128 / result["resolution"]) ** 2}
  out["reference_fraction"] = result["train_img_s"] / out["reference_img_s"]
  if result.get("bytes_per_image"):
    out["xla_bytes_img_s"] = bandwidth / result["bytes_per_image"]
    out["xla_bytes_fraction"] = result["train_img_s"] / out["xla_bytes_img_s"]
  return out


def report(entry: dict[str, Any]) -> str:
  """One line per measurement, each with its ratio to the fastest jaxseg train throughput of its dtype."""
  lines = [f"== {entry['resolution']} px, batch {entry['batch']}, {entry['machine']}, "
           f"measured bandwidth {entry['bandwidth_gb_s']:.0f} GB/s"]
  best = {}
  for j in entry["jaxseg"]:
    best[j["dtype"]] = max(best.get(j["dtype"], 0.0), j["train_img_s"])
  for j in entry["jaxseg"]:
    r = j["roofline"]
    lines.append(f"jaxseg {j['dtype']:8s} impl={j['impl']:4s}: train {j['train_img_s']:9.1f} img/s, eval "
                 f"{j['eval_img_s']:9.1f} img/s, compile {j['compile_s']:.1f} s, "
                 f"{j['flops_per_image'] / 1e9:.2f} GFLOP and {j['bytes_per_image'] / 1e6:.1f} MB per image; "
                 f"roofline (XLA bytes) {r.get('xla_bytes_img_s', float('nan')):.0f} img/s -> "
                 f"{100 * r.get('xla_bytes_fraction', float('nan')):.1f}%, first estimate "
                 f"{r['reference_img_s']:.0f} img/s -> {100 * r['reference_fraction']:.1f}%")
  for name, k in [("Keras-JAX", k) for k in entry.get("keras_jax", [])] + [
      (f"PyTorch {k.get('variant')}", k) for k in entry.get("torch", [])]:
    if "error" in k:
      lines.append(f"{name} {k['dtype']}: {k['error']}")
      continue
    train_img_s = k.get("train_img_s") or entry["batch"] / k["train_step_s"]
    lines.append(f"{name} {k['dtype']}: train {train_img_s:9.1f} img/s, eval {k['eval_img_s']:9.1f} img/s, "
                 f"first step {k['compile_s']:.1f} s  ->  best jaxseg / {name}: "
                 f"{best.get(k['dtype'], float('nan')) / train_img_s:.2f}x")
  return "\n".join(lines)


def _worker(args) -> dict[str, Any]:
  """One measurement in this process: the card is this process's alone."""
  if args.worker == "bandwidth":
    machine = harness.machine()
    return {"bandwidth": measure_bandwidth(args.bandwidth_mb), "machine": machine}
  return bench_jaxseg(args.resolution[0], args.batch, args.steps, args.dtypes[0], args.impls[0], args.alpha)


def _in_subprocess(argv: list[str], timeout: int) -> dict[str, Any]:
  return harness.run_json_subprocess([sys.executable, "-m", "benchmarks.gpu", *argv], {}, timeout)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
  parser.add_argument("--resolution", type=int, nargs="+", default=[128, 224])
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps", type=int, default=20, help="timed steps after warm-up")
  parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
  parser.add_argument("--impls", nargs="+", default=["xla", "gemm"], choices=["xla", "gemm"],
                      help="jaxseg conv formulations to measure (see jaxseg.ops.dispatch)")
  parser.add_argument("--torch", nargs="*", default=list(TORCH_VARIANTS), choices=list(TORCH_VARIANTS),
                      help="PyTorch variants (none: skip PyTorch)")
  parser.add_argument("--skip-keras-jax", action="store_true")
  parser.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width (1.0 is the product's)")
  parser.add_argument("--bandwidth-mb", type=int, default=1024, help="array size of the bandwidth probe")
  parser.add_argument("--timeout", type=int, default=1800, help="seconds per subprocess")
  parser.add_argument("--json", help="write the results here")
  parser.add_argument("--worker", choices=["jaxseg", "bandwidth"], help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    print(json.dumps(_worker(args)), flush=True)
    return 0
  # Every measurement runs in its own process, so no framework holds the card's memory while another runs.
  probe = _in_subprocess(["--worker", "bandwidth", "--bandwidth-mb", str(args.bandwidth_mb)], args.timeout)
  if "error" in probe:
    print(f"bench_gpu: the bandwidth probe failed: {probe['error']}", file=sys.stderr)
    return 1
  entries = []

  # Saved after every measurement: a run cut short by a time limit keeps what it measured.
  def save(entry: dict[str, Any], kind: str, item: dict[str, Any]):
    entry[kind].append(item)
    rate = item.get("train_img_s") or (args.batch / item["train_step_s"] if "train_step_s" in item else None)
    print(f"  {kind} {item.get('dtype')} {item.get('impl') or item.get('variant') or ''}: "
          + (f"{rate:.1f} train img/s" if rate else item.get("error", "?")), flush=True)
    if args.json:
      with open(args.json, "w") as f:
        json.dump(entries, f, indent=1)

  for res in args.resolution:
    entry = {"resolution": res, "batch": args.batch, "machine": probe["machine"],
             "bandwidth_gb_s": probe["bandwidth"] / 1e9, "jaxseg": [], "keras_jax": [], "torch": []}
    entries.append(entry)
    common = ["--resolution", str(res), "--batch", str(args.batch), "--steps", str(args.steps),
              "--alpha", str(args.alpha)]
    for dtype in args.dtypes:
      for impl in args.impls:
        j = _in_subprocess(["--worker", "jaxseg", *common, "--dtypes", dtype, "--impls", impl], args.timeout)
        if "error" in j:
          print(f"jaxseg {dtype} impl={impl}: {j['error']}", file=sys.stderr)
          continue
        j["roofline"] = roofline({**j, "resolution": res}, probe["bandwidth"])
        save(entry, "jaxseg", j)
      if not args.skip_keras_jax:
        save(entry, "keras_jax", {"dtype": dtype, **harness.run_keras(
            "jax", res, args.batch, max(3, args.steps // 4), args.timeout, dtype, args.alpha)})
      for variant in args.torch:
        save(entry, "torch", bench_torch(variant, res, args.batch, args.steps, dtype, args.alpha, args.timeout))
    print(report(entry), flush=True)
  return 0


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  sys.exit(main())
