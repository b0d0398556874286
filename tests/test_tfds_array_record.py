"""tfds datasets prepared as ArrayRecord: jaxseg has tfds prepare them in that format when asked
(`data.tfds_file_format`) and reads them without TensorFlow, example for example as the TFRecord preparation
of the same files reads through tf.data (the same order and masks; JPEG pictures decoded a few levels apart);
a TFRecord dataset without TensorFlow is one line naming both ways out.

The dataset is Oxford-IIIT Pet's own tfds builder run over a few pictures this test writes in the layout of
the site's archives (its download step pointed at them)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tiny

from jaxseg.data import pipeline, sources
from jaxseg.errors import DatasetError

tfds = pytest.importorskip("tensorflow_datasets")

NAMES = tiny.PET_NAMES


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """{file format: data_dir} of the fake pets prepared by jaxseg's tfds source in each format."""
  root = tmp_path_factory.mktemp("pets_archives")
  tiny.fake_pet_archives(root)
  dirs = {}
  with pytest.MonkeyPatch.context() as m:
    m.setattr(tfds.download.DownloadManager, "download_and_extract", lambda self, urls: {k: str(root) for k in urls})
    for fmt in ("tfrecord", "array_record"):
      dirs[fmt] = str(tmp_path_factory.mktemp(fmt))
      config = tiny.tiny_config(**{"data.source": "tfds", "data.data_dir": dirs[fmt], "data.tfds_file_format": fmt})
      list(sources.tfds_examples(config, "train").examples)  # prepares the dataset (download=True)
  return dirs


def _read(data_dir, split="train"):
  config = tiny.tiny_config(**{"data.source": "tfds", "data.data_dir": data_dir, "data.download": False})
  return [(name, *load()) for name, load in sources.tfds_examples(config, split).examples]


def test_both_formats_read_the_same_examples_in_the_same_order(prepared):
  assert any(f.endswith(".array_record-00000-of-00001") for f in
             os.listdir(os.path.join(prepared["array_record"], "oxford_iiit_pet", "4.0.0")))
  for split, listing in (("train", "trainval.txt"), ("test", "test.txt")):
    record, array = _read(prepared["tfrecord"], split), _read(prepared["array_record"], split)
    assert sorted(name for name, _, _ in array) == sorted(f"{n}.jpg" for n in NAMES[listing])
    assert [name for name, _, _ in array] == [name for name, _, _ in record]
    for (name, image, mask), (_, want_image, want_mask) in zip(array, record, strict=True):
      np.testing.assert_array_equal(mask, want_mask, err_msg=name)  # PNG: lossless either way
      # JPEG: tfds decodes through TensorFlow's fast integer IDCT on one side and PIL's accurate one on the
      # other, a few levels apart at most.
      diff = np.abs(image.astype(np.int16) - want_image.astype(np.int16))
      assert image.shape == want_image.shape and diff.max() <= 8 and diff.mean() < 1.5, (name, diff.max(), diff.mean())
      assert image.dtype == np.uint8 and image.shape[-1] == 3 and mask.shape == image.shape[:2]
      assert set(np.unique(mask)) <= {0, 1, 2}  # trimaps 1 pet, 2 background, 3 boundary -> class ids


_WITHOUT_TF = """
import sys

import hidden_packages

hidden_packages.hide(["tensorflow"])
import tiny
from jaxseg.data import pipeline, sources
from jaxseg.errors import DatasetError
from jaxseg.errors import DatasetError
config = tiny.tiny_config(**{"data.source": "tfds", "data.data_dir": sys.argv[1], "data.download": False})
print(len([load() for _, load in sources.tfds_examples(config, "train").examples]))
config.data.data_dir = sys.argv[2]
try:
  sources.tfds_examples(config, "train")
except DatasetError as e:
  print(e)
"""


def test_array_record_reads_without_tensorflow_and_tfrecord_says_what_to_do(prepared):
  tests = os.path.dirname(os.path.abspath(__file__))
  proc = subprocess.run([sys.executable, "-c", _WITHOUT_TF, prepared["array_record"], prepared["tfrecord"]],
                        capture_output=True, text=True, timeout=300, cwd=tiny.REPO,
                        env={**os.environ, "PYTHONPATH": f"{tiny.REPO}{os.pathsep}{tests}"})
  assert proc.returncode == 0, proc.stderr[-2000:]
  count, message = proc.stdout.strip().splitlines()[-2:]
  assert count == str(len(NAMES["trainval.txt"]))
  assert "prepared as TFRecord" in message and "pip install 'jaxseg[tf]'" in message
  assert "--config.data.tfds_file_format=array_record" in message


def test_the_stream_pipeline_gives_the_in_memory_batches_and_refuses_tfrecord_in_one_line(prepared):
  batches = {}
  for choice in ("memory", "stream"):
    config = tiny.tiny_config(**{"data.source": "tfds", "data.data_dir": prepared["array_record"],
                                 "data.download": False, "data.pipeline": choice, "data.workers": 0})
    split = pipeline.open_split(config, "train")
    assert isinstance(split, pipeline.Streaming) == (choice == "stream")
    batches[choice] = [b for b, _ in split.train_batches(2, seed=3, epoch=2)]
    split.close()
  assert len(batches["stream"]) == len(NAMES["trainval.txt"]) // 2
  for got, want in zip(batches["stream"], batches["memory"], strict=True):
    assert set(got) == set(want)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  config = tiny.tiny_config(**{"data.source": "tfds", "data.data_dir": prepared["tfrecord"], "data.download": False,
                               "data.pipeline": "stream", "data.workers": 0})
  with pytest.raises(DatasetError, match=r"prepared as TFRecord .* cannot be streamed .*--config.data.pipeline=memory"):
    pipeline.open_split(config, "train")
