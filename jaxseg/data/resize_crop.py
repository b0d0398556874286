"""Per-example geometry on the host, for images of any size and aspect ratio.

With `data.scale = (long, short)` set (e.g. Cityscapes' (2048, 1024)), nothing is resized to one stored size:
a training example is rescaled keeping its aspect ratio so that it fits the base scale times a random ratio
(drawn log-uniformly in `augment.scale_min` .. `augment.scale_max`, e.g. 0.5 .. 2.0, the field's
`RandomResize(scale, ratio_range)`), then a random window of the training crop is cut out, padded with zeros
(image) and IGNORE (labels) where the example is smaller. Evaluation rescales to fit the base scale alone
and scores at each label's own resolution. Flips and photometric jitter stay on the device.

The randomness of an example is keyed by (seed, epoch, example index), so that a resumed run, or one with
another number of processes or workers, sees the same crops.
"""

import ml_collections
import numpy as np

from jaxseg.data.images import resize_pair
from jaxseg.data.labels import IGNORE


def base_scale(config: ml_collections.ConfigDict) -> tuple[int, int] | None:
  """`data.scale` as (long side, short side), or None when examples are resized to the stored size."""
  scale = tuple(config.data.scale or (0, 0))
  return (max(scale), min(scale)) if len(scale) == 2 and min(scale) > 0 else None


def keep_ratio_size(hw: tuple[int, int], scale: tuple[float, float]) -> tuple[int, int]:
  """(height, width) of an image of size `hw` rescaled, aspect ratio kept, to the largest size whose long
  side is at most scale[0] and short side at most scale[1]."""
  h, w = hw
  factor = min(scale[0] / max(h, w), scale[1] / min(h, w))
  return max(1, int(h * factor + 0.5)), max(1, int(w * factor + 0.5))


def random_resize_crop(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                       scale: tuple[int, int], ratio_range: tuple[float, float], crop: tuple[int, int]):
  """A random rescale (aspect kept) relative to `scale`, then a random `crop` (height, width) window.

  Args:
    image: (H, W, 3) uint8 at its own size.
    mask: (H, W) uint8 class ids.
    rng: this example's generator.
    scale: the base (long, short) sides.
    ratio_range: (low, high) multipliers of the base scale, drawn log-uniformly.
    crop: the output (height, width).

  Returns:
    image (crop_h, crop_w, 3) uint8 and mask (crop_h, crop_w) uint8, padded with 0 and IGNORE at the bottom
    and right where the rescaled example is smaller than the crop.
  """
  lo, hi = ratio_range
  ratio = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)
  hw = keep_ratio_size(image.shape[:2], (scale[0] * ratio, scale[1] * ratio))
  image, mask = resize_pair(image, mask, hw)
  top = int(rng.integers(0, max(hw[0] - crop[0], 0) + 1))
  left = int(rng.integers(0, max(hw[1] - crop[1], 0) + 1))
  image, mask = image[top:top + crop[0], left:left + crop[1]], mask[top:top + crop[0], left:left + crop[1]]
  out_image = np.zeros((*crop, 3), np.uint8)
  out_mask = np.full(crop, IGNORE, np.uint8)
  out_image[:image.shape[0], :image.shape[1]] = image
  out_mask[:mask.shape[0], :mask.shape[1]] = mask
  return out_image, out_mask
