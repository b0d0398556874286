"""Example sources, by `config.data.source`: tfds `oxford_iiit_pet`, an extracted Oxford-IIIT Pet folder,
and synthetic shapes.

Each yields (name, image uint8 (H, W, 3), class mask uint8 (H, W)) at the example's own size; `splits`
resizes them to the training size and caches the result.
"""

import os
from typing import Iterator

import ml_collections
import numpy as np
from PIL import Image

from jaxseg.data.classes import trimap_to_classes
from jaxseg.data.images import read_rgb
from jaxseg.errors import DatasetError

Example = tuple[str, np.ndarray, np.ndarray]


def synthetic_arrays(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """A learnable 3-class stand-in for the pets: a textured blob (0) with a boundary ring (2) on clutter (1).

  Object and background colours come from overlapping ranges with noise, so colour alone is not enough;
  shape and context are needed, as in the real task.

  Returns:
    images (n, size, size, 3) uint8 and masks (n, size, size) uint8 class ids.
  """
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  images = np.empty((n, size, size, 3), np.uint8)
  masks = np.empty((n, size, size), np.uint8)
  ring = max(1.5, size / 40)
  for i in range(n):
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    ry, rx = rng.uniform(0.18, 0.38, 2) * size
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
    r = np.sqrt(u * u + v * v)
    signed = (r - 1.0) * min(rx, ry)  # approximate distance to the ellipse edge, in pixels
    mask = np.ones((size, size), np.uint8)
    mask[signed < 0] = 0
    mask[np.abs(signed) < ring] = 2
    fg, bg = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    stripes = 25 * np.sin(xx / rng.uniform(2, 6) + rng.uniform(0, 6))[..., None]
    blotch = 30 * np.sin(yy / rng.uniform(4, 12))[..., None] * np.cos(xx / rng.uniform(4, 12))[..., None]
    img = np.where((signed < 0)[..., None], fg + stripes, bg + blotch)
    img += rng.normal(0, 12, img.shape)
    images[i] = np.clip(img, 0, 255).astype(np.uint8)
    masks[i] = mask
  return images, masks


def tfds_examples(name: str, split: str, data_dir: str | None, download: bool) -> Iterator[Example]:
  """Examples of tfds `oxford_iiit_pet` (4.x), downloading and preparing it first when allowed.

  Raises:
    DatasetError: the data is not prepared and cannot be downloaded, with what to do instead.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")  # TF only reads data: keep it off the accelerator JAX uses
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    hint = ("Either run once on a machine with internet (tfds downloads images.tar.gz, 792 MB, and "
            "annotations.tar.gz, 19 MB, into ~/tensorflow_datasets; copy that folder here and set "
            "--config.data.data_dir), or extract both archives from the Oxford-IIIT Pet site into one "
            "directory and use --config.data.source=folder --config.data.folder=DIR, or try the offline "
            "demo: --config=configs/demo.py.")
    if not download:
      raise DatasetError(f"tfds dataset {name} is not prepared in {builder.data_dir} and "
                         f"config.data.download is False. {hint}")
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      raise DatasetError(f"could not download tfds dataset {name} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''}). {hint}") from e
  try:
    ds = builder.as_dataset(split=split, shuffle_files=False)
  except (KeyError, ValueError) as e:
    raise DatasetError(f"tfds dataset {name} has no split {split!r} ({e}); it has "
                       f"{sorted(builder.info.splits)}.") from None
  for i, ex in enumerate(tfds.as_numpy(ds)):
    fname = ex.get("file_name", b"")
    fname = fname.decode() if isinstance(fname, bytes) else str(fname)
    image = ex["image"]
    if image.ndim == 3 and image.shape[-1] == 1:
      image = np.repeat(image, 3, axis=-1)
    # Real trimaps are 1..3; tfds.testing.mock_data fills masks with random bytes, so clip before the -1.
    trimap = np.clip(ex["segmentation_mask"][..., 0], 1, 3).astype(np.uint8)
    yield fname or f"{split}_{i}", image[..., :3].astype(np.uint8), trimap_to_classes(trimap)


def _list_file(folder: str, split: str) -> str:
  lists = {"train": "trainval.txt", "trainval": "trainval.txt", "test": "test.txt"}
  if split not in lists:
    raise DatasetError(f"folder source: split {split!r} is unknown; use 'train' (trainval.txt) or 'test'.")
  return os.path.join(folder, "annotations", lists[split])


def folder_examples(folder: str, split: str, skip_bad: bool = False) -> Iterator[Example]:
  """Examples of an extracted Oxford-IIIT Pet directory (images/*.jpg, annotations/trimaps/*.png, lists).

  Args:
    folder: the directory holding `images/` and `annotations/`.
    split: "train" (annotations/trainval.txt) or "test" (annotations/test.txt).
    skip_bad: skip unreadable or inconsistent examples (counted in a warning) instead of raising.

  Raises:
    DatasetError: naming the file, for a missing or corrupt image or trimap, trimap values outside
      {1, 2, 3}, or an image and trimap of different sizes (unless `skip_bad`).
  """
  if not folder:
    raise DatasetError("config.data.source='folder' needs --config.data.folder=DIR (with images/ and "
                       "annotations/ as in the Oxford-IIIT Pet release).")
  list_path = _list_file(folder, split)
  if not os.path.isfile(list_path):
    raise DatasetError(f"{list_path} does not exist: --config.data.folder must be an extracted Oxford-IIIT "
                       "Pet directory (images/*.jpg, annotations/trimaps/*.png, annotations/trainval.txt, "
                       "annotations/test.txt).")
  with open(list_path) as f:
    names = [line.split()[0] for line in f if line.strip() and not line.startswith("#")]
  skipped = []
  for name in names:
    try:
      yield name, *_read_folder_example(folder, name)
    except DatasetError as e:
      if not skip_bad:
        raise DatasetError(f"{e} Fix or remove it, or set --config.data.skip_bad=True to skip bad "
                           "examples.") from None
      skipped.append(str(e))
  if skipped:
    print(f"warning: skipped {len(skipped)} bad example(s) in {list_path}; first: {skipped[0]}")


def _read_folder_example(folder: str, name: str) -> tuple[np.ndarray, np.ndarray]:
  img_path = os.path.join(folder, "images", name + ".jpg")
  map_path = os.path.join(folder, "annotations", "trimaps", name + ".png")
  image = read_rgb(img_path, exif=False)
  try:
    with Image.open(map_path) as im:
      trimap = np.asarray(im)
  except FileNotFoundError:
    raise DatasetError(f"{map_path}: trimap is missing.") from None
  except Exception as e:  # pylint: disable=broad-except
    raise DatasetError(f"{map_path}: cannot read trimap ({type(e).__name__}: {e}).") from None
  if trimap.ndim == 3:
    trimap = trimap[..., 0]
  bad = np.setdiff1d(np.unique(trimap), [1, 2, 3])
  if bad.size:
    raise DatasetError(f"{map_path}: trimap values must be 1 (pet), 2 (background) or 3 (boundary); found "
                       f"{bad[:5].tolist()}.")
  if trimap.shape != image.shape[:2]:
    raise DatasetError(f"{map_path}: trimap is {trimap.shape[1]}x{trimap.shape[0]} but its image {img_path} "
                       f"is {image.shape[1]}x{image.shape[0]}.")
  return image, trimap_to_classes(trimap)


def synthetic_examples(config: ml_collections.ConfigDict, split: str) -> Iterator[Example]:
  """`config.data.synthetic_train_size` (train split) or `synthetic_eval_size` examples at the training size;
  the two splits are drawn from disjoint seeds."""
  d = config.data
  n = d.synthetic_train_size if split == d.train_split else d.synthetic_eval_size
  offset = 0 if split == d.train_split else 1_000_003
  images, masks = synthetic_arrays(n, config.image_size, seed=config.seed * 7919 + offset)
  for i in range(n):
    yield f"synthetic_{split}_{i}", images[i], masks[i]


def _tfds(config: ml_collections.ConfigDict, split: str) -> Iterator[Example]:
  d = config.data
  return tfds_examples(d.tfds_name, split, d.data_dir or None, d.download)


def _folder(config: ml_collections.ConfigDict, split: str) -> Iterator[Example]:
  return folder_examples(config.data.folder, split, skip_bad=config.data.skip_bad)


# Plain-dict registry: config.data.source -> examples(config, split).
SOURCES = {"tfds": _tfds, "folder": _folder, "synthetic": synthetic_examples}
