"""Example sources, by `config.data.source`: tfds `oxford_iiit_pet`, a folder of images and masks, and
synthetic shapes.

A source lists a split as (name, load) pairs plus the problems found while listing (missing or unpaired
files). `load()` returns (image uint8 (H, W, 3), class ids uint8 (H, W), IGNORE allowed) at the example's
own size, or raises DatasetError naming the file; `splits` resizes, checks and caches what loads.
"""

import dataclasses
import fnmatch
import os
from collections.abc import Callable, Iterable

import ml_collections
import numpy as np

from jaxseg.data import geometry, layouts
from jaxseg.data import labels as label_io
from jaxseg.data.images import read_rgb
from jaxseg.data.synthetic import synthetic_arrays
from jaxseg.errors import DatasetError
from jaxseg.runtime import extras

Loaded = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass
class Listing:
  """A split as a source lists it: (name, load) pairs, and one line per problem found while listing."""
  examples: Iterable[tuple[str, Callable[[], Loaded]]]
  problems: list[str] = dataclasses.field(default_factory=list)


def tfds_builder(data: ml_collections.ConfigDict):
  """The tfds builder of `data.tfds_name` (default Oxford-IIIT Pet 4.x), prepared: downloaded and prepared
  first, in `data.tfds_file_format`, where it is not yet and `data.download` allows.

  Raises:
    DatasetError: the data is not prepared and cannot be downloaded, with what to do instead.
  """
  tfds = extras.require("tensorflow_datasets", "config.data.source='tfds'", "jaxseg")
  builder = _tfds_builder(tfds, data.tfds_name, data.data_dir or None, data.tfds_file_format)
  if not builder.is_prepared():
    hint = ("Either run once on a machine with internet (tfds downloads images.tar.gz, 792 MB, and "
            "annotations.tar.gz, 19 MB, into ~/tensorflow_datasets; copy that folder here and set "
            "--config.data.data_dir), or extract both archives from the Oxford-IIIT Pet site into one "
            "directory and use --config.data.source=folder --config.data.root=DIR, or try the offline "
            "demo: --config=configs/demo.py.")
    if not data.download:
      raise DatasetError(f"tfds dataset {data.tfds_name} is not prepared in {builder.data_dir} and "
                         f"config.data.download is False. {hint}")
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      if _needs_tensorflow(e):
        pets = data.tfds_name.startswith("oxford_iiit_pet")
        calls = " (its builder re-encodes 12 of the pictures with tf.image.decode_image and tf.io.encode_jpeg)"
        raise DatasetError(
            f"preparing tfds dataset {data.tfds_name} runs TensorFlow, which is not installed{calls if pets else ''}"
            ": prepare it once with pip install 'jaxseg[tf]' (reading it afterwards needs no TensorFlow), or "
            + ("extract both archives from the Oxford-IIIT Pet site into one directory and use "
               "--config.data.source=folder --config.data.root=DIR." if pets else
               "copy a dataset prepared elsewhere and set --config.data.data_dir.")) from None
      raise DatasetError(f"could not download tfds dataset {data.tfds_name} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''}). {hint}") from e
  return builder


def _needs_tensorflow(error: BaseException | None) -> bool:
  """Whether `error` (or an exception it was raised from) is TensorFlow missing."""
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] == "tensorflow":
      return True
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return False


def no_split(builder, name: str, split: str, error: Exception) -> DatasetError:
  """The error for a split the prepared tfds dataset `name` does not have, naming those it has."""
  return DatasetError(f"tfds dataset {name} has no split {split!r} ({error}); it has {sorted(builder.info.splits)}.")


def is_array_record(builder) -> bool:
  """Whether a tfds builder's data is (to be) stored as ArrayRecord, read without TensorFlow."""
  return str(getattr(builder.info.file_format, "value", "")) == "array_record"


def tfds_examples(config: ml_collections.ConfigDict, split: str) -> Listing:
  """Examples of the tfds dataset `data.tfds_name` (`tfds_builder`) by its feature keys `data.image_key` and
  `data.mask_key`, in the order tfds stored them.

  Raises:
    DatasetError: the data is not prepared and cannot be downloaded, or has no such split.
  """
  tfds = extras.require("tensorflow_datasets", "config.data.source='tfds'", "jaxseg")
  d = config.data
  builder = tfds_builder(d)
  try:
    rows = _tfds_rows(tfds, builder, split)
  except (KeyError, ValueError) as e:
    raise no_split(builder, d.tfds_name, split, e) from None
  label_map = label_io.label_map_from_config(config)

  def examples():
    for i, ex in enumerate(rows):
      fname = ex.get("file_name", b"")
      fname = (fname.decode() if isinstance(fname, bytes) else str(fname)) or f"{split}_{i}"
      image_key, mask_key = tfds_keys(config)
      loaded = tfds_pair(ex[image_key], ex[mask_key], label_map, fname)
      yield fname, lambda loaded=loaded: loaded
  return Listing(examples())


