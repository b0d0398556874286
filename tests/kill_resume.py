"""SIGKILL a training run at random moments, some while a checkpoint is being written, and resume it.

  python tests/kill_resume.py [--kills 10] [--during-save 3] [--epochs 4] [--workdir DIR] [--stream]

Each rerun must resume from the newest complete checkpoint (never a partial one), and the finished run must
end with the metrics of an uninterrupted run with the same seed. Prints a JSON summary; exits non-zero on
any violation. test_reliability.py runs it. With --stream the run reads a folder dataset of pictures of
several sizes through the streaming pipeline (two worker processes, random rescaling and crops relative to
a base scale), checkpointing inside epochs too.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ["--config.data.synthetic_train_size=16", "--config.log_every_steps=1"]
STREAM = ["--config.data.source=folder", "--config.data.train_split=train", "--config.data.eval_split=val",
          "--config.data.pipeline=stream", "--config.data.workers=2", "--config.data.scale=(48,32)",
          "--config.augment.scale_min=0.5", "--config.augment.scale_max=2.0", "--config.checkpoint_every_steps=3",
          "--config.log_every_steps=1", "--config.data.class_map={}", "--config.data.ignore_label=9",
          "--config.num_classes=4", "--config.data.class_names=('a','b','c','d')",
          "--config.data.class_colors=((0,0,0),(255,0,0),(0,255,0),(0,0,255))"]
_settings = SETTINGS


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


def _cmd(workdir: str, epochs: int) -> list[str]:
  return [sys.executable, "main.py", "--config", "tests/tiny_config.py", "--workdir", workdir,
          f"--config.num_epochs={epochs}", *_settings]


def _env() -> dict[str, str]:
  return {**os.environ, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1"}


def complete_steps(workdir: str) -> list[int]:
  """Checkpoint steps Orbax has finalized (a partial save lives in a *.orbax-checkpoint-tmp-* directory)."""
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def partial_saves(workdir: str) -> list[str]:
  d = os.path.join(workdir, "checkpoints")
  return [n for n in os.listdir(d) if "tmp" in n] if os.path.isdir(d) else []


def final_metrics(workdir: str) -> dict:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return json.loads(f.read().splitlines()[-1])


def run_to_end(workdir: str, epochs: int) -> str:
  """Runs to completion; returns stdout."""
  proc = subprocess.run(_cmd(workdir, epochs), cwd=REPO, env=_env(), capture_output=True, text=True,
                        timeout=900)
  if proc.returncode:
    raise RuntimeError(f"run failed: {proc.stderr[-2000:]}")
  return proc.stdout


def kill_once(workdir: str, epochs: int, during_save: bool, rng: random.Random, full_run_s: float) -> dict:
  """Starts the run and SIGKILLs it: at a random moment of a full run's duration, or as soon as a new
  checkpoint write (a fresh Orbax temporary directory) of epoch 2 or later appears (a cut-short save of epoch 1
  leaves nothing to resume from, so the resume that follows it would show nothing)."""
  before = complete_steps(workdir)
  old_partials = set(partial_saves(workdir))
  log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (read back after the process ends)
  proc = subprocess.Popen(_cmd(workdir, epochs), cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT)
  start = time.time()
  deadline = start + (rng.uniform(0.3, 0.9) * full_run_s if not during_save else 600)
  cut_step = 0
  while proc.poll() is None and time.time() < deadline:
    # Orbax writes step N into "N.orbax-checkpoint-tmp*".
    new = sorted(int(p.split(".")[0]) for p in set(partial_saves(workdir)) - old_partials)
    if during_save and new and new[-1] >= 2:
      cut_step = new[-1]
      break
    time.sleep(0.002 if during_save else 0.05)
  finished = proc.poll() is not None
  if not finished:
    proc.send_signal(signal.SIGKILL)
  proc.wait()
  log.seek(0)
  out = log.read()
  resumed = re.search(r"Resuming from \S*checkpoints at epoch (\d+)", out)  # an epoch's checkpoint
  # Else killed before it read the checkpoints (a mid-epoch one alone, before epoch 1 ended, also decides).
  decided = bool(resumed) or "Starting a new run" in out or "checkpoints_mid_epoch at epoch 1," in out
  after = complete_steps(workdir)
  # A save counts as cut short only if the step it was writing never became a complete checkpoint.
  cut = bool(cut_step) and not finished and cut_step not in after
  return {"killed": not finished, "during_save": cut, "cut_step": cut_step if cut else 0,
          "after_s": time.time() - start, "complete_before": before, "decided": decided,
          "resumed_at": int(resumed.group(1)) if resumed else 0, "partial_left": bool(partial_saves(workdir)),
          "complete_after": after}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--kills", type=int, default=10)
  parser.add_argument("--during-save", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=4)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--workdir", default=None)
  parser.add_argument("--stream", action="store_true")
  args = parser.parse_args(argv)
  rng = random.Random(args.seed)
  root = args.workdir or tempfile.mkdtemp(prefix="kill_resume_")
  global _settings
  if args.stream:
    write_folder_dataset(os.path.join(root, "data"))
    _settings = [*STREAM, f"--config.data.root={os.path.join(root, 'data')}"]
  ref, killed = os.path.join(root, "uninterrupted"), os.path.join(root, "killed")
  for d in (ref, killed):
    shutil.rmtree(d, ignore_errors=True)
  start = time.time()
  run_to_end(ref, args.epochs)
  full_run_s = time.time() - start
  events, problems = [], []
  cut_before, resumes_after_cut = 0, 0  # the step whose save the last kill cut short, until a run resumes
  count = lambda key: sum(e[key] for e in events)
  for _ in range(3 * args.kills):  # a run may finish before its kill lands; then try again
    if count("killed") >= args.kills and count("during_save") >= args.during_save:
      break
    if complete_steps(killed) and max(complete_steps(killed)) >= args.epochs:
      shutil.rmtree(killed)  # finished before all kills were spent: start over, keep killing
    during_save = count("during_save") < args.during_save and (
        rng.random() < 0.4 or args.kills - count("killed") <= args.during_save - count("during_save"))
    event = kill_once(killed, args.epochs, during_save, rng, full_run_s)
    events.append(event)
    if not event["killed"]:
      # It finished before its kill: the reference run was slower (a cold compilation cache, a busy
      # machine), so aim the next kills within what a run takes now.
      full_run_s = min(full_run_s, event["after_s"])
    newest = max(event["complete_before"], default=0)
    if event["decided"] and event["resumed_at"] != newest:
      problems.append(f"resumed at epoch {event['resumed_at']}, newest complete checkpoint was {newest}")
    if event["decided"] and cut_before and event["resumed_at"] != cut_before - 1:
      problems.append(f"after the save of epoch {cut_before} was cut short, the next run resumed at epoch "
                      f"{event['resumed_at']}, not {cut_before - 1}")
    if event["decided"]:
      resumes_after_cut += bool(cut_before)
      cut_before = 0
    cut_before = event["cut_step"] or cut_before
  out = run_to_end(killed, args.epochs)
  newest = max(events[-1]["complete_after"], default=0)
  if newest and f"at epoch {newest}" not in out:
    problems.append(f"final run did not resume from epoch {newest}")
  resumes_after_cut += bool(cut_before) and f"at epoch {cut_before - 1}" in out
  if not resumes_after_cut:
    problems.append("no run resumed right after a cut-short save")
  want, got = final_metrics(ref), final_metrics(killed)
  for part in ("train", "val"):
    for key in ("loss", "accuracy", "mean_iou"):
      if abs(want[part][key] - got[part][key]) > 1e-6:
        problems.append(f"{part} {key}: {got[part][key]} after kills, {want[part][key]} uninterrupted")
  n_killed, n_save = count("killed"), count("during_save")
  if n_killed < args.kills or n_save < args.during_save:
    problems.append(f"only {n_killed} kills ({n_save} during a checkpoint write)")
  if not newest and not any(e["complete_before"] and e["decided"] for e in events):
    # (Where the last kill left a checkpoint, the final run resuming from it exercises resuming.)
    problems.append("no kill landed after a checkpoint: resuming was never exercised")
  print(json.dumps({"kills": n_killed, "during_save": n_save, "resumes_after_cut": resumes_after_cut,
                    "problems": problems, "events": events,
                    "final": {"val": got["val"]["accuracy"], "reference_val": want["val"]["accuracy"]}}))
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main())
