"""Data: example sources, preprocessed splits, batching, on-device transforms, classes and image files.

  split = data.load_split(config, "train")          # cached uint8 arrays at config.image_size
  for batch in data.train_batches(split, 64, seed=0, epoch=1): ...
"""

from jaxseg.data.batching import eval_batches, steps_per_epoch, train_batches
from jaxseg.data.classes import CLASS_NAMES, PALETTE, class_names, colorize
from jaxseg.data.images import array_to_rgb, pil_to_rgb, read_rgb, resize_pair
from jaxseg.data.sources import SOURCES
from jaxseg.data.splits import Split, load_split, majority_baseline
from jaxseg.data.transforms import augment, normalize
from jaxseg.errors import DatasetError

__all__ = ["eval_batches", "steps_per_epoch", "train_batches", "CLASS_NAMES", "PALETTE", "class_names",
           "colorize", "array_to_rgb", "pil_to_rgb", "read_rgb", "resize_pair", "SOURCES", "Split", "load_split",
           "majority_baseline", "augment", "normalize", "DatasetError"]
