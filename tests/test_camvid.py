"""The CamVid configs on a few real frames, small: 11 classes with void ignored, and the driving reduction."""

import numpy as np
from PIL import Image

from configs import camvid as camvid_config
from configs import camvid_driving
from jaxseg import data
from jaxseg.cli import modes as cli
from jaxseg.training import loop


def _small(config, root):
  config.data.root = str(root)
  config.image_height, config.image_width = 45, 60  # stored at 1/8 size, padded to 64x64 for the model
  config.augment.crop_height, config.augment.crop_width = 32, 64
  config.model.backbone = "mobilenet_v2_0.35"
  config.model.backbone_weights = "none"
  config.data.max_train_examples, config.data.max_eval_examples = 4, 2
  config.batch_size, config.eval_batch_size, config.num_epochs = 2, 2, 1
  config.num_samples = 1
  return config


def _labels(root, split, n):
  lines = (root / f"{split}.txt").read_text().split("\n")[:n]
  return [np.asarray(Image.open(root / line.split()[1])) for line in lines]


def test_camvid_short_run_scores_at_full_resolution_with_void_ignored(camvid, tmp_path, capsys):
  config = _small(camvid_config.get_config(), camvid)
  history = loop.train_and_evaluate(config, str(tmp_path))
  val = history[-1]["val"]
  labels = _labels(camvid, "val", 2)
  assert sum(map(sum, val["confusion"])) == sum(int((m != 11).sum()) for m in labels)  # 480x360, void out
  assert np.array(val["confusion"]).sum(1).tolist() == [
      int(sum((m == k).sum() for m in labels)) for k in range(11)]
  assert {f"iou_{n}" for n in config.data.class_names} <= set(val)
  assert "Median-frequency class weights: sky" in capsys.readouterr().out
  assert (tmp_path / "samples" / "epoch_01.png").is_file()


def test_camvid_driving_merges_classes(camvid):
  config = _small(camvid_driving.get_config(), camvid)
  split = data.load_split(config, "val")
  raw = np.asarray(Image.open(camvid / "valannot" / split.names[0].split("/")[-1]))
  merge = np.array([4, 4, 4, 0, 1, 4, 4, 4, 2, 3, 3, 255], np.uint8)
  np.testing.assert_array_equal(split.labels[0], merge[raw])  # originals kept for scoring
  assert set(np.unique(split.masks)) <= {0, 1, 2, 3, 4, 255}


def test_inspect_on_camvid(camvid, capsys):
  config = camvid_config.get_config()
  config.data.root = str(camvid)
  assert cli.run(config, "inspect") == 0
  out = capsys.readouterr().out
  assert "split 'train': 367 pairs; image sizes (WxH): 480x360 x367" in out
  assert "split 'val': 101 pairs" in out and "bicyclist" in out and "No problems found." in out
