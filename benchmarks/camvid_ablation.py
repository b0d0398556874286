"""CamVid ablations: each lever of the recipe trained on its own from the ImageNet MobileNetV2, one run after
another, resumable, and the table of their effects on the val split.

  nohup python -m benchmarks.camvid_ablation --root data/camvid --weights W.h5 --out runs/ablation \
      > runs/ablation.log 2>&1 &                          # trains what is missing; rerun it to resume
  python -m benchmarks.camvid_ablation ... --only ohem,lovasz                 # just these runs, in this order
  python -m benchmarks.camvid_ablation --out runs/ablation --table          # the markdown table so far

Every run is `python main.py` in a child process with its own workdir under --out (so it resumes like any
training: SIGTERM to this harness is passed on, the child saves where it is, and the next invocation goes on
from there). Runs are trained in `ORDER`, the most telling first; finished ones are skipped. Each run of
`TTA_RUNS` is evaluated with test-time augmentation as soon as it has finished. `status.json` under --out records
each run's training seconds and the machines it ran on (runs may span machines).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

# name -> (config file, overrides, what it changes against "baseline").
VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "baseline": ("configs/camvid.py", {}, "configs/camvid.py: U-Net, median-frequency weights, 256x352 crops at "
                                          "scales 0.75-1.5, 40 epochs"),
    "plain_ce": ("configs/camvid.py", {"loss.class_weights": "none"}, "no class weights"),
    "sqrt_frequency": ("configs/camvid.py", {"loss.class_weights": "sqrt_frequency"},
                       "square-root median-frequency weights"),
    "ema": ("configs/camvid.py", {"ema_decay": 0.999}, "weights averaged for evaluation (0.999)"),
    "ohem": ("configs/camvid.py", {"loss.name": "ohem_cross_entropy", "loss.class_weights": "none",
                                   "loss.ohem_min_kept": 20000}, "OHEM cross-entropy (0.7, 20k pixels a frame)"),
    "lovasz": ("configs/camvid.py", {"loss.name": "cross_entropy+lovasz", "loss.class_weights": "none"},
               "cross-entropy + Lovasz-softmax, no class weights"),
    "whole_frames": ("configs/camvid.py", {"augment.crop_height": 0, "augment.crop_width": 0,
                                           "augment.scale_min": 1.0, "augment.scale_max": 1.0},
                     "whole frames, no random scale"),
    "epochs_20": ("configs/camvid.py", {"num_epochs": 20}, "20 epochs"),
    "epochs_80": ("configs/camvid.py", {"num_epochs": 80}, "80 epochs"),
    "long": ("configs/camvid_long.py", {}, "configs/camvid_long.py: 80 epochs, square-root weights, averaged"),
    "deeplab_os16": ("configs/camvid_deeplab.py", {}, "DeepLabV3+, output stride 16"),
    "deeplab_os8": ("configs/camvid_deeplab_os8.py", {}, "DeepLabV3+, output stride 8"),
}
# The order runs are trained in: the recipe first, then the baseline, then single levers from cheap to dear.
ORDER = ("long", "baseline", "plain_ce", "sqrt_frequency", "ema", "ohem", "lovasz", "whole_frames", "epochs_20",
         "epochs_80", "deeplab_os16", "deeplab_os8")
# Test-time augmentation, evaluated on finished runs: name -> eval overrides.
TTA = {"flip": {"eval.flip": True}, "flip_scales": {"eval.flip": True, "eval.scales": (0.75, 1.0, 1.25)}}
TTA_RUNS = ("baseline", "long")


def _flags(overrides: dict[str, Any]) -> list[str]:
  return [f"--config.{k}={v}" for k, v in overrides.items()]


def command(name: str, root: str, weights: str, out: str, mode: str = "train",
            extra: dict[str, Any] | None = None) -> list[str]:
  """The main.py command line of variant `name` (`extra`: more overrides, e.g. test-time augmentation)."""
  config, overrides, _ = VARIANTS[name]
  return [sys.executable, "main.py", "--config", config, "--workdir", os.path.join(out, name), "--mode", mode,
          f"--config.data.root={root}", f"--config.model.backbone_weights={weights}",
          *_flags({**overrides, **(extra or {})})]


def epochs_of(name: str) -> int:
  """The epochs variant `name` trains for."""
  from jaxseg import config_files  # pylint: disable=g-import-not-at-top
  config, overrides, _ = VARIANTS[name]
  return int(config_files.load_config(config, overrides).num_epochs)


def history(out: str, name: str) -> list[dict[str, Any]]:
  """The per-epoch records of run `name` so far (none if it has not started)."""
  path = os.path.join(out, name, "metrics.jsonl")
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def finished(out: str, name: str) -> bool:
  """Whether run `name` has trained all its epochs."""
  return len(history(out, name)) >= epochs_of(name)


class Status:
  """status.json: per run, its training seconds and the machines it ran on."""

  def __init__(self, out: str):
    self.path = os.path.join(out, "status.json")
    self.data = {}
    if os.path.isfile(self.path):
      with open(self.path) as f:
        self.data = json.load(f)

  def add(self, name: str, seconds: float, machine: str) -> None:
    entry = self.data.setdefault(name, {"seconds": 0.0, "machines": []})
    entry["seconds"] += seconds
    if machine not in entry["machines"]:
      entry["machines"].append(machine)
    from jaxseg import files  # pylint: disable=g-import-not-at-top
    files.write_text(self.path, json.dumps(self.data, indent=1))


def _test_time_rows(name: str, root: str, weights: str, out: str) -> int:
  """Evaluates finished run `name` with each `TTA` setting not yet recorded (`tta_<setting>.json` in its
  workdir); returns 0 or the failing evaluation's exit code."""
  from jaxseg import files  # pylint: disable=g-import-not-at-top
  for tta, extra in TTA.items():
    path = os.path.join(out, name, f"tta_{tta}.json")
    if os.path.isfile(path):
      continue
    proc = subprocess.run(command(name, root, weights, out, "eval", extra), capture_output=True, text=True)
    if proc.returncode != 0:
      print(f"{name} {tta}: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
      return proc.returncode
    record = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith('{"step"')))
    files.write_text(path, json.dumps(record))  # atomic: a stopped harness leaves no half-written row
  return 0


