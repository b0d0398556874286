"""Pictures a person looks at: sample panels, overlays, training curves.

Everything is written headless (matplotlib Agg) as PNG files, atomically: a kill mid-write never leaves a
broken picture behind, and an earlier one stays intact.
"""

import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
from matplotlib.patches import Patch  # pylint: disable=g-import-not-at-top,wrong-import-position
from PIL import Image  # pylint: disable=g-import-not-at-top,wrong-import-position

from jaxseg import files  # pylint: disable=wrong-import-position
from jaxseg.data.images import row_bands  # pylint: disable=wrong-import-position
from jaxseg.data.labels import Classes  # pylint: disable=wrong-import-position
from jaxseg.ops.common import ceil_div  # pylint: disable=wrong-import-position


def save_panel(path: str, columns: Sequence[str], rows: Sequence[Sequence[np.ndarray]],
               classes: Classes, title: str = "") -> None:
  """A grid like the tutorial's `display`: one row per example, one titled column per picture.

  Args:
    path: PNG to write (parent directories are created).
    columns: column titles, e.g. ("Input Image", "True Mask", "Predicted Mask").
    rows: per example, one array per column: (H, W, 3) uint8 image or (H, W) class-id mask.
    classes: the dataset's class names and colours (the legend; ignored pixels in their own colour).
    title: figure title.
  """
  fig, axes = plt.subplots(len(rows), len(columns), figsize=(3 * len(columns), 3 * len(rows) + 0.6),
                           squeeze=False)
  for r, row in enumerate(rows):
    for c, pic in enumerate(row):
      ax = axes[r][c]
      ax.imshow(pic if pic.ndim == 3 else classes.colorize(pic), interpolation="nearest")
      ax.set_axis_off()
      if r == 0:
        ax.set_title(columns[c])
  if title:
    fig.suptitle(title)
  fig.legend(handles=[Patch(color=classes.colors[i] / 255, label=name) for i, name in enumerate(classes.names)],
             loc="lower center", ncol=min(len(classes), 6), fontsize=9)
  # Leave room for the legend below and the title above the column titles.
  height = fig.get_figheight()
  fig.tight_layout(rect=(0, 0.6 / height, 1, 1 - (0.45 if title else 0.1) / height))
  _save_figure(fig, path)


def _save_figure(fig, path: str) -> None:
  try:
    with files.atomic_path(path) as tmp:
      fig.savefig(tmp, dpi=80)
  finally:
    plt.close(fig)


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
  """The overlay at the photo's own resolution with a legend strip below it (two rows beyond 6 classes)."""
  h, w = mask.shape
  per_row = min(len(classes), 6)
  rows = ceil_div(len(classes), per_row)
  strip_h = max(18, h // 16)
  legend = np.full((strip_h * rows, w, 3), 255, np.uint8)
  step = w // per_row
  sw = max(4, strip_h - 6)
  for c in range(len(classes)):  # colour swatches labelled in the figure-free strip
    top, left = (c // per_row) * strip_h, (c % per_row) * step
    legend[top + 3:top + strip_h - 3, left + 3:left + 3 + sw] = classes.colors[c]
  # The picture is blended and filled a band of rows at a time: a photo of any size is never held twice more.
  img = Image.new("RGB", (w, h + legend.shape[0]))
  for band in row_bands(h, w, 2**20):
    img.paste(Image.fromarray(overlay(image[band], mask[band], classes)), (0, band.start))
  img.paste(Image.fromarray(legend), (0, h))
  try:
    from PIL import ImageDraw  # pylint: disable=g-import-not-at-top
    draw = ImageDraw.Draw(img)
    for c, name in enumerate(classes.names):
      top, left = h + (c // per_row) * strip_h, (c % per_row) * step
      draw.text((left + sw + 6, top + strip_h // 2 - 5), name, fill=(0, 0, 0))
  except Exception:  # pylint: disable=broad-except  # text is a nicety; the swatches still tell
    pass
  with files.atomic_path(path) as tmp:
    img.save(tmp)


def save_curves(path: str, history: list[dict[str, Any]]) -> None:
  """Train vs eval-split loss, pixel accuracy and mean IoU per epoch, one panel each."""
  save_curve_overlay(path, {"": history})


def save_curve_overlay(path: str, runs: dict[str, list[dict[str, Any]]]) -> None:
  """Curves of several runs in one figure (solid train, dashed: the split each scored), e.g. runs at 128 and
  224 px."""
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for r, (name, history) in enumerate(runs.items()):
    epochs = [h["epoch"] for h in history]
    color = plt.cm.tab10(r)
    for ax, key, label in zip(axes, ("loss", "accuracy", "mean_iou"), ("loss", "pixel accuracy", "mean IoU")):
      ax.plot(epochs, [h["train"][key] for h in history], "-o", color=color, ms=3,
              label=f"{name} train".strip())
      split = history[-1].get("eval_split", "val")
      ax.plot(epochs, [h["val"][key] for h in history], "--s", color=color, ms=3, label=f"{name} {split}".strip())
      ax.set_xlabel("epoch")
      ax.set_title(label)
      ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  _save_figure(fig, path)