def _tfds_builder(tfds, name: str, data_dir: str | None, file_format: str):
  """The builder of `name` in the format it was prepared in (either), or, not prepared yet, in `file_format`."""
  for fmt in dict.fromkeys((file_format, "tfrecord", "array_record")):
    try:
      builder = tfds.builder(name, data_dir=data_dir, file_format=fmt)
    except ValueError:  # prepared in another format
      continue
    if builder.is_prepared():
      return builder
  return tfds.builder(name, data_dir=data_dir, file_format=file_format)


def _tfds_rows(tfds, builder, split: str) -> Iterable[dict]:
  """A prepared split's examples as numpy, in the order tfds stored them: ArrayRecord through
  `as_data_source` (no TensorFlow), TFRecord through tf.data (TensorFlow)."""
  if is_array_record(builder):
    source = builder.as_data_source(split=split)
    return (source[i] for i in range(len(source)))
  try:
    tf = extras.require("tensorflow", f"tfds dataset {builder.name}, prepared as TFRecord in {builder.data_dir},",
                        "jaxseg[tf]")
  except extras.MissingDependency as e:
    raise DatasetError(f"{e}; or prepare it anew, read without TensorFlow: --config.data.tfds_file_format="
                       "array_record and another --config.data.data_dir.") from None
  tf.config.set_visible_devices([], "GPU")  # TF only reads data: keep it off the accelerator JAX uses
  return tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))


def tfds_keys(config: ml_collections.ConfigDict) -> tuple[str, str]:
  """The tfds image and mask feature keys (configs saved by earlier versions have none: Oxford-IIIT Pet's)."""
  return config.data.image_key, config.data.mask_key


def tfds_pair(image: np.ndarray, mask: np.ndarray, label_map: label_io.LabelMap, name: str) -> Loaded:
  """A tfds example's image and mask features as (RGB uint8, class ids uint8): gray images repeated to
  three channels, a trailing mask channel dropped, labels mapped (`name` in messages)."""
  image, mask = np.asarray(image), np.asarray(mask)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if mask.ndim == 3 and mask.shape[-1] == 1:
    mask = mask[..., 0]
  return image[..., :3].astype(np.uint8), label_map.to_classes(mask.astype(np.uint8), name)


def folder_root(config: ml_collections.ConfigDict) -> str:
  """`data.root`, with `~` expanded."""
  return os.path.expanduser(config.data.root)


# The split `data.holdout` takes out of the training split: examples chosen by file name, for model selection.
HOLDOUT_SPLIT = "holdout"


def list_pairs(config: ml_collections.ConfigDict, split: str) -> tuple[list[tuple[str, str, str]], list[str]]:
  """(name, image path, mask path) of a folder split, and the listing's problems (`jaxseg.data.layouts`).

  With `data.holdout` (a file-name pattern, e.g. CamVid's sequence "0006R0_*"), the training split loses the
  examples whose file names match it and split "holdout" is those examples, in the training list's order.

  Raises:
    DatasetError: the root, list file or directories do not exist, or the pattern matches none (or all).
  """
  d, root = config.data, folder_root(config)
  pattern = d.holdout
  if not pattern or split not in (HOLDOUT_SPLIT, d.train_split):
    return layouts.list_pairs(root, config, split)
  pairs, problems = layouts.list_pairs(root, config, d.train_split)
  held = [fnmatch.fnmatchcase(os.path.basename(name), pattern) for name, _, _ in pairs]
  if not any(held) or all(held):
    example = os.path.basename(pairs[0][0]) if pairs else "none listed"
    raise DatasetError(f"config.data.holdout={pattern!r} matches {'none' if not any(held) else 'all'} of the "
                       f"{len(pairs)} examples of split {d.train_split!r}; it is matched against file names "
                       f"(e.g. {example!r}).")
  return [p for p, h in zip(pairs, held) if h == (split == HOLDOUT_SPLIT)], problems


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


def synthetic_split(config: ml_collections.ConfigDict, split: str) -> tuple[int, int]:
  """(examples, seed) of a synthetic split: the train split's and every other's are drawn from disjoint seeds."""
  d = config.data
  if split == d.train_split:
    return d.synthetic_train_size, config.seed * 7919
  return d.synthetic_eval_size, config.seed * 7919 + 1_000_003


def synthetic_examples(config: ml_collections.ConfigDict, split: str) -> Listing:
  """`config.data.synthetic_train_size` (train split) or `synthetic_eval_size` examples at the stored size;
  the two splits are drawn from disjoint seeds."""
  n, seed = synthetic_split(config, split)
  h, w = geometry.stored_size(config)
  images, masks = synthetic_arrays(n, h, seed=seed, width=w)
  return Listing([(f"synthetic_{split}_{i}", lambda i=i: (images[i], masks[i])) for i in range(n)])


# Plain-dict registry: config.data.source -> listing(config, split).
SOURCES = {"tfds": tfds_examples, "folder": folder_examples, "synthetic": synthetic_examples}
