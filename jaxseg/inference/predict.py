"""Prediction on any image from a checkpoint: `jaxseg.load(workdir)(image)` and `--mode predict`.

An image of any size goes in; it is resized to the training data's stored size, the logits are resized back
to the image's own size (bilinear, pixel centres aligned) and only then turned into classes, so the mask
lines up with the photo at full resolution. Masks are written as palette PNGs: pixel value = class id, shown
in the dataset's class colours by any image viewer.
"""

import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from jaxseg import data, models
from jaxseg.errors import DatasetError, UserError
from jaxseg.inference import logits as inference
from jaxseg.models import segformer_port
from jaxseg.models.backbones import keras_hub_port
from jaxseg.runtime import files
from jaxseg.training import checkpoints, intact
from jaxseg.training.run import Run
from jaxseg.training.state import bn_debias_momentum, inference_variables
from jaxseg.viz import figures as visualize

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class PredictError(UserError):
  """An input that cannot be predicted."""


def config_from_checkpoint(workdir: str, epoch: int | None = None) -> ml_collections.ConfigDict:
  """The config saved with the checkpoint of `epoch` (the newest if None) of the run in `workdir`."""
  mngr = checkpoints.manager(workdir, read_only=True)
  # Quietly: restoring the state next names any damaged step.
  _, meta = intact.restore_newest(mngr, lambda s: checkpoints.read_meta(mngr, s)[1], epoch, say=None)
  return checkpoints.saved_config(meta)


class Predictor:
  """Restores a checkpoint once and predicts class masks for images of any size.

  Example:
    predictor = jaxseg.load("runs/r224")
    mask = predictor(PIL.Image.open("cat.jpg"))  # (H, W) uint8 class ids
    predictor.classes.names[mask[0, 0]]            # e.g. "pet"
  """

  def __init__(self, workdir: str, config: ml_collections.ConfigDict | None = None, epoch: int | None = None,
               preset: str | None = None):
    """
    Args:
      workdir: the run's --workdir (holds checkpoints/); where predictions go by default.
      config: the config (default: the one saved with the checkpoint, or for a preset the package's default).
      epoch: the checkpoint of this epoch; the newest if None (`self.epoch` says which was restored).
      preset: a keras-hub SegFormer segmenter preset (name or save_to_preset directory) to predict with
        instead of a checkpoint.
    """
    if preset is not None:
      config, variables = preset_model(preset, config)
      self.run, self.epoch = Run(config, workdir, read_only=True), 0
      self.variables = variables
    else:
      config = config or config_from_checkpoint(workdir, epoch)
      self.run = Run(config, workdir, read_only=True)
      state, self.epoch = self.run.restore_for_inference(epoch)
      self.variables = inference_variables(state, bn_debias_momentum(self.run.config))
    self.config = self.run.config  # the given config, with the trained BatchNorm momentum
    self.classes = self.run.classes

  def __call__(self, image: Any) -> np.ndarray:
    """Class mask (H, W) uint8 for a numpy array (H, W[, C]) or PIL image, at the image's own size."""
    return self.predict_batch([image])[0]

  def predict_batch(self, images: Sequence[Any]) -> list[np.ndarray]:
    """Masks for several images (any sizes), run through the model in batches."""
    arrays = [_as_rgb(im) for im in images]
    if not arrays:
      return []
    h, w = data.stored_size(self.config)
    bs = self.config.eval_batch_size
    run_model = self.run.logits_fn(self.variables)
    if inference.settings_apply(self.config):  # sliding windows, scales, flips: one photo at a time
      return [inference.maps_to_mask(inference.logit_maps(a, self.config, run_model, (h, w), bs), a.shape[:2])
              for a in arrays]
    logits = run_model(np.stack([np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR)) for a in arrays]))
    return [inference.logits_to_mask(logits[i], a.shape[:2]) for i, a in enumerate(arrays)]


def _as_rgb(image: Any) -> np.ndarray:
  """A PIL image (EXIF orientation applied, as for files) or an array, as (H, W, 3) uint8."""
  if isinstance(image, Image.Image):
    return data.pil_to_rgb(ImageOps.exif_transpose(image))
  try:
    return data.array_to_rgb(image)
  except ValueError as e:
    raise PredictError(str(e)) from None


def expand_inputs(inputs: Sequence[str]) -> tuple[list[str], list[str]]:
  """Files named directly, plus image files (by extension) in named directories; and problems found."""
  paths, problems = [], []
  for path in inputs:
    if os.path.isdir(path):
      found = sorted(os.path.join(path, f) for f in os.listdir(path)
                     if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(path, f)))
      if not found:
        problems.append(f"{path}: directory has no image files ({', '.join(IMAGE_EXTENSIONS)}).")
      paths += found
    elif os.path.exists(path):
      paths.append(path)
    else:
      problems.append(f"{path}: no such file or directory.")
  return paths, problems


def _thumbnail(image: np.ndarray, mask: np.ndarray, side: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """The image and mask at most `side` pixels on their longer side, for the panel (which shows up to eight)."""
  h, w = mask.shape
  if max(h, w) <= side:
    return image, mask
  size = (max(1, round(w * side / max(h, w))), max(1, round(h * side / max(h, w))))
  return (np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)),
          np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST)))


