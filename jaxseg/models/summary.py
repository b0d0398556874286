"""Keras-style parameter counts and model summary: block, output shape, parameter count, and the totals."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.models.deeplab import DEEPLAB_HIGH, DEEPLAB_LOW, DeepLabV3Plus
from jaxseg.models.mobilenet_v2 import UNET_TAPS
from jaxseg.models.unet import UNet


def _size(tree: Any) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def _shape(s) -> str:
  return "(None, " + ", ".join(str(d) for d in s[1:]) + ")"


def count_params(variables: dict[str, Any], freeze_encoder: bool = True) -> dict[str, int]:
  """Keras-style counts: trainable = decoder params (+ encoder params when not frozen); non-trainable = the
  frozen encoder and all BatchNorm statistics.

  Args:
    variables: `{"params", "batch_stats"}` of a UNet (arrays or shape structs).
    freeze_encoder: count the encoder's params as non-trainable.

  Returns:
    {"total", "trainable", "non_trainable", "encoder", "decoder_bn_stats"}.
  """
  params, stats = variables["params"], variables.get("batch_stats", {})
  encoder = _size(params.get("encoder", {})) + _size(stats.get("encoder", {}))
  decoder_stats = _size({k: v for k, v in stats.items() if k != "encoder"})
  trainable = _size({k: v for k, v in params.items() if k != "encoder"})
  total = encoder + decoder_stats + trainable
  if not freeze_encoder:
    trainable += _size(params.get("encoder", {}))
  return {"total": total, "trainable": trainable, "non_trainable": total - trainable, "encoder": encoder,
          "decoder_bn_stats": decoder_stats}


def summary_rows(model: UNet, image_size: int | tuple[int, int],
                 freeze_encoder: bool = True) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
  """Rows of (block, output shape, params) for the U-Net at `image_size` (square, or (height, width)), and
  `count_params`.

  Shapes come from `jax.eval_shape`, so nothing is computed or compiled.
  """
  h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
  images = jnp.zeros((1, h, w, 3), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), images))
  _, state = jax.eval_shape(lambda v: model.apply(v, images, capture_intermediates=True,
                                                  mutable=["intermediates"]), variables)
  inter = state["intermediates"]
  both = lambda name: _size(variables["params"].get(name, {})) + _size(variables["batch_stats"].get(name, {}))
  taps = inter["encoder"]["__call__"][0]
  rows = [("input (InputLayer)", _shape(images.shape), 0)]
  if isinstance(model, DeepLabV3Plus):
    return _deeplab_rows(model, variables, inter, taps, rows, both), count_params(variables, freeze_encoder)
  enc_shapes = " ".join(_shape(taps[n].shape) for n in UNET_TAPS)
  rows.append((f"encoder (MobileNetV2 alpha={model.alpha}, to {UNET_TAPS[-1]})", enc_shapes, both("encoder")))
  skips = [taps[n] for n in UNET_TAPS[:-1]][::-1]
  for i, skip in enumerate(skips):
    out = inter[f"up_{i}"]["__call__"][0]
    rows.append((f"up_{i} (Upsample: ConvTranspose, BatchNorm, ReLU)", _shape(out.shape), both(f"up_{i}")))
    cat = out.shape[:-1] + (out.shape[-1] + skip.shape[-1],)
    rows.append((f"concat_{i} (+ {UNET_TAPS[len(skips) - 1 - i]})", _shape(cat), 0))
  logits = inter["logits"]["__call__"][0]
  rows.append(("logits (ConvTranspose)", _shape(logits.shape), both("logits")))
  return rows, count_params(variables, freeze_encoder)


def _deeplab_rows(model, variables, inter, taps, rows, both):
  enc = f"{_shape(taps[DEEPLAB_LOW].shape)} {_shape(taps[DEEPLAB_HIGH].shape)}"
  rows.append((f"encoder (MobileNetV2 alpha={model.alpha}, output stride {model.output_stride}, to "
               f"{DEEPLAB_HIGH}; {DEEPLAB_LOW})", enc, both("encoder")))
  for name, what in (("aspp_0", "ASPP 1x1"), ("aspp_1", "ASPP atrous 3x3"), ("aspp_2", "ASPP atrous 3x3"),
                     ("aspp_3", "ASPP atrous 3x3"), ("aspp_pool", "ASPP image pooling"),
                     ("aspp_project", "ASPP projection 1x1"), ("low_level", "low-level 1x1"),
                     ("decoder_0", "decoder 3x3"), ("decoder_1", "decoder 3x3")):
    rows.append((f"{name} ({what}, BatchNorm, ReLU)", _shape(inter[name]["__call__"][0].shape), both(name)))
  logits = sum(int(np.prod(variables["params"][k].shape)) for k in ("logits_kernel", "logits_bias"))
  out = inter["__call__"][0]
  rows.append(("logits (1x1, bilinear upsampling)", _shape(out.shape), logits))
  return rows


def format_summary(model: UNet | DeepLabV3Plus, image_size: int | tuple[int, int], freeze_encoder: bool = True) -> str:
  """The summary as text, ending with the Total / Trainable / Non-trainable lines Keras prints."""
  rows, counts = summary_rows(model, image_size, freeze_encoder)
  w0 = max(len(r[0]) for r in rows) + 2
  w1 = max(len(r[1].split(" ")[0]) for r in rows) + 22
  lines = [f"Model: {type(model).__name__} (num_classes={model.num_classes}, dtype={jnp.dtype(model.dtype).name})",
           "=" * (w0 + w1 + 12), f"{'Layer (block)':<{w0}}{'Output Shape':<{w1}}{'Param #':>12}",
           "=" * (w0 + w1 + 12)]
  for name, shape, params in rows:
    parts = shape.split(" (")
    shapes = [parts[0]] + ["(" + p for p in parts[1:]]
    lines.append(f"{name:<{w0}}{shapes[0]:<{w1}}{params:>12,}")
    lines.extend(f"{'':<{w0}}{s:<{w1}}" for s in shapes[1:])
  lines += ["=" * (w0 + w1 + 12),
            f"Total params: {counts['total']:,}",
            f"Trainable params: {counts['trainable']:,}",
            f"Non-trainable params: {counts['non_trainable']:,}"]
  return "\n".join(lines)
