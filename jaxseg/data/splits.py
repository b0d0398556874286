"""Preprocessed splits: every example of a source decoded, resized and held as uint8 arrays.

Deterministic preprocessing (decode, resize images bilinear and masks nearest) runs once per split and is
cached, in memory and optionally on disk: the whole Oxford-IIIT Pet split at 224 px is ~0.7 GB, so holding
it beats re-decoding JPEGs every epoch. What changes per epoch (shuffling, batching, flips) is cheap index
work in `batching` or runs on the device (`transforms`).
"""

import dataclasses
import hashlib
import os

import ml_collections
import numpy as np

from jaxseg import files
from jaxseg.data import images as image_io
from jaxseg.data.classes import CLASS_NAMES
from jaxseg.data.sources import SOURCES
from jaxseg.errors import DatasetError


@dataclasses.dataclass
class Split:
  """A preprocessed split: images (N, S, S, 3) uint8, masks (N, S, S) uint8 class ids, example names."""
  images: np.ndarray
  masks: np.ndarray
  names: list[str]

  def __len__(self) -> int:
    return len(self.images)


_MEMORY_CACHE: dict[str, Split] = {}


def clear_memory_cache() -> None:
  """Forgets every split held in memory (the on-disk cache stays)."""
  _MEMORY_CACHE.clear()


def _cache_key(config: ml_collections.ConfigDict, split: str) -> str:
  d = config.data
  parts = [d.source, split, str(config.image_size), str(config.seed if d.source == "synthetic" else ""),
           d.tfds_name if d.source == "tfds" else "", os.path.abspath(d.folder) if d.folder else "",
           d.data_dir, str(d.skip_bad),
           str(d.synthetic_train_size if split == d.train_split else d.synthetic_eval_size)]
  return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def load_split(config: ml_collections.ConfigDict, split: str) -> Split:
  """Loads and preprocesses one split of the configured source (cached).

  Args:
    config: the experiment config (`data.*`, `image_size`, `seed`).
    split: a split name of the source (`config.data.train_split` or `config.data.eval_split`).

  Returns:
    The preprocessed split, truncated to `data.max_train_examples` / `data.max_eval_examples` if set.
  """
  key = _cache_key(config, split)
  split_data = _MEMORY_CACHE.get(key)
  path = os.path.join(os.path.expanduser(config.data.cache_dir), f"{key}.npz") if config.data.cache_dir else ""
  if split_data is None and path and os.path.isfile(path):
    with np.load(path) as f:
      split_data = Split(f["images"], f["masks"], list(f["names"]))
  if split_data is None:
    split_data = _preprocess(config, split)
    if path:
      with files.atomic_path(path) as tmp:
        np.savez(tmp, images=split_data.images, masks=split_data.masks, names=np.array(split_data.names))
  _MEMORY_CACHE[key] = split_data
  limit = config.data.max_train_examples if split == config.data.train_split else config.data.max_eval_examples
  if limit:
    split_data = Split(split_data.images[:limit], split_data.masks[:limit], split_data.names[:limit])
  if not len(split_data):
    raise DatasetError(f"split {split!r} of source {config.data.source!r} has no examples.")
  return split_data


def _preprocess(config: ml_collections.ConfigDict, split: str) -> Split:
  images, masks, names = [], [], []
  for name, image, mask in SOURCES[config.data.source](config, split):
    img, mask = image_io.resize_pair(image, mask, config.image_size)
    images.append(img)
    masks.append(mask)
    names.append(name)
  if not images:
    raise DatasetError(f"split {split!r} of source {config.data.source!r} has no (readable) examples.")
  return Split(np.stack(images), np.stack(masks), names)


def majority_baseline(split: Split) -> float:
  """Pixel accuracy of always predicting the most frequent class."""
  counts = np.bincount(split.masks.ravel(), minlength=len(CLASS_NAMES))
  return float(counts.max() / counts.sum())
