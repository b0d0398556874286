"""`--mode inspect`: check a dataset before training and describe it, reading its files in parallel.

Per split: the number of pairs, image sizes, the label histogram by class name, and every problem (missing
or unpaired files, unreadable files, image and mask of different sizes, labels outside the class map or
colours outside the colour table), one line each naming the file; then the class weights training would
use. Training runs the same checks when it prepares a split.
"""

import collections
import dataclasses

import ml_collections
import numpy as np

from jaxseg.data import random_access, streaming
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


@dataclasses.dataclass
class Summarize:
  """Example i of a random-access source -> what the report needs of it, or its problem (run in workers)."""
  source: object
  num_classes: int

  def __call__(self, i: int) -> dict:
    """{"problem": line} or {"size": (h, w), "pixels": per class then ignored, "freq": frequency terms}."""
    try:
      return summarize(*self.source[int(i)], self.num_classes)
    except DatasetError as e:
      return {"problem": str(e)}


def summarize(image: np.ndarray, mask: np.ndarray, num_classes: int) -> dict:
  """One example's share of a report."""
  counts = np.bincount(mask.ravel(), minlength=256)
  return {"size": np.array(image.shape[:2]), "pixels": np.append(counts[:num_classes], counts[IGNORE]),
          "freq": frequency_terms(mask, num_classes)[1].astype(np.int64)}


def _summaries(config: ml_collections.ConfigDict, split: str, report: SplitReport):
  """Every example's summary: read by the streaming workers where the source allows random access."""
  if config.data.source == "folder":
    source, problems = random_access.open_source(config, split)
    report.problems += problems
    yield from streaming.iterate(Summarize(source, config.num_classes), len(source),
                                 streaming.worker_count(config), prefetch=4)
    return
  listing = SOURCES[config.data.source](config, split)
  report.problems += listing.problems
  for _, load in listing.examples:
    try:
      yield summarize(*load(), config.num_classes)
    except DatasetError as e:
      yield {"problem": str(e)}


def inspect_split(config: ml_collections.ConfigDict, split: str) -> SplitReport:
  """Reads every example of `split` at its own size (in `data.workers` processes for folder data) and
  collects sizes, label counts and problems."""
  c = config.num_classes
  report = SplitReport(split, pixels=np.zeros(c + 1, np.int64), freq_pixels=np.zeros(c, np.int64))
  try:
    for item in _summaries(config, split, report):
      if "problem" in item:
        report.problems.append(item["problem"])
        continue
      report.pairs += 1
      report.sizes[f"{item['size'][1]}x{item['size'][0]}"] += 1
      report.pixels += item["pixels"]
      report.freq_pixels += item["freq"]
  except DatasetError as e:
    report.problems.append(str(e))
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

