"""MobileNetV2 in Flax Linen, laid out and named exactly like `keras.applications.MobileNetV2`.

Module names are the Keras layer names (`Conv1`, `bn_Conv1`, `block_13_expand`, ...), so a Keras weight
file maps onto the parameter tree by name (see `keras_applications`). ReLU6, BatchNorm epsilon 1e-3 and
momentum 0.999, and TensorFlow's asymmetric 'same' padding for stride 2 are all as in Keras.
"""

from functools import partial
from typing import Any

import flax.linen as nn
import jax

from jaxseg.models.layers import Conv, DepthwiseConv, LayerSpec, relu6

ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)

# (output filters before alpha, stride, expansion) for block_0 ("expanded_conv") .. block_16.
BLOCKS = (
    (16, 1, 1),
    (24, 2, 6), (24, 1, 6),
    (32, 2, 6), (32, 1, 6), (32, 1, 6),
    (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
    (96, 1, 6), (96, 1, 6), (96, 1, 6),
    (160, 2, 6), (160, 1, 6), (160, 1, 6),
    (320, 1, 6),
)

# Registry names: the width multiplier in the name, as Keras names the weight files (1.0 is the plain name).
VARIANTS = {"mobilenet_v2" if alpha == 1.0 else f"mobilenet_v2_{alpha}": {"alpha": alpha} for alpha in ALPHAS}
# MobileNetV2's [0, 255] -> [-1, 1] (`keras.applications.mobilenet_v2.preprocess_input`), as (scale, offset).
INPUT_TRANSFORM = ((1 / 127.5,) * 3, (-1.0,) * 3)

# The layer of each nominal stride's features: the expansion activations the TensorFlow segmentation tutorial's
# U-Net reads, and the last block's output.
STRIDE_LAYERS = {2: "block_1_expand_relu", 4: "block_3_expand_relu", 8: "block_6_expand_relu",
                 16: "block_13_expand_relu", 32: "block_16_project_BN"}
# The last block's projection before its BatchNorm: the tutorial U-Net's stride-32 features.
TOP_BEFORE_NORM = "block_16_project"
# The U-Net taps of the TensorFlow segmentation tutorial, from fine (1/2) to coarse (1/32).
UNET_TAPS = (*(STRIDE_LAYERS[s] for s in (2, 4, 8, 16)), TOP_BEFORE_NORM)


OUTPUT_STRIDES = (8, 16, 32)


def block_strides(output_stride: int = 32) -> list[tuple[int, int]]:
  """(stride, dilation) of each block's depthwise conv for an output stride of 32, 16 or 8.

  DeepLabV3's rule: once the features reach `output_stride`, a stride-2 block keeps the resolution (stride 1
  at the current rate) and every later block's rate is multiplied by the stride it gave up. Stride 16:
  block_14-16 at rate 2; stride 8: block_7-13 at rate 2, block_14-16 at rate 4. The parameters do not
  change, so the ImageNet weights port as they are.
  """
  if output_stride not in OUTPUT_STRIDES:
    raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}.")
  current, rate, out = 2, 1, []  # Conv1 has already halved the input
  for _, stride, _ in BLOCKS:
    if current == output_stride:
      out.append((1, rate))
      rate *= stride
    else:
      out.append((stride, 1))
      current *= stride
  return out


def make_divisible(v: float, divisor: int = 8) -> int:
  """Keras's `_make_divisible`: round channels to a multiple of 8, never dropping more than 10%."""
  new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
  if new_v < 0.9 * v:
    new_v += divisor
  return new_v


def check_alpha(alpha: float) -> None:
  """Refuses a width multiplier Keras ships no ImageNet weights for."""
  if alpha not in ALPHAS:
    raise ValueError(f"MobileNetV2 alpha must be one of {ALPHAS} (those Keras ships ImageNet weights for); "
                     f"got {alpha}.")


