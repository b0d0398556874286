"""What the base install (`pip install .`, no extras) does on its own.

Checked in one process where the extras' packages cannot be imported (`hidden_packages`), so that it checks the
same where they are installed:

- every jaxseg module imports;
- train, eval, predict, inspect, summary and StableHLO export on a folder dataset, and `jaxseg.load`;
- train and eval on a tfds dataset that tfds prepares as ArrayRecord here (Oxford-IIIT Pet's own builder over
  pictures written here), in memory and streamed;
- metrics.jsonl, curves.png and TensorBoard scalars written;
- features of an extra refused in one line naming its `pip install`.

  python tests/base_install_check.py SCRATCH_DIR    (from the repository root; prints one line per check).
"""
# pylint: disable=g-import-not-at-top  # jaxseg and its dependencies are imported once the extras are hidden

import importlib
import json
import pathlib
import pkgutil
import sys

import hidden_packages


def ok(proc, what):
  code, out, err = proc.returncode, proc.stdout, proc.stderr
  assert code == 0, f"{what}: exit code {code}\n{out[-2000:]}\n{err[-2000:]}"
  print(f"ok: {what}")
  return out


def refused(proc, install, what, *also):
  code, err = proc.returncode, proc.stderr
  lines = [line for line in err.splitlines() if line.startswith("error:")]  # (tfds prints progress bars too)
  assert code != 0 and len(lines) == 1 and f"pip install '{install}'" in lines[0], (what, code, err[-2000:])
  assert err.strip().splitlines()[-1] == lines[0], err[-2000:]  # nothing after it: the message is one line
  assert all(text in lines[0] for text in also), (also, lines[0])
  print(f"ok: {what} -> {lines[0]}")


def check_run_outputs(workdir):
  """metrics.jsonl, curves.png and TensorBoard events that hold the epoch's validation figures."""
  import numpy as np
  import tiny
  record = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
  assert (workdir / "curves.png").stat().st_size > 1000
  scalars = tiny.tensorboard_scalars(workdir / "tensorboard")
  split = record.get("eval_split", "val")
  assert scalars[f"{split}/accuracy"] == [(record["epoch"], np.float32(record["val"]["accuracy"]))], scalars
  assert scalars["train/loss"][-1][0] == record["epoch"]


def main(scratch: pathlib.Path):
  """Runs every check in `scratch` (an empty directory)."""
  import numpy as np
  import tensorflow_datasets as tfds
  import tiny
  from PIL import Image

  import jaxseg
  run = tiny.run_config  # jaxseg.cli.modes.run (main.py's body), its output captured
  names = [m.name for m in pkgutil.walk_packages(jaxseg.__path__, "jaxseg.")]
  for name in names:
    importlib.import_module(name)
  print(f"ok: {len(names)} jaxseg modules import")

  root, work = scratch / "folder", scratch / "folder_run"
  tiny.make_folder_dataset(root)
  config = tiny.folder_config(root)
  ok(run(config, "train", work), "train on a folder dataset")
  check_run_outputs(work)
  print("ok: metrics.jsonl, curves.png and TensorBoard scalars written")
  ok(run(config, "eval", work), "eval")
  pictures = scratch / "pictures"
  pictures.mkdir()
  Image.fromarray(tiny.synthetic_photos(1, 40, 52)[0]).save(pictures / "street.png")
  ok(run(config, "predict", work, images=[str(pictures)], output=str(scratch / "predicted")), "predict")
  assert (scratch / "predicted" / "street_mask.png").exists(), sorted(p.name for p in (scratch / "predicted").iterdir())
  mask = jaxseg.load(str(work))(np.asarray(Image.open(pictures / "street.png")))
  assert mask.shape == (40, 52), mask.shape
  print("ok: jaxseg.load")
  ok(run(config, "inspect", work), "inspect")
  ok(run(config, "summary", work), "summary")
  ok(run(config, "export", work, output=str(scratch / "stablehlo"), export_format="stablehlo"), "StableHLO export")
  refused(run(config, "export", work, output=str(scratch / "saved"), export_format="saved_model"), "jaxseg[tf]",
          "SavedModel export")
  assert not (scratch / "saved").exists()
  keras_hub = tiny.tiny_config(**{"model.backbone": "resnet18", "model.backbone_weights": "imagenet"})
  refused(run(keras_hub, "train", scratch / "resnet"), "jaxseg[keras]", "a keras-hub preset")

  archives = scratch / "pet_archives"
  tiny.fake_pet_archives(archives)
  tfds.download.DownloadManager.download_and_extract = lambda self, urls: {k: str(archives) for k in urls}
  for choice in ("memory", "stream"):
    config = tiny.tiny_config(**{"data.source": "tfds", "data.data_dir": str(scratch / "tfds"),
                                 "data.pipeline": choice, "data.workers": 0})
    work = scratch / f"tfds_{choice}"
    ok(run(config, "train", work), f"prepare (ArrayRecord) and train on a tfds dataset, {choice} pipeline")
    check_run_outputs(work)
    ok(run(config, "eval", work), f"eval on the tfds dataset, {choice} pipeline")
  prepared = list((scratch / "tfds" / "oxford_iiit_pet").glob("*/*.array_record-*"))
  assert prepared, "tfds did not prepare ArrayRecord files"
  # Pictures the builder lists as corrupt are re-encoded through TensorFlow: preparing those needs the extra.
  archives = scratch / "pet_archives_tf"
  tiny.fake_pet_archives(archives, {"trainval.txt": ["Abyssinian_5", "pug_4"], "test.txt": ["boxer_6"]})
  config = tiny.tiny_config(**{"data.source": "tfds", "data.data_dir": str(scratch / "tfds_tf")})
  refused(run(config, "train", scratch / "tfds_tf_run"), "jaxseg[tf]", "preparing Oxford-IIIT Pet's corrupt pictures",
          "tf.io.encode_jpeg", "--config.data.source=folder")
  assert not list((scratch / "tfds_tf").glob("oxford_iiit_pet/*/dataset_info.json"))

  print("base install: all checks passed")


if __name__ == "__main__":
  hidden_packages.hide()
  main(pathlib.Path(sys.argv[1]))
