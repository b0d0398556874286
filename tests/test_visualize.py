"""Pictures drawn with PIL: chart ticks and lines where the data puts them, panels that hold the pictures and
the class colours they were given."""

import math

import numpy as np
import pytest
from PIL import Image

from jaxseg.data import labels
from jaxseg.viz import charts
from jaxseg.viz import figures as visualize


@pytest.mark.parametrize("low,high", [(0.12, 0.87), (1, 20), (0.5, 0.5), (-3.2, 7.9), (1e-4, 3e-4), (90, 91.5)])
def test_nice_ticks_span_the_data_in_round_steps(low, high):
  ticks = charts.nice_ticks(low, high)
  steps = np.diff(ticks)
  assert ticks[0] <= low and ticks[-1] >= high and 3 <= len(ticks) <= 11
  np.testing.assert_allclose(steps, steps[0], rtol=1e-6)
  mantissa = steps[0] / 10 ** math.floor(math.log10(steps[0]))
  assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-6
  if low < high:  # no empty step at either end
    assert ticks[0] + steps[0] > low and ticks[-1] - steps[0] < high


def test_a_series_is_drawn_at_its_values_solid_or_dashed():
  img = Image.new("RGB", (400, 300), (255, 255, 255))
  red, blue = (200, 0, 0), (0, 0, 200)
  xs = [1, 2, 3, 4, 5]
  charts.draw_panel(img, (0, 0, 400, 300), "t", "epoch",
                    [charts.Series(xs, [0.1, 0.3, 0.2, 0.6, 0.5], "up", red),
                     charts.Series(xs, [0.9, 0.9, 0.9, 0.9, float("nan")], "flat", blue, dashed=True)])
  pixels = np.asarray(img)
  red_hit = np.all(pixels == red, axis=-1)
  ys, cols = np.nonzero(red_hit)
  # Rows of the red line at its markers' columns: higher values drawn higher up, in the data's order.
  marker_cols = np.linspace(cols.min() + 3, cols.max() - 3, 5).round().astype(int)
  rows = [ys[cols == c].mean() for c in marker_cols]
  assert np.argsort(rows).tolist() == np.argsort([-v for v in [0.1, 0.3, 0.2, 0.6, 0.5]]).tolist()
  blue_hit = np.all(pixels == blue, axis=-1)
  blue_rows = np.nonzero(blue_hit.any(1))[0]
  assert blue_rows.max() - blue_rows.min() <= 8  # flat: one line (and its marker squares)
  line = blue_hit[int(np.median(np.nonzero(blue_hit)[0]))]
  span = line[np.nonzero(line)[0].min():np.nonzero(line)[0].max() + 1]
  assert 0.3 < span.mean() < 0.8  # dashed: gaps along it
  assert np.nonzero(blue_hit.any(0))[0].max() < np.nonzero(red_hit.any(0))[0].max() - 20  # NaN point left out


def test_a_panel_holds_each_picture_and_mask_colours_and_a_legend(tmp_path):
  rng = np.random.default_rng(0)
  classes = labels.Classes(("a", "b", "c"), np.array([[250, 0, 0], [0, 250, 0], [0, 0, 250]], np.uint8))
  mask = np.zeros((40, 60), np.int32)
  mask[:, 20:40], mask[:, 40:] = 1, 2
  photo = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
  visualize.save_panel(str(tmp_path / "p.png"), ("Image", "Mask"), [(photo, mask)], classes, "title")
  img = np.asarray(Image.open(tmp_path / "p.png"))
  assert img.shape[1] == 2 * (visualize.CELL + visualize.GAP) + visualize.GAP
  for c, color in enumerate(classes.colors):  # the mask cell shows three bands in the class colours, in order
    band = np.all(img == color, axis=-1)
    cols = np.nonzero(band.sum(0) > 100)[0]  # the mask's bands are CELL / 3 wide and 2/3 CELL tall
    assert len(cols) > 60, c
    assert cols.min() > visualize.CELL + visualize.GAP and cols.max() < img.shape[1]
  starts = [np.nonzero(np.all(img == color, axis=-1).sum(0) > 100)[0].min() for color in classes.colors]
  assert starts == sorted(starts)
  legend_rows = img[-40:]
  for color in classes.colors:  # each class's swatch in the legend
    assert np.all(legend_rows == color, axis=-1).sum() > 100