def run_all(root: str, weights: str, out: str, only: tuple[str, ...] = ()) -> int:
  """Trains every unfinished variant in `ORDER` (or those of `only`, in its order), each of `TTA_RUNS` followed
  by its test-time augmentation evaluations (so the table fills run by run); returns 0, or the exit code of a
  child that failed or was stopped."""
  from benchmarks.harness import machine  # pylint: disable=g-import-not-at-top
  os.makedirs(out, exist_ok=True)
  status, here = Status(out), machine()
  child: list[subprocess.Popen] = []
  signal.signal(signal.SIGTERM, lambda *_: child and child[-1].send_signal(signal.SIGTERM))
  for name in only or ORDER:
    if not finished(out, name):
      print(f"[{time.strftime('%H:%M:%S')}] training {name}: {VARIANTS[name][2]}", flush=True)
      start = time.time()
      with open(os.path.join(out, f"{name}.log"), "a") as log:
        child.append(subprocess.Popen(command(name, root, weights, out), stdout=log, stderr=subprocess.STDOUT))
        code = child[-1].wait()
      status.add(name, time.time() - start, here)
      if code != 0 or not finished(out, name):
        print(f"{name} stopped (exit code {code}); see {out}/{name}.log; rerun to resume.", flush=True)
        return code or 1
    if name in TTA_RUNS and (code := _test_time_rows(name, root, weights, out)):
      return code
  return 0


SCORES = ("mean_iou", "accuracy", "class_accuracy")  # val mIoU, pixel accuracy, class-average accuracy


def _row(label: str, change: str, epochs: str, m: dict[str, Any], against: dict[str, Any] | None,
         extra: str = "") -> str:
  effect = " / ".join(f"{m[k] - against[k]:+.3f}" for k in SCORES) if against is not None else ""
  return (f"| {label} | {change} | {epochs} | {m['mean_iou']:.3f}{extra} | {m['accuracy']:.3f} | "
          f"{m['class_accuracy']:.3f} | {effect} |")


def _tta_change(overrides: dict[str, Any]) -> str:
  """"test-time flip, scales 0.75, 1.0, 1.25" from the eval overrides."""
  parts = [k.split(".")[-1] + ("" if v is True else " " + ", ".join(map(str, v))) for k, v in overrides.items()]
  return "test-time " + ", ".join(parts)


def table(out: str) -> str:
  """The markdown table of every run so far: last epoch's val figures (best mIoU and its epoch beside them)
  and each one's effect on the three scores: a training run's against "baseline" (once that has finished),
  a test-time augmentation row's against the same checkpoint without it."""
  lines = ["| run | change | epochs | val mIoU (best, epoch) | pixel acc | class-avg acc | effect: mIoU / pixel / "
           "class-avg |", "|---|---|---|---|---|---|---|"]
  base = history(out, "baseline")[-1]["val"] if finished(out, "baseline") else None
  for name, (_, _, change) in VARIANTS.items():
    h = history(out, name)
    if not h:
      continue
    best = max(h, key=lambda r: r["val"]["mean_iou"])
    epochs = f"{len(h)}/{epochs_of(name)}"
    lines.append(_row(name, change, epochs, h[-1]["val"], base if name != "baseline" else None,
                      f" ({best['val']['mean_iou']:.3f}, {best['epoch']})"))
    for tta in TTA:
      path = os.path.join(out, name, f"tta_{tta}.json")
      if os.path.isfile(path):
        with open(path) as f:
          record = json.load(f)
        lines.append(_row(f"{name} + {tta.replace('_', ' ')}", _tta_change(TTA[tta]), "", record[
            record.get("split", "val")], h[-1]["val"]))
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", default="data/camvid", help="CamVid in the SegNet layout")
  parser.add_argument("--weights", default="imagenet", help="the ImageNet MobileNetV2 weights (file or 'imagenet')")
  parser.add_argument("--out", default="runs/ablation", help="one workdir per run under here")
  parser.add_argument("--table", action="store_true", help="print the table of the runs so far and exit")
  parser.add_argument("--only", default="", help="comma-separated runs to train, in this order (default: all)")
  args = parser.parse_args(argv)
  only = tuple(n for n in args.only.split(",") if n)
  if unknown := [n for n in only if n not in VARIANTS]:
    parser.error(f"--only: unknown run(s) {', '.join(unknown)}; choose from {', '.join(ORDER)}")
  if args.table:
    print(table(args.out))
    return 0
  return run_all(args.root, args.weights, args.out, only)


if __name__ == "__main__":
  sys.exit(main())
