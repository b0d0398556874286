"""Line charts drawn with PIL: the per-epoch curves of one or several runs, one panel per metric.

Axes get "nice" ticks (1, 2 or 5 times a power of ten), a light grid, and one line per series: solid with
round markers or dashed with square ones. PIL rather than a plotting library keeps the base install small and
its import instant; the charts only need lines, markers and text.
"""

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

# matplotlib's tab10, the colour of run r
TAB10 = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
         (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


@dataclass(frozen=True)
class Series:
  """One line of a panel: points (x, y) (non-finite y skipped), its label, colour and style."""
  xs: Sequence[float]
  ys: Sequence[float]
  label: str
  color: tuple[int, int, int]
  dashed: bool = False


def font(size: int) -> ImageFont.ImageFont:
  """PIL's own scalable font at `size` pixels (its fixed bitmap font where PIL has no FreeType)."""
  try:
    return ImageFont.load_default(size=size)
  except (AttributeError, TypeError, ImportError, OSError):
    return ImageFont.load_default()


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
  """About `count` round values spanning [low, high]: steps of 1, 2 or 5 times a power of ten."""
  if not (math.isfinite(low) and math.isfinite(high)):
    return [0.0, 1.0]
  if high - low < 1e-12:
    low, high = low - (abs(low) * 0.05 or 0.5), high + (abs(high) * 0.05 or 0.5)
  raw = (high - low) / max(count - 1, 1)
  power = 10 ** math.floor(math.log10(raw))
  step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
  first = math.floor(low / step) * step
  return [round(first + i * step, 12) for i in range(math.ceil((high - first) / step - 1e-9) + 1)]


def _label(value: float, step: float) -> str:
  decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
  return f"{value:.{decimals}f}"


def _segment(draw: ImageDraw.ImageDraw, a, b, color, dashed: bool, width: int = 2, dash: float = 7.0) -> None:
  """A line from a to b, solid or in dashes of `dash` pixels."""
  (x0, y0), (x1, y1) = a, b
  length = math.hypot(x1 - x0, y1 - y0)
  if not dashed or length < 1:
    draw.line([a, b], fill=color, width=width)
    return
  for start in range(0, int(length), int(2 * dash)):
    t0, t1 = start / length, min(start + dash, length) / length
    draw.line([(x0 + (x1 - x0) * t0, y0 + (y1 - y0) * t0), (x0 + (x1 - x0) * t1, y0 + (y1 - y0) * t1)],
              fill=color, width=width)


def draw_panel(img: Image.Image, box: tuple[int, int, int, int], title: str, xlabel: str,
               series: Sequence[Series], legend: bool = False) -> None:
  """Draws one chart into `box` (left, top, right, bottom) of `img`: title, axes, ticks, grid and lines."""
  draw = ImageDraw.Draw(img)
  small, large = font(12), font(15)
  left, top, right, bottom = box
  plot = (left + 52, top + 28, right - 10, bottom - 38)  # room for the title, tick labels and the x label
  points = [(x, y) for s in series for x, y in zip(s.xs, s.ys) if math.isfinite(y)]
  xs = [x for x, _ in points] or [0.0, 1.0]
  ys = [y for _, y in points] or [0.0, 1.0]
  xticks = [t for t in nice_ticks(min(xs), max(xs), 6) if float(t).is_integer()] or [min(xs)]
  yticks = nice_ticks(min(ys), max(ys), 5)
  x_low, x_high = min(xticks[0], min(xs)), max(xticks[-1], max(xs))
  y_low, y_high = yticks[0], yticks[-1]
  x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0

  def at(x, y):
    return (plot[0] + (x - x_low) / x_span * (plot[2] - plot[0]), plot[3] - (y - y_low) / y_span * (plot[3] - plot[1]))

  draw.text(((left + right) / 2, top + 4), title, fill=(0, 0, 0), font=large, anchor="mt")
  y_step = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0
  for t in yticks:
    _, y = at(x_low, t)
    draw.line([(plot[0], y), (plot[2], y)], fill=(230, 230, 230))
    draw.text((plot[0] - 4, y), _label(t, y_step), fill=(0, 0, 0), font=small, anchor="rm")
  for t in xticks:
    x, _ = at(t, y_low)
    draw.line([(x, plot[1]), (x, plot[3])], fill=(230, 230, 230))
    draw.text((x, plot[3] + 4), f"{t:g}", fill=(0, 0, 0), font=small, anchor="mt")
  draw.rectangle(plot, outline=(0, 0, 0))
  draw.text(((plot[0] + plot[2]) / 2, bottom - 4), xlabel, fill=(0, 0, 0), font=small, anchor="mb")
  for s in series:
    pts = [at(x, y) for x, y in zip(s.xs, s.ys) if math.isfinite(y)]
    for a, b in itertools.pairwise(pts):
      _segment(draw, a, b, s.color, s.dashed)
    for x, y in pts:
      shape = draw.rectangle if s.dashed else draw.ellipse
      shape([(x - 3, y - 3), (x + 3, y + 3)], fill=s.color)
  if legend and series:
    _legend(draw, plot, series, [at(x, y) for x, y in points], small)


def _legend(draw: ImageDraw.ImageDraw, plot, series: Sequence[Series], points, text_font) -> None:
  """The series' labels in a box, in the plot corner that covers the fewest points."""
  w = 42 + max(draw.textlength(s.label, font=text_font) for s in series)
  h = 14 + 16 * (len(series) - 1) + 2
  corners = [(plot[0] + 4, plot[1] + 2), (plot[2] - 4 - w, plot[1] + 2), (plot[2] - 4 - w, plot[3] - 4 - h),
             (plot[0] + 4, plot[3] - 4 - h)]
  x0, y0 = min(corners, key=lambda c: sum(c[0] - 4 <= x <= c[0] + w + 4 and c[1] - 4 <= y <= c[1] + h + 4
                                          for x, y in points))
  draw.rectangle([(x0, y0), (x0 + w, y0 + h)], fill=(255, 255, 255), outline=(200, 200, 200))
  for i, s in enumerate(series):
    y = y0 + 8 + 16 * i
    _segment(draw, (x0 + 4, y), (x0 + 26, y), s.color, s.dashed)
    draw.text((x0 + 32, y), s.label, fill=(0, 0, 0), font=text_font, anchor="lm")
