"""End-to-end training: sources, freezing, checkpoints, resume, eval in a fresh process, early stopping."""

import json

import jax
import keras_reference
import numpy as np
import pytest
import tensorflow_datasets as tfds
import tiny
from PIL import Image
from test_keras_port import _save_legacy_h5

from jaxseg import data
from jaxseg.data import sources, splits
from jaxseg.errors import DatasetError
from jaxseg.models.backbones import keras_applications as port
from jaxseg.training import checkpoints, loop
from jaxseg.training.run import Run
from jaxseg.viz import figures as visualize


def _restore_newest(config, workdir):
  run = Run(config, workdir, read_only=True)
  state, _, step, meta = run.restore()
  return jax.device_get(state), step, meta


def test_trains_from_fake_pretrained_weights_with_the_encoder_frozen(tmp_path):
  """vit_jax style: write "pretrained" Keras weights to a file, train from them, check what moved."""
  # Keras's rule: a 32 px model gets the 224 px ImageNet file (it ships 96-224 px files only).
  weights = tmp_path / port.keras_weights_filename(0.35, port.weights_size(32, 32))
  _save_legacy_h5(keras_reference.mobilenet_v2(0.35, 32, seed=7), weights)
  config = tiny.tiny_config(**{"model.backbone_weights": str(weights)})
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  state, step, _ = _restore_newest(config, str(tmp_path / "run"))
  assert step == 1 and int(state.step) == 4
  ported = port.from_keras_mobilenet_v2(str(weights))
  for collection, tree in (("params", state.params), ("batch_stats", state.batch_stats)):
    for layer, leaves in tree["encoder"].items():
      for key, value in leaves.items():
        np.testing.assert_array_equal(value, ported[collection][layer][key], err_msg=f"{layer}/{key}")
  fresh = Run(config, str(tmp_path / "other")).fresh_state(load_encoder=True)[0]
  fresh = jax.device_get(fresh)
  changed = jax.tree.map(lambda a, b: bool(np.any(a != b)), state.params["up_0"], fresh.params["up_0"])
  assert all(jax.tree.leaves(changed))
  assert np.any(state.batch_stats["up_0"]["bn"]["mean"] != fresh.batch_stats["up_0"]["bn"]["mean"])


