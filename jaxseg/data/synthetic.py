"""Synthetic shapes: a learnable stand-in for the pets that needs no download (the offline demo, tests)."""

import numpy as np


def synthetic_arrays(n: int, size: int, seed: int, width: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """A learnable 3-class stand-in for the pets: a textured blob (0) with a boundary ring (2) on clutter (1).

  Object and background colours come from overlapping ranges with noise, so colour alone is not enough;
  shape and context are needed, as in the real task.

  Args:
    n: number of examples.
    size: height (and width, unless `width` is given).
    seed: the random seed.
    width: width, if not `size`.

  Returns:
    images (n, size, width, 3) uint8 and masks (n, size, width) uint8 class ids.
  """
  rng = np.random.default_rng(seed)
  width = width or size
  yy, xx = np.mgrid[0:size, 0:width].astype(np.float32)
  images = np.empty((n, size, width, 3), np.uint8)
  masks = np.empty((n, size, width), np.uint8)
  ring = max(1.5, min(size, width) / 40)
  for i in range(n):
    cy, cx = rng.uniform(0.3, 0.7, 2) * (size, width)
    ry, rx = rng.uniform(0.18, 0.38, 2) * (size, width)
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
    r = np.sqrt(u * u + v * v)
    signed = (r - 1.0) * min(rx, ry)  # approximate distance to the ellipse edge, in pixels
    mask = np.ones((size, width), np.uint8)
    mask[signed < 0] = 0
    mask[np.abs(signed) < ring] = 2
    fg, bg = rng.uniform(40, 215, 3), rng.uniform(40, 215, 3)
    stripes = 25 * np.sin(xx / rng.uniform(2, 6) + rng.uniform(0, 6))[..., None]
    blotch = 30 * np.sin(yy / rng.uniform(4, 12))[..., None] * np.cos(xx / rng.uniform(4, 12))[..., None]
    img = np.where((signed < 0)[..., None], fg + stripes, bg + blotch)
    img += rng.normal(0, 12, img.shape)
    images[i] = np.clip(img, 0, 255).astype(np.uint8)
    masks[i] = mask
  return images, masks
