"""Export a trained checkpoint for serving, as a SavedModel, a LiteRT (TFLite) flatbuffer or serialized
StableHLO, each checked against jaxseg right after writing.

The exported function takes uint8 images (any batch size, at the training data's stored size, RGB) and does
the normalisation itself; it returns `classes` (B, H, W) int32, `logits` (B, H, W, C) float32 (to resize
back to a photo's own size before the argmax, as `jaxseg.load` does) and, if asked, `probabilities`.

  SavedModel: `jax2tf` (the model as one StableHLO call, lowered for CPU, CUDA and TPU), signature
    "serving_default".
  LiteRT: a SavedModel lowered for the CPU, of the model built with kernels="lite" (plain `lax`
    convolutions), through TensorFlow's converter into TFLite builtin ops (its own conv kernels).
  StableHLO: `jax.export` (lowered for CPU, CUDA and TPU), reloaded with
    `jax.export.deserialize(...).call(images)`.

Exports run in float32 whatever precision training used. Everything is written beside the output
directory first and moved into place only after the check passed: a failed export leaves nothing behind.
"""

import dataclasses
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxseg import data, models
from jaxseg.errors import UserError
from jaxseg.inference import forward
from jaxseg.runtime import extras

FORMATS = ("saved_model", "tflite", "stablehlo")
PLATFORMS = ("cpu", "cuda", "tpu")  # SavedModel and StableHLO run on any of these, wherever they were exported
FILES = {"saved_model": "", "tflite": "model.tflite", "stablehlo": "model.stablehlo"}  # "": the directory
LOGITS_TOLERANCE = 1e-4  # max |exported - jaxseg| logit, relative to the logits' scale (at least 1)
MIN_AGREEMENT = 0.999  # fraction of pixels whose class must be identical


class ExportError(UserError):
  """An export that cannot be made (bad format or output) or that does not match jaxseg."""


@dataclasses.dataclass
class Exported:
  """What `export` wrote: the output directory, the model file (or SavedModel directory), its size in bytes,
  the epoch of the checkpoint exported, and the parity check's figures."""
  format: str
  output: str
  path: str
  size_bytes: int
  epoch: int
  check: dict[str, Any]


def serving_function(model, variables: dict[str, Any], probabilities: bool = False) -> Callable:
  """uint8 images (B, H, W, 3) -> {"classes", "logits"[, "probabilities"]}, the variables baked in."""
  variables = jax.device_get(variables)

  def serve(images):
    logits = forward.stored_logits(variables, images, model=model)
    out = {"classes": forward.first_argmax(logits), "logits": logits}
    if probabilities:
      out["probabilities"] = jax.nn.softmax(logits, axis=-1)
    return out

  return serve


def _check_output(output: str) -> None:
  if os.path.exists(output) and (not os.path.isdir(output) or os.listdir(output)):
    raise ExportError(f"--output {output} exists and is not an empty directory; name a new directory or "
                      "remove it first (nothing was written).")


def _export_config(config: ml_collections.ConfigDict, fmt: str) -> ml_collections.ConfigDict:
  config = config.copy_and_resolve_references()
  config.dtype = "float32"
  if fmt == "tflite":
    config.model.kernels = "lite"
  return config


def _write_stablehlo(fn: Callable, size: tuple[int, int], path: str) -> None:
  shape = jax.export.symbolic_shape(f"b, {size[0]}, {size[1]}, 3")
  exported = jax.export.export(jax.jit(fn), platforms=PLATFORMS)(jax.ShapeDtypeStruct(shape, jnp.uint8))
  with open(os.path.join(path, FILES["stablehlo"]), "wb") as f:
    f.write(exported.serialize())


def _write_saved_model(fn: Callable, size: tuple[int, int], path: str,
                       platforms: tuple[str, ...] = PLATFORMS) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  tf_fn = jax2tf.convert(fn, polymorphic_shapes=[f"(b, {size[0]}, {size[1]}, 3)"], with_gradient=False,
                         native_serialization_platforms=platforms)
  module = tf.Module()
  module.serve = tf.function(tf_fn, autograph=False, input_signature=[
      tf.TensorSpec((None, *size, 3), tf.uint8, name="images")])
  tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


def _write_tflite(fn: Callable, size: tuple[int, int], path: str) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory(prefix="jaxseg_saved_model_") as saved:
    _write_saved_model(fn, size, saved, ("cpu",))  # the converter takes one platform's module
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
  with open(os.path.join(path, FILES["tflite"]), "wb") as f:
    f.write(flatbuffer)


def load_exported(path: str, fmt: str) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
  """The exported model in `path` (an export's output directory) as a function of uint8 images (numpy); LiteRT
  runs on all CPU cores.

  Args:
    path: the directory `export` wrote.
    fmt: its format, one of `FORMATS`.
  """
  if fmt == "stablehlo":
    with open(os.path.join(path, FILES[fmt]), "rb") as f:
      exported = jax.export.deserialize(bytearray(f.read()))
    return lambda images: jax.tree.map(np.asarray, exported.call(images))
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if fmt == "saved_model":
    serve = tf.saved_model.load(path).signatures["serving_default"]
    return lambda images: {k: v.numpy() for k, v in serve(images=tf.constant(images)).items()}
  with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": the ai_edge_litert one is not installed
    warnings.simplefilter("ignore", UserWarning)
    interpreter = tf.lite.Interpreter(model_path=os.path.join(path, FILES[fmt]), num_threads=os.cpu_count())
  runner = interpreter.get_signature_runner()
  return lambda images: runner(images=np.asarray(images, np.uint8))


