"""The one place that picks a formulation: `kernels` (which forms of the convolutions, layer norm and softmax
run) and the size rules (jaxseg/ops/README.md).

"gemm": the fast forms of this package (GEMMs, shifted multiply-adds, Winograd on CPU in float32). XLA lowers
the `lax` forms of MobileNetV2's and the U-Net's layers poorly on CPU and GPU (a `conv_transpose` weight
gradient far slower than its forward, grouped depthwise convolutions slower than nine multiply-adds).

"xla": plain `lax` convolutions (each fast form's reference), what the TPU compiler's convolution emitter is
built for.

"lite": "xla", except that the transposed convolution is four stride-1 convolutions, one per output phase:
what LiteRT export uses (its converter maps each to a builtin conv kernel and keeps a free batch size).

"auto" picks "gemm" on CPU and GPU, "xla" on TPU. All compute the same maths within float rounding (tests
hold them to each other), so a checkpoint does not depend on the choice.

Every operation takes `(x, kernel, *, stride, dilation, gemm_dtype, kernels)` in that order, the ones it
has; `gemm_dtype` is the GEMM input dtype (None: x's), accumulated in float32, and applies to "gemm" only.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxseg.ops import conv_transpose, dense3x3, depthwise, lovasz, norm, pointwise, pool, softmax, strided, winograd
from jaxseg.ops.common import float32_on_cpu
from jaxseg.ops.resize import upsample_bilinear  # noqa: F401  (the same form under every `kernels`)

KERNELS = ("auto", "gemm", "xla", "lite")


def resolve_kernels(kernels: str) -> str:
  """"auto" -> "xla" on TPU, "gemm" elsewhere; the others pass through."""
  if kernels not in KERNELS:
    raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}.")
  if kernels == "auto":
    return "xla" if jax.default_backend() == "tpu" else "gemm"
  return kernels


def _lax_form(kernels: str) -> bool:
  return resolve_kernels(kernels) in ("xla", "lite")


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, *, epsilon: float,
               kernels: str = "auto") -> jax.Array:
  """Layer normalization over the last axis. "gemm": row means as matrix-vector products (`norm.layer_norm`)."""
  if _lax_form(kernels):
    return norm.layer_norm_reference(x, scale, bias, epsilon)
  return norm.layer_norm(x, scale, bias, epsilon)


def softmax_last(x: jax.Array, *, kernels: str = "auto") -> jax.Array:
  """Softmax over the last axis. "gemm": row sums as matrix-vector products (`softmax.softmax`), or for rows of
  `softmax.LONG_ROWS` keys or more XLA's reductions with a plain VJP (`softmax.softmax_long`)."""
  if _lax_form(kernels):
    return softmax.softmax_reference(x)
  return softmax.softmax_long(x) if x.shape[-1] >= softmax.LONG_ROWS else softmax.softmax(x)


def lovasz_extension(errors: jax.Array, fg: jax.Array, *, kernels: str = "auto", bins: int = 0) -> jax.Array:
  """Per class, the Lovasz extension of the Jaccard loss at errors (C, N) with class flags (C, N) (the inner
  part of Lovasz-softmax). "gemm": one single-operand sort of int32 keys under a hand-written VJP
  (`lovasz.lovasz_extension`); "xla": a two-operand sort and autodiff. `bins` > 0, either form: the errors
  ranked by histogram bin, no sort (`lovasz.lovasz_extension_binned`: within 1 / bins of the sorted forms)."""
  if bins:
    return lovasz.lovasz_extension_binned(errors, fg, bins)
  if _lax_form(kernels):
    return lovasz.lovasz_extension_reference(errors, fg)
  return lovasz.lovasz_extension(errors, fg)


def pointwise_conv(x: jax.Array, kernel: jax.Array, *, gemm_dtype=None, kernels: str = "auto") -> jax.Array:
  """A 1x1 convolution; kernel (1, 1, Cin, Cout). "gemm": one GEMM (`pointwise.pointwise_conv_gemm`)."""
  if _lax_form(kernels):
    return pointwise.pointwise_reference(x, kernel)
  return pointwise.pointwise_conv_gemm(x, kernel, gemm_dtype=gemm_dtype)


def stem_conv3x3(x: jax.Array, kernel: jax.Array, *, stride: int = 2, kernels: str = "auto") -> jax.Array:
  """A 'same'-padded 3x3 convolution on few input channels (MobileNetV2's `Conv1`); kernel (3, 3, Cin, Cout).
  "gemm": broadcast multiply-adds (`dense3x3.stem_conv3x3_gemm`)."""
  if _lax_form(kernels):
    return dense3x3.conv3x3_reference(x, kernel, stride=stride)
  return dense3x3.stem_conv3x3_gemm(x, kernel, stride=stride)


