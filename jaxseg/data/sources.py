"""Example sources, by `config.data.source`: tfds `oxford_iiit_pet`, a folder of images and masks, and
synthetic shapes.

A source lists a split as (name, load) pairs plus the problems found while listing (missing or unpaired
files). `load()` returns (image uint8 (H, W, 3), class ids uint8 (H, W), IGNORE allowed) at the example's
own size, or raises DatasetError naming the file; `splits` resizes, checks and caches what loads.
"""

import dataclasses
import os
from collections.abc import Callable, Iterable

import ml_collections
import numpy as np

from jaxseg import extras
from jaxseg.data import geometry
from jaxseg.data import labels as label_io
from jaxseg.data.images import read_rgb
from jaxseg.data.synthetic import synthetic_arrays
from jaxseg.errors import DatasetError

Loaded = tuple[np.ndarray, np.ndarray]
LAYOUTS = ("auto", "lists", "dirs", "oxford_pet")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclasses.dataclass
class Listing:
  """A split as a source lists it: (name, load) pairs, and one line per problem found while listing."""
  examples: Iterable[tuple[str, Callable[[], Loaded]]]
  problems: list[str] = dataclasses.field(default_factory=list)


def tfds_examples(config: ml_collections.ConfigDict, split: str) -> Listing:
  """Examples of tfds `oxford_iiit_pet` (4.x), downloading and preparing it first when allowed.

  Raises:
    DatasetError: the data is not prepared and cannot be downloaded, with what to do instead.
  """
  tf = extras.require("tensorflow", "config.data.source='tfds'", "jaxseg")
  tfds = extras.require("tensorflow_datasets", "config.data.source='tfds'", "jaxseg")
  tf.config.set_visible_devices([], "GPU")  # TF only reads data: keep it off the accelerator JAX uses
  d = config.data
  builder = tfds.builder(d.tfds_name, data_dir=d.data_dir or None)
  if not builder.is_prepared():
    hint = ("Either run once on a machine with internet (tfds downloads images.tar.gz, 792 MB, and "
            "annotations.tar.gz, 19 MB, into ~/tensorflow_datasets; copy that folder here and set "
            "--config.data.data_dir), or extract both archives from the Oxford-IIIT Pet site into one "
            "directory and use --config.data.source=folder --config.data.root=DIR, or try the offline "
            "demo: --config=configs/demo.py.")
    if not d.download:
      raise DatasetError(f"tfds dataset {d.tfds_name} is not prepared in {builder.data_dir} and "
                         f"config.data.download is False. {hint}")
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      raise DatasetError(f"could not download tfds dataset {d.tfds_name} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''}). {hint}") from e
  try:
    ds = builder.as_dataset(split=split, shuffle_files=False)
  except (KeyError, ValueError) as e:
    raise DatasetError(f"tfds dataset {d.tfds_name} has no split {split!r} ({e}); it has "
                       f"{sorted(builder.info.splits)}.") from None
  label_map = label_io.label_map_from_config(config)

  def examples():
    for i, ex in enumerate(tfds.as_numpy(ds)):
      fname = ex.get("file_name", b"")
      fname = (fname.decode() if isinstance(fname, bytes) else str(fname)) or f"{split}_{i}"
      image = ex["image"]
      if image.ndim == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
      # Real trimaps are 1..3; tfds.testing.mock_data fills masks with random bytes: clip to the trimap range.
      trimap = np.clip(ex["segmentation_mask"][..., 0], 1, 3).astype(np.uint8)
      loaded = image[..., :3].astype(np.uint8), label_map.to_classes(trimap, fname)
      yield fname, lambda loaded=loaded: loaded
  return Listing(examples())


def folder_root(config: ml_collections.ConfigDict) -> str:
  """`data.root`, with `~` expanded."""
  return os.path.expanduser(config.data.root)


def detect_layout(root: str, split: str, layout: str) -> str:
  """The folder layout: "lists" (`<split>.txt` of `image mask` lines), "oxford_pet" (Oxford-IIIT Pet
  release), or "dirs" (image and mask directories paired by file name)."""
  if layout != "auto":
    return layout
  if os.path.isfile(os.path.join(root, f"{split}.txt")):
    return "lists"
  if os.path.isdir(os.path.join(root, "annotations", "trimaps")):
    return "oxford_pet"
  return "dirs"


def _pairs_from_list(root: str, list_path: str) -> tuple[list[tuple[str, str, str]], list[str]]:
  pairs, problems = [], []
  with open(list_path) as f:
    for n, line in enumerate(f, 1):
      parts = line.split()
      if not parts or parts[0].startswith("#"):
        continue
      if len(parts) != 2:
        problems.append(f"{list_path}:{n}: expected 'image mask' (two paths), got {line.strip()!r}.")
        continue
      img, mask = (p if os.path.isabs(p) else os.path.join(root, p) for p in parts)
      missing = [p for p in (img, mask) if not os.path.isfile(p)]
      if missing:
        problems.append(f"{list_path}:{n}: {missing[0]} does not exist.")
        continue
      pairs.append((os.path.relpath(img, root), img, mask))
  return pairs, problems


