"""Helpers for tests: the tiny config with overrides, running main.py in a fresh process or in this one,
checkpoints to read, folder datasets to write, and weights of any module's shapes without compiling its init."""

import os
import pathlib
import subprocess
import sys

import tiny_config as tiny_config_file
from conftest import REPO


def tiny_config(**overrides):
  """The tiny config with dotted-key overrides, e.g. `**{"data.source": "tfds"}`."""
  config = tiny_config_file.get_config()
  for key, value in overrides.items():
    target = config
    *path, last = key.split(".")
    for p in path:
      target = target[p]
    target[last] = value
  return config


def augmentation(config, out_size):
  """`config`'s training augmentations (`data.Augmentation`) to an output of `out_size`."""
  import dataclasses  # pylint: disable=g-import-not-at-top

  from jaxseg import data  # pylint: disable=g-import-not-at-top
  return dataclasses.replace(data.Augmentation.from_config(config), out_size=tuple(out_size))


def main_py(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
  """Runs `python main.py --config tests/tiny_config.py ARGS` from the repo root in a fresh process."""
  cmd = [sys.executable, "main.py", "--config", "tests/tiny_config.py", *args]
  if any(a.startswith("--config=") or a == "--config" for a in args):
    cmd = [sys.executable, "main.py", *args]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, "PYTHONPATH": str(REPO)})


def run_cli(*args: str) -> subprocess.CompletedProcess:
  """What `main_py(*args)` does, in this process (`jaxseg.cli.modes.run`, main.py's body once its flags are parsed):
  for tests of what a mode does rather than of the process around it. Takes --config FILE, --config.FIELD=VALUE,
  --workdir, --mode, --images (and paths after it), --output, --epoch, --format, --max-pixels."""
  import contextlib  # pylint: disable=g-import-not-at-top

  from jaxseg.config import files as config_files  # pylint: disable=g-import-not-at-top
  path, overrides, options, images = "tests/tiny_config.py", {}, {}, []
  rest = list(args)
  while rest:
    arg = rest.pop(0)
    name, has_value, value = arg.partition("=")
    if name in ("--config", "--workdir", "--mode", "--output", "--epoch", "--format", "--max-pixels", "--images"):
      value = value if has_value else rest.pop(0)
    if name == "--config":
      path = value
    elif name.startswith("--config."):
      overrides[name[len("--config."):]] = config_files.parse_value(value)
    elif name == "--images" or not name.startswith("--"):
      images.extend(value.split(",") if name == "--images" else [arg])
    else:
      options[name[2:]] = value
  with contextlib.chdir(REPO):
    config = config_files.load_config(path, overrides)
  proc = run_config(config, options.get("mode", "train"), options.get("workdir"), images=images,
                    output=options.get("output"), epoch=int(options["epoch"]) if "epoch" in options else None,
                    export_format=options.get("format", "saved_model"), max_pixels=int(options.get("max-pixels", 0)))
  proc.args = ["jaxseg.cli.modes.run", *args]
  return proc


def run_config(config, mode: str = "train", workdir=None, **kwargs) -> subprocess.CompletedProcess:
  """`jaxseg.cli.modes.run(config, mode, workdir, **kwargs)` in this process, from the repository root, its output
  captured; `max_pixels` (--max-pixels) lasts for this call only, as it would for its process."""
  import contextlib  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top

  from jaxseg.cli import modes as cli  # pylint: disable=g-import-not-at-top
  from jaxseg.data import images as image_files  # pylint: disable=g-import-not-at-top
  out, err = io.StringIO(), io.StringIO()
  with contextlib.chdir(REPO), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      code = cli.run(config, mode, None if workdir is None else str(workdir), **kwargs)
    finally:
      image_files.set_max_pixels(0)
  return subprocess.CompletedProcess(["jaxseg.cli.modes.run", mode], code, out.getvalue(), err.getvalue())


