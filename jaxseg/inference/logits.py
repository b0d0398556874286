"""How one photo is turned into logits: the whole photo at the model's size, or windows slid over it, at one
or several scales, optionally with its mirror image too (test-time augmentation).

Every variant gives logit maps at some size; `jaxseg.inference.predict` upsamples each to the photo's own size a band
of rows at a time, sums them and takes the argmax (`maps_to_mask`), so that only the class ids are held at
full size.
"""

from collections.abc import Callable

import ml_collections
import numpy as np
from PIL import Image

from jaxseg.data import geometry, resize_crop
from jaxseg.data.images import row_bands
from jaxseg.ops.common import ceil_div

MODES = ("whole", "slide")
# (B, h, w, 3) uint8 -> (B, h, w, C) float32 for any B (`parallel.map_padded` pads and batches).
LogitsFn = Callable[[np.ndarray], np.ndarray]


def window_starts(size: int, window: int, stride: int) -> list[int]:
  """Where windows of `window` pixels start along an axis of `size` so that, `stride` apart, they cover it;
  the last one ends at the edge (a size below the window has one window, padded)."""
  if size <= window:
    return [0]
  return [min(i * stride, size - window) for i in range(ceil_div(size - window, stride) + 1)]


def slide(image: np.ndarray, window: tuple[int, int], stride: tuple[int, int], logits_fn: LogitsFn,
          batch_size: int) -> np.ndarray:
  """(H, W, C) logits of `image` (H, W, 3) from windows of `window` (h, w) `stride` apart, averaged where
  they overlap. An image smaller than the window is padded with zeros, and the padding cut off again.

  Args:
    image: (H, W, 3) uint8.
    window: the window's (height, width): the size `logits_fn` takes.
    stride: (rows, columns) between window starts.
    logits_fn: the model on a batch of windows.
    batch_size: windows per call of `logits_fn` (bounds the windows held at once).
  """
  (wh, ww), (h, w) = window, image.shape[:2]
  padded = np.zeros((max(h, wh), max(w, ww), 3), np.uint8)
  padded[:h, :w] = image
  corners = [(y, x) for y in window_starts(h, wh, stride[0]) for x in window_starts(w, ww, stride[1])]
  total = count = None
  for start in range(0, len(corners), batch_size):
    chunk = corners[start:start + batch_size]
    logits = np.asarray(logits_fn(np.stack([padded[y:y + wh, x:x + ww] for y, x in chunk])), np.float32)
    if total is None:
      total = np.zeros((*padded.shape[:2], logits.shape[-1]), np.float32)
      count = np.zeros((*padded.shape[:2], 1), np.float32)
    for (y, x), window_logits in zip(chunk, logits):
      total[y:y + wh, x:x + ww] += window_logits
      count[y:y + wh, x:x + ww] += 1
  return (total / count)[:h, :w]