def _pairs_from_dirs(root: str, image_dir: str, mask_dir: str, suffix: str
                     ) -> tuple[list[tuple[str, str, str]], list[str]]:
  def by_stem(folder):
    return {os.path.splitext(f)[0]: os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if f.lower().endswith(IMAGE_EXTENSIONS)}
  for folder, option in ((image_dir, "image_dir"), (mask_dir, "mask_dir")):
    if not os.path.isdir(folder):
      raise DatasetError(f"{folder} is not a directory (config.data.{option}, relative to config.data.root); "
                         "a folder dataset needs <split>.txt list files or image and mask directories.")
  images, masks = by_stem(image_dir), by_stem(mask_dir)
  pairs, problems = [], []
  for stem, img in images.items():
    mask = masks.pop(stem + suffix, None)
    if mask is None:
      problems.append(f"{img}: no mask {stem + suffix}.* in {mask_dir}.")
    else:
      pairs.append((os.path.relpath(img, root), img, mask))
  problems += [f"{m}: mask without an image in {image_dir}." for m in masks.values()]
  return pairs, problems


def _pairs_oxford(root: str, split: str) -> tuple[list[tuple[str, str, str]], list[str]]:
  lists = {"train": "trainval.txt", "trainval": "trainval.txt", "test": "test.txt"}
  if split not in lists:
    raise DatasetError(f"split {split!r} is unknown in the Oxford-IIIT Pet layout; use 'train' "
                       "(annotations/trainval.txt) or 'test'.")
  list_path = os.path.join(root, "annotations", lists[split])
  if not os.path.isfile(list_path):
    raise DatasetError(f"{list_path} does not exist: an Oxford-IIIT Pet folder has images/*.jpg, "
                       "annotations/trimaps/*.png, annotations/trainval.txt and annotations/test.txt.")
  with open(list_path) as f:
    names = [line.split()[0] for line in f if line.strip() and not line.startswith("#")]
  return [(name, os.path.join(root, "images", name + ".jpg"),
           os.path.join(root, "annotations", "trimaps", name + ".png")) for name in names], []


def list_pairs(config: ml_collections.ConfigDict, split: str) -> tuple[list[tuple[str, str, str]], list[str]]:
  """(name, image path, mask path) of a folder split, and the listing's problems.

  Raises:
    DatasetError: the root, list file or directories do not exist.
  """
  d = config.data
  root = folder_root(config)
  if not root:
    raise DatasetError("config.data.source='folder' needs --config.data.root=DIR (with <split>.txt lists of "
                       "'image mask' paths, image and mask directories, or the Oxford-IIIT Pet layout).")
  if not os.path.isdir(root):
    raise DatasetError(f"{root} is not a directory (config.data.root).")
  layout = detect_layout(root, split, d.layout)
  if layout == "lists":
    list_path = os.path.join(root, f"{split}.txt")
    if not os.path.isfile(list_path):
      raise DatasetError(f"{list_path} does not exist: the split {split!r} needs a list file of 'image mask' "
                         "lines (config.data.train_split / eval_split name the splits).")
    return _pairs_from_list(root, list_path)
  if layout == "oxford_pet":
    return _pairs_oxford(root, split)
  return _pairs_from_dirs(root, os.path.join(root, d.image_dir.format(split=split)),
                          os.path.join(root, d.mask_dir.format(split=split)), d.mask_suffix)


def load_pair(image_path: str, mask_path: str, label_map: label_io.LabelMap) -> Loaded:
  """An image and its mask as (RGB uint8, class ids uint8), checked to have one size.

  Raises:
    DatasetError: naming the file, for an unreadable file, unknown labels or colours, or a size mismatch.
  """
  image = read_rgb(image_path, exif=False)
  raw = label_io.read_mask(mask_path)
  if raw.shape[:2] != image.shape[:2]:
    raise DatasetError(f"{mask_path}: mask is {raw.shape[1]}x{raw.shape[0]} but its image {image_path} is "
                       f"{image.shape[1]}x{image.shape[0]}.")
  return image, label_map.to_classes(raw, mask_path)


def folder_examples(config: ml_collections.ConfigDict, split: str) -> Listing:
  """A folder split (see `list_pairs`); masks are decoded through the config's label map."""
  pairs, problems = list_pairs(config, split)
  label_map = label_io.label_map_from_config(config, folder_root(config))
  return Listing([(name, lambda i=img, m=mask: load_pair(i, m, label_map)) for name, img, mask in pairs],
                 problems)


def synthetic_examples(config: ml_collections.ConfigDict, split: str) -> Listing:
  """`config.data.synthetic_train_size` (train split) or `synthetic_eval_size` examples at the stored size;
  the two splits are drawn from disjoint seeds."""
  d = config.data
  n = d.synthetic_train_size if split == d.train_split else d.synthetic_eval_size
  offset = 0 if split == d.train_split else 1_000_003
  h, w = geometry.stored_size(config)
  images, masks = synthetic_arrays(n, h, seed=config.seed * 7919 + offset, width=w)
  return Listing([(f"synthetic_{split}_{i}", lambda i=i: (images[i], masks[i])) for i in range(n)])


# Plain-dict registry: config.data.source -> listing(config, split).
SOURCES = {"tfds": tfds_examples, "folder": folder_examples, "synthetic": synthetic_examples}
