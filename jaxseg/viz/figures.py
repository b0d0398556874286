"""Pictures a person looks at: sample panels, overlays, training curves.

Everything is drawn with PIL and written as PNG files, atomically: a kill mid-write never leaves a broken
picture behind, and an earlier one stays intact.
"""

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from jaxseg.data.images import row_bands
from jaxseg.data.labels import Classes
from jaxseg.ops.common import ceil_div
from jaxseg.runtime import files
from jaxseg.viz import charts

CELL = 224  # each picture of a panel fits a CELL x CELL square, its aspect ratio kept
GAP = 8


def _fit(pic: np.ndarray, classes: Classes) -> Image.Image:
  """A panel picture at most CELL on its longer side: photos resampled smoothly, masks by nearest class."""
  img = Image.fromarray(pic if pic.ndim == 3 else classes.colorize(pic))
  h, w = pic.shape[:2]
  scale = CELL / max(h, w)
  size = (max(1, round(w * scale)), max(1, round(h * scale)))
  return img.resize(size, Image.BILINEAR if pic.ndim == 3 else Image.NEAREST)


def _legend(width: int, classes: Classes, row_h: int = 22) -> Image.Image:
  """Colour swatches and class names in rows of up to six, centred in `width`, `row_h` pixels a row (the
  swatches and the text scale with it, so that the legend under a large photo stays legible)."""
  per_row = min(len(classes), 6)
  rows = ceil_div(len(classes), per_row)
  draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))

  def measure(k: float):  # the font at scale k, each entry's width, the widest row's
    text = charts.font(max(8, round(13 * k)))
    entries = [round(22 * k) + int(draw.textlength(name, font=text)) + round(18 * k) for name in classes.names]
    return text, entries, max(sum(entries[r * per_row:(r + 1) * per_row]) for r in range(rows))

  k = row_h / 22
  text, entries, widest = measure(k)
  for _ in range(2):  # smaller where a row of six would not fit the width, down to 8-pixel text
    if widest <= width - 8 or k <= 8 / 13:
      break
    k = max(8 / 13, k * (width - 8) / widest)
    text, entries, widest = measure(k)
  # Under a picture narrower than the smallest legend, the legend is wider than the picture.
  width = max(width, widest + 8)
  row_h = round(22 * k)
  img = Image.new("RGB", (width, round(10 * k) + row_h * rows), (255, 255, 255))
  draw = ImageDraw.Draw(img)
  for r in range(rows):
    idx = range(r * per_row, min((r + 1) * per_row, len(classes)))
    x = max(4, (width - sum(entries[i] for i in idx)) // 2)
    y = round(6 * k) + row_h * r
    for i in idx:
      draw.rectangle([(x, y + round(2 * k)), (x + round(16 * k), y + round(16 * k))],
                     fill=tuple(int(c) for c in classes.colors[i]), outline=(80, 80, 80))
      draw.text((x + round(22 * k), y + round(9 * k)), classes.names[i], fill=(0, 0, 0), font=text, anchor="lm")
      x += entries[i]
  return img


def save_panel(path: str, columns: Sequence[str], rows: Sequence[Sequence[np.ndarray]],
               classes: Classes, title: str = "") -> None:
  """A grid like the tutorial's `display`: one row per example, one titled column per picture, the classes'
  colours as a legend below.

  Args:
    path: PNG to write (parent directories are created).
    columns: column titles, e.g. ("Input Image", "True Mask", "Predicted Mask").
    rows: per example, one array per column: (H, W, 3) uint8 image or (H, W) class-id mask.
    classes: the dataset's class names and colours (the legend; ignored pixels in their own colour).
    title: figure title.
  """
  pictures = [[_fit(pic, classes) for pic in row] for row in rows]
  row_h = [max(p.height for p in row) for row in pictures]
  width = len(columns) * (CELL + GAP) + GAP
  head = (30 if title else 0) + 26
  legend = _legend(width, classes)
  img = Image.new("RGB", (width, head + sum(h + GAP for h in row_h) + legend.height), (255, 255, 255))
  draw = ImageDraw.Draw(img)
  if title:
    draw.text((width // 2, 8), title, fill=(0, 0, 0), font=charts.font(17), anchor="mt")
  for c, name in enumerate(columns):
    draw.text((GAP + c * (CELL + GAP) + CELL // 2, head - 9), name, fill=(0, 0, 0), font=charts.font(14),
              anchor="ms")
  y = head
  for row, h in zip(pictures, row_h):
    for c, pic in enumerate(row):
      img.paste(pic, (GAP + c * (CELL + GAP) + (CELL - pic.width) // 2, y + (h - pic.height) // 2))
    y += h + GAP
  img.paste(legend, (0, y))
  _save_figure(img, path)


def _save_figure(img: Image.Image, path: str) -> None:
  with files.atomic_path(path) as tmp:
    img.save(tmp)


class SampleSet:
  """Fixed validation examples drawn after every epoch, so a person sees the same images improve."""

  def __init__(self, split, count: int):
    """
    Args:
      split: a split of `data.open_split`.
      count: how many examples, spread evenly over the split.
    """
    idx = np.linspace(0, len(split) - 1, num=min(count, len(split))).astype(int) if count > 0 else np.zeros(0, int)
    self.images, self.masks = split.samples(idx)
    self.split = str(getattr(split, "name", ""))

  def __bool__(self) -> bool:
    return len(self.images) > 0

  def save(self, path: str, preds: np.ndarray, classes: Classes) -> None:
    """Draws the tracked images with `preds` (their predicted class ids) into the PNG at `path`, titled with
    the file's name and the split they come from (where the name does not say it)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    title = stem.replace("_", " ")
    if self.split and f"_{files.safe_name(self.split)}_" not in f"_{stem}_":
      title += f" ({self.split} split)"
    save_panel(path, ("Input Image", "True Mask", "Predicted Mask"),
               list(zip(self.images, self.masks, preds)), classes, title)


def overlay(image: np.ndarray, mask: np.ndarray, classes: Classes, alpha: float = 0.45) -> np.ndarray:
  """Class colours blended over a photo, both at the photo's resolution."""
  return (image * (1 - alpha) + classes.colorize(mask) * alpha).astype(np.uint8)


def save_overlay(path: str, image: np.ndarray, mask: np.ndarray, classes: Classes) -> None:
  """The overlay at the photo's own resolution with the panels' legend below it (two rows beyond 6 classes; a
  photo narrower than the legend sits at the left of a white canvas as wide as the legend)."""
  h, w = mask.shape
  legend = _legend(w, classes, max(22, h // 16))
  # The picture is blended and filled a band of rows at a time: a photo of any size is never held twice more.
  img = Image.new("RGB", (legend.width, h + legend.height), (255, 255, 255))
  for band in row_bands(h, w, 2**20):
    img.paste(Image.fromarray(overlay(image[band], mask[band], classes)), (0, band.start))
  img.paste(legend, (0, h))
  _save_figure(img, path)


def save_curves(path: str, history: list[dict[str, Any]]) -> None:
  """Train vs eval-split loss, pixel accuracy and mean IoU per epoch, one panel each."""
  save_curve_overlay(path, {"": history})


def save_curve_overlay(path: str, runs: dict[str, list[dict[str, Any]]]) -> None:
  """Curves of several runs in one figure (solid train, dashed: the split each scored), e.g. runs at 128 and
  224 px."""
  panel_w, panel_h = 400, 300
  img = Image.new("RGB", (3 * panel_w, panel_h), (255, 255, 255))
  for p, (key, label) in enumerate((("loss", "loss"), ("accuracy", "pixel accuracy"), ("mean_iou", "mean IoU"))):
    series = []
    for r, (name, history) in enumerate(runs.items()):
      epochs = [h["epoch"] for h in history]
      color = charts.TAB10[r % len(charts.TAB10)]
      split = history[-1].get("eval_split", "val") if history else "val"
      series.append(charts.Series(epochs, [_number(h["train"].get(key)) for h in history],
                                  f"{name} train".strip(), color))
      series.append(charts.Series(epochs, [_number(h["val"].get(key)) for h in history],
                                  f"{name} {split}".strip(), color, dashed=True))
    charts.draw_panel(img, (p * panel_w, 0, (p + 1) * panel_w, panel_h), label, "epoch", series, legend=p == 0)
  _save_figure(img, path)


def _number(value: Any) -> float:
  """A metric as a float (NaN where a record lacks it)."""
  try:
    return float(value)
  except (TypeError, ValueError):
    return float("nan")
