"""A dataset's labels as the config describes them: class names and colours, the ignore label, and the map
from the values stored in mask files (or the colours of colour-coded masks) to training class ids.

Training masks hold class ids 0..C-1 and `IGNORE` (255) for pixels that count in no loss and no metric.
"""

import csv
import dataclasses
import os

import ml_collections
import numpy as np
from PIL import Image

from jaxseg.errors import DatasetError

IGNORE = 255  # class id of ignored pixels in every training and eval mask

# Display colours for classes the config gives none for (matplotlib's tab20).
_FALLBACK_COLORS = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
     [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207], [174, 199, 232], [255, 187, 120],
     [152, 223, 138], [255, 152, 150], [197, 176, 213], [196, 156, 148], [247, 182, 210], [199, 199, 199],
     [219, 219, 141], [158, 218, 229]], np.uint8)


@dataclasses.dataclass(frozen=True)
class Classes:
  """What a person sees of the classes: names, one RGB colour each, and the colour of ignored pixels."""
  names: tuple[str, ...]
  colors: np.ndarray  # (C, 3) uint8
  ignore_color: tuple[int, int, int] = (0, 0, 0)

  def __len__(self) -> int:
    return len(self.names)

  def colorize(self, mask: np.ndarray) -> np.ndarray:
    """(H, W) class ids (IGNORE allowed) -> (H, W, 3) uint8 colours."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = self.ignore_color
    lut[:len(self.colors)] = self.colors
    return lut[np.asarray(mask, np.uint8)]

  def palette(self) -> list[int]:
    """A 768-entry PNG palette: entry i = colour of class i, entry 255 = the ignore colour."""
    pal = np.zeros((256, 3), np.uint8)
    pal[:len(self.colors)] = self.colors
    pal[IGNORE] = self.ignore_color
    return pal.ravel().tolist()


def classes_from_config(config: ml_collections.ConfigDict) -> Classes:
  """The config's `data.class_names`, `data.class_colors` (missing ones from a fixed palette) and
  `data.ignore_color`."""
  d = config.data
  names = tuple(d.class_names) or tuple(f"class_{i}" for i in range(config.num_classes))
  colors = np.array([tuple(c) for c in d.class_colors], np.uint8).reshape(-1, 3)
  extra = [_FALLBACK_COLORS[i % len(_FALLBACK_COLORS)] for i in range(len(colors), len(names))]
  colors = np.concatenate([colors[:len(names)], np.array(extra, np.uint8).reshape(-1, 3)])
  return Classes(names, colors, tuple(int(v) for v in d.ignore_color))


def read_color_table(path: str) -> tuple[list[str], np.ndarray]:
  """A CSV of `name,r,g,b` rows (a header row is skipped) -> (names, (K, 3) uint8 colours).

  Raises:
    DatasetError: naming the file, when it is missing or a row is not `name,r,g,b` with 0-255 values.
  """
  names, colors = [], []
  try:
    with open(path, newline="", encoding="utf-8") as f:
      for i, row in enumerate(csv.reader(f)):
        row = [c.strip() for c in row]
        if not row or not any(row) or row[0].startswith("#"):
          continue
        try:
          rgb = [int(v) for v in row[1:4]]
        except ValueError:
          if i == 0:
            continue  # header
          raise DatasetError(f"{path}: line {i + 1} must be name,r,g,b; got {','.join(row)}.") from None
        if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
          raise DatasetError(f"{path}: line {i + 1} must be name,r,g,b with r, g, b in 0-255.")
        names.append(row[0])
        colors.append(rgb)
  except FileNotFoundError:
    raise DatasetError(f"{path}: colour table not found (config.data.color_table).") from None
  except UnicodeDecodeError as e:
    raise DatasetError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); a colour table holds "
                       "name,r,g,b rows.") from None
  except (csv.Error, OSError) as e:
    raise DatasetError(f"{path}: cannot be read as a colour table ({e}).") from None
  if not names:
    raise DatasetError(f"{path}: colour table has no name,r,g,b rows.")
  return names, np.array(colors, np.uint8)


def _rgb_code(rgb: np.ndarray) -> np.ndarray:
  rgb = np.asarray(rgb, np.int32)
  return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


class LabelMap:
  """Turns the masks stored by a dataset into training class ids.

  A stored label is an integer value (single-channel or palette PNGs) or, with a colour table, an RGB colour
  (colour-coded PNGs) known by its table name or row index. `class_map` sends labels to class ids or to
  "ignore" (several labels may share a class); without one, label v is class v. `ignore_label` is one more
  label that means "ignore".
  """

  def __init__(self, num_classes: int, class_map: dict | None = None, ignore_label: int = -1,
               color_table: tuple[list[str], np.ndarray] | None = None):
    """
    Args:
      num_classes: training classes C; class ids are 0..C-1.
      class_map: {label: class id or "ignore"}; labels are values ("3") or, with a colour table, table names.
      ignore_label: a stored value (or colour-table row) that is ignored; -1 for none.
      color_table: (names, (K, 3) colours) for colour-coded masks, or None for value masks.
    """
    self.num_classes = num_classes
    self.color_table = color_table
    n_labels = len(color_table[0]) if color_table else 256
    names = color_table[0] if color_table else [str(v) for v in range(256)]
    lut = np.full(n_labels, -1, np.int32)  # -1: a label the map does not know
    if class_map:
      index = {n: i for i, n in enumerate(names)}
      index.update({str(i): i for i in range(n_labels)})
      for key, value in class_map.items():
        if str(key) not in index:
          raise DatasetError(f"config.data.class_map key {key!r} is not a label of this dataset "
                             + ("(colour-table names or row numbers)." if color_table else "(0-255)."))
        lut[index[str(key)]] = IGNORE if str(value).lower() == "ignore" else int(value)
    else:
      lut[:min(num_classes, n_labels)] = np.arange(min(num_classes, n_labels))
    if 0 <= ignore_label < n_labels:
      lut[ignore_label] = IGNORE
    bad = lut[(lut >= 0) & (lut != IGNORE) & (lut >= num_classes)]
    if bad.size:
      raise DatasetError(f"config.data.class_map sends labels to class {int(bad[0])}, but there are only "
                         f"{num_classes} classes (0-{num_classes - 1}) and 'ignore'.")
    self.lut = lut
    self.names = names

  def describe(self, label: int) -> str:
    """A label as a person knows it: '7', or 'Archway (192,0,128)' for a colour-table row."""
    if self.color_table:
      return f"{self.names[label]} ({','.join(str(int(v)) for v in self.color_table[1][label])})"
    return str(label)

  def labels_of(self, mask: np.ndarray, path: str) -> np.ndarray:
    """A mask array as read from its file -> (H, W) int32 label indices (values, or colour-table rows).

    Raises:
      DatasetError: naming the file and the colour, for a colour missing from the table.
    """
    if self.color_table is None:
      return mask[..., 0].astype(np.int32) if mask.ndim == 3 else mask.astype(np.int32)
    if mask.ndim != 3 or mask.shape[-1] < 3:
      raise DatasetError(f"{path}: a colour-coded (RGB) mask was expected (config.data.mask_format='color'); "
                         f"this one has shape {mask.shape}.")
    codes = _rgb_code(mask[..., :3])
    table = _rgb_code(self.color_table[1])
    order = np.argsort(table)
    uniq, inverse = np.unique(codes, return_inverse=True)
    pos = np.clip(np.searchsorted(table[order], uniq), 0, len(table) - 1)
    found = table[order][pos] == uniq
    if not found.all():
      missing = [f"({c >> 16},{(c >> 8) & 255},{c & 255})" for c in uniq[~found][:5]]
      raise DatasetError(f"{path}: colour(s) {', '.join(missing)} are not in the colour table "
                         "(config.data.color_table); add them or map the file's colours.")
    return order[pos][inverse].reshape(codes.shape).astype(np.int32)

  def to_classes(self, mask: np.ndarray, path: str) -> np.ndarray:
    """A mask array as read from its file -> (H, W) uint8 class ids, IGNORE for ignored labels.

    Raises:
      DatasetError: naming the file, for values outside the class map or colours outside the table.
    """
    labels = self.labels_of(mask, path)
    if labels.min() < 0 or labels.max() >= len(self.lut):
      raise DatasetError(f"{path}: mask values outside 0-{len(self.lut) - 1}.")
    out = self.lut[labels]
    if (out < 0).any():
      bad = np.unique(labels[out < 0])
      raise DatasetError(f"{path}: label value(s) {', '.join(self.describe(int(v)) for v in bad[:8])} are not in "
                         "config.data.class_map; map them to a class or to 'ignore'.")
    return out.astype(np.uint8)


def label_map_from_config(config: ml_collections.ConfigDict, root: str = "") -> LabelMap:
  """The LabelMap of `config.data` (colour table paths are relative to `root` unless absolute)."""
  d = config.data
  table = None
  if d.mask_format == "color":
    if not d.color_table:
      raise DatasetError("config.data.mask_format='color' needs config.data.color_table=CSV (name,r,g,b rows).")
    table = read_color_table(d.color_table if os.path.isabs(d.color_table) else os.path.join(root, d.color_table))
  return LabelMap(config.num_classes, dict(d.class_map) if d.class_map else None, d.ignore_label, table)


def read_mask(path: str) -> np.ndarray:
  """A mask file as stored: (H, W) values (palette PNGs give their indices) or (H, W, 3) colours.

  Raises:
    DatasetError: naming the file, when it is missing or unreadable.
  """
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode in ("RGBA", "LA", "PA"):
        im = im.convert("RGB" if im.mode != "PA" else "P")
      return np.asarray(im)
  except FileNotFoundError:
    raise DatasetError(f"{path}: mask file not found.") from None
  except Exception as e:  # pylint: disable=broad-except
    raise DatasetError(f"{path}: cannot read mask ({type(e).__name__}: {str(e)[:120]}).") from None


def median_frequency_weights(masks: np.ndarray, num_classes: int) -> np.ndarray:
  """SegNet's median-frequency class weights: freq(c) = pixels of c / pixels of the images that contain c
  (ignored pixels excluded), weight(c) = median(freq) / freq(c). Classes never seen get weight 0.

  Args:
    masks: (N, H, W) uint8 class ids, IGNORE allowed.
    num_classes: C.
  """
  counts = np.zeros(num_classes, np.float64)
  present = np.zeros(num_classes, np.float64)
  for m in masks:
    c, p = frequency_terms(m, num_classes)
    counts += c
    present += p
  return median_frequency_from_counts(counts, present)


def frequency_terms(mask: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """One mask's share of the median-frequency sums: its labelled pixels per class, and for every class it
  contains its labelled pixel count (the 'pixels of the images that contain c')."""
  c = np.bincount(np.asarray(mask).ravel(), minlength=256)[:num_classes].astype(np.float64)
  return c, (c > 0) * c.sum()


def median_frequency_from_counts(counts: np.ndarray, present: np.ndarray) -> np.ndarray:
  """Median-frequency weights from per-class pixel counts and the labelled pixels of the images containing
  each class (see `median_frequency_weights`)."""
  counts, present = np.asarray(counts, np.float64), np.asarray(present, np.float64)
  freq = np.where(present > 0, counts / np.maximum(present, 1), 0.0)
  med = np.median(freq[freq > 0]) if (freq > 0).any() else 1.0
  return np.where(freq > 0, med / np.maximum(freq, 1e-12), 0.0).astype(np.float32)


CANVAS_MULTIPLE = 64  # eval label canvases round up to this: one compiled scoring step per few sizes


def label_canvas(labels: list[np.ndarray], largest, multiple: int = CANVAS_MULTIPLE) -> np.ndarray:
  """The labels at the top left of a (len, H, W) canvas of IGNORE, H and W the `largest` (height, width)
  rounded up to multiples of `multiple`, so that few canvas shapes (compiled scoring steps) occur."""
  canvas = [-(-int(n) // multiple) * multiple for n in largest]
  out = np.full((len(labels), *canvas), IGNORE, np.uint8)
  for row, m in enumerate(labels):
    out[row, :m.shape[0], :m.shape[1]] = m
  return out
