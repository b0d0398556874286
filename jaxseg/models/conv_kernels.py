"""Convolution kernels with Keras semantics, in two formulations of the same maths.

"gemm": Keras `Conv2DTranspose(3, strides=2, padding="same")`, `DepthwiseConv2D(3)` and a strided 3x3
`Conv2D` on 3 input channels written as GEMMs and shifted multiply-adds. XLA lowers the `lax` forms of these
layers poorly on CPU (a `conv_transpose` weight gradient 50-100x slower than its forward, grouped depthwise
convolutions 8x slower than nine multiply-adds), and on a GPU the GEMM form of the train step measured 4-20x
faster too (benchmarks/README.md). Dense 3x3 convolutions (DeepLab's head) keep XLA's forward convolution,
already as fast as a GEMM, with a weight gradient written as GEMMs.

"xla": plain `lax` convolutions, what the TPU compiler's convolution emitter is built for.

"lite": "xla", except that the transposed convolution is four stride-1 convolutions, one per output phase:
what LiteRT export uses (its converter maps every one to a builtin conv kernel, and keeps a free batch size).

"auto" picks "gemm" on CPU and GPU, "xla" on TPU. All compute the same maths within float rounding (tests
hold them to each other), so a checkpoint does not depend on the choice.
"""

from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp

from jaxseg.models import depthwise, winograd, winograd_transpose
from jaxseg.models.gemms import pixel_gemm_t
from jaxseg.models.depthwise import same_padding, tap as _tap


CONV_IMPLS = ("auto", "gemm", "xla", "lite")


def resolve_conv_impl(conv_impl: str) -> str:
  """"auto" -> "xla" on TPU, "gemm" elsewhere; the others pass through."""
  if conv_impl not in CONV_IMPLS:
    raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}.")
  if conv_impl == "auto":
    return "xla" if jax.default_backend() == "tpu" else "gemm"
  return conv_impl


def _lax_form(conv_impl: str) -> bool:
  """Whether convolutions are `lax` convolutions ("xla" and "lite")."""
  return resolve_conv_impl(conv_impl) in ("xla", "lite")