def save_mask_png(path: str, mask: np.ndarray, classes: data.Classes) -> None:
  """A class-id mask as a palette PNG (value = class id, colours = the classes'), written atomically."""
  im = Image.fromarray(np.asarray(mask, np.uint8))
  im.putpalette(classes.palette())  # "L" -> "P", values kept
  with files.atomic_path(path) as tmp:
    im.save(tmp, format="PNG")


def predict_files(config: ml_collections.ConfigDict, workdir: str, inputs: Sequence[str],
                  output: str | None = None, epoch: int | None = None,
                  predictor: Predictor | None = None) -> list[str]:
  """Writes `<name>_mask.png`, `<name>_overlay.png` per input and a `panel.png`; returns the failures.

  Every input that can be read is predicted; each that cannot is reported in one line on stderr.

  Args:
    config: the experiment config.
    workdir: the run's workdir (its checkpoints are read, never written).
    inputs: image files and directories (their image files, by extension).
    output: output directory (default `<workdir>/predictions`).
    epoch: the checkpoint of this epoch; the newest if None.
    predictor: an already restored Predictor (else one is made from `workdir` and `epoch`).
  """
  if not inputs:
    raise PredictError("--mode=predict needs --images FILE_OR_DIR [...].")
  paths, failures = expand_inputs(inputs)
  output = output or os.path.join(workdir, "predictions")
  if paths and predictor is None:
    predictor = Predictor(workdir, config, epoch, preset=_untrained_preset(config, workdir))
  os.makedirs(output, exist_ok=True)
  used, panel = set(), []
  bs = config.eval_batch_size
  bar = tqdm(total=len(paths), unit="img", disable=len(paths) < 2 * bs, desc="predict")
  for start in range(0, len(paths), bs):
    loaded = []
    for path in paths[start:start + bs]:
      try:
        loaded.append((path, data.read_rgb(path)))
      except DatasetError as e:
        failures.append(str(e))
    masks = predictor.predict_batch([a for _, a in loaded]) if loaded else []
    for (path, image), mask in zip(loaded, masks):
      name = base = os.path.splitext(os.path.basename(path))[0]
      n = 1
      while name in used:
        n += 1
        name = f"{base}_{n}"
      used.add(name)
      save_mask_png(os.path.join(output, f"{name}_mask.png"), mask, predictor.classes)
      visualize.save_overlay(os.path.join(output, f"{name}_overlay.png"), image, mask, predictor.classes)
      if len(panel) < 8:
        panel.append(_thumbnail(image, mask))
    bar.update(len(paths[start:start + bs]))
  bar.close()
  if panel:
    visualize.save_panel(os.path.join(output, "panel.png"), ("Input Image", "Predicted Mask"), panel,
                         predictor.classes)
  for problem in failures:
    print(f"error: {problem}", file=sys.stderr)
  print(f"Predicted {len(used)} image(s) into {output}" + (f"; {len(failures)} failed." if failures else "."))
  return failures


def load(workdir: str, epoch: int | None = None, config: ml_collections.ConfigDict | None = None) -> Predictor:
  """A Predictor for the newest checkpoint in `workdir`, or that of `epoch` (the config comes from the
  checkpoint), or,
  where `workdir` is a keras-hub SegFormer segmenter preset (name or directory), for that pretrained model."""
  if segformer_port.is_segmenter_preset(workdir) and not os.path.isdir(os.path.join(workdir, "checkpoints")):
    return Predictor(tempfile.mkdtemp(prefix="jaxseg_preset_"), config, preset=workdir)
  return Predictor(workdir, config, epoch)


def _untrained_preset(config: ml_collections.ConfigDict, workdir: str) -> str | None:
  """The segmenter preset `--mode predict` uses where the workdir holds no checkpoint and the config is a
  SegFormer whose `model.backbone_weights` names one; else None (the checkpoint is used)."""
  weights = config.model.backbone_weights
  if not models.model_class(config.model.name).whole_model_weights(weights):
    return None
  return None if checkpoints.manager(workdir, read_only=True).latest_step() is not None else weights


def preset_model(source: str, config: ml_collections.ConfigDict | None) -> tuple[ml_collections.ConfigDict, Any]:
  """(config, variables) of a keras-hub SegFormer segmenter preset: `config` (default: the package's default config)
  with the preset's model, class count, input size and normalisation."""
  segmenter = segformer_port.load_segmenter(source)
  found = segformer_port.describe(segmenter)
  if config is None:
    from jaxseg.config import defaults as default_config  # pylint: disable=g-import-not-at-top
    config = default_config.get_config()
  config = config.copy_and_resolve_references()
  m = config.model
  m.name, m.backbone, m.decoder_dim, m.backbone_weights = found["name"], found["backbone"], found["decoder_dim"], source
  if config.num_classes != found["num_classes"]:
    config.num_classes, config.data.class_names, config.data.class_colors = found["num_classes"], (), ()
  if found["image_size"]:
    config.image_size = config.image_height = found["image_size"][0]
    config.image_width = found["image_size"][1]
  transform = keras_hub_port.image_transform(source)
  if transform is not None:
    m.input_scale, m.input_offset = transform
  model = models.create_model(config)
  want = jax.eval_shape(lambda: models.init_variables(model, data.model_size(config)))
  return config, segformer_port.port(segmenter, want)