def strided_conv(x: jax.Array, kernel: jax.Array, *, stride: int, padding: strided.Padding, gemm_dtype=None,
                 kernels: str = "auto") -> jax.Array:
  """A dense convolution at `stride` of x zero-padded by `padding` ((top, bottom), (left, right)): stems and
  patch embeddings; kernel (kh, kw, Cin, Cout). "gemm": XLA's forward and input gradient, the weight gradient
  as one GEMM per kernel row (`strided.strided_conv_gemm`), on `gemm_dtype` inputs (the result in x's dtype)."""
  if _lax_form(kernels):
    return strided.strided_conv_reference(x, kernel, stride=stride, padding=padding)
  inputs = x if gemm_dtype is None else x.astype(gemm_dtype)
  return strided.strided_conv_gemm(inputs, kernel, stride=stride, padding=padding).astype(x.dtype)


def depthwise_conv3x3(x: jax.Array, kernel: jax.Array, *, stride: int = 1, dilation: int = 1,
                      kernels: str = "auto") -> jax.Array:
  """Keras `DepthwiseConv2D(3, strides=stride, dilation_rate=dilation)`, 'same'/correct_pad padded; kernel
  (3, 3, C, 1). "gemm": nine shifted multiply-adds (`depthwise.depthwise_conv3x3_gemm`)."""
  if _lax_form(kernels):
    return depthwise.depthwise_reference(x, kernel, stride=stride, dilation=dilation)
  return depthwise.depthwise_conv3x3_gemm(x, kernel, stride=stride, dilation=dilation)


def depthwise_conv(x: jax.Array, kernel: jax.Array, *, stride: int = 1, dilation: int = 1,
                   padding: depthwise.Padding | None = None, kernels: str = "auto") -> jax.Array:
  """Keras `DepthwiseConv2D(k, strides=stride, dilation_rate=dilation)` of x zero-padded by `padding`
  (None: 'same'); kernel (k, k, C, 1). "gemm": k x k shifted multiply-adds (`depthwise.depthwise_conv_gemm`)."""
  if _lax_form(kernels):
    return depthwise.depthwise_reference(x, kernel, stride=stride, dilation=dilation, padding=padding)
  return depthwise.depthwise_conv_gemm(x, kernel, stride=stride, dilation=dilation, padding=padding)


def max_pool(x: jax.Array, window: int, stride: int, *, kernels: str = "auto") -> jax.Array:
  """A "valid" max pool of x (B, H, W, C), padded by the caller. "gemm": the maximum of shifted windows with a
  hand-written VJP (`pool.max_pool`)."""
  if _lax_form(kernels):
    return pool.max_pool_reference(x, window, stride)
  return pool.max_pool(x, window, stride)


def conv3x3(x: jax.Array, kernel: jax.Array, *, dilation: int = 1, gemm_dtype=None,
            kernels: str = "auto") -> jax.Array:
  """A 'same'-padded, stride-1, optionally atrous 3x3 convolution (DeepLab's ASPP and decoder); kernel
  (3, 3, Cin, Cout).

  "gemm": without dilation, on CPU in float32 and from `winograd.MIN_TILES` tiles, Winograd F(4x4, 3x3)
  (`winograd.winograd_conv3x3`); otherwise `dense3x3.conv3x3_gemm` (a weight gradient as GEMMs). Not under bf16
  GEMM inputs: nine shifted bf16 GEMMs made the DeepLab step as fast or faster.
  """
  if _lax_form(kernels):
    return dense3x3.conv3x3_reference(x, kernel, dilation=dilation)
  if dilation == 1 and float32_on_cpu(x, gemm_dtype) and winograd.tile_count(x.shape) >= winograd.MIN_TILES:
    return winograd.winograd_conv3x3(x, kernel.astype(x.dtype))
  return dense3x3.conv3x3_gemm(x, kernel, dilation=dilation, gemm_dtype=gemm_dtype)


def conv_transpose3x3_s2(inputs: Sequence[jax.Array], kernel: jax.Array, *, gemm_dtype=None,
                         kernels: str = "auto") -> jax.Array:
  """Keras `Conv2DTranspose(O, 3, strides=2, padding="same")` over the channel concatenation of `inputs`
  (kernel (3, 3, sum Cin, O): Keras's with the last two axes swapped).

  "gemm": `conv_transpose.conv_transpose3x3_s2_gemm` (one GEMM per input + col2im, or Winograd F(2, 2) where it
  pays, chosen apart for the forward and the backward); "xla": `lax.conv_transpose`; "lite": four phase
  convolutions; both of the concatenated inputs.
  """
  if _lax_form(kernels):
    x = jnp.concatenate(inputs, axis=-1)  # a no-op for one input
    lite = resolve_kernels(kernels) == "lite"
    form = conv_transpose.conv_transpose3x3_s2_phases if lite else conv_transpose.conv_transpose3x3_s2_reference
    return form(x, kernel.astype(x.dtype))
  return conv_transpose.conv_transpose3x3_s2_gemm(inputs, kernel, gemm_dtype=gemm_dtype)
