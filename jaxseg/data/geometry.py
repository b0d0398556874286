"""Sizes: what the examples are stored at, what the model sees in training and in evaluation.

The model needs sides that are multiples of 32 (MobileNetV2 downsamples five times); the data need not
have them. Stored examples are padded up (image with zeros, mask with the ignore label) and the padding is
cut off again before any metric, so CamVid trains and evaluates at its full 480x360.
"""

import ml_collections

from jaxseg.ops.common import ceil_div


def round_up(n: int, multiple: int = 32) -> int:
  """n rounded up to a multiple of `multiple`."""
  return ceil_div(n, multiple) * multiple


def stored_size(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(height, width) every example is resized to when a split is prepared."""
  return (config.image_height or config.image_size, config.image_width or config.image_size)


def model_size(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(height, width) of the model's input in evaluation: the stored size rounded up to multiples of 32."""
  h, w = stored_size(config)
  return round_up(h), round_up(w)


def train_size(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(height, width) of training inputs: `augment.crop_height/width`, or the eval input size."""
  h, w = model_size(config)
  return config.augment.crop_height or h, config.augment.crop_width or w
