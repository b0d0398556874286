"""Export: every format of every registered model written from a trained checkpoint, reloaded in its own
runtime (TensorFlow, the LiteRT interpreter, `jax.export.deserialize`) and compared with jaxseg's predictor
at two batch sizes; bad formats, missing checkpoints and occupied outputs refused without writing."""

import json
import os

import jax
import numpy as np
import pytest
import tiny

import jaxseg
from jaxseg import models
from jaxseg.errors import UserError
from jaxseg.inference import export as deploy
from jaxseg.inference import forward

# Every registered model, and every backbone family under one of them.
MODELS_AND_BACKBONES = [("unet", "mobilenet_v2_0.35"), ("deeplabv3plus", "mobilenet_v2_0.35"),
                        ("deeplabv3plus", "resnet18"), ("unet", "mobilenet_v3_small"),
                        ("deeplabv3plus", "efficientnet_b0"), ("segformer", "mit_b0"), ("linear", "dinov2_small")]


def test_every_model_and_family_is_exported():
  assert {name for name, _ in MODELS_AND_BACKBONES} == set(models.MODELS)
  families = {models.backbones.family(b) for _, b in MODELS_AND_BACKBONES}
  assert families == {"mobilenet_v2"} | {models.backbones.family(b) for b in models.backbones.BACKBONES}


@pytest.fixture(scope="module", params=MODELS_AND_BACKBONES, ids="-".join)
def trained(request, tmp_path_factory):
  """(config, workdir) of a checkpoint of each registered model and backbone family (initial weights: export
  and its parity need a checkpoint, not a trained one)."""
  name, backbone = request.param
  workdir = tmp_path_factory.mktemp(f"{name}_{backbone}")
  config = tiny.tiny_config(**{"model.name": name, "model.backbone": backbone, "num_epochs": 1})
  tiny.untrained_checkpoint(config, str(workdir))
  return config, str(workdir)


def _jaxseg_logits(workdir, images):
  predictor = jaxseg.load(workdir)
  return predictor.run.logits_fn(predictor.variables)(images)


@pytest.mark.parametrize("fmt", deploy.FORMATS)
def test_export_runs_back_in_its_runtime_and_matches_jaxseg(trained, tmp_path, fmt):
  config, workdir = trained
  out = tmp_path / "out"
  result = jaxseg.export(workdir, fmt, output=str(out), probabilities=True)
  assert result.check["ok"] and result.check["images"] == 3
  assert os.path.exists(result.path) and result.size_bytes > 100_000  # the weights are in it
  meta = json.loads((out / "jaxseg_export.json").read_text())
  assert meta["format"] == fmt and meta["input"]["shape"] == [None, 32, 32, 3]
  assert meta["class_names"] == list(config.data.class_names) and meta["model"] == config.model.name
  assert not [p for p in os.listdir(tmp_path) if p != "out"], "temporary files left beside the output"

  # The export's own check ran a batch of 3 through the written file; here it is reloaded and given 2 images,
  # against the restored checkpoint's logits: any batch size, and each image's result its own.
  run = deploy.load_exported(str(out), fmt)
  image = tiny.synthetic_photos(2, 32, 32)
  want = _jaxseg_logits(workdir, image)
  got = run(image)
  assert set(got) == {"classes", "logits", "probabilities"}
  assert got["classes"].shape == (2, 32, 32) and got["logits"].shape == (2, 32, 32, config.num_classes)
  check = deploy.parity(got, want)
  assert check["ok"], check
  np.testing.assert_allclose(got["probabilities"], jax.nn.softmax(want, -1), atol=1e-5)
  np.testing.assert_allclose(got["probabilities"].sum(-1), 1.0, atol=1e-5)


def test_the_parity_check_fails_on_a_different_model():
  logits = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
  same = {"logits": logits + 1e-6, "classes": np.argmax(logits, -1)}
  assert deploy.parity(same, logits)["ok"]
  shifted = {"logits": logits + 1e-2, "classes": np.argmax(logits, -1)}
  assert not deploy.parity(shifted, logits)["ok"]
  flipped = {"logits": logits, "classes": np.argmax(logits[:, ::-1], -1)}
  assert not deploy.parity(flipped, logits)["ok"]


def test_first_argmax_is_argmax_with_ties():
  x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [-1.0, -5.0, 0.0]], np.float32)
  np.testing.assert_array_equal(forward.first_argmax(x), np.argmax(x, -1))


def test_a_failed_check_writes_nothing(trained, tmp_path, monkeypatch):
  _, workdir = trained
  monkeypatch.setattr(deploy, "parity", lambda *a: {"logits_max_abs_diff": 1.0, "logits_scale": 1.0,
                                                      "class_agreement": 0.5, "ok": False})
  with pytest.raises(deploy.ExportError, match="does not match jaxseg"):
    jaxseg.export(workdir, "stablehlo", output=str(tmp_path / "new" / "out"))
  assert os.listdir(tmp_path) == []  # not even the parent directory it made


def test_bad_format_missing_checkpoint_and_occupied_output_write_nothing(trained, tmp_path):
  _, workdir = trained
  with pytest.raises(deploy.ExportError, match="unknown export format 'onnx'"):
    jaxseg.export(workdir, "onnx", output=str(tmp_path / "a"))
  with pytest.raises(UserError, match="no checkpoint"):
    jaxseg.export(str(tmp_path / "empty_run"), "stablehlo", output=str(tmp_path / "b"),
                  config=tiny.tiny_config())
  occupied = tmp_path / "c"
  occupied.mkdir()
  (occupied / "keep.txt").write_text("mine")
  with pytest.raises(deploy.ExportError, match="exists and is not an empty directory"):
    jaxseg.export(workdir, "stablehlo", output=str(occupied))
  assert sorted(os.listdir(tmp_path)) == ["c"] and os.listdir(occupied) == ["keep.txt"]
  assert (occupied / "keep.txt").read_text() == "mine"


# The same for every model:
@pytest.mark.parametrize("trained", [("unet", "mobilenet_v2_0.35")], indirect=True, ids="-".join)
def test_command_line_export_and_its_errors(trained, tmp_path):
  _, workdir = trained
  out = tmp_path / "hlo"
  ok = tiny.main_py("--workdir", workdir, "--mode", "export", "--format", "stablehlo", "--output", str(out),
                    "--epoch", "1")
  assert ok.returncode == 0, ok.stderr
  assert "Exported stablehlo (epoch 1)" in ok.stdout and ": OK." in ok.stdout
  assert (out / "model.stablehlo").is_file()
  again = tiny.run_cli("--workdir", workdir, "--mode", "export", "--format", "stablehlo", "--output", str(out))
  bad = tiny.run_cli("--workdir", workdir, "--mode", "export", "--format", "onnx", "--output",
                     str(tmp_path / "x"))
  untrained = tiny.run_cli("--workdir", str(tmp_path / "no_run"), "--mode", "export", "--format", "tflite",
                           "--output", str(tmp_path / "x"))
  for proc, words in ((again, "exists and is not an empty directory"), (bad, "unknown export format"),
                      (untrained, "no checkpoint")):
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], proc.stderr
  assert not (tmp_path / "x").exists() and not (tmp_path / "no_run").exists()