# The tiny config's overrides that make it learn (also passed to main.py as --config.KEY=VALUE).
LEARNING = {"data.synthetic_train_size": 64, "data.synthetic_eval_size": 16, "batch_size": 8,
            "num_epochs": 10, "learning_rate": 3e-3, "freeze_encoder": False, "encoder_bn_train": True,
            "model.encoder_bn_momentum": 0.9, "model.decoder_bn_momentum": 0.9}


def learning_config(**overrides):
  """A tiny config that learns the synthetic task within seconds (val accuracy ~0.79 against a majority
  class of ~0.64 after 10 epochs), so that its predictions depend on the input."""
  return tiny_config(**{**LEARNING, **overrides})


def synthetic_photos(n, h, w, seed=5):
  """(n, h, w, 3) uint8 pictures of the synthetic task (what the learned model segments), any size."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from jaxseg.data import sources  # pylint: disable=g-import-not-at-top
  images, _ = sources.synthetic_arrays(n, max(h, w), seed=seed)
  return np.stack([np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR)) for im in images])


# Stored label values 0..3 and 9; the map merges 0 and 1, keeps 2 and 3, ignores 9.
CLASS_MAP = {"0": 0, "1": 0, "2": 1, "3": 2, "9": "ignore"}
TABLE = [("Road", (128, 64, 128)), ("Lane", (128, 0, 192)), ("Car", (64, 0, 128)), ("Sky", (128, 128, 128)),
         ("Void", (0, 0, 0))]  # rows 0-3 are values 0-3, "Void" stands for value 9
H, W = 20, 30


def _labels(rng, h=H, w=W):
  import numpy as np  # pylint: disable=g-import-not-at-top
  m = rng.choice([0, 1, 2, 3, 9], size=(h, w)).astype(np.uint8)
  m[0, :5] = [0, 1, 2, 3, 9]  # every value in every file
  return m


def make_folder_dataset(root, n_train=4, n_val=2, layout="lists", mask_format="index", seed=0, sizes=((H, W),)):
  """A folder dataset of pictures of `sizes` (cycled): train/ and val/ images, trainannot/ and valannot/
  masks (stored values 0-3 and 9; "_L" suffixes for layout "dirs"), train.txt and val.txt for layout
  "lists", colors.csv. Returns the masks' stored values by file stem."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  values = {}
  for split, n in (("train", n_train), ("val", n_val)):
    (root / split).mkdir(parents=True)
    (root / f"{split}annot").mkdir()
    lines = []
    for i in range(n):
      name = f"f{split}_{i}"
      h, w = sizes[i % len(sizes)]
      Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / split / f"{name}.png")
      m = _labels(rng, h, w)
      values[name] = m
      suffix = "_L" if layout == "dirs" else ""
      path = root / f"{split}annot" / f"{name}{suffix}.png"
      if mask_format == "color":
        colors = np.array([c for _, c in TABLE], np.uint8)
        Image.fromarray(colors[np.where(m == 9, 4, m)]).save(path)
      elif mask_format == "palette":
        im = Image.fromarray(m)
        im.putpalette(np.random.default_rng(1).integers(0, 255, 768).tolist())
        im.save(path)
      else:
        Image.fromarray(m).save(path)
      lines.append(f"{split}/{name}.png {split}annot/{name}{suffix}.png\n")
    if layout == "lists":
      (root / f"{split}.txt").write_text("".join(lines))
  (root / "colors.csv").write_text("name,r,g,b\n" + "".join(f"{n},{r},{g},{b}\n" for n, (r, g, b) in TABLE))
  return values


def folder_config(root, **overrides):
  """A tiny config reading the dataset of `make_folder_dataset` at its own size."""
  settings = {"data.source": "folder", "data.root": str(root), "data.train_split": "train",
              "data.eval_split": "val", "data.class_map": CLASS_MAP, "num_classes": 3,
              "data.class_names": ("road", "car", "sky"), "image_height": H, "image_width": W,
              "data.class_colors": ((128, 64, 128), (64, 0, 128), (128, 128, 128))}
  return tiny_config(**{**settings, **overrides})


