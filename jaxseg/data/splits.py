"""Preprocessed splits: every example of a source decoded, resized and held as uint8 arrays.

Deterministic preprocessing (decode, resize images bilinear and masks nearest) runs once per split and is
cached, in memory and optionally on disk: the whole Oxford-IIIT Pet split at 224 px is ~0.7 GB, so holding
it beats re-decoding JPEGs every epoch. What changes per epoch (shuffling, batching, flips) is cheap index
work in `batching` or runs on the device (`transforms`).
"""

import dataclasses
import hashlib
import json
import os

import ml_collections
import numpy as np

from jaxseg.data import geometry
from jaxseg.data import images as image_io
from jaxseg.data.sources import SOURCES
from jaxseg.errors import DatasetError
from jaxseg.runtime import files


@dataclasses.dataclass
class Split:
  """A preprocessed split: images (N, h, w, 3) uint8 and masks (N, h, w) uint8 class ids at the stored size,
  example names; for evaluation at the labels' own resolution, `labels` (each example's original class-id
  mask, of its own size) and `label_sizes` (N, 2) of (height, width)."""
  images: np.ndarray
  masks: np.ndarray
  names: list[str]
  labels: list[np.ndarray] | None = None
  label_sizes: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.images)

  def take(self, n: int) -> "Split":
    """The first n examples."""
    return Split(self.images[:n], self.masks[:n], self.names[:n],
                 None if self.labels is None else self.labels[:n],
                 None if self.label_sizes is None else self.label_sizes[:n])


_MEMORY_CACHE: dict[str, Split] = {}
_UNCACHED = ("max_train_examples", "max_eval_examples", "cache_dir")


def clear_memory_cache() -> None:
  """Forgets every split held in memory (the on-disk cache stays)."""
  _MEMORY_CACHE.clear()


def _keeps_labels(config: ml_collections.ConfigDict, split: str) -> bool:
  return split == config.data.eval_split and config.data.eval_resolution == "original"


def _cache_key(config: ml_collections.ConfigDict, split: str) -> str:
  d = {k: v for k, v in config.data.to_dict().items() if k not in _UNCACHED}
  d["root"] = os.path.abspath(os.path.expanduser(d["root"])) if d["root"] else ""
  parts = [json.dumps(d, sort_keys=True, default=str), split, str(geometry.stored_size(config)),
           str(config.num_classes), str(config.seed if config.data.source == "synthetic" else ""),
           str(_keeps_labels(config, split))]
  return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def describe(config: ml_collections.ConfigDict, split: str) -> str:
  """How messages name a split: "split 'train' of source 'folder'"."""
  return f"split {split!r} of source {config.data.source!r}"


def example_limit(config: ml_collections.ConfigDict, split: str) -> int:
  """`data.max_train_examples` for the training split, `data.max_eval_examples` for any other (0: all)."""
  d = config.data
  return d.max_train_examples if split == d.train_split else d.max_eval_examples


def load_split(config: ml_collections.ConfigDict, split: str) -> Split:
  """Loads and preprocesses one split of the configured source (cached).

  Args:
    config: the experiment config (`data.*`, the stored size, `seed`).
    split: a split name of the source (`config.data.train_split` or `config.data.eval_split`).

  Returns:
    The preprocessed split, truncated to `data.max_train_examples` / `data.max_eval_examples` if set.

  Raises:
    DatasetError: listing every bad example, one line each, unless `data.skip_bad` (then they are counted).
  """
  key = _cache_key(config, split)
  split_data = _MEMORY_CACHE.get(key)
  path = os.path.join(os.path.expanduser(config.data.cache_dir), f"{key}.npz") if config.data.cache_dir else ""
  if split_data is None and path and os.path.isfile(path):
    with np.load(path) as f:
      labels = sizes = None
      if "label_sizes" in f:  # the originals, flattened one after the other
        sizes = f["label_sizes"]
        ends = np.cumsum(sizes.prod(1))
        labels = [flat.reshape(hw) for flat, hw in zip(np.split(f["labels"], ends[:-1]), sizes)]
      split_data = Split(f["images"], f["masks"], list(f["names"]), labels, sizes)
  if split_data is None:
    split_data = _preprocess(config, split)
    if path:
      extra = {} if split_data.labels is None else {
          "labels": np.concatenate([m.ravel() for m in split_data.labels]), "label_sizes": split_data.label_sizes}
      with files.atomic_path(path) as tmp:
        np.savez(tmp, images=split_data.images, masks=split_data.masks, names=np.array(split_data.names), **extra)
  _MEMORY_CACHE[key] = split_data
  limit = example_limit(config, split)
  if limit:
    split_data = split_data.take(limit)
  if not len(split_data):
    raise DatasetError(f"{describe(config, split)} has no examples.")
  return split_data


def report_problems(problems: list[str], what: str, skip_bad: bool, limit: int = 20) -> None:
  """Raises one DatasetError listing `problems` (a line each), or with `skip_bad` prints how many were
  skipped."""
  if not problems:
    return
  shown = "\n".join(f"  {p}" for p in problems[:limit])
  more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
  if not skip_bad:
    raise DatasetError(f"{len(problems)} bad example(s) in {what}:\n{shown}{more}\nFix or remove them, or set "
                       "--config.data.skip_bad=True to skip and count them.")
  print(f"warning: skipped {len(problems)} bad example(s) in {what}:\n{shown}{more}")


def _preprocess(config: ml_collections.ConfigDict, split: str) -> Split:
  listing = SOURCES[config.data.source](config, split)
  problems = list(listing.problems)
  size = geometry.stored_size(config)
  images, masks, names, originals = [], [], [], []
  keep = _keeps_labels(config, split)
  for name, load in listing.examples:
    try:
      image, mask = load()
    except DatasetError as e:
      problems.append(str(e))
      continue
    img, small = image_io.resize_pair(image, mask, size)
    images.append(img)
    masks.append(small)
    names.append(name)
    if keep:
      originals.append(mask)
  report_problems(problems, describe(config, split), config.data.skip_bad)
  if not images:
    raise DatasetError(f"{describe(config, split)} has no (readable) examples.")
  labels = sizes = None
  if keep and any(m.shape != size for m in originals):
    labels, sizes = originals, np.array([m.shape for m in originals], np.int32)
  return Split(np.stack(images), np.stack(masks), names, labels, sizes)


def class_pixel_counts(split: Split, num_classes: int) -> np.ndarray:
  """Labelled pixels per class (IGNORE left out) of the stored masks."""
  return np.bincount(split.masks.ravel(), minlength=256)[:num_classes]


def majority_baseline(split: Split, num_classes: int) -> float:
  """Pixel accuracy of always predicting the most frequent class (over labelled pixels)."""
  counts = class_pixel_counts(split, num_classes)
  return float(counts.max() / max(counts.sum(), 1))
