"""What the standard-dataset configs (Cityscapes, ADE20K, Pascal VOC) share: the field's recipe for a folder
dataset with DeepLabV3+ over the ImageNet MobileNetV2, and the VOC colour map for display colours."""

from collections.abc import Sequence

import ml_collections

from configs import default


def voc_colors(n: int, start: int = 0) -> tuple[tuple[int, int, int], ...]:
  """n display colours of the PASCAL VOC bit-interleaved colour map, from index `start` (0 is black)."""
  out = []
  for c in range(start, start + n):
    r = g = b = 0
    for bit in range(8):
      r |= ((c >> (3 * bit)) & 1) << (7 - bit)
      g |= ((c >> (3 * bit + 1)) & 1) << (7 - bit)
      b |= ((c >> (3 * bit + 2)) & 1) << (7 - bit)
    out.append((r, g, b))
  return tuple(out)


def get_config(name: str, root: str, crop: tuple[int, int], scale: tuple[int, int], class_names: Sequence[str],
               class_colors: Sequence[tuple[int, int, int]]) -> ml_collections.ConfigDict:
  """The shared recipe: DeepLabV3+ (output stride 16), its encoder fine-tuned at a tenth of the head's rate
  (the fresh head first, as configs/camvid_deeplab.py), a cosine schedule; each image kept at its own aspect
  ratio, rescaled relative to the base `scale` (long, short) by 0.5-2.0 and cropped to `crop` (height, width),
  which is also the model's size, flips and photometric jitter; streamed from a folder dataset under `root`
  with one name and display colour per class."""
  config = default.get_config()
  config.name = name
  config.num_classes = len(class_names)
  config.data.class_names, config.data.class_colors = tuple(class_names), tuple(class_colors)
  config.image_height, config.image_width = crop
  config.model.name = "deeplabv3plus"
  config.model.output_stride = 16
  config.data.source = "folder"
  config.data.root = root
  config.model.backbone_weights = "imagenet"
  config.freeze_encoder = False
  config.encoder_lr_scale = 0.1
  config.lr_schedule = "cosine"
  config.data.scale = scale
  config.data.pipeline = "stream"
  config.augment.scale_min, config.augment.scale_max = 0.5, 2.0
  config.augment.crop_height, config.augment.crop_width = crop
  config.augment.brightness, config.augment.contrast, config.augment.saturation = 0.1, 0.1, 0.1
  return config