def test_whole_training_under_tfds_mock_data(tmp_path):
  # The mock fills masks with random bytes: map every value to a trimap class.
  config = tiny.tiny_config(**{"data.source": "tfds", "batch_size": 1, "eval_batch_size": 2,
                               "data.class_map": {str(v): v % 3 for v in range(256)}})
  # tfds's mock also redirects every epath/gfile path into a temp dir; Orbax writes through epath, so only
  # the data loading runs under it (the splits stay in jaxseg's in-memory cache for the training).
  with tfds.testing.mock_data(num_examples=4):
    for split in (config.data.train_split, config.data.eval_split):
      loaded = data.load_split(config, split)
  pixels = int(loaded.label_sizes.prod(1).sum())  # the mock's random sizes: scored at each one
  history = loop.train_and_evaluate(config, str(tmp_path))
  assert len(history) == 1 and history[0]["step"] == 4
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  record = json.loads(lines[0])
  confusion = np.array(record["val"]["confusion"])
  assert record["epoch"] == 1 and confusion.sum() == pixels  # the whole eval split, once
  assert record["val"]["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
  for name in ("curves.png", "samples/epoch_00.png", "samples/epoch_01.png"):
    assert (tmp_path / name).stat().st_size > 1000
  scalars = tiny.tensorboard_scalars(tmp_path / "tensorboard")  # the same figures, per epoch, in TensorBoard
  split = record.get("eval_split", "val")
  assert scalars[f"{split}/accuracy"] == [(1, np.float32(record["val"]["accuracy"]))]
  assert [step for step, _ in scalars["train/loss"]] == [1]


def test_folder_source_on_pets_mini(tmp_path, pets_mini):
  config = tiny.tiny_config(**{"data.source": "folder", "data.root": str(pets_mini)})
  history = loop.train_and_evaluate(config, str(tmp_path))
  assert history[0]["step"] == 7  # 14 trainval photos, batch 2
  # Scored at each trimap's own resolution, not at the 32 px the model saw.
  names = (pets_mini / "annotations" / "test.txt").read_text().split("\n")
  pixels = sum(np.asarray(Image.open(pets_mini / "annotations" / "trimaps" / f"{n.split()[0]}.png")).size
               for n in names if n.strip())
  assert sum(map(sum, history[0]["val"]["confusion"])) == pixels > 6 * 32 * 32


AUGMENTED = {"augment.scale_min": 0.6, "augment.scale_max": 1.6, "augment.crop_height": 32,
             "augment.crop_width": 32, "augment.brightness": 0.2, "augment.contrast": 0.2,
             "augment.saturation": 0.2, "loss.class_weights": "median_frequency", "loss.name": "cross_entropy+dice",
             "lr_schedule": "cosine"}


# SGD with momentum, L2 on kernels, a warm-up and a poly schedule, the encoder fine-tuned at a tenth of the rate
SGD = {"optimizer": "sgd", "learning_rate": 0.05, "weight_decay": 5e-4, "lr_schedule": "poly", "warmup_epochs": 0.5,
       "freeze_encoder": False, "encoder_lr_scale": 0.1}


@pytest.mark.parametrize("case", ["extended", "augmented", "sgd"])
def test_resume_trains_only_the_missing_epochs_and_ends_where_an_uninterrupted_run_does(tmp_path, capsys,
                                                                                         monkeypatch, case):
  if case != "extended":  # augmented: a 3-class folder dataset with ignored pixels, every augmentation, cosine
    if case == "augmented":
      tiny.make_folder_dataset(tmp_path / "data", n_train=8, n_val=2)
      make = lambda epochs: tiny.folder_config(tmp_path / "data", num_epochs=epochs, **AUGMENTED)
    else:
      make = lambda epochs: tiny.tiny_config(num_epochs=epochs, **SGD)
    save = checkpoints.save

    def interrupted(mngr, epoch, *args):  # a 3-epoch run stopped after saving epoch 2
      save(mngr, epoch, *args)
      if epoch == 2:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
      m.setattr(checkpoints, "save", interrupted)
      with pytest.raises(KeyboardInterrupt):
        loop.train_and_evaluate(make(3), str(tmp_path / "a"))
  else:  # a 2-epoch run extended to 3
    make = lambda epochs: tiny.tiny_config(num_epochs=epochs)
    loop.train_and_evaluate(make(2), str(tmp_path / "a"))
  capsys.readouterr()
  resumed = loop.train_and_evaluate(make(3), str(tmp_path / "a"))
  out = capsys.readouterr().out
  assert "Resuming" in out and "at epoch 2" in out
  assert "epoch   3/3" in out and "epoch   1/3" not in out and "epoch   2/3" not in out
  straight = loop.train_and_evaluate(make(3), str(tmp_path / "b"))
  assert [h["step"] for h in resumed] == [4, 8, 12]
  for key in ("loss", "accuracy", "mean_iou"):
    assert abs(resumed[-1]["val"][key] - straight[-1]["val"][key]) <= 1e-6
    assert abs(resumed[-1]["train"][key] - straight[-1]["train"][key]) <= 1e-6


def test_eval_mode_in_a_fresh_process_reproduces_the_epoch_metrics(tmp_path):
  history = loop.train_and_evaluate(tiny.tiny_config(num_epochs=2), str(tmp_path))  # scored on its "test" split
  assert all(h["eval_split"] == "test" for h in history)
  for step, run in ((1, tiny.main_py), (2, tiny.run_cli)):  # a fresh process, then this one
    proc = run("--workdir", str(tmp_path), "--mode", "eval", "--epoch", str(step))
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert printed["epoch"] == step and printed["split"] == "test"
    assert printed["test"] == history[step - 1]["val"]
    assert json.loads((tmp_path / "eval" / f"epoch_{step}_test.json").read_text()) == printed
  assert (tmp_path / "eval" / "epoch_2_test_samples.png").is_file()
  # Another split is named as itself in the printout, the record and the files.
  proc = tiny.run_cli("--workdir", str(tmp_path), "--mode", "eval", "--config.data.eval_split=val")
  assert proc.returncode == 0, proc.stderr[-2000:]
  printed = json.loads(proc.stdout.strip().splitlines()[-1])
  assert printed["split"] == "val" and "test" not in printed and set(printed["val"]) >= {"iou_pet", "recall_pet"}
  assert "epoch 2 checkpoint: val loss" in proc.stdout and "test" not in proc.stdout
  assert all((tmp_path / "eval" / name).is_file() for name in ("epoch_2_val.json", "epoch_2_val_samples.png"))
  # Test-time flips and scales go to files of their own: the plain record of the checkpoint is kept.
  plain = (tmp_path / "eval" / "epoch_2_val.json").read_text()
  config = tiny.tiny_config(num_epochs=2)
  config.data.eval_split, config.eval.flip, config.eval.scales = "val", True, (0.5, 1.0)
  scores = loop.evaluate(config, str(tmp_path))
  assert (tmp_path / "eval" / "epoch_2_val.json").read_text() == plain
  record = json.loads((tmp_path / "eval" / "epoch_2_val_s0.5-1_flip.json").read_text())
  without_loss = lambda d: {k: v for k, v in d.items() if k != "loss"}  # (no loss with test-time flips: nan)
  assert without_loss(record["val"]) == without_loss(scores) and scores["mean_iou"] > 0
  assert record["eval"]["flip"] and record["eval"]["scales"] == [0.5, 1.0]
  assert (tmp_path / "eval" / "epoch_2_val_s0.5-1_flip_samples.png").is_file()


def test_sample_panels_name_their_split_once(monkeypatch):
  titles = []
  monkeypatch.setattr(visualize, "save_panel", lambda path, cols, rows, classes, title: titles.append(title))
  samples = visualize.SampleSet.__new__(visualize.SampleSet)
  samples.images, samples.masks, samples.split = np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2)), "val"
  for name in ("epoch_80_val_samples.png", "epoch_80_val_flip_samples.png", "epoch_3.png", "interval_samples.png"):
    samples.save(name, np.zeros((1, 2, 2)), None)
  assert titles == ["epoch 80 val samples", "epoch 80 val flip samples", "epoch 3 (val split)",
                    "interval samples (val split)"]