def parity(exported_out: dict[str, np.ndarray], logits: np.ndarray) -> dict[str, Any]:
  """How closely an exported model's outputs follow jaxseg's logits (same images)."""
  scale = max(1.0, float(np.max(np.abs(logits))))
  diff = float(np.max(np.abs(np.asarray(exported_out["logits"], np.float32) - logits)))
  agree = float(np.mean(np.asarray(exported_out["classes"]) == np.argmax(logits, -1)))
  ok = diff <= LOGITS_TOLERANCE * scale and agree >= MIN_AGREEMENT
  return {"logits_max_abs_diff": diff, "logits_scale": scale, "class_agreement": agree, "ok": ok}


def _check_images(size: tuple[int, int], n: int, seed: int = 0) -> np.ndarray:
  """Smooth random colour fields with noise: not constant, not pure noise."""
  rng = np.random.default_rng(seed)
  h, w = size
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  images = []
  for _ in range(n):
    f = rng.uniform(1, 6, (3, 2))
    base = np.stack([np.sin(2 * np.pi * (f[c, 0] * yy + f[c, 1] * xx) + rng.uniform(0, 6)) for c in range(3)], -1)
    images.append(np.clip(127.5 + 100 * base + rng.normal(0, 20, base.shape), 0, 255))
  return np.stack(images).astype(np.uint8)


def export(workdir: str, fmt: str, output: str | None = None, epoch: int | None = None,
           config: ml_collections.ConfigDict | None = None, probabilities: bool = False,
           check_images: int = 3) -> Exported:
  """Exports the checkpoint of `epoch` (the newest if None) of the run in `workdir` and checks it.

  Args:
    workdir: the trained run's workdir.
    fmt: "saved_model", "tflite" or "stablehlo".
    output: a new (or empty) directory to write; default `<workdir>/export/<fmt>`.
    epoch: the checkpoint of this epoch; the newest if None.
    config: the run's config (default: the one saved in the checkpoint).
    probabilities: also return softmax probabilities.
    check_images: how many images the parity check runs (a batch of them, so the batch size is not 1).

  Raises:
    ExportError: bad format, an output that exists and is not empty, or a failed parity check.
  """
  from jaxseg.inference import predict  # pylint: disable=g-import-not-at-top
  if fmt not in FORMATS:
    raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)} (--format).")
  if fmt != "stablehlo":
    extras.check("tensorflow", f"--format {fmt}", "jaxseg[tf]")
  output = os.path.abspath(output or os.path.join(workdir, "export", fmt))
  _check_output(output)
  config = config or predict.config_from_checkpoint(workdir, epoch)
  predictor = predict.Predictor(workdir, _export_config(config, fmt), epoch)
  size = data.stored_size(predictor.config)
  fn = serving_function(predictor.run.model, predictor.variables, probabilities)
  images = _check_images(size, check_images)
  # The reference is jaxseg's own float32 prediction, in the convolution formulation the config names (the
  # LiteRT export is built in another).
  own = models.create_model(_export_config(config, "stablehlo"))
  reference = np.asarray(jax.jit(serving_function(own, predictor.variables))(images)["logits"])
  parent = os.path.dirname(output)
  made_parent = not os.path.isdir(parent)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.", dir=parent)
  try:
    {"stablehlo": _write_stablehlo, "saved_model": _write_saved_model, "tflite": _write_tflite}[fmt](fn, size, tmp)
    check = parity(load_exported(tmp, fmt)(images), reference)
    check["images"] = check_images
    if not check["ok"]:
      raise ExportError(f"the exported {fmt} model does not match jaxseg on {check_images} images (logits "
                        f"max |diff| {check['logits_max_abs_diff']:.2e}, class ids identical on "
                        f"{100 * check['class_agreement']:.2f}% of pixels); nothing was written.")
    outputs = ["classes", "logits"] + (["probabilities"] if probabilities else [])
    meta = {"format": fmt, "file": FILES[fmt], "epoch": predictor.epoch, "model": config.model.name,
            "input": {"name": "images", "shape": [None, *size, 3], "dtype": "uint8"}, "outputs": outputs,
            "class_names": list(predictor.classes.names), "check": check}
    with open(os.path.join(tmp, "jaxseg_export.json"), "w") as f:
      json.dump(meta, f, indent=1)
    if os.path.isdir(output):
      os.rmdir(output)  # empty (checked above)
    os.replace(tmp, output)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    if made_parent:
      shutil.rmtree(parent, ignore_errors=True)
    raise
  path = os.path.join(output, FILES[fmt]) if FILES[fmt] else output
  size_bytes = (os.path.getsize(path) if os.path.isfile(path) else
                sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs))
  return Exported(fmt, output, path, size_bytes, predictor.epoch, check)


def describe(result: Exported) -> str:
  """The line `--mode export` prints."""
  c = result.check
  return (f"Exported {result.format} (epoch {result.epoch}) to {result.path} ({result.size_bytes / 2**20:.1f} MiB). "
          f"Check on {c['images']} images: logits max |diff| {c['logits_max_abs_diff']:.1e} "
          f"(scale {c['logits_scale']:.1f}), class ids identical on {100 * c['class_agreement']:.2f}% of pixels: OK.")
