"""CamVid ablations: each lever of the recipe trained on its own from the ImageNet MobileNetV2, one run after
another, resumable, and the table of their effects on the val split.

  nohup python -m benchmarks.camvid_ablation --root data/camvid --weights W.h5 --out runs/ablation \
      > runs/ablation.log 2>&1 &                          # trains what is missing; rerun it to resume
  python -m benchmarks.camvid_ablation ... --only ohem,lovasz                 # just these runs, in this order
  python -m benchmarks.camvid_ablation --out runs/ablation --table          # the markdown table so far
  python -m benchmarks.camvid_ablation ... --holdout '0006R0_*' --out runs/select   # choose on a held-out street
  python -m benchmarks.camvid_ablation --out runs/select --classes long     # one run's per-class reading

Every run is `python main.py` in a child process with its own workdir under --out (so it resumes like any
training: SIGTERM to this harness is passed on, the child saves where it is, and the next invocation goes on
from there). Runs are trained in `ORDER`, the most telling first; finished ones are skipped. Each run of
`TTA_RUNS` is evaluated with test-time augmentation as soon as it has finished. `status.json` under --out records
each run's training seconds and the machines it ran on (runs may span machines).

With --holdout PATTERN every run trains without the training frames whose names match (CamVid's sequence
0006R0: a street no run trains on), scores them every epoch (`data.eval_split=holdout`), and once finished is
evaluated on val too; the table then gives both: the held-out figures to choose by, val's beside them.
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
    "sgd": ("configs/camvid_sgd.py", {}, "configs/camvid_sgd.py: the long recipe with SGD, weight decay, poly "
            "decay, scales 0.5-2.0 and an auxiliary head"),
    "aux_head": ("configs/camvid_long.py", {"model.aux_stride": 16}, "the long recipe with an auxiliary head at "
                 "stride 16 (0.4)"),
    "encoder_lr": ("configs/camvid_long.py", {"encoder_lr_scale": 0.1}, "the long recipe with the encoder at "
                   "0.1x the learning rate"),
    "smoothing": ("configs/camvid_long.py", {"loss.label_smoothing": 0.1}, "the long recipe with label "
                  "smoothing 0.1"),
    "combined": ("configs/camvid_combined.py", {}, "configs/camvid_combined.py: cross-entropy (square-root "
                 "weights) + Lovasz, whole frames, 80 epochs, averaged"),
    "combined_deeplab": ("configs/camvid_deeplab_combined.py", {}, "configs/camvid_deeplab_combined.py: "
                         "the same with DeepLabV3+ at output stride 16"),
}
# The order runs are trained in: the recipes first, then the baseline, then single levers from cheap to dear.
ORDER = ("long", "encoder_lr", "sgd", "aux_head", "smoothing", "baseline", "plain_ce", "sqrt_frequency", "ema",
         "ohem", "lovasz", "whole_frames", "epochs_20", "epochs_80", "deeplab_os16", "deeplab_os8", "combined",
         "combined_deeplab")
# Test-time augmentation, evaluated on finished runs: name -> eval overrides.
TTA = {"flip": {"eval.flip": True}, "flip_scales": {"eval.flip": True, "eval.scales": (0.75, 1.0, 1.25)}}
TTA_RUNS = ("baseline", "long")


def _flags(overrides: dict[str, Any]) -> list[str]:
  return [f"--config.{k}={v}" for k, v in overrides.items()]


def command(name: str, root: str, weights: str, out: str, mode: str = "train",
            extra: dict[str, Any] | None = None, holdout: str = "") -> list[str]:
  """The main.py command line of variant `name` (`extra`: more overrides, e.g. test-time augmentation;
  `holdout`: the file-name pattern of the training frames held out and scored instead of val)."""
  config, overrides, _ = VARIANTS[name]
  held = {"data.holdout": holdout, "data.eval_split": "holdout"} if holdout else {}
  return [sys.executable, "main.py", "--config", config, "--workdir", os.path.join(out, name), "--mode", mode,
          f"--config.data.root={root}", f"--config.model.backbone_weights={weights}",
          *_flags({**overrides, **held, **(extra or {})})]


def holdout_of(out: str) -> str:
  """The --holdout pattern the runs under `out` were trained with ("" for none)."""
  path = os.path.join(out, "settings.json")
  if not os.path.isfile(path):
    return ""
  with open(path) as f:
    return json.load(f).get("holdout", "")


def epochs_of(name: str) -> int:
  """The epochs variant `name` trains for."""
  from jaxseg.config import files as config_files  # pylint: disable=g-import-not-at-top
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
    from jaxseg.runtime import files  # pylint: disable=g-import-not-at-top
    files.write_text(self.path, json.dumps(self.data, indent=1))


def _evaluations(name: str, root: str, weights: str, out: str, holdout: str = "") -> int:
  """Evaluates finished run `name` with each setting not yet recorded in its workdir: with `holdout`, on val
  (`split_val.json`); for `TTA_RUNS`, each `TTA` setting (`tta_<setting>.json`). Returns 0 or the failing
  evaluation's exit code."""
  from jaxseg.runtime import files  # pylint: disable=g-import-not-at-top
  todo = {"split_val": {"data.eval_split": "val"}} if holdout else {}
  if name in TTA_RUNS:
    todo.update({f"tta_{tta}": extra for tta, extra in TTA.items()})
  for tta, extra in todo.items():
    path = os.path.join(out, name, f"{tta}.json")
    if os.path.isfile(path):
      continue
    proc = subprocess.run(command(name, root, weights, out, "eval", extra, holdout), capture_output=True, text=True)
    if proc.returncode != 0:
      print(f"{name} {tta}: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
      return proc.returncode
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"epoch"')]
    if not lines:  # (a jaxseg whose evaluation prints another record)
      print(f"{name} {tta}: the evaluation printed no record line ({{\"epoch\": ...}}); nothing written.", flush=True)
      return 1
    files.write_text(path, json.dumps(json.loads(lines[-1])))  # atomic: a stopped harness leaves no half-written row
  return 0


def run_all(root: str, weights: str, out: str, only: tuple[str, ...] = (), holdout: str = "") -> int:
  """Trains every unfinished variant in `ORDER` (or those of `only`, in its order), each followed by its
  evaluations (`_evaluations`, so the table fills run by run); returns 0, or the exit code of a child that
  failed or was stopped, or 2 where `holdout` differs from the one the runs under `out` were trained with."""
  from benchmarks.harness import machine  # pylint: disable=g-import-not-at-top
  from jaxseg.runtime import files  # pylint: disable=g-import-not-at-top
  os.makedirs(out, exist_ok=True)
  trained = os.path.isfile(os.path.join(out, "settings.json")) or any(
      os.path.isfile(os.path.join(out, name, "metrics.jsonl")) for name in VARIANTS)  # (older folders: no holdout)
  if trained and holdout_of(out) != holdout:
    print(f"{out} holds runs trained with --holdout {holdout_of(out)!r}, not {holdout!r}: use another --out.",
          flush=True)
    return 2
  files.write_text(os.path.join(out, "settings.json"), json.dumps({"holdout": holdout}))
  status, here = Status(out), machine()
  child: list[subprocess.Popen] = []
  signal.signal(signal.SIGTERM, lambda *_: child and child[-1].send_signal(signal.SIGTERM))
  for name in only or ORDER:
    if not finished(out, name):
      print(f"[{time.strftime('%H:%M:%S')}] training {name}: {VARIANTS[name][2]}", flush=True)
      start = time.time()
      with open(os.path.join(out, f"{name}.log"), "a") as log:
        child.append(subprocess.Popen(command(name, root, weights, out, holdout=holdout), stdout=log,
                                      stderr=subprocess.STDOUT))
        code = child[-1].wait()
      status.add(name, time.time() - start, here)
      if code != 0 or not finished(out, name):
        print(f"{name} stopped (exit code {code}); see {out}/{name}.log; rerun to resume.", flush=True)
        return code or 1
    if code := _evaluations(name, root, weights, out, holdout):
      return code
  return 0


SCORES = ("mean_iou", "accuracy", "class_accuracy")  # val mIoU, pixel accuracy, class-average accuracy


def _row(label: str, change: str, epochs: str, m: dict[str, Any], against: dict[str, Any] | None,
         extra: str = "", val: str | None = None) -> str:
  effect = " / ".join(f"{m[k] - against[k]:+.3f}" for k in SCORES) if against is not None else ""
  also = "" if val is None else f" {val} |"
  return (f"| {label} | {change} | {epochs} | {m['mean_iou']:.3f}{extra} |{also} {m['accuracy']:.3f} | "
          f"{m['class_accuracy']:.3f} | {effect} |")


def _record(out: str, name: str, what: str) -> dict[str, Any] | None:
  """An evaluation's figures recorded for run `name` (`what`: "split_val", "tta_flip", ...), or None."""
  path = os.path.join(out, name, f"{what}.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    record = json.load(f)
  return record[record.get("split", "val")]


def _tta_change(overrides: dict[str, Any]) -> str:
  """"test-time flip, scales 0.75, 1.0, 1.25" from the eval overrides."""
  parts = [k.split(".")[-1] + ("" if v is True else " " + ", ".join(map(str, v))) for k, v in overrides.items()]
  return "test-time " + ", ".join(parts)


def table(out: str) -> str:
  """The markdown table of every run so far: last epoch's figures on the scored split (val, or with --holdout
  the held-out frames, val's mIoU beside them) with the best mIoU and its epoch, and each one's effect on the
  three scores: a training run's against "baseline" (once that has finished), a test-time augmentation row's
  against the same checkpoint without it."""
  held = bool(holdout_of(out))
  scored = "held-out" if held else "val"
  lines = [f"| run | change | epochs | {scored} mIoU (best, epoch) |{' val mIoU |' if held else ''} pixel acc | "
           "class-avg acc | effect: mIoU / pixel / class-avg |", "|---|---|---|---|" + "---|" * (3 + held)]
  base = history(out, "baseline")[-1]["val"] if finished(out, "baseline") else None
  for name, (_, _, change) in VARIANTS.items():
    h = history(out, name)
    if not h:
      continue
    best = max(h, key=lambda r: r["val"]["mean_iou"])
    epochs = f"{len(h)}/{epochs_of(name)}"
    val = _record(out, name, "split_val")
    lines.append(_row(name, change, epochs, h[-1]["val"], base if name != "baseline" else None,
                      f" ({best['val']['mean_iou']:.3f}, {best['epoch']})",
                      (f"{val['mean_iou']:.3f}" if val else "") if held else None))
    for tta in TTA:
      if (record := _record(out, name, f"tta_{tta}")) is not None:
        lines.append(_row(f"{name} + {tta.replace('_', ' ')}", _tta_change(TTA[tta]), "", record, h[-1]["val"],
                          val="" if held else None))
  return "\n".join(lines)


def classes(out: str, name: str) -> str:
  """The markdown table of run `name`'s last epoch per class on the scored split (and on val, once evaluated
  there): IoU / precision / recall / the pixels predicted as the class over those labelled it (above 1:
  over-predicted)."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from jaxseg.config import files as config_files  # pylint: disable=g-import-not-at-top
  config, overrides, _ = VARIANTS[name]
  names = config_files.load_config(config, overrides).data.class_names
  h = history(out, name)
  if not h:
    return f"{name}: no epoch recorded under {out} yet."
  splits = [("held-out" if holdout_of(out) else "val", h[-1]["val"])]
  if holdout_of(out) and (val := _record(out, name, "split_val")) is not None:
    splits.append(("val", val))
  lines = [f"{name}, epoch {h[-1]['epoch']}: IoU / precision / recall / predicted:labelled pixels",
           "| class | " + " | ".join(split for split, _ in splits) + " |", "|---|" + "---|" * len(splits)]
  for i, cls in enumerate(names):
    cells = []
    for _, m in splits:
      confusion = np.asarray(m["confusion"], np.float64)  # rows: labels, columns: predictions
      ratio = confusion[:, i].sum() / max(confusion[i].sum(), 1.0)
      cells.append(" / ".join(f"{m[f'{k}_{cls}']:.3f}" for k in ("iou", "precision", "recall")) + f" / {ratio:.2f}")
    lines.append(f"| {cls} | " + " | ".join(cells) + " |")
  lines.append("| mean IoU | " + " | ".join(f"{m['mean_iou']:.3f}" for _, m in splits) + " |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--root", default="data/camvid", help="CamVid in the SegNet layout")
  parser.add_argument("--weights", default="imagenet", help="the ImageNet MobileNetV2 weights (file or 'imagenet')")
  parser.add_argument("--out", default="runs/ablation", help="one workdir per run under here")
  parser.add_argument("--table", action="store_true", help="print the table of the runs so far and exit")
  parser.add_argument("--classes", default="", metavar="RUN", help="print one run's per-class table and exit")
  parser.add_argument("--only", default="", help="comma-separated runs to train, in this order (default: all)")
  parser.add_argument("--holdout", default="", help="file-name pattern of training frames held out and scored "
                      "instead of val (val is scored once a run has finished), e.g. '0006R0_*'")
  args = parser.parse_args(argv)
  only = tuple(n for n in args.only.split(",") if n)
  if unknown := [n for n in only if n not in VARIANTS]:
    parser.error(f"--only: unknown run(s) {', '.join(unknown)}; choose from {', '.join(ORDER)}")
  if args.table:
    print(table(args.out))
    return 0
  if args.classes:
    if args.classes not in VARIANTS:
      parser.error(f"--classes: unknown run {args.classes}; choose from {', '.join(ORDER)}")
    print(classes(args.out, args.classes))
    return 0
  return run_all(args.root, args.weights, args.out, only, args.holdout)


if __name__ == "__main__":
  sys.exit(main())