def logit_maps(image: np.ndarray, config: ml_collections.ConfigDict, logits_fn: LogitsFn,
               stored: tuple[int, int], batch_size: int) -> list[np.ndarray]:
  """The logit maps `config.eval` asks for, each at its own size and in the photo's orientation.

  Args:
    image: the photo, (H, W, 3) uint8.
    config: the experiment config (`eval.mode`, `eval.scales`, `eval.flip`, `eval.stride`).
    logits_fn: the model on a (B, h, w, 3) uint8 batch of any (h, w).
    stored: the stored size (height, width): the whole-photo input, and the window of "slide".
    batch_size: windows per call of `logits_fn` in "slide".

  With `data.scale` set, the photo is first rescaled (aspect ratio kept) to fit that base scale, which is
  then the whole-photo input, and the windows of "slide" are the training crop.
  """
  e = eval_settings(config)
  base = resize_crop.base_scale(config)
  fitted = resize_crop.keep_ratio_size(image.shape[:2], base) if base else None
  window = geometry.train_size(config) if base else stored
  maps = []
  for scale in e["scales"]:
    for flip in ((False, True) if e["flip"] else (False,)):
      x = image[:, ::-1] if flip else image
      if e["mode"] == "whole":
        size = (max(1, round((fitted or stored)[0] * scale)), max(1, round((fitted or stored)[1] * scale)))
        resized = np.asarray(Image.fromarray(np.ascontiguousarray(x)).resize(size[::-1], Image.BILINEAR))
        out = np.asarray(logits_fn(resized[None]), np.float32)[0]
      else:
        h, w = fitted or x.shape[:2]
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        scaled = x if size == x.shape[:2] else np.asarray(
            Image.fromarray(np.ascontiguousarray(x)).resize(size[::-1], Image.BILINEAR))
        stride = tuple(s or max(1, 2 * d // 3) for s, d in zip(e["stride"], window))
        out = slide(scaled, window, stride, logits_fn, batch_size)
      maps.append(out[:, ::-1] if flip else out)
  return maps


def eval_settings(config: ml_collections.ConfigDict) -> dict:
  """`config.eval` as a dict."""
  e = config.eval
  return {"mode": e.mode, "scales": tuple(e.scales), "flip": bool(e.flip), "stride": tuple(e.stride)}


def settings_tag(config: ml_collections.ConfigDict) -> str:
  """`config.eval` as a file-name part: "" for the plain prediction, else e.g. "slide_s0.75-1-1.25_flip", so
  that evaluations of one checkpoint with different settings are kept side by side."""
  e = eval_settings(config)
  parts = [] if e["mode"] == "whole" else [e["mode"]]
  if e["scales"] != (1.0,):
    parts.append("s" + "-".join(f"{s:g}" for s in e["scales"]))
  if e["flip"]:
    parts.append("flip")
  return "_".join(parts)


def check(config: ml_collections.ConfigDict) -> str:
  """A one-line problem with `config.eval`, or ""."""
  e = eval_settings(config)
  if e["mode"] not in MODES:
    return f"config.eval.mode={e['mode']!r} must be one of {MODES}."
  if not e["scales"] or any(s <= 0 for s in e["scales"]):
    return f"config.eval.scales={e['scales']} must be positive numbers, e.g. (0.75, 1.0, 1.25)."
  if len(e["stride"]) != 2 or any(s < 0 for s in e["stride"]):
    return f"config.eval.stride={e['stride']} must be (rows, columns) >= 0 (0: two thirds of the window)."
  return ""


def settings_apply(config: ml_collections.ConfigDict) -> bool:
  """Whether `config.eval` (or `data.scale`) asks for anything but the plain prediction at the stored size."""
  e = eval_settings(config)
  return e["mode"] != "whole" or e["scales"] != (1.0,) or e["flip"] or resize_crop.base_scale(config) is not None


# Logit values one band of `logits_to_mask`'s upsampling holds (64 MiB of float32): the memory of a prediction
# does not grow with the photo's size beyond its class ids.
BAND_VALUES = 2**24


def logits_to_mask(logits: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  """(S, S', C) logits -> (H, W) classes: bilinear per channel at the target size, then argmax."""
  return maps_to_mask([logits], hw)


def maps_to_mask(maps: list[np.ndarray], hw: tuple[int, int]) -> np.ndarray:
  """The argmax over classes of the sum of logit maps (each (h, w, C), any size) resized to hw.

  Upsampling (the usual case: a photo larger than the model's input) runs a band of rows at a time, with PIL's
  bilinear rule (half-pixel centres, edges clamped), so that only the class ids are held at full size. A map
  larger than the photo on either side is resized whole with PIL's antialiased filter.
  """
  h, w = hw
  if len(maps) == 1 and (h, w) == maps[0].shape[:2]:
    return np.argmax(maps[0], -1).astype(np.uint8)
  maps = [m if m.shape[0] <= h and m.shape[1] <= w else _pil_resize(m, hw) for m in maps]
  taps = [(_taps(m.shape[0], h), _taps(m.shape[1], w)) for m in maps]
  out = np.empty((h, w), np.uint8)
  for band in row_bands(h, w * maps[0].shape[-1], BAND_VALUES):
    total = 0
    for m, ((y0, y1, wy), (x0, x1, wx)) in zip(maps, taps):
      a = m[y0[band]] * (1 - wy[band, None, None]) + m[y1[band]] * wy[band, None, None]
      total = total + a[:, x0] * (1 - wx[None, :, None]) + a[:, x1] * wx[None, :, None]
    out[band] = np.argmax(total, -1)
  return out


def _pil_resize(logits: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(logits[..., c]), mode="F").resize(
      (hw[1], hw[0]), Image.BILINEAR)) for c in range(logits.shape[-1])], -1)


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Bilinear upsampling along one axis: for each output index, the two input indices and the second's
  weight (output centre (i + 0.5) * n_in / n_out - 0.5 in input pixels, clamped to the edges)."""
  src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
  lo = np.floor(src).astype(np.int64)
  return lo, np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float32)