def test_target_accuracy_stops_early(tmp_path, capsys):
  history = loop.train_and_evaluate(tiny.tiny_config(num_epochs=3, target_accuracy=0.01), str(tmp_path))
  assert len(history) == 1
  assert "Stopping early: test pixel accuracy" in capsys.readouterr().out
  mngr = checkpoints.manager(str(tmp_path), read_only=True)
  assert mngr.all_steps() == [1]
  assert checkpoints.read_meta(mngr)[1]["stop_reason"].startswith("test pixel accuracy")


def test_patience_rule():
  config = tiny.tiny_config(patience=2)
  hist = lambda accs: [{"epoch": i + 1, "val": {"accuracy": a}} for i, a in enumerate(accs)]
  assert loop._stop_reason(config, hist([0.5, 0.6, 0.55])) == ""
  assert "for 2 epoch(s)" in loop._stop_reason(config, hist([0.5, 0.6, 0.55, 0.58]))


def test_imagenet_weights_without_network_say_what_to_do(monkeypatch):
  from keras.src.utils import file_utils  # pylint: disable=g-import-not-at-top

  def offline(*args, **kwargs):
    raise Exception("URL fetch failure: [Errno -2] Name or service not known")

  monkeypatch.setattr(file_utils, "get_file", offline)
  with pytest.raises(port.WeightsError) as e:
    port.encoder_variables("imagenet", 1.0, 224)
  msg = str(e.value)
  assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5" in msg
  assert "--config.model.backbone_weights=" in msg


