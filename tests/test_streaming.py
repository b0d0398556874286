"""The streaming pipeline: the same batches as the in-memory one whatever the workers, resumable from its
state, examples of their own size (rescaled keeping the aspect ratio, cropped, padded with IGNORE), bad
files named while streaming."""

import numpy as np
import pytest
import tiny
from PIL import Image

from jaxseg.config import checks as config_checks
from jaxseg.data import IGNORE, pipeline, resize_crop
from jaxseg.data.images import resize_pair
from jaxseg.errors import DatasetError
from jaxseg.training import loop

SIZES = ((20, 30), (25, 17), (40, 40))


def _config(root, **overrides):
  return tiny.folder_config(root, **{"image_height": 32, "image_width": 32, **overrides})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  root = tmp_path_factory.mktemp("mixed")
  tiny.make_folder_dataset(root, n_train=6, n_val=3, sizes=SIZES)
  return root


def _epoch(split, epoch, state=None):
  return list(split.train_batches(2, seed=3, epoch=epoch, state=state))


def _same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b, strict=True):
    x, y = (x[0], x[1]) if isinstance(x, tuple) else (x, None), (y[0], y[1]) if isinstance(y, tuple) else (y, None)
    assert x[0].keys() == y[0].keys()
    for k in x[0]:
      np.testing.assert_array_equal(x[0][k], y[0][k], err_msg=k)
    assert x[1] == y[1]


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_equal_the_in_memory_ones(dataset, workers):
  memory = pipeline.InMemory(_config(dataset, **{"data.pipeline": "memory"}), "train")
  stream = pipeline.Streaming(_config(dataset, **{"data.pipeline": "stream", "data.workers": workers}), "train")
  assert len(stream) == len(memory) == 6
  for epoch in (1, 2):
    _same_batches(_epoch(stream, epoch), _epoch(memory, epoch))
  assert _epoch(stream, 1)[0][0]["image"].sum() != _epoch(stream, 2)[0][0]["image"].sum()  # reshuffled
  val_memory = pipeline.InMemory(_config(dataset, **{"data.pipeline": "memory"}), "val")
  val_stream = pipeline.Streaming(_config(dataset, **{"data.pipeline": "stream", "data.workers": workers}), "val")
  got, want = list(val_stream.eval_batches(2)), list(val_memory.eval_batches(2))
  _same_batches(got, want)
  assert got[1]["weight"].tolist() == [1.0, 0.0] and got[0]["label"].shape == (2, 64, 64)


def test_a_resumed_stream_gives_the_rest_of_the_epoch(dataset):
  stream = pipeline.Streaming(_config(dataset, **{"data.pipeline": "stream", "data.workers": 2}), "train")
  whole = _epoch(stream, 4)
  assert [s for _, s in whole] == [{"batch": 1}, {"batch": 2}, {"batch": 3}]
  _same_batches(_epoch(stream, 4, state=whole[0][1]), whole[1:])
  assert _epoch(stream, 4, state=whole[-1][1]) == []


def test_training_on_the_stream_equals_training_in_memory(dataset, tmp_path):
  runs = {}
  for name, settings in (("memory", {"data.pipeline": "memory"}),
                         ("stream", {"data.pipeline": "stream", "data.workers": 2})):
    config = _config(dataset, **settings, **{"num_epochs": 2, "augment.scale_min": 0.75, "augment.scale_max": 1.25})
    runs[name] = loop.train_and_evaluate(config, str(tmp_path / name))
  for a, b in zip(runs["memory"], runs["stream"], strict=True):
    for part in ("train", "val"):
      assert a[part]["loss"] == pytest.approx(b[part]["loss"], abs=1e-6)
      assert a[part]["confusion"] == b[part]["confusion"]


def test_keep_ratio_size_fits_the_base_scale():
  assert resize_crop.keep_ratio_size((1024, 2048), (2048, 1024)) == (1024, 2048)
  assert resize_crop.keep_ratio_size((360, 480), (2048, 1024)) == (1024, 1365)  # the short side limits
  assert resize_crop.keep_ratio_size((500, 3000), (2048, 512)) == (341, 2048)  # the long side limits
  assert resize_crop.keep_ratio_size((300, 400), (1000, 150)) == (150, 200)


def test_random_resize_crop_is_a_window_of_the_rescaled_example_padded_with_ignore():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
  mask = rng.integers(0, 5, (30, 40), dtype=np.uint8)
  # A fixed ratio: the crop must be one window of PIL's resize of the whole example.
  out_img, out_mask = resize_crop.random_resize_crop(image, mask, rng, (80, 60), (1.0, 1.0), (32, 48))
  resized = np.asarray(Image.fromarray(image).resize((80, 60), Image.BILINEAR))
  resized_mask = np.asarray(Image.fromarray(mask).resize((80, 60), Image.NEAREST))
  hits = [(y, x) for y in range(60 - 32 + 1) for x in range(80 - 48 + 1)
          if np.array_equal(resized[y:y + 32, x:x + 48], out_img)]
  assert len(hits) == 1
  y, x = hits[0]
  np.testing.assert_array_equal(out_mask, resized_mask[y:y + 32, x:x + 48])
  # A crop larger than the rescaled example shows all of it, at the top left, IGNORE around it; the aspect
  # ratio is kept and the sides range over the base scale times 0.5 .. 2.
  heights = []
  for _ in range(200):
    out_img, out_mask = resize_crop.random_resize_crop(image[:10, :20], mask[:10, :20], rng, (20, 10), (0.5, 2.0),
                                                       (64, 64))
    rows, cols = np.flatnonzero((out_mask != IGNORE).any(1)), np.flatnonzero((out_mask != IGNORE).any(0))
    h, w = rows.max() + 1, cols.max() + 1
    assert abs(w - 2 * h) <= 1 and (out_mask[h:] == IGNORE).all() and (out_img[h:] == 0).all()
    heights.append(h)
  assert min(heights) <= 6 and max(heights) >= 19 and 9 <= np.median(heights) <= 11  # log-uniform around 10


