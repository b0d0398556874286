"""Folder datasets described in the config: list files and paired directories, index, palette and
colour-coded masks, class maps with merging and ignore, bad input, and `--mode inspect`."""

import re

import numpy as np
import pytest
import tiny
from PIL import Image

from jaxseg import data
from jaxseg.cli import modes as cli
from jaxseg.config import checks as config_checks
from jaxseg.config.checks import ConfigError
from jaxseg.data import sources, splits
from jaxseg.errors import DatasetError
from jaxseg.training import loop

CLASS_MAP, TABLE, H, W = tiny.CLASS_MAP, tiny.TABLE, tiny.H, tiny.W
WANT = np.array([0, 0, 1, 2] + [255] * 5 + [255], np.uint8)  # expected class of stored values 0..9
_make, _config = tiny.make_folder_dataset, tiny.folder_config


@pytest.mark.parametrize("layout,mask_format", [("lists", "index"), ("lists", "palette"), ("dirs", "index"),
                                                ("lists", "color")])
def test_folder_layouts_and_mask_formats_give_the_mapped_classes(tmp_path, layout, mask_format):
  values = _make(tmp_path, layout=layout, mask_format=mask_format)
  overrides = {"data.layout": layout}
  if layout == "dirs":
    overrides["data.mask_suffix"] = "_L"
  if mask_format == "color":  # the same map, by colour-table names
    overrides.update({"data.mask_format": "color", "data.color_table": "colors.csv",
                      "data.class_map": {"Road": 0, "Lane": 0, "Car": 1, "Sky": 2, "Void": "ignore"}})
  config = _config(tmp_path, **overrides)
  for split in ("train", "val"):
    s = data.load_split(config, split)
    assert len(s) == (4 if split == "train" else 2) and s.images.shape[1:] == (H, W, 3)
    for name, mask in zip(s.names, s.masks):
      stem = name.split("/")[-1].split(".")[0]
      np.testing.assert_array_equal(mask, WANT[values[stem]], err_msg=name)


def test_identity_map_with_an_ignore_label(tmp_path):
  values = _make(tmp_path)
  config = _config(tmp_path, **{"data.class_map": {}, "num_classes": 4, "data.ignore_label": 9,
                                "data.class_names": ("a", "b", "c", "d"), "data.class_colors": ()})
  s = data.load_split(config, "train")
  stem = s.names[0].split("/")[-1].split(".")[0]
  want = np.where(values[stem] == 9, 255, values[stem])
  np.testing.assert_array_equal(s.masks[0], want)


@pytest.mark.parametrize("damage,message", [
    ("value", "annot/ftrain_1.png: label value(s) 7 are not in config.data.class_map"),
    ("color", "annot/ftrain_1.png: colour(s) (1,2,3) are not in the colour table"),
    ("size", "annot/ftrain_1.png: mask is 10x12 but its image"),
    ("missing", "train.txt:2: "),
])
def test_bad_input_is_one_line_per_file_before_training_or_skipped_and_counted(tmp_path, damage, message,
                                                                             capsys):
  root = tmp_path / "ds"
  color = damage == "color"
  _make(root, mask_format="color" if color else "index")
  mask = root / "trainannot" / "ftrain_1.png"
  if damage == "value":
    Image.fromarray(np.full((H, W), 7, np.uint8)).save(mask)
  elif damage == "color":
    Image.fromarray(np.full((H, W, 3), [1, 2, 3], np.uint8)).save(mask)
  elif damage == "size":
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(mask)
  else:
    (root / "train" / "ftrain_1.png").unlink()
  overrides = {"data.mask_format": "color", "data.color_table": "colors.csv",
               "data.class_map": {"Road": 0, "Lane": 0, "Car": 1, "Sky": 2, "Void": "ignore"}} if color else {}
  config = _config(root, **overrides)
  workdir = tmp_path / "run"
  with pytest.raises(DatasetError) as e:
    loop.train_and_evaluate(config, str(workdir))
  lines = str(e.value).splitlines()
  assert lines[0] == "1 bad example(s) in split 'train' of source 'folder':"
  assert message in lines[1] and len(lines) == 3 and "skip_bad" in lines[2]
  assert not (workdir / "checkpoints").exists() or not list((workdir / "checkpoints").iterdir())
  config.data.skip_bad = True
  splits.clear_memory_cache()
  assert len(data.load_split(config, "train")) == 3
  assert "skipped 1 bad example(s)" in capsys.readouterr().out


