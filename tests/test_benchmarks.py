"""The benchmarks keep working without a GPU: tiny runs of both on CPU, and the roofline maths."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import tiny
from conftest import REPO

from benchmarks import gpu as bench_gpu


def test_roofline_fractions():
  entry = {"resolution": 256, "train_img_s": 1000.0, "bytes_per_image": 2e6}
  r = bench_gpu.roofline(entry, bandwidth=3e12)
  assert r["reference_img_s"] == pytest.approx(55_000 / 4)
  assert r["reference_fraction"] == pytest.approx(1000 / (55_000 / 4))
  assert r["xla_bytes_img_s"] == pytest.approx(1.5e6)
  assert r["xla_bytes_fraction"] == pytest.approx(1000 / 1.5e6)
  assert "xla_bytes_img_s" not in bench_gpu.roofline({**entry, "bytes_per_image": 0.0}, 3e12)


def test_gpu_bench_runs_end_to_end_on_cpu(tmp_path):
  have_torch = importlib.util.find_spec("torch") is not None
  out = tmp_path / "bench.json"
  cmd = [sys.executable, "-m", "benchmarks.gpu", "--resolution", "32", "--batch", "2", "--steps", "1",
         "--dtypes", "float32", "--impls", "gemm", "--torch", *(["eager"] if have_torch else []),
         "--skip-keras-jax", "--alpha", "0.35", "--bandwidth-mb", "8", "--json", str(out)]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  [entry] = json.loads(out.read_text())
  [j] = entry["jaxseg"]
  assert (j["dtype"], j["impl"], entry["resolution"], entry["batch"]) == ("float32", "gemm", 32, 2)
  assert j["train_img_s"] > 0 and j["eval_img_s"] > 0 and entry["bandwidth_gb_s"] > 0
  # XLA's cost model saw the whole step: at least the forward's multiply-adds of a 0.35 MobileNetV2 at 32 px.
  assert j["flops_per_image"] > 1e7 and j["bytes_per_image"] > 0
  assert j["roofline"]["reference_fraction"] == pytest.approx(j["train_img_s"] / (55_000 * 16))
  assert "jaxseg float32  impl=gemm" in proc.stdout
  if have_torch:
    [t] = entry["torch"]
    assert "error" not in t, t
    assert t["variant"] == "eager" and t["train_img_s"] > 0 and t["resolution"] == 32
    assert "PyTorch eager float32" in proc.stdout


@pytest.mark.parametrize("model", ["unet", "deeplab"])
def test_cpu_bench_writes_its_json_schema_with_keras_side_by_side(tmp_path, model):
  out = tmp_path / "bench.json"
  size = 32 if model == "unet" else 64
  repeats = 2 if model == "unet" else 1  # jaxseg and Keras-TF take turns; medians reported
  # The U-Net's jaxseg turns run in the bench's own process (--in-process), DeepLab's in a fresh one each (the
  # default); the allocator comparison (always a fresh process) is the U-Net's.
  variant = ["--in-process"] if model == "unet" else ["--skip-allocator-off"]
  cmd = [sys.executable, "-m", "benchmarks.cpu", "--resolution", str(size), "--batch", "2", "--steps", "1",
         "--dtypes", "float32", "--skip-keras-jax", "--skip-peak", "--json", str(out), "--model", model,
         "--repeats", str(repeats), *variant]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert (result["resolution"], result["batch"], result["model"]) == (size, 2, model)
  for key in ("train_step_s", "compile_s", "eval_img_s", "infer_img_s", "predict_latency_ms", "pipeline_img_s"):
    assert result["jaxseg"][key] > 0, key
  keras_tf = result["keras_tensorflow"]
  assert "error" not in keras_tf, keras_tf
  assert keras_tf["train_step_s"] > 0 and keras_tf["eval_img_s"] > 0
  if model == "unet":
    assert keras_tf["params"] == 6_504_227  # the same model on the Keras side
  else:
    import jax  # pylint: disable=g-import-not-at-top

    from jaxseg import models  # pylint: disable=g-import-not-at-top
    ours = models.DeepLabV3Plus(num_classes=3)
    assert keras_tf["params"] == models.count_params(
        jax.eval_shape(lambda: models.init_variables(ours, 64)))["total"]
  assert "jaxseg/Keras-TF train step" in proc.stdout
  # The allocator setting is on in the bench's own processes and off in the one it starts to compare.
  assert result["jaxseg"]["allocator"] == "hugetlb"
  if model == "unet":
    assert result["allocator_off"]["allocator"] == "default"
    assert result["allocator_off"]["train_step_s"] > 0 and "allocator setting on/off" in proc.stdout
  else:
    assert "allocator_off" not in result
  parts = result["jaxseg"]["breakdown_s"]
  assert set(parts) == {"encoder_forward", "forward", "forward_backward", "optimizer"}
  assert all(v > 0 for v in parts.values()), parts
  assert result["jaxseg"]["train_step_gflop"] > 0
  for side in (result["jaxseg"], keras_tf):
    assert len(side["repeats_train_step_s"]) == repeats
    assert side["train_step_s"] == pytest.approx(float(np.median(side["repeats_train_step_s"])))


def test_median_of_repeats_takes_each_number_s_median_and_skips_failures():
  from benchmarks import harness  # pylint: disable=g-import-not-at-top
  runs = [{"train_step_s": 3.0, "eval_img_s": 10.0, "dtype": "float32", "breakdown_s": {"x": 1.0}},
          {"error": "died"},
          {"train_step_s": 1.0, "eval_img_s": 30.0, "dtype": "float32"},
          {"train_step_s": 2.0, "eval_img_s": 20.0, "dtype": "float32"}]
  got = harness.median_of(runs)
  assert (got["train_step_s"], got["eval_img_s"], got["dtype"]) == (2.0, 20.0, "float32")
  assert got["repeats_train_step_s"] == [3.0, 1.0, 2.0] and got["breakdown_s"] == {"x": 1.0}
  assert harness.median_of([{"error": "died"}]) == {"error": "died"}


def test_matmul_peak_counts_flops():
  from benchmarks import cpu  # pylint: disable=g-import-not-at-top
  peak = cpu.matmul_peak(steps=1, n=256)
  assert set(peak) == {"float32", "bfloat16_inputs"} and all(v > 0.1 for v in peak.values()), peak


def test_camvid_bench_times_jaxseg_and_its_keras_twin_at_the_configs_sizes(tmp_path, camvid):
  out = tmp_path / "camvid.json"
  # The config's sizes, made small (frames resized to 80x128 and evaluated padded to 96x128, crops of 64x96):
  # the harness is the point here.
  fields = ["batch_size=2", "eval_batch_size=2", "image_height=80", "image_width=128", "augment.crop_height=64",
            "augment.crop_width=96"]
  cmd = [sys.executable, "-m", "benchmarks.camvid", "--root", str(camvid), "--steps", "1", "--dtypes", "float32",
         "--json", str(out), "--set", *fields]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  [ours] = result["jaxseg"]
  assert ours["train_input"] == [64, 96] and ours["eval_input"] == [96, 128], ours
  assert ours["train_step_s"] > 0 and ours["eval_img_s"] > 0 and ours["train_frames"] == 367
  keras_tf = result["keras_tensorflow"]
  assert "error" not in keras_tf, keras_tf
  assert keras_tf["train_step_s"] > 0 and keras_tf["eval_img_s"] > 0
  assert "jaxseg float32 / Keras-TF: train step" in proc.stdout
  bad = subprocess.run([*cmd[:-len(fields)], "nonesuch=1"], cwd=REPO, capture_output=True, text=True, timeout=300)
  last = bad.stderr.strip().splitlines()[-1]
  assert bad.returncode == 1 and last.startswith("error: ") and "nonesuch" in last, bad.stderr[-2000:]


def test_input_bench_measures_both_pipelines_at_n_and_10n(tmp_path):
  out = tmp_path / "input.json"
  cmd = [sys.executable, "-m", "benchmarks.input", "--frames", "2", "--size", "96x64", "--format", "png",
         "--workers", "0", "1", "--batch", "2", "--batches", "2", "--crop", "32x64", "--scale", "128x64",
         "--memory", "--dir", str(tmp_path / "data"), "--json", str(out)]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  runs = json.loads(out.read_text())["runs"]
  assert [(r["frames"], r["pipeline"], r["workers"]) for r in runs] == [
      (n, kind, w) for n in (2, 20) for kind, w in (("stream", 0), ("stream", 1), ("memory", 0))]
  assert all(r["frames_per_s"] > 0 and r["first_batch_s"] > 0 and r["peak_rss_gb"] > 0.05 for r in runs)
  assert len(list((tmp_path / "data").glob("*_20/img/*_label.png"))) == 20


def test_camvid_ablation_trains_each_variant_once_and_tabulates_it(tmp_path, monkeypatch, capsys):
  from benchmarks import camvid_ablation as ablation
  monkeypatch.chdir(REPO)
  variants = {"baseline": ("tests/tiny_config.py", {"num_epochs": 1}, "the tiny config"),
              "plain_ce": ("tests/tiny_config.py", {"num_epochs": 2, "loss.name": "lovasz"}, "Lovasz")}
  monkeypatch.setattr(ablation, "VARIANTS", variants)
  monkeypatch.setattr(ablation, "ORDER", ("plain_ce", "baseline"))
  monkeypatch.setattr(ablation, "TTA", {"flip": {"eval.flip": True}})
  assert ablation._tta_change({"eval.flip": True, "eval.scales": (0.75, 1.0)}) == "test-time flip, scales 0.75, 1.0"
  monkeypatch.setattr(ablation, "TTA_RUNS", ("baseline", "plain_ce"))
  monkeypatch.setenv("PYTHONPATH", str(REPO))
  out = str(tmp_path / "ablation")
  with pytest.raises(SystemExit):  # one line naming the option and the runs there are
    ablation.main(["--out", out, "--only", "plain_ce,nonesuch"])
  assert "--only: unknown run(s) nonesuch; choose from plain_ce, baseline" in capsys.readouterr().err
  assert ablation.main(["--root", "unused", "--weights", "none", "--out", out, "--only", "plain_ce"]) == 0
  assert [len(ablation.history(out, n)) for n in ("baseline", "plain_ce")] == [0, 2]
  assert ablation.main(["--root", "unused", "--weights", "none", "--out", out]) == 0
  assert [len(ablation.history(out, n)) for n in ("baseline", "plain_ce")] == [1, 2]
  runs = tmp_path / "ablation"  # plain_ce (first in ORDER) was evaluated with flips before baseline trained
  assert (runs / "plain_ce" / "tta_flip.json").stat().st_mtime < (runs / "baseline" / "metrics.jsonl").stat().st_mtime
  status = json.loads((tmp_path / "ablation" / "status.json").read_text())
  assert set(status) == {"baseline", "plain_ce"} and all(s["seconds"] > 0 for s in status.values())
  table = ablation.table(out).splitlines()
  base = ablation.history(out, "baseline")[-1]["val"]
  other = ablation.history(out, "plain_ce")[-1]["val"]
  assert table[2].startswith(f"| baseline | the tiny config | 1/1 | {base['mean_iou']:.3f} (")
  assert table[4].startswith(f"| plain_ce | Lovasz | 2/2 | {other['mean_iou']:.3f} (")
  effect = " / ".join(f"{other[k] - base[k]:+.3f}" for k in ("mean_iou", "accuracy", "class_accuracy"))
  assert table[4].endswith(f"| {other['accuracy']:.3f} | {other['class_accuracy']:.3f} | {effect} |")
  assert table[2].endswith(f"| {base['class_accuracy']:.3f} |  |")  # the baseline has no effect of its own
  flipped = json.loads((tmp_path / "ablation" / "baseline" / "tta_flip.json").read_text())["test"]
  assert table[3].startswith(f"| baseline + flip | test-time flip |  | {flipped['mean_iou']:.3f} |")
  assert table[3].endswith(f" | {flipped['mean_iou'] - base['mean_iou']:+.3f} / "
                           f"{flipped['accuracy'] - base['accuracy']:+.3f} / "
                           f"{flipped['class_accuracy'] - base['class_accuracy']:+.3f} |")
  flipped = json.loads((tmp_path / "ablation" / "plain_ce" / "tta_flip.json").read_text())["test"]
  assert table[5].endswith(f" | {flipped['mean_iou'] - other['mean_iou']:+.3f} / "  # against its own run
                           f"{flipped['accuracy'] - other['accuracy']:+.3f} / "
                           f"{flipped['class_accuracy'] - other['class_accuracy']:+.3f} |")
  # A second invocation finds everything done and trains nothing.
  before = (tmp_path / "ablation" / "status.json").read_text()
  assert ablation.main(["--root", "unused", "--weights", "none", "--out", out]) == 0
  assert (tmp_path / "ablation" / "status.json").read_text() == before


def test_camvid_ablation_with_a_holdout_scores_the_held_frames_each_epoch_and_val_at_the_end(tmp_path, monkeypatch,
                                                                                           capsys):
  from benchmarks import camvid_ablation as ablation
  monkeypatch.chdir(REPO)
  values = tiny.make_folder_dataset(tmp_path / "data", n_train=4, n_val=2)
  config = tmp_path / "folder_config.py"  # the tiny folder dataset as a config file main.py can load
  config.write_text(f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\nimport tiny\n\n\n"
                    f"def get_config():\n  return tiny.folder_config({str(tmp_path / 'data')!r})\n")
  monkeypatch.setattr(ablation, "VARIANTS", {"baseline": (str(config), {}, "the tiny folder config")})
  monkeypatch.setattr(ablation, "ORDER", ("baseline",))
  monkeypatch.setattr(ablation, "TTA_RUNS", ())
  monkeypatch.setenv("PYTHONPATH", str(REPO))
  out = str(tmp_path / "select")
  args = ["--root", str(tmp_path / "data"), "--weights", "none", "--out", out]
  assert ablation.main([*args, "--holdout", "ftrain_[01]*"]) == 0
  [record] = ablation.history(out, "baseline")
  labelled = lambda names: sum(int((values[n] != 9).sum()) for n in names)  # stored 9: ignored
  assert record["eval_split"] == "holdout" and record["step"] == 1  # 2 of 4 frames trained on, batch 2
  assert np.array(record["val"]["confusion"]).sum() == labelled(["ftrain_0", "ftrain_1"])
  val = json.loads((tmp_path / "select" / "baseline" / "split_val.json").read_text())["val"]
  assert np.array(val["confusion"]).sum() == labelled(["fval_0", "fval_1"])
  header, _, row = ablation.table(out).splitlines()
  assert "| held-out mIoU (best, epoch) | val mIoU | pixel acc |" in header
  assert row.startswith(f"| baseline | the tiny folder config | 1/1 | {record['val']['mean_iou']:.3f} (") and \
      f" | {val['mean_iou']:.3f} | {record['val']['accuracy']:.3f} |" in row
  title, header, _, *rows, mean = ablation.classes(out, "baseline").splitlines()  # per class, both splits
  assert title.startswith("baseline, epoch 1:") and header == "| class | held-out | val |"
  assert mean == f"| mean IoU | {record['val']['mean_iou']:.3f} | {val['mean_iou']:.3f} |"
  for i, (row, name) in enumerate(zip(rows, ("road", "car", "sky"), strict=True)):
    cells = []
    for m in (record["val"], val):
      confusion = np.array(m["confusion"])
      cells.append(f"{m[f'iou_{name}']:.3f} / {m[f'precision_{name}']:.3f} / {m[f'recall_{name}']:.3f} / "
                   f"{confusion[:, i].sum() / max(confusion[i].sum(), 1):.2f}")
    assert row == f"| {name} | {cells[0]} | {cells[1]} |"
  capsys.readouterr()
  assert ablation.main(args) == 2  # runs of another holdout are not mixed in
  assert "holds runs trained with --holdout 'ftrain_[01]*', not ''" in capsys.readouterr().out


def test_camvid_ablation_without_an_evaluation_record_says_so_and_writes_nothing(tmp_path, monkeypatch, capsys):
  from benchmarks import camvid_ablation as ablation
  printed = subprocess.CompletedProcess([], 0, "epoch 3 checkpoint: val loss 0.5\n", "")
  monkeypatch.setattr(ablation.subprocess, "run", lambda *args, **kwargs: printed)
  assert ablation._evaluations("long", "root", "none", str(tmp_path), holdout="x_*") == 1
  assert "long split_val: the evaluation printed no record line" in capsys.readouterr().out
  assert not (tmp_path / "long" / "split_val.json").exists()
  printed.stdout += '{"epoch": 3, "split": "val", "val": {"mean_iou": 0.5}}\n'
  assert ablation._evaluations("long", "root", "none", str(tmp_path), holdout="x_*") == 0
  assert json.loads((tmp_path / "long" / "split_val.json").read_text())["epoch"] == 3