@pytest.mark.slow
def test_examples_of_their_own_size_train_alike_with_any_number_of_workers(dataset, tmp_path):
  histories = []
  for workers in (0, 2):
    config = _config(dataset, **{"data.scale": (48, 32), "data.workers": workers, "augment.scale_min": 0.5,
                                 "augment.scale_max": 2.0, "num_epochs": 2})
    assert pipeline.use_streaming(config, "train")
    histories.append(loop.train_and_evaluate(config, str(tmp_path / str(workers))))
  for a, b in zip(*histories, strict=True):
    assert a["train"]["loss"] == b["train"]["loss"] and a["val"]["confusion"] == b["val"]["confusion"]
  # Scored at the labels' own sizes: every labelled pixel of the val split, once.
  labelled = sum(int(np.isin(m, [0, 1, 2, 3]).sum()) for m in
                 [np.asarray(Image.open(p)) for p in sorted((dataset / "valannot").glob("*.png"))])
  assert np.sum(histories[0][-1]["val"]["confusion"]) == labelled


def test_a_bad_file_met_while_streaming_is_named_or_skipped(tmp_path):
  tiny.make_folder_dataset(tmp_path, n_train=4, n_val=2, sizes=SIZES)
  (tmp_path / "train" / "ftrain_2.png").write_bytes(b"not a png")
  config = _config(tmp_path, **{"data.pipeline": "stream", "data.workers": 2})
  with pytest.raises(DatasetError, match=r"ftrain_2\.png: not a readable image.*--mode inspect"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  config.data.skip_bad = True
  history = loop.train_and_evaluate(config, str(tmp_path / "skipped"))
  assert len(history) == 1 and np.isfinite(history[0]["train"]["loss"])


def test_auto_streams_large_or_own_size_splits_and_the_options_are_checked(dataset, monkeypatch):
  auto = _config(dataset, **{"data.pipeline": "auto"})
  assert not pipeline.use_streaming(auto, "train")
  monkeypatch.setattr(pipeline, "AUTO_MEMORY_BYTES", 6 * 32 * 32 * 4 - 1)
  assert pipeline.use_streaming(auto, "train")
  for bad, match in (({"data.pipeline": "disk"}, "data.pipeline"), ({"data.workers": -2}, "data.workers"),
                     ({"data.scale": (1024, 0)}, "data.scale"),
                     ({"data.scale": (64, 32), "data.pipeline": "memory"}, "data.scale")):
    with pytest.raises(config_checks.ConfigError, match=match):
      config_checks.check_config(_config(dataset, **bad))


class _Recording:
  """A source that records which examples were read."""

  def __init__(self, source):
    self.source, self.read = source, []

  def __len__(self):
    return len(self.source)

  def __getitem__(self, i):
    self.read.append(int(i))
    return self.source[i]


def test_each_process_reads_only_its_rows_of_every_global_batch(dataset, monkeypatch):
  config = _config(dataset, **{"data.pipeline": "stream", "data.workers": 0})
  whole = pipeline.Streaming(config, "train")
  order = np.random.default_rng([3, 1]).permutation(6)
  for index in (0, 1):
    monkeypatch.setattr("jax.process_count", lambda: 2)
    monkeypatch.setattr("jax.process_index", lambda index=index: index)
    split = pipeline.Streaming(config, "train")
    split.prepare.source = recording = _Recording(split.source)
    batches = [b for b, _ in split.train_batches(4, seed=3, epoch=1)]
    want = np.sort(order[:4])[2 * index:2 * index + 2]  # this process's half of the one global batch
    assert recording.read == want.tolist()
    np.testing.assert_array_equal(batches[0]["mask"], np.stack([whole.prepare.train(i, None)[1] for i in want]))


def test_a_tfds_dataset_streams_from_its_random_access_source():
  tfds = pytest.importorskip("tensorflow_datasets")
  rng = np.random.default_rng(2)
  examples = [{"image": rng.integers(0, 255, (24 + 4 * i, 40, 3), dtype=np.uint8),
               "segmentation_mask": rng.integers(1, 4, (24 + 4 * i, 40, 1), dtype=np.uint8)} for i in range(4)]

  def as_data_source(self, split, *args, **kwargs):
    del self, split, args, kwargs
    return examples

  config = tiny.tiny_config(**{"data.source": "tfds", "data.pipeline": "stream", "data.workers": 0})
  with tfds.testing.mock_data(num_examples=4, as_data_source_fn=as_data_source):
    split = pipeline.open_split(config, "train")
    assert isinstance(split, pipeline.Streaming) and len(split) == 4
    image, classes = split.source[3]
    [(batch, _)] = list(split.train_batches(4, seed=0, epoch=1))
  np.testing.assert_array_equal(image, examples[3]["image"])
  np.testing.assert_array_equal(classes, examples[3]["segmentation_mask"][..., 0] - 1)  # trimap 1-3 -> 0-2
  want = [resize_pair(e["image"], e["segmentation_mask"][..., 0] - 1, (32, 32))[1] for e in examples]
  np.testing.assert_array_equal(batch["mask"], np.stack(want))  # the epoch's order, sorted within the batch
