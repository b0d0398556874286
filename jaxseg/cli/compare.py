"""Compare finished runs, e.g. the tutorial's model trained at 128 px and at 224 px.

  python -m jaxseg.cli.compare runs/r128 runs/r224 [--output compare.png]

Prints one table row per run from its metrics.jsonl and writes one figure overlaying their curves.
"""

import argparse
import os
import sys
from typing import Any

from jaxseg.training.metrics_writer import read_history
from jaxseg.viz import figures as visualize

COLUMNS = ("run", "epochs", "split", "best acc", "(epoch)", "last acc", "last class-acc", "last mIoU")
TAIL = ("train gap", "img/s")


def summarize_run(name: str, history: list[dict[str, Any]]) -> dict[str, Any]:
  """The split each run scored, its best and last pixel accuracy there, last class-average accuracy, mean and
  per-class IoU (by the dataset's class names), the train accuracy's lead over it, epochs, images/s."""
  best = max(history, key=lambda h: h["val"]["accuracy"])
  last = history[-1]
  split = last.get("eval_split", "val")
  rates = [h["images_per_s"] for h in history[1:]] or [history[0]["images_per_s"]]  # epoch 1 compiles
  row = {"run": name, "epochs": last["epoch"], "split": split, "best acc": best["val"]["accuracy"],
         "(epoch)": best["epoch"], "last acc": last["val"]["accuracy"],
         "last class-acc": last["val"].get("class_accuracy", float("nan")), "last mIoU": last["val"]["mean_iou"]}
  row.update({f"IoU {k[4:]}": v for k, v in last["val"].items() if k.startswith("iou_")})
  row.update({"train gap": last["train"]["accuracy"] - last["val"]["accuracy"],
              "img/s": sum(rates) / len(rates)})
  return row


def format_table(rows: list[dict[str, Any]]) -> str:
  """The rows as an aligned text table; per-class IoU columns are those of the first run, in its order
  (a run without a class shows nan)."""
  columns = list(COLUMNS) + [k for k in rows[0] if k.startswith("IoU ")] + list(TAIL)
  rows = [{c: r.get(c, float("nan")) for c in columns} for r in rows]
  cell = lambda v: f"{v:.4f}" if isinstance(v, float) and abs(v) < 10 else (
      f"{v:.1f}" if isinstance(v, float) else str(v))
  widths = [max(len(c), *(len(cell(r[c])) for r in rows)) for c in columns]
  line = lambda values: "  ".join(f"{v:>{w}}" if i else f"{v:<{w}}" for i, (v, w) in enumerate(zip(values, widths)))
  return "\n".join([line(columns), line(["-" * w for w in widths])] +
                   [line([cell(r[c]) for c in columns]) for r in rows])


def main(argv: list[str] | None = None) -> int:
  """Prints the comparison of the runs named on the command line and writes the plot; returns the exit code."""
  parser = argparse.ArgumentParser(prog="python -m jaxseg.cli.compare", description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", help="run directories holding metrics.jsonl")
  parser.add_argument("--output", default="compare.png", help="figure to write (default compare.png)")
  args = parser.parse_args(argv)
  runs = {}
  try:
    for workdir in args.workdirs:
      name = os.path.basename(os.path.normpath(workdir))
      while name in runs:
        name += "'"
      runs[name] = read_history(workdir)
  except (OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(format_table([summarize_run(n, h) for n, h in runs.items()]))
  visualize.save_curve_overlay(args.output, runs)
  print(f"Curves of {len(runs)} run(s) in {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