def tensorboard_scalars(logdir) -> dict:
  """{tag: [(step, value), ...]} of the TensorBoard event files in `logdir`, read here from the record framing
  (length, its CRC, the Event proto, its CRC) rather than by the writer's own reader."""
  import struct  # pylint: disable=g-import-not-at-top

  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  scalars = {}
  for path in sorted(pathlib.Path(logdir).glob("events.out.tfevents.*")):
    data, at = path.read_bytes(), 0
    while at < len(data):
      (length,) = struct.unpack("<Q", data[at:at + 8])
      event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
      at += 12 + length + 4
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


# Oxford-IIIT Pet names by list file, for `fake_pet_archives`.
PET_NAMES = {"trainval.txt": ["Abyssinian_1", "beagle_2", "Bengal_3", "pug_4"], "test.txt": ["Birman_5", "boxer_6"]}


def fake_pet_archives(root, names=None):
  """Writes what Oxford-IIIT Pet's two archives hold, extracted, for a few random pictures: images/*.jpg and
  annotations/{trainval,test}.txt, annotations/trimaps/*.png (values 1-3), for tfds' own builder to prepare
  (with `DownloadManager.download_and_extract` pointed at `root`)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  (root / "images").mkdir(parents=True)
  (root / "annotations" / "trimaps").mkdir(parents=True)
  for listing, pets in (names or PET_NAMES).items():
    lines = []
    for i, name in enumerate(pets):
      h, w = 24 + 4 * i, 30 + 2 * i
      Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"{name}.jpg")
      Image.fromarray(rng.integers(1, 4, (h, w), dtype=np.uint8)).save(root / "annotations" / "trimaps" / f"{name}.png")
      lines.append(f"{name} {i + 1} {i % 2 + 1} 1\n")
    (root / "annotations" / listing).write_text("".join(lines))


def untrained_checkpoint(config, workdir: str, epoch: int = 1) -> None:
  """A checkpoint of random weights (`random_variables`) in `workdir`, as training would write it after `epoch`
  epochs: for tests of what reads checkpoints (export, load), which need no learning and no train step."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from jaxseg import data  # pylint: disable=g-import-not-at-top
  from jaxseg.training import checkpoints  # pylint: disable=g-import-not-at-top
  from jaxseg.training.run import Run  # pylint: disable=g-import-not-at-top
  run = Run(config, workdir)
  h, w = data.model_size(run.config)
  fresh, _ = run.state_from(random_variables(run.model, np.zeros((1, h, w, 3), np.float32), train=False))
  checkpoints.save(run.mngr, epoch, fresh.to_dict(), checkpoints.make_meta(run.config, epoch, []))


def random_variables(module, *args, seed: int = 0, **kwargs):
  """Variables of `module.init(key, *args, **kwargs)`'s shapes drawn with numpy: kernels and embeddings
  LeCun-normal (std 1/sqrt(fan-in)), biases and means 0, every other per-channel term (scales, variances,
  DINOv2's layer scale) 1, so that no block is switched off. For tests that need some weights of the right
  shapes: `module.init` draws each parameter with its own threefry hash, seconds of XLA work for a backbone
  compiled whole and longer op by op."""
  import functools  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  shapes = jax.eval_shape(functools.partial(module.init, **kwargs), jax.random.key(0), *args)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if len(leaf.shape) >= 2:
      return (rng.standard_normal(leaf.shape) / np.sqrt(int(np.prod(leaf.shape[:-1])))).astype(leaf.dtype)
    name = str(getattr(path[-1], "key", path[-1]))
    return (np.zeros if name.endswith("bias") or name == "mean" else np.ones)(leaf.shape, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)
