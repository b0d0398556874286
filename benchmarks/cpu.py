"""CPU speed benchmark: jaxseg against the same model in Keras 3 (TensorFlow and JAX backends), side by side.

  python -m benchmarks.cpu [--resolution 128 224] [--batch 64] [--steps N] [--repeats R] [--json FILE]
      [--skip-keras-jax] [--dtypes float32 mixed_bfloat16] [--skip-breakdown] [--skip-allocator-off]
      [--skip-peak] [--model unet|deeplab] [--in-process]

Everything runs on this machine in one invocation, so the printed ratios compare like with like. Each
measurement runs in a fresh process: Keras's (its backend is fixed per process, default compile settings)
and jaxseg's, one per resolution and dtype; with --repeats, jaxseg and Keras-TF take turns. Besides the ratios it
prints the train step's effect of the allocator setting (the same step timed in a process started without
it), where a step's time goes, and its GFLOP/s against this machine's GEMM peak.
"""

import argparse
import json
import os
import sys
import time
from typing import Any

from benchmarks.harness import cpu_flags, fresh_process, machine, median_of, prepare, run_keras, timed, turns
from jaxseg.runtime import allocator


def bench_jaxseg(resolution: int, batch: int, steps: int, dtype: str = "float32",
                 breakdown: bool = True, model: str = "unet") -> dict[str, Any]:
  """Train step, compile, eval, single-image latency, input pipeline and a per-part breakdown."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from jaxseg import data  # pylint: disable=g-import-not-at-top
  from jaxseg.runtime import parallel

  p = prepare(resolution, batch, dtype, model=model)
  run, tx, host, batch_dev, compiled = p["run"], p["tx"], p["host"], p["batch"], p["compiled"]
  eval_fn, config, compile_s = p["eval_fn"], p["run"].config, p["compile_s"]
  box = {"state": p["state"], "acc": p["acc"], "eval_acc": p["eval_acc"]}

  def step():
    box["state"], box["acc"] = compiled(box["state"], box["acc"], batch_dev)
    jax.block_until_ready(box["acc"])

  train_t = timed(step, steps, warmup=2)
  eval_batch = p["eval_batch"]

  def evaluate():
    box["eval_acc"] = eval_fn(box["state"], box["eval_acc"], eval_batch)  # donated: thread it through
    jax.block_until_ready(box["eval_acc"])

  eval_t = timed(evaluate, steps)
  variables = {"params": box["state"].params, "batch_stats": box["state"].batch_stats}
  predict_one = jax.jit(lambda v, x: jnp.argmax(run.model.apply(v, data.normalize(x)), -1))
  one = jnp.asarray(host["image"][:1])
  latency = timed(lambda: jax.block_until_ready(predict_one(variables, one)), max(steps, 5), warmup=2)
  # Keras's predict_on_batch computes logits only; jaxseg's eval step also scores them (loss, confusion
  # matrix). This is the like-for-like batch inference: logits and class ids.
  whole = jnp.asarray(host["image"])
  infer_t = timed(lambda: jax.block_until_ready(predict_one(variables, whole)), steps, warmup=1)

  split = data.load_split(config, "train")
  n = data.steps_per_epoch(split, batch)
  t = time.perf_counter()
  for b in parallel.prefetch(data.train_batches(split, batch, 0, 1), run.batch_sharding):
    jax.block_until_ready(b)
  pipeline_img_s = n * batch / (time.perf_counter() - t)

  flops = _flops(compiled)
  out = {"train_step_s": train_t["median"], "train_step_min_s": train_t["min"],
         "train_step_max_s": train_t["max"], "compile_s": compile_s, "eval_img_s": batch / eval_t["median"],
         "eval_batch_s": eval_t["median"], "predict_latency_ms": 1000 * latency["median"],
         "infer_img_s": batch / infer_t["median"],
         "pipeline_img_s": pipeline_img_s, "train_img_s": batch / train_t["median"], "dtype": dtype,
         "train_step_gflop": flops / 1e9, "train_gflop_s": flops / 1e9 / train_t["median"],
         "allocator": "hugetlb" if allocator.TUNABLE in os.environ.get("GLIBC_TUNABLES", "") else "default"}
  if breakdown:
    out["breakdown_s"] = _breakdown(run, box["state"], tx, host, steps)
  return out


def _breakdown(run, state, tx, host, steps) -> dict[str, float]:
  """Seconds for the parts of a train step: encoder forward, whole forward, forward+backward, optimizer."""
  import jax  # pylint: disable=g-import-not-at-top

  from jaxseg import data  # pylint: disable=g-import-not-at-top
  from jaxseg.training import metrics  # pylint: disable=g-import-not-at-top

  x = data.normalize(jax.numpy.asarray(host["image"]))
  labels = jax.numpy.asarray(host["mask"], jax.numpy.int32)
  encoder = run.model.encoder_module(parent=None)
  enc_vars = {"params": state.params["encoder"], "batch_stats": state.batch_stats["encoder"]}
  enc = jax.jit(lambda v, x: encoder.apply(v, x))
  variables = {"params": state.params, "batch_stats": state.batch_stats}

  def loss(decoder, v):
    out, _ = run.model.apply({"params": {**decoder, "encoder": v["params"]["encoder"]},
                              "batch_stats": v["batch_stats"]}, x, train=True, mutable=["batch_stats"])
    return metrics.cross_entropy(out, labels).mean()

  decoder = {k: v for k, v in state.params.items() if k != "encoder"}
  fwd = jax.jit(loss)
  fwd_bwd = jax.jit(jax.grad(loss))
  grads = fwd_bwd(decoder, variables)
  full_grads = {**grads, "encoder": jax.tree.map(jax.numpy.zeros_like, state.params["encoder"])}
  opt = jax.jit(lambda g, s, p: tx.update(g, s, p))
  part = lambda f: timed(lambda: jax.block_until_ready(f()), steps)["median"]
  return {"encoder_forward": part(lambda: enc(enc_vars, x)),
          "forward": part(lambda: fwd(decoder, variables)),
          "forward_backward": part(lambda: fwd_bwd(decoder, variables)),
          "optimizer": part(lambda: opt(full_grads, state.opt_state, state.params))}


def _flops(compiled) -> float:
  """FLOPs of one call of a compiled function, by XLA's cost analysis (0 where it has none)."""
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0))
  except Exception:  # pylint: disable=broad-except
    return 0.0


