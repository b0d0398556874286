"""Port whole Keras segmentation models to jaxseg: the TensorFlow tutorial's U-Net (to import a model trained
with the Keras notebook) and a Keras DeepLabV3+ named as jaxseg names its layers."""

import numpy as np

from jaxseg.models.backbones.keras_applications import MOBILENET_LAYER, Variables, WeightsError, from_keras_mobilenet_v2


def walk_layers(model):
  """Every leaf layer of a Keras model, nested models flattened."""
  for layer in getattr(model, "layers", []):
    if getattr(layer, "layers", None):
      yield from walk_layers(layer)
    else:
      yield layer


def from_keras_unet(model, num_up: int = 4) -> Variables:
  """Converts the TensorFlow tutorial's whole Keras U-Net (MobileNetV2 + pix2pix decoder) to jaxseg.

  Useful to import a model trained with the Keras notebook, and to check jaxseg against it.

  Args:
    model: the Keras model: a MobileNetV2 down stack, `num_up` pix2pix upsample blocks
      (Conv2DTranspose, BatchNormalization, ReLU), and a final Conv2DTranspose with bias.
    num_up: number of upsample blocks.

  Returns:
    `{"params", "batch_stats"}` for `jaxseg.models.UNet`.
  """
  encoder = from_keras_mobilenet_v2(model)
  transposed, norms = [], []
  for layer in walk_layers(model):
    kind = type(layer).__name__
    if kind == "Conv2DTranspose":
      transposed.append(layer)
    elif kind == "BatchNormalization" and not MOBILENET_LAYER.match(layer.name):
      norms.append(layer)
  if len(transposed) != num_up + 1 or len(norms) != num_up:
    raise WeightsError(f"expected {num_up + 1} Conv2DTranspose and {num_up} decoder BatchNormalization "
                       f"layers, found {len(transposed)} and {len(norms)}.")
  swap = lambda k: np.asarray(k, np.float32).transpose(0, 1, 3, 2)  # Keras (3, 3, O, I) -> (3, 3, I, O)
  # The U-Net's encoder ends at block_16_project; a down stack built from the whole base model has more.
  head = ("block_16_project_BN", "Conv_1", "Conv_1_bn")
  params = {"encoder": {k: v for k, v in encoder["params"].items() if k not in head}}
  stats = {"encoder": {k: v for k, v in encoder["batch_stats"].items() if k not in head}}
  for i, (conv, bn) in enumerate(zip(transposed, norms)):
    gamma, beta, mean, var = (np.asarray(w, np.float32) for w in bn.get_weights())
    params[f"up_{i}"] = {"conv_transpose": {"kernel": swap(conv.get_weights()[0])},
                         "bn": {"scale": gamma, "bias": beta}}
    stats[f"up_{i}"] = {"bn": {"mean": mean, "var": var}}
  kernel, bias = transposed[-1].get_weights()
  params["logits"] = {"kernel": swap(kernel), "bias": np.asarray(bias, np.float32)}
  return {"params": params, "batch_stats": stats}


DEEPLAB_HEAD = ("aspp_0", "aspp_1", "aspp_2", "aspp_3", "aspp_pool", "aspp_project", "low_level", "decoder_0",
                "decoder_1")


def from_keras_deeplab(model) -> Variables:
  """Converts a Keras DeepLabV3+ over MobileNetV2 to jaxseg's `DeepLabV3Plus` variables.

  The Keras model names its head layers as jaxseg does: per conv block `<name>_conv` (Conv2D, no bias) and
  `<name>_bn`, plus `<name>_depthwise` and `<name>_depthwise_bn` when separable; `logits` (Conv2D with bias).
  """
  layers = {layer.name: layer for layer in walk_layers(model)}
  encoder = from_keras_mobilenet_v2(model)
  tail = ("Conv_1", "Conv_1_bn")  # DeepLab ends at block_16_project_BN
  params = {"encoder": {k: v for k, v in encoder["params"].items() if k not in tail}}
  stats = {"encoder": {k: v for k, v in encoder["batch_stats"].items() if k not in tail}}

  def bn(name):
    gamma, beta, mean, var = (np.asarray(w, np.float32) for w in layers[name].get_weights())
    return {"scale": gamma, "bias": beta}, {"mean": mean, "var": var}

  for name in DEEPLAB_HEAD:
    if f"{name}_conv" not in layers:
      raise WeightsError(f"the Keras model has no layer {name}_conv.")
    p, s = {"kernel": np.asarray(layers[f"{name}_conv"].get_weights()[0], np.float32)}, {}
    p["bn"], s["bn"] = bn(f"{name}_bn")
    if f"{name}_depthwise" in layers:
      p["depthwise"] = np.asarray(layers[f"{name}_depthwise"].get_weights()[0], np.float32)
      p["depthwise_bn"], s["depthwise_bn"] = bn(f"{name}_depthwise_bn")
    params[name], stats[name] = p, s
  kernel, bias = layers["logits"].get_weights()
  params["logits_kernel"], params["logits_bias"] = np.asarray(kernel, np.float32), np.asarray(bias, np.float32)
  return {"params": params, "batch_stats": stats}
