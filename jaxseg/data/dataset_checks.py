"""`--mode inspect`: check a dataset before training and describe it.

Per split: the number of pairs, image sizes, the label histogram by class name, and every problem (missing
or unpaired files, unreadable files, image and mask of different sizes, labels outside the class map or
colours outside the colour table), one line each naming the file; then the class weights training would
use. Training runs the same checks when it prepares a split.
"""

import collections
import dataclasses

import ml_collections
import numpy as np

from jaxseg.data.labels import IGNORE, classes_from_config, frequency_terms, median_frequency_from_counts
from jaxseg.data.sources import SOURCES
from jaxseg.errors import DatasetError


@dataclasses.dataclass
class SplitReport:
  """What `inspect_split` found in one split."""
  name: str
  pairs: int = 0
  sizes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  pixels: np.ndarray | None = None  # labelled pixels per class, then ignored pixels last
  freq_pixels: np.ndarray | None = None  # per class: pixels of the images that contain it
  problems: list[str] = dataclasses.field(default_factory=list)


def inspect_split(config: ml_collections.ConfigDict, split: str) -> SplitReport:
  """Reads every example of `split` at its own size and collects sizes, label counts and problems."""
  c = config.num_classes
  report = SplitReport(split, pixels=np.zeros(c + 1, np.int64), freq_pixels=np.zeros(c, np.int64))
  try:
    listing = SOURCES[config.data.source](config, split)
  except DatasetError as e:
    report.problems.append(str(e))
    return report
  report.problems += listing.problems
  for name, load in listing.examples:
    try:
      image, mask = load()
    except DatasetError as e:
      report.problems.append(str(e))
      continue
    del name
    report.pairs += 1
    report.sizes[f"{image.shape[1]}x{image.shape[0]}"] += 1
    counts = np.bincount(mask.ravel(), minlength=256)
    report.pixels[:c] += counts[:c]
    report.pixels[c] += counts[IGNORE]
    report.freq_pixels += frequency_terms(mask, c)[1].astype(np.int64)
  return report


def format_report(config: ml_collections.ConfigDict, reports: list[SplitReport]) -> str:
  """The reports as text: pairs, sizes, label histogram, problems, then the class weights."""
  names = classes_from_config(config).names
  width = max(len(n) for n in (*names, "(ignored)"))
  lines = []
  for r in reports:
    sizes = ", ".join(f"{s} x{n}" for s, n in r.sizes.most_common(5))
    more = f" and {len(r.sizes) - 5} more sizes" if len(r.sizes) > 5 else ""
    lines += [f"split {r.name!r}: {r.pairs} pairs; image sizes (WxH): {sizes or '-'}{more}"]
    total = max(int(r.pixels.sum()), 1)
    for i, name in enumerate((*names, "(ignored)")):
      lines.append(f"  {name:<{width}}  {int(r.pixels[i]):>12,} px  {100 * r.pixels[i] / total:6.2f}%")
    absent = [n for i, n in enumerate(names) if r.pixels[i] == 0]
    if absent and r.pairs:
      lines.append(f"  classes without a labelled pixel: {', '.join(absent)}")
    lines += [f"  problem: {p}" for p in r.problems]
  train = next((r for r in reports if r.name == config.data.train_split), None)
  spec = str(config.loss.class_weights).strip().lower()
  if spec == "median_frequency" and train is not None and train.pairs:
    weights = median_frequency_from_counts(train.pixels[:-1], train.freq_pixels)
    lines.append("class weights (median frequency, at the files' own resolution): "
                 + ", ".join(f"{n} {w:.4f}" for n, w in zip(names, weights)))
  elif spec not in ("", "none"):
    lines.append(f"class weights: {config.loss.class_weights}")
  else:
    lines.append("class weights: none")
  problems = sum(len(r.problems) for r in reports)
  lines.append(f"{problems} problem(s) found." if problems else "No problems found.")
  return "\n".join(lines)


def inspect_dataset(config: ml_collections.ConfigDict) -> tuple[str, int]:
  """Inspects the train and eval splits; returns (report text, number of problems)."""
  names = dict.fromkeys([config.data.train_split, config.data.eval_split])
  reports = [inspect_split(config, s) for s in names]
  return format_report(config, reports), sum(len(r.problems) for r in reports)