def matmul_peak(steps: int = 3, n: int = 4096) -> dict[str, float]:
  """GFLOP/s of an n^3 GEMM in float32 and with bfloat16 inputs (float32 accumulation): what this machine's
  XLA:CPU reaches at best, the yardstick for a train step's GFLOP/s."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  a = jax.random.normal(jax.random.key(0), (n, n))
  out = {}
  for name, dtype in (("float32", jnp.float32), ("bfloat16_inputs", jnp.bfloat16)):
    x = a.astype(dtype)
    f = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32))
    t = timed(lambda: jax.block_until_ready(f(x)), steps)["median"]
    out[name] = 2 * n ** 3 / t / 1e9
  return out


def jaxseg_process(resolution: int, batch: int, steps: int, dtype: str, model: str, breakdown: bool,
                   allocator_on: bool = True) -> dict[str, Any]:
  """`bench_jaxseg` in a fresh process of its own (a long-lived process ran the 224 px step up to 9% slower
  than a fresh one). allocator_on=False: started without the allocator setting (see jaxseg.runtime.allocator)."""
  args = ["--in-process", "--resolution", str(resolution), "--batch", str(batch), "--steps", str(steps),
          "--dtypes", dtype, "--skip-keras", "--skip-peak", "--skip-allocator-off", "--model", model]
  env = dict(os.environ)
  if not allocator_on:
    env = {k: v for k, v in env.items() if k != "GLIBC_TUNABLES"}
    env["JAXSEG_MALLOC"] = "default"
  out = fresh_process("benchmarks.cpu", args + ([] if breakdown else ["--skip-breakdown"]), env)
  return out if "error" in out else out["jaxseg"]


def _ratio(a, b):
  return a / b if a and b else float("nan")


def _turns(result: dict[str, Any]) -> str:
  """What the medians are of, when jaxseg and Keras-TF took several turns."""
  if result.get("repeats", 1) <= 1:
    return ""
  return (f" (medians of {result['repeats']} turns each; train steps: "
          f"{turns(result['jaxseg'], result['keras_tensorflow'])})")


def report(result: dict[str, Any]) -> str:
  """Human-readable lines with the ratios jaxseg / Keras (below 1 means jaxseg is faster)."""
  j, tf_, kj = result["jaxseg"], result["keras_tensorflow"], result.get("keras_jax", {})
  lines = [f"== {result.get('model', 'unet')} {result['resolution']} px, batch {result['batch']}, {result['machine']}"
           + _turns(result),
           f"jaxseg ({j['dtype']}): train step {j['train_step_s']:.3f} s (min {j['train_step_min_s']:.3f}, max "
           f"{j['train_step_max_s']:.3f}), compile {j['compile_s']:.1f} s, eval {j['eval_img_s']:.1f} img/s, "
           f"batch inference {j['infer_img_s']:.1f} img/s, predict 1 image {j['predict_latency_ms']:.1f} ms, "
           f"pipeline {j['pipeline_img_s']:.0f} img/s "
           f"(train consumes {j['train_img_s']:.1f} img/s)"]
  for name, k in (("Keras-TF", tf_), ("Keras-JAX", kj)):
    if not k:
      continue
    if "error" in k:
      lines.append(f"{name}: {k['error']}")
      continue
    lines.append(f"{name}: train step {k['train_step_s']:.3f} s, eval {k['eval_img_s']:.1f} img/s, predict 1 "
                 f"image {k['predict_latency_ms']:.1f} ms  ->  jaxseg/{name} train step "
                 f"{_ratio(j['train_step_s'], k['train_step_s']):.2f}x, eval time "
                 f"{_ratio(k['eval_img_s'], j['eval_img_s']):.2f}x (batch inference "
                 f"{_ratio(k['eval_img_s'], j['infer_img_s']):.2f}x), "
                 f"predict 1 image {_ratio(j['predict_latency_ms'], k['predict_latency_ms']):.2f}x")
  for extra in result.get("jaxseg_other_dtypes", []):
    if "error" in extra:
      lines.append(f"jaxseg (another dtype): {extra['error']}")
      continue
    lines.append(f"jaxseg ({extra['dtype']}): train step {extra['train_step_s']:.3f} s, eval "
                 f"{extra['eval_img_s']:.1f} img/s, batch inference {extra['infer_img_s']:.1f} img/s, predict 1 "
                 f"image {extra['predict_latency_ms']:.1f} ms"
                 + (f"  ->  {_ratio(extra['train_step_s'], tf_['train_step_s']):.2f}x Keras-TF"
                    if tf_ and "error" not in tf_ else ""))
  off = result.get("allocator_off")
  if off and "error" not in off:
    lines.append(f"allocator setting on/off: train step {j['train_step_s']:.3f} / {off['train_step_s']:.3f} s "
                 f"({_ratio(j['train_step_s'], off['train_step_s']):.2f}x), eval {j['eval_img_s']:.1f} / "
                 f"{off['eval_img_s']:.1f} img/s (jaxseg {j['dtype']}; on: {j['allocator']})")
  elif off:
    lines.append(f"allocator off: {off['error']}")
  peak = result.get("matmul_peak_gflop_s")
  if peak and j.get("train_gflop_s"):
    lines.append(f"train step {j['train_step_gflop']:.0f} GFLOP (XLA cost analysis) at {j['train_gflop_s']:.0f} "
                 f"GFLOP/s = {j['train_gflop_s'] / peak['float32']:.0%} of this machine's float32 GEMM peak "
                 f"({peak['float32']:.0f} GFLOP/s; bf16 inputs {peak['bfloat16_inputs']:.0f})")
  if "breakdown_s" in j:
    lines.append("where a jaxseg train step goes: " + ", ".join(f"{k} {v:.3f} s" for k, v in j["breakdown_s"].items()))
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu", description=__doc__.splitlines()[0])
  parser.add_argument("--resolution", type=int, nargs="+", default=[128, 224])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=5, help="timed steps after warm-up")
  parser.add_argument("--repeats", type=int, default=1,
                      help="time jaxseg and Keras-TF this many times each, taking turns; report medians")
  parser.add_argument("--in-process", action="store_true",
                      help="time jaxseg in this process (default: a fresh process per resolution and dtype)")
  parser.add_argument("--json", help="write the results here")
  parser.add_argument("--skip-keras-jax", action="store_true", help="Keras-JAX is ~30x slower: skip it")
  parser.add_argument("--skip-keras", action="store_true", help="measure jaxseg alone")
  parser.add_argument("--dtypes", nargs="+", default=["float32", "mixed_bfloat16"],
                      help="jaxseg compute dtypes; the first is compared in detail")
  parser.add_argument("--keras-timeout", type=int, default=3600)
  parser.add_argument("--skip-breakdown", action="store_true", help="no per-part timing of the train step")
  parser.add_argument("--skip-allocator-off", action="store_true",
                      help="do not time the train step again in a process without the allocator setting")
  parser.add_argument("--skip-peak", action="store_true", help="do not time the GEMM peak")
  parser.add_argument("--model", default="unet", choices=["unet", "deeplab"],
                      help="the U-Net, or DeepLabV3+ (output stride 16) against its Keras twin")
  args = parser.parse_args(argv)
  machine_name = machine()
  peak = None if args.skip_peak else matmul_peak()
  if args.in_process:
    measure = lambda res, d, breakdown: bench_jaxseg(res, args.batch, args.steps, d, breakdown, args.model)
  else:
    measure = lambda res, d, breakdown: jaxseg_process(res, args.batch, args.steps, d, args.model, breakdown)
  results = []
  for res in args.resolution:
    result = {"resolution": res, "batch": args.batch, "machine": machine_name, "cpu_flags": cpu_flags(),
              "model": args.model, "matmul_peak_gflop_s": peak, "repeats": args.repeats}
    # jaxseg and Keras-TF take turns, so that a change in the machine's load between them (a shared VM's
    # speed drifts by minutes) falls on both; each side's figures are medians over the repeats.
    mine, keras_tf = [], []
    for r in range(args.repeats):
      mine.append(measure(res, args.dtypes[0], r == 0 and not args.skip_breakdown))
      if "error" in mine[-1]:
        raise SystemExit(f"jaxseg at {res} px ({args.dtypes[0]}) failed: {mine[-1]['error']}")
      if not args.skip_keras:
        keras_tf.append(run_keras("tensorflow", res, args.batch, args.steps, args.keras_timeout, model=args.model))
    result["jaxseg"] = median_of(mine)
    result["jaxseg_other_dtypes"] = [measure(res, d, False) for d in args.dtypes[1:]]
    result["keras_tensorflow"] = median_of(keras_tf) if keras_tf else {}
    if not (args.skip_keras or args.skip_keras_jax):
      result["keras_jax"] = run_keras("jax", res, args.batch, max(1, args.steps // 3), args.keras_timeout,
                                      model=args.model)
    if not args.skip_allocator_off:
      off = jaxseg_process(res, args.batch, args.steps, "float32", args.model, breakdown=False, allocator_on=False)
      result["allocator_off"] = off if "error" in off else {k: off[k] for k in ("train_step_s", "eval_img_s",
                                                                                 "allocator")}
    print(report(result), flush=True)
    results.append(result)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results if len(results) > 1 else results[0], f, indent=1)
  return 0


if __name__ == "__main__":
  allocator.reexec_tuned(["-m", "benchmarks.cpu", *sys.argv[1:]])
  sys.exit(main())