def _lax_conv(x: jax.Array, kernel: jax.Array, stride: int, groups: int = 1, dilation: int = 1) -> jax.Array:
  """A 'same'-padded (TensorFlow rule) convolution through `lax.conv_general_dilated`."""
  pads = [same_padding(x.shape[i], (kernel.shape[i - 1] - 1) * dilation + 1, stride) for i in (1, 2)]
  return jax.lax.conv_general_dilated(x, kernel.astype(x.dtype), (stride, stride), pads,
                                      rhs_dilation=(dilation, dilation), feature_group_count=groups,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _float32_on_cpu(x: jax.Array, gemm_dtype) -> bool:
  """Where the Winograd forms run: float32 compute and GEMMs (bf16 would amplify their rounding), on CPU (on
  accelerators the model is memory-bound, and the transforms add traffic)."""
  return x.dtype == jnp.float32 and gemm_dtype is None and jax.default_backend() == "cpu"


def depthwise_conv3x3(x: jax.Array, kernel: jax.Array, stride: int, conv_impl: str = "gemm",
                      dilation: int = 1) -> jax.Array:
  """Keras `DepthwiseConv2D(3, strides=stride, dilation_rate=dilation)` as it sits in MobileNetV2
  (same-padded / correct_pad).

  Nine shifted multiply-adds fuse into one XLA loop; `feature_group_count` convolutions do not. A dilation
  only spaces the taps apart (atrous MobileNetV2 for DeepLab).

  Args:
    x: (B, H, W, C) input.
    kernel: (3, 3, C, 1) Keras depthwise kernel.
    stride: 1 or 2.
    conv_impl: "gemm" (shifted multiply-adds), "xla" (a grouped `lax` convolution) or "auto".
    dilation: the atrous rate (with stride 1).

  Returns:
    (B, ceil(H / stride), ceil(W / stride), C).
  """
  if _lax_form(conv_impl):
    return _lax_conv(x, kernel.reshape(3, 3, 1, -1), stride, groups=x.shape[-1], dilation=dilation)
  return depthwise.depthwise3x3(x, kernel, stride, dilation)


def conv3x3(x: jax.Array, kernel: jax.Array, dilation: int = 1, conv_impl: str = "gemm",
            gemm_dtype=None) -> jax.Array:
  """A 'same'-padded, stride-1, optionally atrous 3x3 convolution (DeepLab's ASPP and decoder).

  "gemm": `conv3x3_gemm`, a hand-written VJP; on CPU without dilation, from `winograd.MIN_TILES` tiles,
  Winograd F(4x4, 3x3) in float32 (`jaxseg.models.winograd`: 2.25 instead of 9 multiply-adds per output,
  forward and backward) unless `gemm_dtype` asks for bf16 GEMM inputs. "xla": a `lax`
  convolution with rhs_dilation, autodiffed.

  Args:
    x: (B, H, W, Cin) input.
    kernel: (3, 3, Cin, Cout).
    dilation: the atrous rate.
    conv_impl: "gemm", "xla" or "auto".
    gemm_dtype: the GEMM input dtype ("gemm" only; None: x's dtype).

  Returns:
    (B, H, W, Cout) in x's dtype.
  """
  if _lax_form(conv_impl):
    return _lax_conv(x, kernel, 1, dilation=dilation)
  # Not under bf16 GEMM inputs: with nine shifted bf16 GEMMs the DeepLab step was as fast or faster (0.47x
  # against 0.55x Keras-TF's step at 128 px, 0.65x against 0.64x at 224), though one such convolution alone
  # was faster as float32 Winograd (3.24 against 3.72 s).
  if dilation == 1 and _float32_on_cpu(x, gemm_dtype) and winograd.tile_count(x.shape) >= winograd.MIN_TILES:
    return winograd.conv3x3(x, kernel.astype(x.dtype))
  return conv3x3_gemm(x, kernel.astype(x.dtype), dilation, gemm_dtype)


# A dense 3x3 convolution on XLA:CPU: the forward `lax` convolution and its input gradient (a convolution with
# the flipped kernel) run at the speed of a GEMM of the same size, but its autodiffed weight gradient takes
# ~2.4x that. The weight gradient is written here as nine GEMMs of the input against shifted windows of the
# output gradient (shifting the narrower tensor is the cheaper copy). Taps whose window lies wholly in the
# zero padding (an atrous rate at least the map's size, as ASPP's rate 18 on a 14x14 map) are dropped, which
# turns such a branch into the 1x1 convolution it really is. With bfloat16 GEMM inputs the forward is nine
# shifted GEMMs too: XLA:CPU's convolution does not use the CPU's bf16 dot products, its GEMMs do.


def _live_taps(h: int, w: int, dilation: int) -> list[tuple[int, int]]:
  """Kernel taps (a, b) whose input window overlaps the map: |offset| < size on both axes."""
  live = lambda t, size: abs(t - 1) * dilation < size
  return [(a, b) for a in range(3) for b in range(3) if live(a, h) and live(b, w)]


def _shifted_sum(x: jax.Array, kernel: jax.Array, dilation: int, gemm_dtype) -> jax.Array:
  """sum over live taps of window(x, tap) @ kernel[tap]: the convolution as shifted GEMMs."""
  h, w = x.shape[1:3]
  d = dilation
  xp = jnp.pad(x.astype(gemm_dtype or x.dtype), ((0, 0), (d, d), (d, d), (0, 0)))
  out = None
  for a, b in _live_taps(h, w, d):
    term = _gemm("bhwc,co->bhwo", _tap(xp, a * d, b * d, h, w, 1), kernel[a, b], gemm_dtype)
    out = term if out is None else out + term
  return out.astype(x.dtype)


def _conv3x3_apply(x: jax.Array, kernel: jax.Array, dilation: int, gemm_dtype) -> jax.Array:
  if gemm_dtype is None and len(_live_taps(*x.shape[1:3], dilation)) == 9:
    return _lax_conv(x, kernel, 1, dilation=dilation)
  return _shifted_sum(x, kernel, dilation, gemm_dtype)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv3x3_gemm(x: jax.Array, kernel: jax.Array, dilation: int, gemm_dtype=None) -> jax.Array:
  """`conv3x3` with the hand-written VJP above. x: (B, H, W, Cin); kernel: (3, 3, Cin, Cout) in x's dtype."""
  return _conv3x3_apply(x, kernel, dilation, gemm_dtype)


def _c3_fwd(x, kernel, dilation, gemm_dtype):
  return _conv3x3_apply(x, kernel, dilation, gemm_dtype), (x, kernel)


def _c3_bwd(dilation, gemm_dtype, res, g):
  x, kernel = res
  g = g.astype(x.dtype)
  # The input gradient is the convolution of g with the kernel flipped in space, in and out swapped.
  dx = _conv3x3_apply(g, kernel[::-1, ::-1].transpose(0, 1, 3, 2), dilation, gemm_dtype)
  h, w = x.shape[1:3]
  d = dilation
  gp = jnp.pad(g.astype(gemm_dtype or g.dtype), ((0, 0), (d, d), (d, d), (0, 0)))
  dk = jnp.zeros(kernel.shape, jnp.float32)
  for a, b in _live_taps(h, w, d):
    # out[i, j] += x[i + (a-1)d, j + (b-1)d] K[a, b]  =>  dK[a, b] = sum x[p] g[p - (a-1)d]
    win = _tap(gp, (2 - a) * d, (2 - b) * d, h, w, 1)
    dk = dk.at[a, b].set(_gemm("bhwc,bhwo->co", x, win, gemm_dtype))
  return dx, dk.astype(kernel.dtype)


conv3x3_gemm.defvjp(_c3_fwd, _c3_bwd)


def stem_conv3x3(x: jax.Array, kernel: jax.Array, stride: int = 2, conv_impl: str = "gemm") -> jax.Array:
  """A 'same'-padded 3x3 convolution with few input channels (MobileNetV2's `Conv1`).

  With 3 input channels a GEMM would be 27 deep, far too shallow to be efficient; 27 broadcast
  multiply-adds fuse into one pass instead.

  Args:
    x: (B, H, W, Cin) input, Cin small.
    kernel: (3, 3, Cin, Cout).
    stride: the stride.
    conv_impl: "gemm" (broadcast multiply-adds), "xla" (a `lax` convolution) or "auto".

  Returns:
    (B, ceil(H / stride), ceil(W / stride), Cout).
  """
  if _lax_form(conv_impl):
    return _lax_conv(x, kernel, stride)
  return depthwise.stem3x3(x, kernel, stride)


def pointwise_conv(x: jax.Array, kernel: jax.Array, gemm_dtype=None, conv_impl: str = "gemm") -> jax.Array:
  """A 1x1 convolution: one GEMM ("gemm"; gemm_dtype: its input dtype, None: x's, accumulated in float32), or a
  `lax` convolution ("xla": what exporters map to their runtimes' conv kernels). kernel: (1, 1, Cin, Cout)."""
  if _lax_form(conv_impl):
    return _lax_conv(x, kernel, 1)
  return _matmul_cast(x, kernel[0, 0].astype(x.dtype), gemm_dtype)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul_cast(x: jax.Array, w: jax.Array, gemm_dtype) -> jax.Array:
  """x (..., C) @ w (C, O) on gemm_dtype inputs (None: x's dtype), in x's dtype. Autodiff would run the
  backward GEMMs on the float32 cotangent, and leave the weight gradient's layout to XLA (`pixel_gemm_t`)."""
  return _gemm("...c,co->...o", x, w, gemm_dtype).astype(x.dtype)


def _matmul_cast_fwd(x, w, gemm_dtype):
  return _matmul_cast(x, w, gemm_dtype), (x, w)


def _matmul_cast_bwd(gemm_dtype, res, g):
  x, w = res
  dx = _gemm("...o,co->...c", g, w, gemm_dtype).astype(x.dtype)
  dw = pixel_gemm_t(x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1]), gemm_dtype)
  return dx, dw.astype(w.dtype)


