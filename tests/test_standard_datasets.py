"""Cityscapes, ADE20K and Pascal VOC out of the box: each config reads a small tree written in the release's
exact layout and encoding (stray files of the release included) and maps its labels as the field does; a
tfds dataset is read by name and feature keys."""

import json

import numpy as np
import pytest
import tiny
from PIL import Image

from configs import ade20k, cityscapes, standard_recipe, voc
from jaxseg import data
from jaxseg.data import dataset_checks, sources
from jaxseg.data.labels import IGNORE

H, W = 32, 64


def _save(path, array, mode=None):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array, mode).save(path)


def _loaded(config, split):
  """{name: (image, classes)} of a folder split, as the source reads it."""
  return {name: load() for name, load in sources.folder_examples(config, split).examples}


def _write_cityscapes(root, rng):
  raw = {}
  for split, cities in (("train", ("aachen", "bochum")), ("val", ("frankfurt",))):
    for city in cities:
      for frame in (19, 20):
        stem = f"{city}_000000_{frame:06d}"
        ids = rng.integers(0, cityscapes.NUM_LABEL_IDS, (H, W)).astype(np.uint8)
        image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        _save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
        gt = root / "gtFine" / split / city
        _save(gt / f"{stem}_gtFine_labelIds.png", ids)
        _save(gt / f"{stem}_gtFine_color.png", rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        _save(gt / f"{stem}_gtFine_instanceIds.png", ids.astype(np.uint16) * 1000)  # 16-bit, as released
        (gt / f"{stem}_gtFine_polygons.json").write_text(json.dumps({"imgHeight": H, "imgWidth": W, "objects": []}))
        raw[f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"] = ids
  return raw


def test_cityscapes_label_ids_become_the_19_train_ids(tmp_path):
  raw = _write_cityscapes(tmp_path, np.random.default_rng(0))
  config = cityscapes.get_config()
  config.data.root = str(tmp_path)
  train_id = np.full(256, IGNORE, np.uint8)
  for i, (_, label_id, _) in enumerate(cityscapes.CLASSES):
    train_id[label_id] = i
  for split, n in (("train", 4), ("val", 2)):
    got = _loaded(config, split)
    assert len(got) == n
    for name, (image, classes) in got.items():
      assert image.shape == (H, W, 3)
      np.testing.assert_array_equal(classes, train_id[raw[name]], err_msg=name)
  assert train_id[7] == 0 and train_id[33] == 18 and train_id[0] == train_id[6] == train_id[30] == IGNORE
  report, problems = dataset_checks.inspect_dataset(config)  # the colour, instance and polygon files are not masks
  assert problems == 0, report


def test_cityscapes_config_trains_on_the_fixture(tmp_path):
  from jaxseg.training import loop  # pylint: disable=g-import-not-at-top
  _write_cityscapes(tmp_path / "data", np.random.default_rng(1))
  config = cityscapes.get_config()
  overrides = tiny.tiny_config()
  for key in ("model", "batch_size", "eval_batch_size", "num_samples", "dtype"):
    config[key] = overrides[key]
  config.model.name, config.model.output_stride = "deeplabv3plus_mobilenet_v2", 16
  config.image_height, config.image_width = H, W
  config.augment.crop_height, config.augment.crop_width = H, W
  config.data.scale = (2 * max(H, W), 2 * min(H, W))  # frames at twice the window: slid over, 3 x 3 windows
  config.num_epochs, config.data.root = 1, str(tmp_path / "data")
  history = loop.train_and_evaluate(config, str(tmp_path / "run"))
  val = history[-1]["val"]
  assert len(val["confusion"]) == 19 and np.isfinite(history[-1]["train"]["loss"])
  raw = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "data").glob("gtFine/val/*/*_labelIds.png"))])
  labelled = np.isin(raw, [label_id for _, label_id, _ in cityscapes.CLASSES]).sum()
  assert sum(map(sum, val["confusion"])) == labelled  # every labelled pixel at full resolution, once


