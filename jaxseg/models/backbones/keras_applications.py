"""Port `keras.applications.MobileNetV2` weights (a Keras model or a Keras weights file) to jaxseg.

Keras and jaxseg share layer names, and conv kernels share the HWIO layout, so the port is a rename of
BatchNorm variables (gamma/beta/moving_mean/moving_variance -> scale/bias/mean/var) plus checks. Files are
read with h5py alone for legacy Keras 2 `.h5` files (those `keras.applications` downloads, which
`imagenet_weights_file` fetches the same way without Keras), through Keras itself for Keras 3 `.weights.h5` /
`.keras` files.
"""

import http.client
import os
import re
import shutil
import urllib.request
import warnings
from typing import Any

import numpy as np

from jaxseg.errors import UserError
from jaxseg.models.backbones.mobilenet_v2 import ALPHAS, make_divisible
from jaxseg.runtime import extras, files

Variables = dict[str, dict[str, Any]]

_BN_NAMES = {"gamma": ("params", "scale"), "beta": ("params", "bias"),
             "moving_mean": ("batch_stats", "mean"), "moving_variance": ("batch_stats", "var")}
# Keras 2 called the depthwise kernel `depthwise_kernel`; Keras 3 and jaxseg call it `kernel`.
_RENAMES = {"depthwise_kernel": "kernel"}
# Names of the Keras MobileNetV2 layers that hold weights; other layers of a containing model are skipped.
MOBILENET_LAYER = re.compile(
    r"^(Conv1|bn_Conv1|Conv_1|Conv_1_bn|(expanded_conv|block_\d+)_(expand|depthwise|project)(_BN)?)$")


class WeightsError(UserError):
  """A weights file or model that is not the MobileNetV2 the caller asked for."""


KERAS_SIZES = (96, 128, 160, 192, 224)  # the input sizes Keras ships ImageNet MobileNetV2 weights for


def weights_size(height: int, width: int) -> int:
  """The Keras ImageNet weights a model of this input size gets: Keras's own rule, the file of the size for
  a square input it ships, else the 224 px file."""
  return height if height == width and height in KERAS_SIZES else 224


def keras_weights_filename(alpha: float, size: int) -> str:
  """The file `keras.applications.MobileNetV2(include_top=False, weights="imagenet")` downloads."""
  return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}_no_top.h5"


def alpha_from_layers(layers: dict[str, dict[str, np.ndarray]]) -> float:
  """Infers the width multiplier from `block_16_project`'s output channels (distinct for every alpha)."""
  if "Conv1" not in layers or "block_16_project" not in layers:
    raise WeightsError("this is not a MobileNetV2: expected Keras layers 'Conv1' ... 'block_16_project', "
                       f"found {sorted(layers)[:6]}{' ...' if len(layers) > 6 else ''}.")
  channels = layers["block_16_project"]["kernel"].shape[-1]
  for alpha in ALPHAS:
    if make_divisible(int(320 * alpha)) == channels:
      return alpha
  raise WeightsError(f"block_16_project has {channels} output channels, which matches no MobileNetV2 alpha.")


def layers_from_keras_model(model) -> dict[str, dict[str, np.ndarray]]:
  """{layer name: {variable name: array}} from a built Keras model (nested models are searched too)."""
  out: dict[str, dict[str, np.ndarray]] = {}
  for layer in getattr(model, "layers", []):
    if hasattr(layer, "layers") and layer.layers:
      out.update(layers_from_keras_model(layer))
    weights = {}
    for var in layer.weights:
      short = re.sub(r":\d+$", "", var.path if hasattr(var, "path") else var.name).split("/")[-1]
      weights[_RENAMES.get(short, short)] = np.asarray(var.numpy() if hasattr(var, "numpy") else var)
    if weights:
      out[layer.name] = weights
  return out