_matmul_cast.defvjp(_matmul_cast_fwd, _matmul_cast_bwd)


def _gemm(spec: str, a: jax.Array, b: jax.Array, gemm_dtype=None) -> jax.Array:
  """einsum of a and b cast to gemm_dtype (default a's dtype), accumulated and returned in float32."""
  dtype = gemm_dtype or a.dtype
  return jnp.einsum(spec, a.astype(dtype), b.astype(dtype), preferred_element_type=jnp.float32)


# Transposed convolution 3x3, stride 2, 'same' (Keras semantics).
#
# Every input pixel (i, j) adds x[i, j] @ K[a, b] to output pixel (2i + a, 2j + b), a, b in {0, 1, 2}; the
# row/column 2n that tap 2 of the last pixel reaches is cropped. Forward: one GEMM to all nine taps, then a
# col2im that sums at most four shifted taps into each of the four output phases (on CPU in float32, from
# 512 input tiles, the Winograd form of `winograd_transpose` instead: 25 / 36 of the GEMM work; forward from
# 32 output channels, backward from 128). Backward is written by
# hand: autodiff of the col2im pads nine copies, and of a concatenated input it would compute the input
# gradient of frozen skip channels too. Taking the inputs as a sequence (the decoder's [upsampled, skip])
# keeps one GEMM per input, so XLA drops the unused skip-input gradient and no concatenation is built.