def test_dirs_layout_names_unpaired_files(tmp_path):
  _make(tmp_path, layout="dirs")
  (tmp_path / "train" / "lonely.png").write_bytes((tmp_path / "train" / "ftrain_0.png").read_bytes())
  (tmp_path / "trainannot" / "orphan_L.png").write_bytes((tmp_path / "trainannot" / "ftrain_0_L.png").read_bytes())
  config = _config(tmp_path, **{"data.layout": "dirs", "data.mask_suffix": "_L"})
  with pytest.raises(DatasetError) as e:
    data.load_split(config, "train")
  assert "lonely.png: no mask lonely_L.* in" in str(e.value)
  assert "orphan_L.png: mask without an image" in str(e.value)


def test_inspect_describes_a_good_folder_and_fails_on_a_broken_one(tmp_path, capsys):
  values = _make(tmp_path / "good")
  config = _config(tmp_path / "good", **{"loss.class_weights": "median_frequency"})
  assert cli.run(config, "inspect") == 0
  out = capsys.readouterr().out
  assert "split 'train': 4 pairs; image sizes (WxH): 30x20 x4" in out and "No problems found." in out
  train = np.stack([values[f"ftrain_{i}"] for i in range(4)])
  road = int(np.isin(train, [0, 1]).sum())
  assert f"  road       {road:>12,} px" in out
  assert f"  (ignored)  {int((train == 9).sum()):>12,} px" in out
  want = data.median_frequency_weights(WANT[train], 3)
  assert "class weights (median frequency" in out and f"sky {want[2]:.4f}" in out

  _make(tmp_path / "bad")
  Image.fromarray(np.full((H, W), 7, np.uint8)).save(tmp_path / "bad" / "valannot" / "fval_0.png")
  (tmp_path / "bad" / "train" / "ftrain_3.png").unlink()
  assert cli.run(_config(tmp_path / "bad"), "inspect") == 1
  out = capsys.readouterr().out
  assert "problem: " in out and "fval_0.png: label value(s) 7" in out and "ftrain_3.png does not exist" in out
  assert "2 problem(s) found." in out


def test_original_labels_survive_the_disk_cache_and_batch_into_small_canvases(tmp_path):
  values = _make(tmp_path / "ds", n_val=3)
  config = _config(tmp_path / "ds", image_height=16, image_width=24,
                   **{"data.cache_dir": str(tmp_path / "cache"), "eval_batch_size": 2})
  first = data.load_split(config, "val")
  assert first.masks.shape == (3, 16, 24) and first.label_sizes.tolist() == [[H, W]] * 3
  splits.clear_memory_cache()
  second = data.load_split(config, "val")
  for name, a, b in zip(second.names, first.labels, second.labels, strict=True):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, WANT[values[name.split("/")[-1].split(".")[0]]])
  batches = list(data.eval_batches(second, 2))
  assert [b["label"].shape for b in batches] == [(2, 64, 64)] * 2  # 20x30 rounded up to the canvas step
  assert (batches[1]["label"][0, H:] == 255).all() and batches[1]["weight"].tolist() == [1.0, 0.0]
  np.testing.assert_array_equal(batches[1]["label"][0, :H, :W], second.labels[2])


def test_a_holdout_pattern_moves_training_files_to_their_own_split(tmp_path):
  tiny.make_folder_dataset(tmp_path / "data", n_train=6, n_val=2)
  config = tiny.folder_config(tmp_path / "data", **{"data.holdout": "ftrain_[24]*"})
  train, _ = sources.list_pairs(config, "train")
  held, _ = sources.list_pairs(config, "holdout")
  assert [n for n, _, _ in train] == [f"train/ftrain_{i}.png" for i in (0, 1, 3, 5)]
  assert [n for n, _, _ in held] == ["train/ftrain_2.png", "train/ftrain_4.png"]
  assert len(sources.list_pairs(config, "val")[0]) == 2  # other splits as they are
  for choice in ("memory", "stream"):  # both pipelines read the split
    config.data.pipeline, config.data.workers = choice, 0
    assert len(data.open_split(config, "holdout")) == 2 and len(data.open_split(config, "train")) == 4
  for pattern, what in (("0006R0_*", "matches none of the 6"), ("ftrain_*", "matches all of the 6")):
    config.data.holdout = pattern
    with pytest.raises(DatasetError, match=f"holdout='{re.escape(pattern)}' {what} examples.*'ftrain_0.png'"):
      sources.list_pairs(config, "holdout")
  with pytest.raises(ConfigError, match=r"config\.data\.holdout='x' picks training files by name, which needs"):
    config_checks.check_config(tiny.tiny_config(**{"data.holdout": "x"}))
  with pytest.raises(ConfigError, match=r"eval_split='holdout' scores the training files config\.data\.holdout"):
    config_checks.check_config(tiny.folder_config(tmp_path / "data", **{"data.eval_split": "holdout"}))
