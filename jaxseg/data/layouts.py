"""Folder layouts: how a dataset directory pairs images with masks, by `config.data.layout`.

- `lists`: `<split>.txt` files of `image mask` relative paths (the SegNet layout).
- `dirs`: an image directory and a mask directory per split (`data.image_dir`, `data.mask_dir`, `{split}` in
  them), searched recursively and paired by relative folder and file stem less `data.image_suffix` /
  `data.mask_suffix` (Cityscapes: `leftImg8bit/{split}/{city}/X_leftImg8bit.png` with
  `gtFine/{split}/{city}/X_gtFine_labelIds.png`; with a suffix, other files are not images or masks).
- `voc`: the ids of `ImageSets/Segmentation/<split>.txt`, `<image_dir>/<id>.jpg` and `<mask_dir>/<id>.png`.
- `oxford_pet`: the Oxford-IIIT Pet release.
- `auto`: lists if `<split>.txt` exists, else the Oxford-IIIT Pet layout if `annotations/trimaps` does, else dirs.
"""

import os
from collections.abc import Callable

import ml_collections

from jaxseg.errors import DatasetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
Pairs = tuple[list[tuple[str, str, str]], list[str]]  # (name, image path, mask path) and problems


def detect_layout(root: str, split: str, layout: str) -> str:
  """`layout`, or for "auto" the one `root` holds (see the module's docstring)."""
  if layout != "auto":
    return layout
  if os.path.isfile(os.path.join(root, f"{split}.txt")):
    return "lists"
  if os.path.isdir(os.path.join(root, "annotations", "trimaps")):
    return "oxford_pet"
  return "dirs"


def _text_lines(list_path: str) -> list[str]:
  """The lines of a UTF-8 list file.

  Raises:
    DatasetError: naming the file, when it is not UTF-8 text (or cannot be read).
  """
  try:
    with open(list_path, encoding="utf-8") as f:
      return f.read().splitlines()
  except UnicodeDecodeError as e:
    raise DatasetError(f"{list_path}: not UTF-8 text ({e.reason} at byte {e.start}); a list file holds lines of "
                       "'image mask' paths.") from None
  except OSError as e:
    raise DatasetError(f"{list_path}: cannot be read ({e.strerror}).") from None


def _pairs_from_list(root: str, list_path: str) -> Pairs:
  pairs, problems = [], []
  for n, line in enumerate(_text_lines(list_path), 1):
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


def _by_key(folder: str, suffix: str) -> dict[str, str]:
  """{relative folder / stem less `suffix`: path} of the image files under `folder`, recursively (links to
  folders are not followed); with a suffix, only files whose stem ends with it."""
  out = {}
  for here, dirs, names in os.walk(folder):
    dirs.sort()
    for name in sorted(names):
      stem, ext = os.path.splitext(name)
      if ext.lower() not in IMAGE_EXTENSIONS or not stem.endswith(suffix):
        continue
      rel = os.path.relpath(os.path.join(here, stem[:len(stem) - len(suffix)]), folder)
      out[rel] = os.path.join(here, name)
  return out


def _pairs_from_dirs(root: str, d: ml_collections.ConfigDict, split: str) -> Pairs:
  image_dir = os.path.join(root, d.image_dir.format(split=split))
  mask_dir = os.path.join(root, d.mask_dir.format(split=split))
  for folder, option in ((image_dir, "image_dir"), (mask_dir, "mask_dir")):
    if not os.path.isdir(folder):
      raise DatasetError(f"{folder} is not a directory (config.data.{option}, relative to config.data.root); "
                         "a folder dataset needs <split>.txt list files or image and mask directories.")
  images, masks = _by_key(image_dir, d.image_suffix), _by_key(mask_dir, d.mask_suffix)
  pairs, problems = [], []
  for key, img in images.items():
    mask = masks.pop(key, None)
    if mask is None:
      problems.append(f"{img}: no mask {key + d.mask_suffix}.* in {mask_dir}.")
    else:
      pairs.append((os.path.relpath(img, root), img, mask))
  problems += [f"{m}: mask without an image in {image_dir}." for m in masks.values()]
  return pairs, problems


def _read_ids(list_path: str) -> list[str]:
  """The first word of every line of a list file, blank lines and # comments skipped."""
  return [line.split()[0] for line in _text_lines(list_path) if line.strip() and not line.startswith("#")]


def _pairs_voc(root: str, d: ml_collections.ConfigDict, split: str) -> Pairs:
  list_path = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
  if not os.path.isfile(list_path):
    raise DatasetError(f"{list_path} does not exist: a VOC split needs ImageSets/Segmentation/{split}.txt "
                       "(one image id per line) under config.data.root.")
  pairs, problems = [], []
  for i in _read_ids(list_path):
    img = os.path.join(root, d.image_dir.format(split=split), f"{i}.jpg")
    mask = os.path.join(root, d.mask_dir.format(split=split), f"{i}.png")
    missing = [p for p in (img, mask) if not os.path.isfile(p)]
    if missing:
      problems.append(f"{list_path}: {missing[0]} does not exist.")
    else:
      pairs.append((os.path.relpath(img, root), img, mask))
  return pairs, problems


def _pairs_oxford(root: str, d: ml_collections.ConfigDict, split: str) -> Pairs:
  del d
  lists = {"train": "trainval.txt", "trainval": "trainval.txt", "test": "test.txt"}
  if split not in lists:
    raise DatasetError(f"split {split!r} is unknown in the Oxford-IIIT Pet layout; use 'train' "
                       "(annotations/trainval.txt) or 'test'.")
  list_path = os.path.join(root, "annotations", lists[split])
  if not os.path.isfile(list_path):
    raise DatasetError(f"{list_path} does not exist: an Oxford-IIIT Pet folder has images/*.jpg, "
                       "annotations/trimaps/*.png, annotations/trainval.txt and annotations/test.txt.")
  return [(name, os.path.join(root, "images", name + ".jpg"),
           os.path.join(root, "annotations", "trimaps", name + ".png")) for name in _read_ids(list_path)], []


def _pairs_lists(root: str, d: ml_collections.ConfigDict, split: str) -> Pairs:
  del d
  list_path = os.path.join(root, f"{split}.txt")
  if not os.path.isfile(list_path):
    raise DatasetError(f"{list_path} does not exist: the split {split!r} needs a list file of 'image mask' "
                       "lines (config.data.train_split / eval_split name the splits).")
  return _pairs_from_list(root, list_path)


# Plain-dict registry: config.data.layout -> pairs(root, config.data, split).
LAYOUTS: dict[str, Callable[[str, ml_collections.ConfigDict, str], Pairs]] = {
    "lists": _pairs_lists, "dirs": _pairs_from_dirs, "voc": _pairs_voc, "oxford_pet": _pairs_oxford}


def list_pairs(root: str, config: ml_collections.ConfigDict, split: str) -> Pairs:
  """(name, image path, mask path) of a folder split under `root`, and the listing's problems.

  Raises:
    DatasetError: the root, list file or directories do not exist, or the layout is unknown.
  """
  if not root:
    raise DatasetError("config.data.source='folder' needs --config.data.root=DIR (with <split>.txt lists of "
                       "'image mask' paths, image and mask directories, or the Oxford-IIIT Pet layout).")
  if not os.path.isdir(root):
    raise DatasetError(f"{root} is not a directory (config.data.root).")
  layout = detect_layout(root, split, config.data.layout)
  if layout not in LAYOUTS:
    raise DatasetError(f"config.data.layout={layout!r} is unknown; choose one of {['auto', *LAYOUTS]}.")
  return LAYOUTS[layout](root, config.data, split)