# Below this many GEMM columns (9 taps x output channels) the weight gradient is left to XLA's dot.
NARROW_TAPS = 128


def _split_kernel(kernel: jax.Array, sizes: Sequence[int], dtype) -> list[jax.Array]:
  """(3, 3, sum(sizes), O) -> per input a (Cin, 9 * O) GEMM matrix."""
  mats, off = [], 0
  for c in sizes:
    part = kernel[:, :, off:off + c, :].astype(dtype)
    mats.append(part.transpose(2, 0, 1, 3).reshape(c, -1))
    off += c
  return mats


def _shift_down(t: jax.Array, axis: int) -> jax.Array:
  """t[i - 1] along `axis`, zero at i = 0."""
  pad = [(0, 0)] * t.ndim
  pad[axis] = (1, 0)
  return jax.lax.slice_in_dim(jnp.pad(t, pad), 0, t.shape[axis], axis=axis)


def _shift_up(t: jax.Array, axis: int) -> jax.Array:
  """t[i + 1] along `axis`, zero at the last i."""
  pad = [(0, 0)] * t.ndim
  pad[axis] = (0, 1)
  return jax.lax.slice_in_dim(jnp.pad(t, pad), 1, t.shape[axis] + 1, axis=axis)


def _col2im(taps: jax.Array) -> jax.Array:
  """(B, n, m, 3, 3, O) per-tap products -> (B, 2n, 2m, O) output."""
  y = lambda a, b: taps[:, :, :, a, b, :]
  p00 = y(0, 0) + _shift_down(y(2, 0), 1) + _shift_down(y(0, 2), 2) + _shift_down(_shift_down(y(2, 2), 1), 2)
  p01 = y(0, 1) + _shift_down(y(2, 1), 1)
  p10 = y(1, 0) + _shift_down(y(1, 2), 2)
  p11 = y(1, 1)
  out = jnp.stack([jnp.stack([p00, p01], axis=3), jnp.stack([p10, p11], axis=3)], axis=2)
  bsz, n, _, m, _, o = out.shape
  return out.reshape(bsz, 2 * n, 2 * m, o)


