"""Data: example sources, the dataset's labels, the in-memory and streaming pipelines, on-device transforms,
sizes.

train = data.open_split(config, "train")          # held in memory or streamed, as data.pipeline says
for batch, state in train.train_batches(64, seed=0, epoch=1): ...
"""

from jaxseg.data.batching import eval_batches, steps_per_epoch, train_batches
from jaxseg.data.geometry import model_size, stored_size, train_size
from jaxseg.data.images import array_to_rgb, pil_to_rgb, read_rgb, resize_pair
from jaxseg.data.labels import IGNORE, Classes, LabelMap, classes_from_config, median_frequency_weights
from jaxseg.data.pipeline import median_frequency, open_split
from jaxseg.data.sources import SOURCES
from jaxseg.data.splits import Split, class_pixel_counts, load_split, majority_baseline
from jaxseg.data.transforms import Augmentation, augment, normalize
from jaxseg.errors import DatasetError

__all__ = [
           "IGNORE",
           "SOURCES",
           "Augmentation",
           "Classes",
           "DatasetError",
           "LabelMap",
           "Split",
           "array_to_rgb",
           "augment",
           "class_pixel_counts",
           "classes_from_config",
           "eval_batches",
           "load_split",
           "majority_baseline",
           "median_frequency",
           "median_frequency_weights",
           "model_size",
           "normalize",
           "open_split",
           "pil_to_rgb",
           "read_rgb",
           "resize_pair",
           "steps_per_epoch",
           "stored_size",
           "train_batches",
           "train_size",
]
