"""How one photo is turned into logits: the whole photo at the model's size, or windows slid over it, at one
or several scales, optionally with its mirror image too (test-time augmentation).

Every variant gives logit maps at some size; `jaxseg.predict` upsamples each to the photo's own size a band
of rows at a time, sums them and takes the argmax, so that only the class ids are held at full size.
"""

from collections.abc import Callable

import ml_collections
import numpy as np
from PIL import Image

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
  """
  e = eval_settings(config)
  maps = []
  for scale in e["scales"]:
    for flip in ((False, True) if e["flip"] else (False,)):
      x = image[:, ::-1] if flip else image
      if e["mode"] == "whole":
        size = (max(1, round(stored[0] * scale)), max(1, round(stored[1] * scale)))
        resized = np.asarray(Image.fromarray(np.ascontiguousarray(x)).resize(size[::-1], Image.BILINEAR))
        out = np.asarray(logits_fn(resized[None]), np.float32)[0]
      else:
        h, w = x.shape[:2]
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        scaled = x if scale == 1 else np.asarray(
            Image.fromarray(np.ascontiguousarray(x)).resize(size[::-1], Image.BILINEAR))
        stride = tuple(s or max(1, 2 * d // 3) for s, d in zip(e["stride"], stored))
        out = slide(scaled, stored, stride, logits_fn, batch_size)
      maps.append(out[:, ::-1] if flip else out)
  return maps


def eval_settings(config: ml_collections.ConfigDict) -> dict:
  """`config.eval` as a dict, with defaults for configs saved before it existed."""
  e = config.get("eval") or {}
  return {"mode": e.get("mode", "whole"), "scales": tuple(e.get("scales", (1.0,))),
          "flip": bool(e.get("flip", False)), "stride": tuple(e.get("stride", (0, 0)))}


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
  """Whether `config.eval` asks for anything but the plain whole-photo prediction."""
  e = eval_settings(config)
  return e["mode"] != "whole" or e["scales"] != (1.0,) or e["flip"]

