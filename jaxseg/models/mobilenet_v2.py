"""MobileNetV2 in Flax Linen, laid out and named exactly like `keras.applications.MobileNetV2`.

Module names are the Keras layer names (`Conv1`, `bn_Conv1`, `block_13_expand`, ...), so a Keras weight
file maps onto the parameter tree by name (see `jaxseg.models.keras_port`). ReLU6, BatchNorm epsilon 1e-3 and momentum
0.999, and TensorFlow's asymmetric 'same' padding for stride 2 are all as in Keras.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models import conv_kernels

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

# The U-Net taps of the TensorFlow segmentation tutorial, from fine (1/2) to coarse (1/32).
UNET_TAPS = ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
             "block_13_expand_relu", "block_16_project")


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
  if alpha not in ALPHAS:
    raise ValueError(f"MobileNetV2 alpha must be one of {ALPHAS} (those Keras ships ImageNet weights for); "
                     f"got {alpha}.")


def check_input_size(images: jax.Array) -> None:
  """The segmentation models need heights and widths that are multiples of 32 (five stride-2 stages)."""
  if images.shape[1] % 32 or images.shape[2] % 32:
    raise ValueError(f"image height and width must be multiples of 32, got {images.shape[1:3]}.")


def relu6(x: jax.Array) -> jax.Array:
  return jnp.clip(x, 0, 6)


class Conv(nn.Module):
  """Keras `Conv2D` without bias: 1x1 as a GEMM, 3x3 stride 2 (the stem) as multiply-adds (with
  conv_impl="xla" or "lite", both `lax` convolutions)."""
  features: int
  kernel_size: int = 1
  strides: int = 1
  dtype: Any = jnp.float32
  conv_impl: str = "auto"
  gemm_dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.glorot_uniform(), (k, k, x.shape[-1], self.features))
    x = x.astype(self.dtype)
    if k == 1 and self.strides == 1:
      return conv_kernels.pointwise_conv(x, kernel, self.gemm_dtype, self.conv_impl)
    return conv_kernels.stem_conv3x3(x, kernel, self.strides, self.conv_impl)


class DepthwiseConv(nn.Module):
  """Keras `DepthwiseConv2D(3)` without bias; kernel (3, 3, C, 1)."""
  strides: int = 1
  dtype: Any = jnp.float32
  conv_impl: str = "auto"
  dilation: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.glorot_uniform(), (3, 3, x.shape[-1], 1))
    return conv_kernels.depthwise_conv3x3(x.astype(self.dtype), kernel, self.strides, self.conv_impl,
                                          self.dilation)


class MobileNetV2(nn.Module):
  """MobileNetV2 feature extractor returning every named activation up to `last_layer`.

  Attributes:
    alpha: width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
    last_layer: build nothing after this Keras layer name ("out_relu" is the whole no-top network;
      the U-Net stops at "block_16_project", which is what its parameter count assumes).
    dtype: compute dtype; parameters stay float32.
    gemm_dtype: GEMM input dtype of the 1x1 convolutions (None: `dtype`).
    bn_momentum: BatchNorm moving-average momentum (Keras: 0.999; lower when training from scratch).
    conv_impl: "auto", "gemm", "xla" or "lite" (see `jaxseg.models.conv_kernels`).
    output_stride: 32 (the classification network), 16 or 8 (atrous, for DeepLab; see `block_strides`).
  """
  alpha: float = 1.0
  last_layer: str = "out_relu"
  dtype: Any = jnp.float32
  bn_momentum: float = 0.999
  conv_impl: str = "auto"
  output_stride: int = 32
  gemm_dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
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
      done = done or name == self.last_layer
      return value

    def bn(name, y):
      return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-3, dtype=self.dtype,
                          name=name)(y)

    x = x.astype(self.dtype)
    x = emit("Conv1", Conv(make_divisible(32 * self.alpha), 3, 2, self.dtype, self.conv_impl, name="Conv1")(x))
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
        steps += [("expand", lambda y: Conv(expansion * inputs.shape[-1], dtype=self.dtype, conv_impl=self.conv_impl,
                                            gemm_dtype=self.gemm_dtype, name=prefix + "expand")(y)),
                  ("expand_BN", lambda y: bn(prefix + "expand_BN", y)),
                  ("expand_relu", relu6)]
      steps += [("depthwise", lambda y: DepthwiseConv(stride, self.dtype, self.conv_impl, dilation,
                                                      name=prefix + "depthwise")(y)),
                ("depthwise_BN", lambda y: bn(prefix + "depthwise_BN", y)),
                ("depthwise_relu", relu6),
                ("project", lambda y: Conv(out_ch, dtype=self.dtype, conv_impl=self.conv_impl,
                                                   gemm_dtype=self.gemm_dtype, name=prefix + "project")(y)),
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
    x = emit("Conv_1", Conv(last, dtype=self.dtype, conv_impl=self.conv_impl, gemm_dtype=self.gemm_dtype, name="Conv_1")(x))
    x = emit("Conv_1_bn", bn("Conv_1_bn", x))
    emit("out_relu", relu6(x))
    if not done:
      raise ValueError(f"last_layer {self.last_layer!r} is not a MobileNetV2 layer name.")
    return feats
