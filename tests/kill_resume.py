"""SIGKILL a training run at chosen points, two of them in the middle of a checkpoint write, and resume it.

  python tests/kill_resume.py [--workdir DIR]

Each run kills itself where the code gets to (`JAXSEG_FAULT`, jaxseg/runtime/faults.py), never after a sleep, so a
busy machine changes nothing: every kill lands where it is meant to. The next run must resume from the newest
complete checkpoint (never the cut-short one), and the finished run must end with the metrics of an
uninterrupted run with the same seed. The run reads a folder dataset of pictures of several sizes through the
streaming pipeline (two worker processes, random rescaling and crops relative to a base scale) and checkpoints
inside epochs as well as after them. Prints a JSON summary; exits non-zero on any violation.
test_reliability.py runs `check` with the uninterrupted run trained in its own process.
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 16 examples at batch 2: 8 steps an epoch; a mid-epoch checkpoint every 3 steps.
SETTINGS = {"data.source": "folder", "data.train_split": "train", "data.eval_split": "val",
            "data.pipeline": "stream", "data.workers": 2, "data.scale": (48, 32), "augment.scale_min": 0.5,
            "augment.scale_max": 2.0, "checkpoint_every_steps": 3, "log_every_steps": 1, "data.class_map": {},
            "data.ignore_label": 9, "num_classes": 4, "data.class_names": ("a", "b", "c", "d"), "num_epochs": 2,
            "data.class_colors": ((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255))}

# (fault, what the run must say when it starts, the complete checkpoints after it, the mid-epoch ones).
PLAN = [
    ("kill@mid_epoch_save=6", "Starting a new run", [], [3]),  # the mid-epoch save at step 6 cut short
    ("kill@save=1", "at epoch 1, batch 3 of 8.", [], [6]),  # epoch 1's checkpoint cut short after its files
    ("kill@step=13", "at epoch 1, batch 6 of 8.", [1], [12]),  # resumed mid-epoch; killed in epoch 2
    ("", "at epoch 2, batch 4 of 8.", [1, 2], []),
]


def write_folder_dataset(root: str) -> None:
  """16 training and 4 validation pictures of three sizes, labels 0-3 and 9, in the "lists" layout."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for split, n in (("train", 16), ("val", 4)):
    os.makedirs(os.path.join(root, split), exist_ok=True)
    lines = []
    for i in range(n):
      h, w = ((20, 30), (36, 24), (40, 56))[i % 3]
      Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(os.path.join(root, split, f"{i}.png"))
      Image.fromarray(rng.choice([0, 1, 2, 3, 9], (h, w)).astype(np.uint8)).save(
          os.path.join(root, split, f"{i}_mask.png"))
      lines.append(f"{split}/{i}.png {split}/{i}_mask.png\n")
    with open(os.path.join(root, f"{split}.txt"), "w") as f:
      f.write("".join(lines))


def settings(root: str) -> dict:
  """The tiny config's overrides of the run (the folder dataset under `root`)."""
  return {**SETTINGS, "data.root": os.path.join(root, "data")}


def _steps(d: str) -> list[int]:
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def _partial(d: str) -> list[str]:
  return [n for n in os.listdir(d) if "tmp" in n] if os.path.isdir(d) else []


def run_main(workdir: str, overrides: dict, fault: str = "") -> subprocess.CompletedProcess:
  """`main.py` on the tiny config with `overrides` in a fresh process (and process group), `JAXSEG_FAULT=fault`.

  A killed run's input workers outlive it, as they would a crashed machine's processes: they are killed with
  its process group once it has ended (they hold no pipe of ours: the output goes through files)."""
  cmd = [sys.executable, "main.py", "--config", "tests/tiny_config.py", "--workdir", workdir,
         *(f"--config.{k}={v}" for k, v in overrides.items())]
  env = {**os.environ, "PYTHONPATH": REPO, "JAXSEG_FAULT": fault}
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, start_new_session=True)
    try:
      proc.wait(timeout=900)
    finally:
      with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
    out.seek(0)
    err.seek(0)
    return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


def final_metrics(workdir: str) -> dict:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return json.loads(f.read().splitlines()[-1])


def check(workdir: str, reference: dict) -> dict:
  """Runs the plan in `workdir` (killing each run at its fault point) and compares the finished run's last
  metrics with `reference` (an uninterrupted run's); returns a summary with a list of "problems"."""
  overrides = settings(os.path.dirname(workdir))
  problems, events = [], []
  ckpt, mid = os.path.join(workdir, "checkpoints"), os.path.join(workdir, "checkpoints_mid_epoch")
  for fault, says, complete, mid_complete in PLAN:
    proc = run_main(workdir, overrides, fault)
    event = {"fault": fault, "returncode": proc.returncode, "complete": _steps(ckpt), "mid_epoch": _steps(mid),
             "partial": _partial(ckpt) + _partial(mid)}
    events.append(event)
    if fault and proc.returncode != -9:
      problems.append(f"{fault}: the run was not killed there (exit {proc.returncode}): {proc.stderr[-1500:]}")
    if not fault and proc.returncode:
      problems.append(f"the last run failed: {proc.stderr[-1500:]}")
    if says not in proc.stdout:
      problems.append(f"{fault or 'last run'}: expected {says!r} in its output: {proc.stdout[-1500:]}")
    if (event["complete"], event["mid_epoch"]) != (complete, mid_complete):
      problems.append(f"{fault or 'last run'}: checkpoints {event['complete']}, mid-epoch {event['mid_epoch']}; "
                      f"expected {complete}, {mid_complete}")
    if "save" in fault and not event["partial"]:
      problems.append(f"{fault}: no cut-short save was left behind to recover from")
    if not fault and event["partial"]:
      problems.append(f"a cut-short save was never cleaned up: {event['partial']}")
  got = final_metrics(workdir)
  for part in ("train", "val"):
    for key in ("loss", "accuracy", "mean_iou"):
      if abs(reference[part][key] - got[part][key]) > 1e-6:
        problems.append(f"{part} {key}: {got[part][key]} after kills, {reference[part][key]} uninterrupted")
  return {"problems": problems, "events": events}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", default=None)
  args = parser.parse_args(argv)
  root = args.workdir or tempfile.mkdtemp(prefix="kill_resume_")
  write_folder_dataset(os.path.join(root, "data"))
  reference = os.path.join(root, "uninterrupted")
  proc = run_main(reference, settings(root))
  if proc.returncode:
    print(proc.stderr[-3000:], file=sys.stderr)
    return 1
  summary = check(os.path.join(root, "killed"), final_metrics(reference))
  print(json.dumps(summary))
  return 1 if summary["problems"] else 0


if __name__ == "__main__":
  sys.exit(main())