def _layers_from_legacy_h5(path: str) -> dict[str, dict[str, np.ndarray]]:
  h5py = extras.require("h5py", f"reading the Keras weights file {path}", "jaxseg")
  out = {}
  with h5py.File(path, "r") as f:
    group = f.get("model_weights", f)
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("layer_names", [])]
    for name in names:
      g = group[name]
      weights = {}
      for wname in g.attrs.get("weight_names", []):
        wname = wname.decode() if isinstance(wname, bytes) else wname
        short = re.sub(r":\d+$", "", wname).split("/")[-1]
        weights[_RENAMES.get(short, short)] = np.asarray(g[wname])
      if weights:
        out[name] = weights
  return out


def _layers_from_keras3_file(path: str, alpha_hint: float | None) -> dict[str, dict[str, np.ndarray]]:
  keras = extras.require("keras", f"reading the Keras 3 file {path}", "jaxseg[keras]")
  if path.endswith(".keras"):
    return layers_from_keras_model(keras.saving.load_model(path, compile=False))
  # A .weights.h5 file stores variables by position, not by name: find the alpha whose model loads it.
  errors = []
  for alpha in ([alpha_hint] if alpha_hint in ALPHAS else []) + [a for a in ALPHAS if a != alpha_hint]:
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=alpha, include_top=False,
                                           weights=None)
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.load_weights(path)
    except Exception as e:  # pylint: disable=broad-except
      errors.append(f"alpha {alpha}: {str(e).splitlines()[0][:120]}")
      continue
    return layers_from_keras_model(model)
  raise WeightsError(f"{path}: not a Keras MobileNetV2 (no-top) weights file; loading it failed for every "
                     f"alpha ({'; '.join(errors[:2])} ...).")


def _check_file(path: str, alpha: float | None, input_size: int | None) -> None:
  if not os.path.isfile(path):
    raise WeightsError(f"weights file {path!r} does not exist. Pass a Keras MobileNetV2 weights file "
                       "(.h5, .weights.h5 or .keras), 'imagenet' (needs network) or 'none'.")
  if not path.endswith((".h5", ".keras")):
    raise WeightsError(f"{path}: expected a Keras weights file ending in .h5, .weights.h5 or .keras.")
  # Keras names its downloads ..._{alpha}_{size}_no_top.h5; weights do not otherwise record the size.
  m = re.search(r"_(\d+(?:\.\d+)?)_(\d+)(?:_no_top)?\.h5$", os.path.basename(path))
  if m and input_size is not None and int(m.group(2)) != input_size:
    raise WeightsError(f"{path} holds the Keras weights trained at {m.group(2)} px, but the model runs at "
                       f"{input_size} px: expected {keras_weights_filename(alpha or 1.0, input_size)}.")


def load_keras_layers(model_or_path: Any, alpha: float | None = None,
                      input_size: int | None = None) -> dict[str, dict[str, np.ndarray]]:
  """Reads Keras layer weights from a model or a file, validating alpha and (for Keras's files) size."""
  if isinstance(model_or_path, (str, os.PathLike)):
    path = os.fspath(model_or_path)
    _check_file(path, alpha, input_size)
    try:
      if path.endswith((".keras", ".weights.h5")):
        layers = _layers_from_keras3_file(path, alpha)
      else:
        layers = _layers_from_legacy_h5(path)
        if not layers:  # An .h5 written by Keras 3's legacy saver inside a whole-model file, or similar.
          layers = _layers_from_keras3_file(path, alpha)
    except (WeightsError, extras.MissingDependency):
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise WeightsError(f"{path}: cannot be read as a Keras weights file ({type(e).__name__}: {e}).") from e
    source = path
  else:
    layers = layers_from_keras_model(model_or_path)
    source = f"Keras model {getattr(model_or_path, 'name', '?')!r}"
  found = alpha_from_layers(layers)
  if alpha is not None and found != alpha:
    raise WeightsError(f"{source} is a MobileNetV2 with alpha {found}, but the model expects alpha {alpha}.")
  return layers