class MobileNetV2(nn.Module):
  """MobileNetV2 feature extractor returning every named activation up to `last_layer`, or, as a backbone
  (`by_stride`), the features at strides 2 to 32.

  Attributes:
    alpha: width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
    last_layer: build nothing after this Keras layer name ("out_relu" is the whole no-top network);
      unused with `by_stride`.
    output_stride: 32 (the classification network), 16 or 8 (atrous, for DeepLab; see `block_strides`).
    spec: the layer spec (Keras MobileNetV2's BatchNorm momentum is 0.999; lower when training from scratch).
    by_stride: return {nominal stride: features} (`STRIDE_LAYERS`) and end at the stride-32 features.
    top_before_norm: with `by_stride`, the stride-32 features are the last projection before its BatchNorm
      (the tutorial U-Net's, which is what its parameter count assumes).
  """
  alpha: float = 1.0
  last_layer: str = "out_relu"
  output_stride: int = 32
  spec: LayerSpec = LayerSpec(bn_momentum=0.999)
  by_stride: bool = False
  top_before_norm: bool = False

  def end(self) -> str:
    """The last layer built."""
    if self.by_stride:
      return TOP_BEFORE_NORM if self.top_before_norm else STRIDE_LAYERS[32]
    return self.last_layer

  def __call__(self, x: jax.Array, train: bool = False) -> dict[Any, jax.Array]:
    """`activations` (by Keras layer name), or with `by_stride` {stride: features} for strides 2 to 32."""
    feats = self.activations(x, train)
    if not self.by_stride:
      return feats
    return {s: feats[self.end() if s == 32 else name] for s, name in STRIDE_LAYERS.items()}

  @nn.compact
  def activations(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    """Runs the network.

    Args:
      x: (B, H, W, 3) images scaled to [-1, 1] (Keras `mobilenet_v2.preprocess_input`); H, W multiples of
        the output stride.
      train: BatchNorm in training mode (batch statistics, updates `batch_stats`).

    Returns:
      Dict from Keras layer name to (B, h, w, C) activation, for every layer up to `last_layer`.
    """
    check_alpha(self.alpha)
    feats: dict[str, jax.Array] = {}
    done = False

    def emit(name, value):
      nonlocal done
      feats[name] = value
      done = done or name == self.end()
      return value

    batch_norm = self.spec.batch_norm(train)
    bn = lambda name, y: batch_norm(name=name)(y)
    conv = partial(Conv, spec=self.spec)

    x = x.astype(self.spec.dtype)
    x = emit("Conv1", conv(make_divisible(32 * self.alpha), 3, 2, name="Conv1")(x))
    x = emit("bn_Conv1", bn("bn_Conv1", x))
    x = emit("Conv1_relu", relu6(x))
    for block_id, ((filters, _, expansion), (stride, dilation)) in enumerate(
        zip(BLOCKS, block_strides(self.output_stride))):
      if done:
        return feats
      inputs = x
      prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
      out_ch = make_divisible(int(filters * self.alpha))
      steps = []
      if block_id:
        steps += [("expand", lambda y: conv(expansion * inputs.shape[-1], name=prefix + "expand")(y)),
                  ("expand_BN", lambda y: bn(prefix + "expand_BN", y)),
                  ("expand_relu", relu6)]
      steps += [("depthwise", lambda y: DepthwiseConv(stride, dilation, self.spec, name=prefix + "depthwise")(y)),
                ("depthwise_BN", lambda y: bn(prefix + "depthwise_BN", y)),
                ("depthwise_relu", relu6),
                ("project", lambda y: conv(out_ch, name=prefix + "project")(y)),
                ("project_BN", lambda y: bn(prefix + "project_BN", y))]
      for suffix, fn in steps:
        x = emit(prefix + suffix, fn(x))
        if done:
          return feats
      if stride == 1 and inputs.shape[-1] == out_ch:
        x = emit(prefix + "add", inputs + x)
    if done:
      return feats
    last = make_divisible(1280 * self.alpha) if self.alpha > 1.0 else 1280
    x = emit("Conv_1", conv(last, name="Conv_1")(x))
    x = emit("Conv_1_bn", bn("Conv_1_bn", x))
    emit("out_relu", relu6(x))
    if not done:
      raise ValueError(f"last_layer {self.end()!r} is not a MobileNetV2 layer name.")
    return feats
