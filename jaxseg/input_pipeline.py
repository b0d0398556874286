"""Oxford-IIIT Pet input pipeline: three sources (tfds, an extracted folder, synthetic) behind one interface.

Deterministic preprocessing (decode, resize images bilinear and masks nearest, trimap {1 pet, 2 background,
3 boundary} -> {0, 1, 2}) runs once per split and is cached as uint8 arrays, in memory and optionally on disk:
the whole split at 224 px is ~0.7 GB, so holding it beats re-decoding JPEGs every epoch. What changes per
epoch (shuffling, batching) is cheap index work here; random flips and the [-1, 1] scaling run inside the
jitted train step (`augment`), so the host never becomes the bottleneck.
"""

import dataclasses
import hashlib
import os
from typing import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxseg import datasets

CLASS_NAMES = ("pet", "background", "boundary")


@dataclasses.dataclass
class Split:
  """A preprocessed split: images (N, S, S, 3) uint8, masks (N, S, S) uint8 class ids, example names."""
  images: np.ndarray
  masks: np.ndarray
  names: list[str]

  def __len__(self) -> int:
    return len(self.images)


_MEMORY_CACHE: dict[str, Split] = {}


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
    split_data = _load_source(config, split)
    if path:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tmp = path + ".tmp.npz"
      np.savez(tmp, images=split_data.images, masks=split_data.masks, names=np.array(split_data.names))
      os.replace(tmp, path)
  _MEMORY_CACHE[key] = split_data
  limit = config.data.max_train_examples if split == config.data.train_split else config.data.max_eval_examples
  if limit:
    split_data = Split(split_data.images[:limit], split_data.masks[:limit], split_data.names[:limit])
  if not len(split_data):
    raise datasets.DatasetError(f"split {split!r} of source {config.data.source!r} has no examples.")
  return split_data


def _load_source(config: ml_collections.ConfigDict, split: str) -> Split:
  d, size = config.data, config.image_size
  if d.source == "synthetic":
    n = d.synthetic_train_size if split == d.train_split else d.synthetic_eval_size
    offset = 0 if split == d.train_split else 1_000_003
    images, masks = datasets.synthetic(n, size, seed=config.seed * 7919 + offset)
    return Split(images, masks, [f"synthetic_{split}_{i}" for i in range(n)])
  if d.source == "tfds":
    examples = datasets.tfds_examples(d.tfds_name, split, d.data_dir or None, d.download)
  elif d.source == "folder":
    examples = datasets.folder_examples(d.folder, split, skip_bad=d.skip_bad)
  else:
    raise ValueError(f"config.data.source={d.source!r} is unknown; use 'tfds', 'folder' or 'synthetic'.")
  images, masks, names = [], [], []
  for name, image, trimap in examples:
    img, mask = datasets.resize_pair(image, trimap, size)
    images.append(img)
    masks.append(mask)
    names.append(name)
  if not images:
    raise datasets.DatasetError(f"split {split!r} of source {d.source!r} has no (readable) examples.")
  logging.info("Loaded %d examples of %s/%s at %d px.", len(images), d.source, split, size)
  return Split(np.stack(images), np.stack(masks), names)


def majority_baseline(split: Split) -> float:
  """Pixel accuracy of always predicting the most frequent class."""
  counts = np.bincount(split.masks.ravel(), minlength=len(CLASS_NAMES))
  return float(counts.max() / counts.sum())


def _host_slice(batch_size: int) -> slice:
  """This host's rows of a global batch (multi-host: every host reads only its own shard)."""
  per_host = batch_size // jax.process_count()
  return slice(jax.process_index() * per_host, (jax.process_index() + 1) * per_host)


def steps_per_epoch(split: Split, batch_size: int) -> int:
  return len(split) // batch_size


def train_batches(split: Split, batch_size: int, seed: int, epoch: int) -> Iterator[dict[str, np.ndarray]]:
  """Shuffled full batches (the remainder is dropped), this host's share of each global batch.

  The order depends only on (seed, epoch), so a run resumed at epoch k sees the batches an uninterrupted
  run would.
  """
  order = np.random.default_rng([seed, epoch]).permutation(len(split))
  rows = _host_slice(batch_size)
  for i in range(steps_per_epoch(split, batch_size)):
    idx = np.sort(order[i * batch_size:(i + 1) * batch_size][rows])
    yield {"image": split.images[idx], "mask": split.masks[idx]}


def eval_batches(split: Split, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """Every example exactly once, in order; the last batch is padded and its `weight` is 0 on padding."""
  rows = _host_slice(batch_size)
  for start in range(0, len(split), batch_size):
    idx = np.arange(start, start + batch_size)
    weight = (idx < len(split)).astype(np.float32)
    idx = np.minimum(idx, len(split) - 1)[rows]
    yield {"image": split.images[idx], "mask": split.masks[idx], "weight": weight[rows]}


def normalize(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1], as Keras `mobilenet_v2.preprocess_input` (the ImageNet weights'
  training scaling). The TensorFlow tutorial divided by 255 instead, feeding the encoder inputs it was
  never trained on."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def augment(rng: jax.Array, images: jax.Array, masks: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Random horizontal flip of each image together with its mask (inside the jitted step)."""
  flip = jax.random.bernoulli(rng, 0.5, (images.shape[0],))
  images = jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)
  masks = jnp.where(flip[:, None, None], masks[:, :, ::-1], masks)
  return images, masks