def _im2col_grad(g: jax.Array) -> jax.Array:
  """Adjoint of `_col2im`: (B, 2n, 2m, O) -> (B, n, m, 3, 3, O)."""
  bsz, h2, w2, o = g.shape
  g = g.reshape(bsz, h2 // 2, 2, w2 // 2, 2, o)
  phase = lambda r, s: g[:, :, r, :, s, :]
  rows = []
  for a in range(3):
    cols = []
    for b in range(3):
      t = phase(0 if a != 1 else 1, 0 if b != 1 else 1)
      if a == 2:
        t = _shift_up(t, 1)
      if b == 2:
        t = _shift_up(t, 2)
      cols.append(t)
    rows.append(jnp.stack(cols, axis=3))
  return jnp.stack(rows, axis=3)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_transpose3x3_s2_gemm(inputs: Sequence[jax.Array], kernel: jax.Array, gemm_dtype=None) -> jax.Array:
  """Keras `Conv2DTranspose(O, 3, strides=2, padding="same")` over the channel concatenation of `inputs`.

  Args:
    inputs: arrays (B, n, m, C_k) sharing B, n, m; treated as if concatenated along channels.
    kernel: (3, 3, sum C_k, O); `kernel[a, b, c, o]` is Keras's `kernel[a, b, o, c]`.
    gemm_dtype: the GEMMs' input dtype (None: the inputs'); col2im runs in the inputs' dtype.

  Returns:
    (B, 2n, 2m, O) in the inputs' dtype (GEMMs accumulate in float32).
  """
  return _ct_fwd(inputs, kernel, gemm_dtype)[0]


def _winograd_applies(inputs, kernel, gemm_dtype, backward: bool = False) -> bool:
  """The Winograd form (`winograd_transpose`): on CPU, in float32, for layers wide and large enough."""
  wide = winograd_transpose.MIN_FEATURES_BACKWARD if backward else winograd_transpose.MIN_FEATURES
  return (_float32_on_cpu(inputs[0], gemm_dtype) and kernel.shape[-1] >= wide
          and winograd_transpose.tile_count(inputs[0].shape) >= winograd_transpose.MIN_TILES)


def _ct_fwd(inputs, kernel, gemm_dtype):
  if _winograd_applies(inputs, kernel, gemm_dtype):
    return winograd_transpose.conv_transpose3x3_s2(inputs, kernel), (tuple(inputs), kernel)
  dtype = inputs[0].dtype
  gdtype = gemm_dtype or dtype
  mats = _split_kernel(kernel, [x.shape[-1] for x in inputs], gdtype)
  taps = None
  for x, w in zip(inputs, mats):
    t = jnp.dot(x.reshape(-1, x.shape[-1]).astype(gdtype), w, preferred_element_type=jnp.float32)
    taps = t if taps is None else taps + t
  bsz, n, m, _ = inputs[0].shape
  out = _col2im(taps.astype(dtype).reshape(bsz, n, m, 3, 3, -1))
  return out, (tuple(inputs), kernel)


def _ct_bwd(gemm_dtype, res, g):
  inputs, kernel = res
  if _winograd_applies(inputs, kernel, gemm_dtype, backward=True):
    dxs, dkernel = winograd_transpose.backward(inputs, kernel, g)
    return dxs, dkernel.astype(kernel.dtype)
  gdtype = gemm_dtype or inputs[0].dtype
  sizes = [x.shape[-1] for x in inputs]
  mats = _split_kernel(kernel, sizes, gdtype)
  dtaps = _im2col_grad(g.astype(gdtype))
  dtaps = dtaps.reshape(-1, dtaps.shape[3] * dtaps.shape[4] * dtaps.shape[5])
  o = kernel.shape[-1]
  dxs, dws = [], []
  for x, w, c in zip(inputs, mats, sizes):
    x2 = x.reshape(-1, c).astype(gdtype)
    # The logits layer (9 x classes < 128 columns): XLA's own transposed-operand dot. Transposing the input
    # behind a barrier (`pixel_gemm_t`) cost more than this narrow GEMM saves (train step, interleaved A/Bs:
    # CamVid median 1.82 -> 1.60 s and 1.67 -> 1.53 s; 128 px, batch 64, 1.21 -> 1.15 s).
    if dtaps.shape[1] < NARROW_TAPS:
      dw = jnp.dot(x2.T, dtaps, preferred_element_type=jnp.float32)
    else:
      dw = pixel_gemm_t(x2, dtaps)
    dws.append(dw.reshape(c, 3, 3, o).transpose(1, 2, 0, 3))
    dx = jnp.dot(dtaps, w.T, preferred_element_type=jnp.float32)
    dxs.append(dx.astype(x.dtype).reshape(x.shape))
  dkernel = jnp.concatenate(dws, axis=2).astype(kernel.dtype)
  return tuple(dxs), dkernel


conv_transpose3x3_s2_gemm.defvjp(_ct_fwd, _ct_bwd)


def conv_transpose3x3_s2_lax(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The same maths through `lax.conv_transpose` (the "xla" formulation; tests hold the GEMM form to it).

  Args:
    x: (B, n, m, C).
    kernel: (3, 3, C, O) as taken by `conv_transpose3x3_s2_gemm`.

  Returns:
    (B, 2n, 2m, O).
  """
  # lax.conv_transpose correlates the dilated input with the kernel, so flip it to get the scatter form.
  return jax.lax.conv_transpose(
      x, kernel[::-1, ::-1], strides=(2, 2), padding=((2, 1), (2, 1)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv_transpose3x3_s2_phases(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The same maths as four stride-1 `lax` convolutions, one per output phase, interleaved (the "lite"
  formulation: exporters turn each into a plain conv kernel; LiteRT's converter mishandles this layer's
  transposed-conv padding).

  Output row 2m takes taps 0 (input row m) and 2 (row m - 1), row 2m + 1 tap 1 (row m); columns alike.
  """
  b, n, m, _ = x.shape
  taps = {0: ((2, 0), (1, 0)), 1: ((1,), (0, 0))}  # phase -> (kernel taps for input offsets -1, 0; padding)
  phases = []
  for p in (0, 1):
    row = []
    for q in (0, 1):
      k = jnp.stack([jnp.stack([kernel[a, c] for c in taps[q][0]]) for a in taps[p][0]])
      row.append(jax.lax.conv_general_dilated(x, k, (1, 1), (taps[p][1], taps[q][1]),
                                              dimension_numbers=("NHWC", "HWIO", "NHWC")))
    phases.append(jnp.stack(row, 3))  # (B, n, m, 2, O)
  return jnp.stack(phases, 2).reshape(b, 2 * n, 2 * m, kernel.shape[-1])


def conv_transpose3x3_s2(inputs: Sequence[jax.Array], kernel: jax.Array, conv_impl: str = "gemm",
                         gemm_dtype=None) -> jax.Array:
  """Keras `Conv2DTranspose(O, 3, strides=2, padding="same")` over the channel concatenation of `inputs`:
  `conv_transpose3x3_s2_gemm` ("gemm", GEMM inputs in gemm_dtype), or `conv_transpose3x3_s2_lax` ("xla") or
  `conv_transpose3x3_s2_phases` ("lite") of the concatenated inputs."""
  if _lax_form(conv_impl):
    x = jnp.concatenate(inputs, axis=-1)  # a no-op for one input
    form = conv_transpose3x3_s2_phases if resolve_conv_impl(conv_impl) == "lite" else conv_transpose3x3_s2_lax
    return form(x, kernel.astype(x.dtype))
  return conv_transpose3x3_s2_gemm(tuple(inputs), kernel, gemm_dtype)