def test_tfds_without_data_or_network_says_what_to_do(tmp_path, monkeypatch):
  config = tiny.tiny_config(**{"data.source": "tfds", "data.data_dir": str(tmp_path), "data.download": False})
  with pytest.raises(DatasetError, match="source=folder"):
    sources.tfds_examples(config, "train")

  def offline(self, *args, **kwargs):
    raise ConnectionError("Name or service not known")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
  config.data.download = True
  with pytest.raises(DatasetError, match=r"could not download.*ConnectionError.*source=folder"):
    sources.tfds_examples(config, "train")


def test_demo_config_shortened(tmp_path, capsys):
  """The README's main job, cut to one short epoch: trains, checkpoints, evaluates, draws."""
  from configs import demo  # pylint: disable=g-import-not-at-top
  config = demo.get_config()
  config.num_epochs, config.data.synthetic_train_size, config.data.synthetic_eval_size = 1, 64, 32
  history = loop.train_and_evaluate(config, str(tmp_path))
  out = capsys.readouterr().out
  assert "Final test pixel accuracy" in out and "majority-class baseline" in out
  assert history[0]["step"] == 2 and (tmp_path / "samples" / "epoch_01.png").is_file()
  assert checkpoints.manager(str(tmp_path), read_only=True).all_steps() == [1]


def test_training_beats_the_majority_baseline(learned):
  config, workdir = learned
  history = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  baseline = data.majority_baseline(data.load_split(config, config.data.eval_split), config.num_classes)
  first, last = history[0]["val"], history[-1]["val"]
  assert last["accuracy"] >= baseline + 0.08, (last["accuracy"], baseline)
  assert last["loss"] < 0.8 * first["loss"]
  assert np.all(np.array(last["confusion"]).sum(0) > 0)  # every class is predicted somewhere


@pytest.mark.parametrize("settings,encoder_moves,encoder_stats_move", [
    ({}, False, False),
    ({"freeze_encoder": False}, True, False),
    ({"freeze_encoder": False, "encoder_bn_train": True}, True, True)])
def test_fine_tuning_settings_decide_what_in_the_encoder_moves(tmp_path, settings, encoder_moves,
                                                                encoder_stats_move):
  config = tiny.tiny_config(**settings)
  before = jax.device_get(Run(config, str(tmp_path / "fresh")).fresh_state(load_encoder=False)[0])
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  after, _, _ = _restore_newest(config, str(tmp_path / "run"))
  moved = lambda a, b: [bool(np.any(x != y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
  params = moved(before.params["encoder"], after.params["encoder"])
  stats = moved(before.batch_stats["encoder"], after.batch_stats["encoder"])
  assert (np.mean(params) > 0.9) if encoder_moves else not any(params)  # bit-identical when frozen
  assert (np.mean(stats) > 0.9) if encoder_stats_move else not any(stats)
  assert all(moved(before.params["up_0"], after.params["up_0"]))  # the decoder always trains


def test_keep_checkpoints_and_example_limits(tmp_path):
  config = tiny.tiny_config(num_epochs=3, keep_checkpoints=2, **{"data.max_train_examples": 6,
                                                                 "data.max_eval_examples": 3})
  history = loop.train_and_evaluate(config, str(tmp_path))
  assert checkpoints.manager(str(tmp_path), read_only=True).all_steps() == [2, 3]
  assert [h["step"] for h in history] == [3, 6, 9]  # 6 training examples, batch 2
  assert np.array(history[-1]["val"]["confusion"]).sum() == 3 * 32 * 32


def test_the_disk_cache_serves_a_second_run_identically(tmp_path, monkeypatch):
  config = tiny.tiny_config(**{"data.cache_dir": str(tmp_path / "cache")})
  first = data.load_split(config, "train")
  assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
  splits.clear_memory_cache()

  def no_source(*args):
    raise AssertionError("the source was read again")

  monkeypatch.setitem(sources.SOURCES, "synthetic", no_source)
  second = data.load_split(config, "train")
  np.testing.assert_array_equal(second.images, first.images)
  np.testing.assert_array_equal(second.masks, first.masks)
  assert second.names == first.names
  for a, b in zip(data.train_batches(first, 2, 0, 1), data.train_batches(second, 2, 0, 1), strict=True):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["mask"], b["mask"])
