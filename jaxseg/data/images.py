"""Image files and arrays as the model sees them: any PIL-readable file or mode to RGB uint8, and resizing
of an (image, class mask) pair to the training size."""

import numpy as np
from PIL import Image, ImageOps

from jaxseg.errors import DatasetError


def pil_to_rgb(im: Image.Image) -> np.ndarray:
  """A PIL image of any mode as (H, W, 3) uint8: RGBA/LA/palette-with-alpha over white, 16-bit scaled to
  8 bits, CMYK and grayscale converted."""
  if im.mode in ("I;16", "I;16B", "I;16L", "I"):
    arr = np.asarray(im, np.float64)  # 16-bit samples: 65535 -> 255
    im = Image.fromarray(np.clip(arr / 257.0 if arr.max() > 255 else arr, 0, 255).astype(np.uint8))
  if im.mode == "P":
    im = im.convert("RGBA")
  if im.mode in ("RGBA", "LA"):
    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
    im = Image.alpha_composite(background, im.convert("RGBA"))
  return np.asarray(im.convert("RGB"), np.uint8)


def read_rgb(path: str, exif: bool = True) -> np.ndarray:
  """Reads any PIL-readable image as (H, W, 3) uint8 (see `pil_to_rgb`), EXIF orientation applied if `exif`.

  Raises:
    DatasetError: naming the file, when it is missing or not a readable image.
  """
  try:
    with Image.open(path) as im:
      im.load()
      return pil_to_rgb(ImageOps.exif_transpose(im) if exif else im)
  except FileNotFoundError:
    raise DatasetError(f"{path}: file not found.") from None
  except Exception as e:  # pylint: disable=broad-except
    raise DatasetError(f"{path}: not a readable image ({type(e).__name__}: {str(e)[:120]}).") from None


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Resizes an image bilinearly and its class mask by nearest neighbour (labels never blend) to
  (size, size)."""
  img = Image.fromarray(image).resize((size, size), Image.BILINEAR)
  out = Image.fromarray(mask).resize((size, size), Image.NEAREST)
  return np.asarray(img, np.uint8), np.asarray(out, np.uint8)
