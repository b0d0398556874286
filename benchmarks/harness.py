"""What the benchmarks share: timing loops, a compiled synthetic-data train step, subprocess runners for the
other frameworks, and a description of the machine.

Run from the repository root (benchmarks/ is not installed); it imports the `configs` package beside it.
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxseg.config import upgrade
from jaxseg.runtime import precision


def timed(fn: Callable[[], Any], steps: int, warmup: int = 1) -> dict[str, float]:
  """Median, min and max seconds of `fn()` (which must block until its work is done) after warm-up."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return {"median": float(np.median(times)), "min": float(np.min(times)), "max": float(np.max(times))}


def throughput(fn: Callable[[], Any], finish: Callable[[], Any], steps: int, items: int,
               warmup: int = 2) -> float:
  """Items/s of `steps` back-to-back `fn()` calls with one `finish()` (a device sync) at the end, as a
  training loop that never waits on the host runs."""
  for _ in range(warmup):
    fn()
  finish()
  t = time.perf_counter()
  for _ in range(steps):
    fn()
  finish()
  return steps * items / (time.perf_counter() - t)


MODEL_NAMES = {"unet": "unet", "deeplab": "deeplabv3plus"}
# jaxseg model name -> the Keras twin `keras_runner` builds for it.
KERAS_TWINS = {name: twin for twin, name in MODEL_NAMES.items()}


def prepare(resolution: int, batch: int, dtype: str = "float32", kernels: str = "auto",
            alpha: float = 1.0, model: str = "unet") -> dict[str, Any]:
  """A synthetic-data Run, its fresh state, a random device batch and the train step compiled for it.

  Returns:
    {"run", "tx", "state", "acc", "eval_fn", "host" (numpy batch), "batch" (on device), "eval_batch" (the
     same with weights), "eval_acc", "compiled" (the train step), "compile_s"}.
  """
  from configs import default  # pylint: disable=g-import-not-at-top
  from jaxseg.runtime import parallel  # pylint: disable=g-import-not-at-top
  from jaxseg.training.run import Run  # pylint: disable=g-import-not-at-top

  config = default.get_config()
  config.image_size, config.batch_size, config.eval_batch_size = resolution, batch, batch
  config.model.backbone_weights, config.dtype, config.model.kernels = "none", dtype, kernels
  config.model.backbone, config.model.name = upgrade.mobilenet_v2_name(alpha), MODEL_NAMES[model]
  config.data.source, config.data.synthetic_train_size = "synthetic", max(4 * batch, 256)
  run = Run(config, tempfile.mkdtemp(prefix="jaxseg_bench_"))
  state, tx = run.fresh_state(load_encoder=False)
  jitted = run.jit_steps(tx)
  rng = np.random.default_rng(0)
  host = {"image": rng.integers(0, 255, (batch, resolution, resolution, 3), dtype=np.uint8),
          "mask": rng.integers(0, 3, (batch, resolution, resolution), dtype=np.uint8)}
  batch_dev = parallel.to_global(host, run.batch_sharding)
  acc = run.zero_sums()
  t = time.perf_counter()
  compiled = jitted.train.lower(state, acc, batch_dev).compile()
  compile_s = time.perf_counter() - t
  eval_batch = parallel.to_global({**host, "weight": np.ones(batch, np.float32)}, run.batch_sharding)
  return {"run": run, "tx": tx, "state": state, "acc": acc, "eval_fn": jitted.evaluate, "host": host,
          "batch": batch_dev, "eval_batch": eval_batch, "eval_acc": run.zero_sums(), "compiled": compiled,
          "compile_s": compile_s}


def run_keras(backend: str, resolution: int, batch: int, steps: int, timeout: int,
              dtype: str = "float32", alpha: float = 1.0, model: str = "unet", extra: list[str] = ()
              ) -> dict[str, Any]:
  """Runs `benchmarks.keras_runner` in a subprocess with KERAS_BACKEND=backend; {} plus an error if it fails.
  `extra`: more runner flags (--width, --eval-size H W, --num-classes, --fine-tune)."""
  cmd = [sys.executable, "-m", "benchmarks.keras_runner", "--backend", backend, "--resolution", str(resolution),
         "--batch", str(batch), "--steps", str(steps), "--dtype", dtype, "--alpha", str(alpha), "--model", model,
         *extra]
  return run_json_subprocess(cmd, {"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout)


def run_json_subprocess(cmd: list[str], env: dict[str, str], timeout: int) -> dict[str, Any]:
  """Runs `cmd` with `env` added; its last stdout line starting with "{" as a dict, or {"error": ...}."""
  env = {**os.environ, **env}
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
  except subprocess.TimeoutExpired:
    return {"error": f"timed out after {timeout} s"}
  lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
  if proc.returncode or not lines:
    return _failure(proc)
  return json.loads(lines[-1])


def _failure(proc: subprocess.CompletedProcess) -> dict[str, str]:
  """{"error": the last line a failed subprocess wrote to stderr}."""
  return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}


def fresh_process(module: str, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
  """Runs `python -m module *args --json FILE` in a new process (environment `env`, default this one's) and
  returns what it wrote to FILE, or {"error": its last stderr line}. A measurement in a fresh process
  inherits no heap, compiled executables or thread pools from earlier ones."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "out.json")
    proc = subprocess.run([sys.executable, "-m", module, *args, "--json", path], env=env, capture_output=True,
                          text=True)
    if proc.returncode or not os.path.exists(path):
      return _failure(proc)
    with open(path) as f:
      return json.load(f)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
  """One result from repeated measurements: each number the median over the runs, the rest from the first;
  `repeats_train_step_s` keeps every run's train step."""
  ok = [r for r in runs if "error" not in r]
  if not ok:
    return runs[0]
  out = dict(ok[0])
  for k, v in ok[0].items():
    if isinstance(v, (int, float)) and not isinstance(v, bool) and all(k in r for r in ok):
      out[k] = float(np.median([r[k] for r in ok]))
  out["repeats_train_step_s"] = [r["train_step_s"] for r in ok]
  return out


def turns(jaxseg: dict[str, Any], keras: dict[str, Any]) -> str:
  """Every turn's train step of two `median_of` results: "jaxseg 1.230 / 1.173 s, Keras-TF 1.373 / 1.381 s"."""
  each = lambda r: " / ".join(f"{t:.3f}" for t in r.get("repeats_train_step_s", []))
  return f"jaxseg {each(jaxseg)} s, Keras-TF {each(keras)} s"


def machine() -> str:
  """The accelerator, or the CPU model and core count."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.default_backend() != "cpu":
    return f"{jax.device_count()} x {jax.devices()[0].device_kind}"
  name = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return f"CPU {name}, {os.cpu_count()} cores, " + (" ".join(cpu_flags()) or "no AVX2")


def cpu_flags() -> list[str]:
  """Which of `jaxseg.runtime.precision.CPU_FLAGS` this CPU has; recorded with every CPU result."""
  return list(precision.cpu_flags())
