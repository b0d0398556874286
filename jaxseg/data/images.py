"""Image files and arrays as the model sees them: any PIL-readable file or mode to RGB uint8, and resizing
of an (image, class mask) pair to the training size."""

import numpy as np
from PIL import Image, ImageOps

from jaxseg.errors import DatasetError


def pil_to_rgb(im: Image.Image) -> np.ndarray:
  """A PIL image of any mode as (H, W, 3) uint8: RGBA/LA/palette-with-alpha over white, 16-bit samples
  scaled to 8 bits (65535 -> 255), CMYK and grayscale converted."""
  if im.mode.startswith("I;16"):
    im = Image.fromarray(np.round(np.asarray(im, np.float64) / 257.0).astype(np.uint8))
  elif im.mode == "I":  # 32-bit integer samples of unknown depth: 16-bit if any exceeds 8 bits
    arr = np.asarray(im, np.float64)
    im = Image.fromarray(np.clip(np.round(arr / 257.0 if arr.max() > 255 else arr), 0, 255).astype(np.uint8))
  if im.mode == "P":
    im = im.convert("RGBA")
  if im.mode in ("RGBA", "LA"):
    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
    im = Image.alpha_composite(background, im.convert("RGBA"))
  return np.asarray(im.convert("RGB"), np.uint8)


def array_to_rgb(a: np.ndarray) -> np.ndarray:
  """An image array (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) as (H, W, 3) uint8, with the
  conventions of `pil_to_rgb` (a last channel of 2 or 4 is alpha, composited over white). Samples: uint8 as
  they are, uint16 scaled (65535 -> 255), floats in [0, 1] scaled to [0, 255] (larger floats taken as
  [0, 255]).

  Raises:
    ValueError: for any other shape.
  """
  a = np.asarray(a)
  if a.ndim == 2:
    a = a[..., None]
  if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
    raise ValueError(f"expected an image array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {a.shape}.")
  if a.dtype == np.uint16:
    a = np.round(a / 257.0)
  elif a.dtype == np.bool_ or (a.dtype.kind == "f" and a.max() <= 1.0):
    a = a * 255.0
  a = np.clip(np.round(a), 0, 255).astype(np.uint8)
  mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[a.shape[-1]]
  return pil_to_rgb(Image.fromarray(np.ascontiguousarray(a[..., 0] if mode == "L" else a), mode))


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


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int | tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
  """Resizes an image bilinearly and its class mask by nearest neighbour (labels, the ignore label included,
  never blend) to `size`: (height, width), or one int for a square."""
  h, w = (size, size) if isinstance(size, int) else size
  if image.shape[:2] == (h, w) and mask.shape == (h, w):
    return image, mask
  img = Image.fromarray(image).resize((w, h), Image.BILINEAR)
  out = Image.fromarray(mask).resize((w, h), Image.NEAREST)
  return np.asarray(img, np.uint8), np.asarray(out, np.uint8)