def from_keras_mobilenet_v2(model_or_path: Any, alpha: float | None = None,
                            input_size: int | None = None) -> Variables:
  """Converts Keras MobileNetV2 weights to `{"params": ..., "batch_stats": ...}` for `MobileNetV2`.

  Args:
    model_or_path: a `keras.applications.MobileNetV2` (or a model containing one), or a path to a Keras
      weights file (`.h5`, `.weights.h5`, `.keras`).
    alpha: the width multiplier the caller expects; a mismatch raises `WeightsError`.
    input_size: the resolution the caller will run at; a Keras ImageNet file named for another resolution
      raises `WeightsError`.

  Returns:
    Variables for every MobileNetV2 layer present in the source (the no-top network, `Conv_1` included).
  """
  layers = load_keras_layers(model_or_path, alpha, input_size)
  variables: Variables = {"params": {}, "batch_stats": {}}
  for name, weights in layers.items():
    if not MOBILENET_LAYER.match(name):
      continue
    for wname, value in weights.items():
      collection, key = _BN_NAMES.get(wname, ("params", wname))
      variables[collection].setdefault(name, {})[key] = np.asarray(value, np.float32)
  return variables


# Where keras.applications downloads MobileNetV2's ImageNet weights from.
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"


def keras_models_dir() -> str:
  """Keras's download cache, `$KERAS_HOME/models` (default ~/.keras/models): a file Keras downloaded is reused."""
  return os.path.join(os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"), "models")


def imagenet_weights_file(alpha: float, input_size: int) -> str:
  """The Keras ImageNet MobileNetV2 weights file (no top) for `alpha` and `input_size`, downloaded once into
  `keras_models_dir()` (the file and place `keras.applications.MobileNetV2(weights="imagenet")` uses), without
  Keras.

  Raises:
    WeightsError: with the file name and how to pass a local copy, when it cannot be fetched.
  """
  fname = keras_weights_filename(alpha, input_size)
  path = os.path.join(keras_models_dir(), fname)
  if os.path.isfile(path):
    return path
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with urllib.request.urlopen(KERAS_WEIGHTS_URL + fname, timeout=60) as response, files.atomic_path(path) as tmp:
      with open(tmp, "wb") as f:
        shutil.copyfileobj(response, f, 1 << 20)
      # A connection closed early ends the copy without an error: only a whole, readable file is kept (Keras
      # reads the same cache).
      expected, got = response.headers.get("Content-Length"), os.path.getsize(tmp)
      if expected is not None and int(expected) != got:
        raise ValueError(f"the download stopped after {got:,} of {int(expected):,} bytes")
      try:
        _layers_from_legacy_h5(tmp)
      except Exception as e:  # pylint: disable=broad-except  # whatever h5py makes of a damaged file
        raise ValueError(f"what arrived is not a readable weights file ({type(e).__name__})") from None
  except (OSError, ValueError, http.client.HTTPException) as e:  # URLError and HTTPError are OSErrors
    raise WeightsError(
        f"could not download the Keras ImageNet weights {fname} from {KERAS_WEIGHTS_URL} ({type(e).__name__}: "
        f"{str(e)[:160]}). On a machine without network, copy that file from a connected one into {path}, or "
        f"pass --config.model.backbone_weights=/path/to/{fname}, or train from scratch with "
        "--config.model.backbone_weights=none.") from None
  return path


def encoder_variables(spec: str, alpha: float, input_size: int) -> Variables | None:
  """Resolves `config.model.backbone_weights`: "imagenet", a path to a Keras weights file, or "none" (None)."""
  if spec is None or str(spec).lower() == "none":
    return None
  if spec == "imagenet":
    return from_keras_mobilenet_v2(imagenet_weights_file(alpha, input_size), alpha=alpha, input_size=input_size)
  return from_keras_mobilenet_v2(os.path.expanduser(spec), alpha=alpha, input_size=input_size)