def test_ade20k_ignores_0_and_shifts_the_150_classes_down(tmp_path):
  rng = np.random.default_rng(2)
  raw = {}
  for split, prefix in (("training", "train"), ("validation", "val")):
    for i in (1, 2):
      stem = f"ADE_{prefix}_{i:08d}"
      size = (H + 8 * i, W - 4 * i)  # every image its own size and aspect
      labels = rng.integers(0, 151, size).astype(np.uint8)
      _save(tmp_path / "images" / split / f"{stem}.jpg", rng.integers(0, 255, (*size, 3), dtype=np.uint8))
      _save(tmp_path / "annotations" / split / f"{stem}.png", labels)
      raw[f"images/{split}/{stem}.jpg"] = labels
  config = ade20k.get_config()
  config.data.root = str(tmp_path)
  assert config.num_classes == len(config.data.class_names) == len(config.data.class_colors) == 150
  for split in ("training", "validation"):
    for name, (image, classes) in _loaded(config, split).items():
      want = np.where(raw[name] == 0, IGNORE, raw[name].astype(int) - 1)
      np.testing.assert_array_equal(classes, want, err_msg=name)
      assert image.shape[:2] == raw[name].shape


def _voc_palette():
  palette = [c for rgb in standard_recipe.voc_colors(256) for c in rgb]
  return palette[:768]


def test_voc_palette_masks_with_ignored_borders_and_split_lists(tmp_path):
  rng = np.random.default_rng(3)
  raw = {}
  ids = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033"], "trainaug": ["2007_000032", "2008_000002"]}
  for i in sorted({i for split in ids.values() for i in split}):
    labels = rng.integers(0, 21, (H, W)).astype(np.uint8)
    labels[0, :] = labels[:, 0] = 255  # object boundaries
    mask = Image.fromarray(labels, "P")
    mask.putpalette(_voc_palette())
    (tmp_path / "SegmentationClass").mkdir(exist_ok=True)
    mask.save(tmp_path / "SegmentationClass" / f"{i}.png")
    aug = tmp_path / "SegmentationClassAug" / f"{i}.png"  # SBD's masks: 8-bit gray, same values
    _save(aug, labels)
    _save(tmp_path / "JPEGImages" / f"{i}.jpg", rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    raw[f"JPEGImages/{i}.jpg"] = labels
  lists = tmp_path / "ImageSets" / "Segmentation"
  lists.mkdir(parents=True)
  for split, names in ids.items():
    (lists / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
  config = voc.get_config()
  config.data.root = str(tmp_path)
  for split in ("train", "val"):
    got = _loaded(config, split)
    assert sorted(got) == sorted(f"JPEGImages/{i}.jpg" for i in ids[split])
    for name, (_, classes) in got.items():
      np.testing.assert_array_equal(classes, np.where(raw[name] == 255, IGNORE, raw[name]), err_msg=name)
  config.data.mask_dir = "SegmentationClassAug"
  assert sorted(_loaded(config, "trainaug")) == ["JPEGImages/2007_000032.jpg", "JPEGImages/2008_000002.jpg"]
  (tmp_path / "SegmentationClass" / "2007_000039.png").unlink()
  config.data.mask_dir = "SegmentationClass"
  problems = sources.folder_examples(config, "train").problems
  assert len(problems) == 1 and "2007_000039.png" in problems[0]


def test_a_tfds_dataset_by_name_and_feature_keys():
  tfds = pytest.importorskip("tensorflow_datasets")
  labels = np.random.default_rng(4).integers(0, 3, (2, 32, 32, 1)).astype(np.uint8)

  def as_data_source(self, *args, **kwargs):  # tfds's ArrayRecord reader: examples as numpy
    del self, args, kwargs
    return [{"img": np.full((32, 32, 3), 7, np.uint8), "label": label} for label in labels]

  config = tiny.tiny_config(**{"data.source": "tfds", "data.image_key": "img", "data.mask_key": "label",
                               "data.class_map": {}})
  with tfds.testing.mock_data(num_examples=2, as_data_source_fn=as_data_source):
    split = data.load_split(config, "train")
  np.testing.assert_array_equal(split.masks, labels[..., 0])
  assert (split.images == 7).all()
