"""Data: example sources, the dataset's labels, preprocessed splits, batching, on-device transforms, sizes.

split = data.load_split(config, "train")          # cached uint8 arrays at the stored size
for batch in data.train_batches(split, 64, seed=0, epoch=1): ...
"""

from jaxseg.data.batching import eval_batches, steps_per_epoch, train_batches
from jaxseg.data.geometry import model_size, stored_size, train_size
from jaxseg.data.images import array_to_rgb, pil_to_rgb, read_rgb, resize_pair
from jaxseg.data.labels import IGNORE, Classes, LabelMap, classes_from_config, median_frequency_weights
from jaxseg.data.sources import SOURCES
from jaxseg.data.splits import Split, class_pixel_counts, load_split, majority_baseline
from jaxseg.data.transforms import augment, normalize
from jaxseg.errors import DatasetError

__all__ = [
           "IGNORE",
           "SOURCES",
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
           "median_frequency_weights",
           "model_size",
           "normalize",
           "pil_to_rgb",
           "read_rgb",
           "resize_pair",
           "steps_per_epoch",
           "stored_size",
           "train_batches",
           "train_size",
]
