"""Random access to a split's examples, for the streaming pipeline (`jaxseg.data.streaming`).

A source here is what Grain calls a random-access data source: `len(source)` examples, `source[i]` decoded
at its own size as (image uint8 (H, W, 3), class ids uint8 (H, W), IGNORE allowed), `source.name(i)` for
messages. Only the listing is held (paths, ids); every example is read when it is asked for, in whichever
worker process asks. Sources are plain picklable objects, so that worker processes can rebuild them.
"""

import dataclasses

import ml_collections
import numpy as np

from jaxseg.data import geometry, sources
from jaxseg.data import labels as label_io
from jaxseg.data.synthetic import synthetic_arrays
from jaxseg.errors import DatasetError

Loaded = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass
class FolderSource:
  """(name, image path, mask path) triples of a folder split and the label map that decodes the masks."""
  pairs: list[tuple[str, str, str]]
  label_map: label_io.LabelMap

  def __len__(self) -> int:
    return len(self.pairs)

  def __getitem__(self, i: int) -> Loaded:
    _, image_path, mask_path = self.pairs[i]
    return sources.load_pair(image_path, mask_path, self.label_map)

  def name(self, i: int) -> str:
    """Example i's name (its image file's stem)."""
    return self.pairs[i][0]


@dataclasses.dataclass
class SyntheticSource:
  """Synthetic shapes drawn one at a time: example i of the split depends on (seed, i) only."""
  size: int
  height: int
  width: int
  seed: int

  def __len__(self) -> int:
    return self.size

  def __getitem__(self, i: int) -> Loaded:
    images, masks = synthetic_arrays(1, self.height, seed=[self.seed, i], width=self.width)
    return images[0], masks[0]

  def name(self, i: int) -> str:
    """Example i's name."""
    return f"synthetic_{i}"


class TfdsSource:
  """A tfds dataset prepared as ArrayRecord, read at random through `builder.as_data_source` (no TensorFlow),
  by its image and mask feature keys."""

  def __init__(self, config: ml_collections.ConfigDict, split: str):
    d = config.data
    self.data, self.name_, self.split = d, d.tfds_name, split
    self.image_key, self.mask_key = sources.tfds_keys(config)
    self.label_map = label_io.label_map_from_config(config)
    self._source = None
    self._len = len(self._open())

  def _open(self):
    if self._source is None:
      builder = sources.tfds_builder(self.data)  # prepared first where it is not yet
      if not sources.is_array_record(builder):
        raise DatasetError(f"tfds dataset {self.name_} is prepared as TFRecord in {builder.data_dir}, which cannot "
                           "be streamed (read at random): set --config.data.pipeline=memory, or prepare it anew as "
                           "ArrayRecord with --config.data.tfds_file_format=array_record and another "
                           "--config.data.data_dir.")
      try:
        self._source = builder.as_data_source(split=self.split)
      except (KeyError, ValueError) as e:
        raise sources.no_split(builder, self.name_, self.split, e) from None
    return self._source

  def __getstate__(self):  # workers open their own reader
    return {**self.__dict__, "_source": None}

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, i: int) -> Loaded:
    ex = self._open()[i]
    return sources.tfds_pair(ex[self.image_key], ex[self.mask_key], self.label_map, self.name(i))

  def name(self, i: int) -> str:
    """Example i's name: dataset, split and index."""
    return f"{self.name_}[{self.split}][{i}]"


def open_source(config: ml_collections.ConfigDict, split: str):
  """The random-access source of `split` and the problems found while listing it (one line each).

  Raises:
    DatasetError: the split cannot be listed (missing root, list file or tfds preparation).
  """
  d = config.data
  if d.source == "folder":
    pairs, problems = sources.list_pairs(config, split)
    return FolderSource(pairs, label_io.label_map_from_config(config, sources.folder_root(config))), problems
  if d.source == "synthetic":
    n, seed = sources.synthetic_split(config, split)
    return SyntheticSource(n, *geometry.stored_size(config), seed), []
  return TfdsSource(config, split), []
