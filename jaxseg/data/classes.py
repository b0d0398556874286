"""The segmentation classes: their names, display colours, and the Oxford-IIIT Pet trimap encoding."""

import numpy as np

# Oxford-IIIT Pet trimaps store 1 pet, 2 background, 3 boundary; training uses class ids 0, 1, 2.
CLASS_NAMES = ("pet", "background", "boundary")

# pet: orange, background: dark blue, boundary: yellow; further classes take matplotlib's tab10 colours.
PALETTE = np.array([[245, 130, 48], [30, 60, 140], [255, 225, 25], [214, 39, 40], [148, 103, 189],
                    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]], np.uint8)


def class_names(num_classes: int) -> list[str]:
  """Display names of the first `num_classes` classes (`class_<i>` beyond the named ones)."""
  return [CLASS_NAMES[i] if i < len(CLASS_NAMES) else f"class_{i}" for i in range(num_classes)]


def colorize(mask: np.ndarray) -> np.ndarray:
  """(H, W) class ids -> (H, W, 3) uint8 colours."""
  return PALETTE[np.asarray(mask) % len(PALETTE)]


def trimap_to_classes(trimap: np.ndarray) -> np.ndarray:
  """Trimap values {1, 2, 3} -> class ids {0, 1, 2} (uint8)."""
  return (np.asarray(trimap, np.uint8) - 1).astype(np.uint8)
