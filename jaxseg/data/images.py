"""Image files and arrays as the model sees them: any PIL-readable file or mode to RGB uint8, and resizing
of an (image, class mask) pair to the training size."""

import threading
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageOps

from jaxseg.errors import DatasetError

# PIL refuses to decode images above this many pixels (its guard against decompression bombs) and warns above
# half of it; jaxseg keeps that limit unless told otherwise (`set_max_pixels`, `--max-pixels`).
PIL_LIMIT = 2 * Image.MAX_IMAGE_PIXELS
_max_pixels = PIL_LIMIT
_PIL_SETTING = threading.Lock()  # PIL's limit is one setting for the whole process: lifted by one reader at a time


def row_bands(height: int, row_size: int, budget: int) -> Iterator[slice]:
  """Slices of consecutive rows of a (height, ...) array, each holding at most `budget` values where a row
  holds `row_size` (at least one row a band): how large photos are processed without full-size copies."""
  rows = max(1, budget // max(1, row_size))
  for top in range(0, height, rows):
    yield slice(top, min(height, top + rows))


def set_max_pixels(n: int) -> None:
  """Reads images of up to `n` pixels from now on (0: PIL's own limit, `PIL_LIMIT`)."""
  global _max_pixels
  _max_pixels = n if n > 0 else PIL_LIMIT


def _open_unguarded(path: str) -> Image.Image:
  """`Image.open` without PIL's own pixel limit (jaxseg checks the size itself, with the file's size in the
  message: `_check_size`); the limit is put back as soon as the header is read."""
  with _PIL_SETTING:
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
      return Image.open(path)
    finally:
      Image.MAX_IMAGE_PIXELS = limit


def _check_size(path: str, size: tuple[int, int]) -> None:
  w, h = size
  if w * h > _max_pixels:
    raise DatasetError(f"{path}: {w}x{h} = {w * h:,} pixels is above the limit of {_max_pixels:,} (a guard "
                       f"against decompression bombs); to read it, pass --max-pixels={w * h} (or more).")


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
  if im.mode != "RGB":
    im = im.convert("RGB")
  # Copied out a band of rows at a time: numpy's whole-image view goes through one more full copy (bytes).
  w, h = im.size
  out = np.empty((h, w, 3), np.uint8)
  for band in row_bands(h, 3 * w, 2**24):
    out[band] = np.asarray(im.crop((0, band.start, w, band.stop)))
  return out


def array_to_rgb(a: np.ndarray) -> np.ndarray:
  """An image array (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) as (H, W, 3) uint8, with the
  conventions of `pil_to_rgb` (a last channel of 2 or 4 is alpha, composited over white). Samples: uint8 as
  they are, uint16 scaled (65535 -> 255), floats in [0, 1] scaled to [0, 255] (larger floats taken as
  [0, 255]).

  Raises:
    ValueError: for any other shape.
  """
  a = np.asarray(a)
  if a.dtype == np.uint8 and a.ndim == 3 and a.shape[-1] == 3:
    return a  # already what the conversions below would give, without copies of a large photo
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
    with _open_unguarded(path) as im:
      _check_size(path, im.size)
      im.load()
      if exif:
        ImageOps.exif_transpose(im, in_place=True)  # in place: a large photo is not held twice
      return pil_to_rgb(im)
  except DatasetError:
    raise
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
