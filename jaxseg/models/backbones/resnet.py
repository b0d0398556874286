"""ResNet (v1, v2 and vd; 18 to 152 layers) in Flax, layer for layer as keras-hub's `ResNetBackbone`.

Layers carry keras-hub's names (`conv1_conv`, `stack2_block0_1_bn`, ...), so that its weights are copied
by name (`keras_hub_port`). v1 applies BatchNorm and ReLU after each convolution; v2 ("pre-activation")
before, with one BatchNorm and ReLU at the end; vd replaces the 7x7 stem by three 3x3 convolutions and
downsamples shortcuts by average pooling before their 1x1 convolution.

The backbone returns its feature maps by stride: 2 (the stem, before max pooling), 4, 8, 16 and 32 (the
four stacks' outputs, keras-hub's P2-P5; for v2 the last one after its final BatchNorm and ReLU, the
backbone's output). Keys are nominal strides: with `output_stride` 16 (or 8) the last (two) stacks keep the
resolution and dilate their 3x3 convolutions instead (DeepLab's atrous ResNet: the convolution that gave up
its stride runs at the previous rate, every one after it at the new rate), with the same parameters, so that
the dense output sampled every 2 (4) positions is the strided network's output.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg import ops
from jaxseg.models.backbones import layers
from jaxseg.models.layers import LayerSpec

BLOCK_TYPES = ("basic_block", "bottleneck_block", "basic_block_vd", "bottleneck_block_vd")
BN_EPSILON, BN_MOMENTUM = 1e-5, 0.9  # keras-hub's ResNet BatchNorm settings


def _avg_pool2(x: jax.Array, stride: int, rate: int) -> jax.Array:
  """vd's 2x2 average pooling of shortcuts ("same" padding, padded positions not counted); when dilated
  (stride 1, `rate` the dilation so far), the same windows at every position."""
  window, strides = (1, 2, 2, 1), (1, stride, stride, 1)
  dilation, pad = (1, rate, rate, 1), ((0, 0), (0, rate), (0, rate), (0, 0))
  if stride > 1:  # the strided form: stride-2 windows tile an even side; an odd one is padded on the end
    dilation = (1, 1, 1, 1)
    pad = ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0))
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad, window_dilation=dilation)
  count = jax.lax.reduce_window(jnp.ones(x.shape[1:3], x.dtype), 0.0, jax.lax.add, window[1:3], strides[1:3],
                                pad[1:3], window_dilation=dilation[1:3])
  return total / count[None, :, :, None]


class ResNet(nn.Module):
  """keras-hub's `ResNetBackbone` (same architecture arguments).

  Attributes:
    input_conv_filters: filters of the stem convolution(s): [64], or vd's [32, 32, 64].
    input_conv_kernel_sizes: their kernel sizes: [7], or [3, 3, 3].
    stackwise_num_filters: filters of each stack, e.g. [64, 128, 256, 512].
    stackwise_num_blocks: blocks of each stack, e.g. [3, 4, 6, 3] (ResNet-50).
    stackwise_num_strides: the stride of each stack's first block, e.g. [1, 2, 2, 2].
    block_type: one of `BLOCK_TYPES`.
    use_pre_activation: ResNet v2.
    output_stride: 32, 16 or 8 (dilated last stacks).
    spec: compute dtype, GEMM input dtype and `jaxseg.ops` kernel forms (parameters stay float32; BatchNorm
      keeps keras-hub's momentum and epsilon).
  """
  input_conv_filters: Sequence[int]
  input_conv_kernel_sizes: Sequence[int]
  stackwise_num_filters: Sequence[int]
  stackwise_num_blocks: Sequence[int]
  stackwise_num_strides: Sequence[int]
  block_type: str
  use_pre_activation: bool = False
  output_stride: int = 32
  spec: LayerSpec = LayerSpec()  # dtype, GEMM input dtype, kernel forms (BatchNorm keeps its own settings)

  def _bn(self, name: str, train: bool) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=self.spec.dtype,
                        name=name)

  def _conv(self, features: int, kernel: int, stride: int = 1, pad: int | None = None, dilation: int = 1,
            name: str = "") -> layers.Conv:
    pad = dilation * (kernel // 2) if pad is None else pad  # None: "same" (stride 1)
    return layers.Conv(features, kernel, stride, pad, dilation, spec=self.spec, name=name)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[int, jax.Array]:
    """Feature maps {stride: (B, H / stride, W / stride, C)} of images x (B, H, W, 3), preprocessed as the
    weights expect."""
    k0 = self.input_conv_kernel_sizes[0]
    x = self._conv(self.input_conv_filters[0], k0, 2, (k0 - 1) // 2, name="conv1_conv")(x.astype(self.spec.dtype))
    for i in range(1, len(self.input_conv_filters)):
      x = nn.relu(self._bn(f"conv{i}_bn", train)(x))
      k = self.input_conv_kernel_sizes[i]
      x = self._conv(self.input_conv_filters[i], k, name=f"conv{i + 1}_conv")(x)
    if not self.use_pre_activation:
      x = nn.relu(self._bn(f"conv{len(self.input_conv_filters)}_bn", train)(x))
    features = {2: x}
    # v1's input is non-negative (after ReLU), so its zero padding equals v2's -inf padding.
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf if self.use_pre_activation else 0)
    x = ops.max_pool(x, 3, 2, kernels=self.spec.kernels)
    current, rate = 4, 1
    for s, (filters, blocks, stride) in enumerate(zip(self.stackwise_num_filters, self.stackwise_num_blocks,
                                                      self.stackwise_num_strides)):
      first_rate, nominal = rate, stride
      if current * stride > self.output_stride:  # keep the resolution, dilate instead
        rate, stride = rate * stride, 1
      current *= stride
      for b in range(blocks):
        x = self._block(x, filters, (stride, nominal) if b == 0 else (1, 1), (first_rate if b == 0 else rate, rate),
                        conv_shortcut=b == 0 and (self.block_type != "basic_block" or s > 0),
                        name=f"stack{s}_block{b}", train=train)
      features[2 ** (s + 2)] = x
    if self.use_pre_activation:  # v2 ends with the BatchNorm and ReLU its blocks leave out
      features[32] = nn.relu(self._bn("post_bn", train)(x))
    return features

  def _block(self, x: jax.Array, filters: int, strides: tuple[int, int], rates: tuple[int, int],
             conv_shortcut: bool, name: str, train: bool) -> jax.Array:
    """One block; `strides`: (its stride, the stride the architecture gives it before any dilation); `rates`:
    the dilation of its first 3x3 convolution (the one that strides) and of the one after it."""
    (stride, nominal), (rate, next_rate) = strides, rates
    bottleneck, vd, pre = "bottleneck" in self.block_type, self.block_type.endswith("_vd"), self.use_pre_activation
    out_filters = 4 * filters if bottleneck else filters
    preact = nn.relu(self._bn(f"{name}_pre_activation_bn", train)(x)) if pre else None
    shortcut = x
    if conv_shortcut:
      shortcut = preact if pre else x
      if vd and not pre and nominal > 1:
        shortcut = _avg_pool2(shortcut, stride, rate)
      shortcut_stride = 1 if vd else stride
      shortcut = self._conv(out_filters, 1, shortcut_stride, name=f"{name}_0_conv")(shortcut)
      if not pre:
        shortcut = self._bn(f"{name}_0_bn", train)(shortcut)
    y = preact if pre else x

    def conv3x3(y, idx):  # the strided 3x3: zero-padded then "valid", as keras-hub writes it
      return self._conv(filters, 3, stride, 1 if stride > 1 else rate, rate, f"{name}_{idx}_conv")(y)

    if bottleneck:
      y = nn.relu(self._bn(f"{name}_1_bn", train)(self._conv(filters, 1, name=f"{name}_1_conv")(y)))
      y = nn.relu(self._bn(f"{name}_2_bn", train)(conv3x3(y, 2)))
      y = self._conv(out_filters, 1, name=f"{name}_3_conv")(y)
      last = f"{name}_3_bn"
    else:
      y = nn.relu(self._bn(f"{name}_1_bn", train)(conv3x3(y, 1)))
      y = self._conv(filters, 3, dilation=next_rate, name=f"{name}_2_conv")(y)
      last = f"{name}_2_bn"
    if pre:
      return shortcut + y
    return nn.relu(shortcut + self._bn(last, train)(y))


def _variant(blocks: Sequence[int], block_type: str, pre: bool = False, vd: bool = False) -> dict:
  return {"input_conv_filters": (32, 32, 64) if vd else (64,), "input_conv_kernel_sizes": (3, 3, 3) if vd else (7,),
          "stackwise_num_filters": (64, 128, 256, 512), "stackwise_num_blocks": tuple(blocks),
          "stackwise_num_strides": (1, 2, 2, 2), "block_type": block_type + ("_vd" if vd else ""),
          "use_pre_activation": pre}


_DEPTHS = {18: ((2, 2, 2, 2), "basic_block"), 34: ((3, 4, 6, 3), "basic_block"),
           50: ((3, 4, 6, 3), "bottleneck_block"), 101: ((3, 4, 23, 3), "bottleneck_block"),
           152: ((3, 8, 36, 3), "bottleneck_block")}
# Backbone name -> architecture arguments (those of keras-hub's presets resnet_*, resnet_v2_*, resnet_vd_*).
VARIANTS = {**{f"resnet{d}": _variant(b, t) for d, (b, t) in _DEPTHS.items()},
            **{f"resnet_v2_{d}": _variant(b, t, pre=True) for d, (b, t) in _DEPTHS.items()},
            **{f"resnet_vd_{d}": _variant(b, t, vd=True) for d, (b, t) in _DEPTHS.items()}}
# Backbone name -> keras-hub preset of its ImageNet weights.
PRESETS = {**{f"resnet{d}": f"resnet_{d}_imagenet" for d in _DEPTHS},
           **{f"resnet_v2_{d}": f"resnet_v2_{d}_imagenet" for d in (50, 101)},
           **{f"resnet_vd_{d}": f"resnet_vd_{d}_imagenet" for d in (18, 34, 50, 101, 152)}}
