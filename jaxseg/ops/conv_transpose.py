"""Keras `Conv2DTranspose(O, 3, strides=2, padding="same")`: the U-Net decoder's upsampling layer.

Every input pixel (i, j) adds x[i, j] @ K[a, b] to output pixel (2i + a, 2j + b), a, b in {0, 1, 2}; the
row/column 2n that tap 2 of the last pixel reaches is cropped. The fast form is one GEMM to all nine taps, then
a col2im that sums at most four shifted taps into each of the four output phases (on CPU in float32, for
layers wide and large enough, `winograd_transpose` instead: 25 / 36 of the GEMM work). Its backward is written
by hand: autodiff of the col2im pads nine copies, and of a concatenated input it would compute the input
gradient of frozen skip channels too. Taking the inputs as a sequence (the decoder's [upsampled, skip]) keeps
one GEMM per input, so XLA drops the unused skip-input gradient and no concatenation is built.

`conv_transpose3x3_s2_reference` is the same maths through `lax.conv_transpose`; `conv_transpose3x3_s2_phases`
is four stride-1 `lax` convolutions, one per output phase (what LiteRT export uses).
"""

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp

from jaxseg.ops.common import DIMENSIONS, float32_on_cpu
from jaxseg.ops.pointwise import pixel_gemm_t
from jaxseg.ops.winograd_transpose import (
  MIN_FEATURES,
  MIN_FEATURES_BACKWARD,
  MIN_TILES,
  tile_count,
  winograd_conv_transpose3x3_s2,
  winograd_conv_transpose3x3_s2_vjp,
)

# Below this many GEMM columns (9 taps x output channels) the weight gradient is left to XLA's own
# transposed-operand dot: transposing the input behind a barrier (`pixel_gemm_t`) costs more than such a
# narrow GEMM (the logits layer) saves.
NARROW_GEMM_COLUMNS = 128


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


def conv_transpose3x3_s2_gemm(inputs: Sequence[jax.Array], kernel: jax.Array, *, gemm_dtype=None) -> jax.Array:
  """Keras `Conv2DTranspose(O, 3, strides=2, padding="same")` over the channel concatenation of `inputs`.

  Args:
    inputs: arrays (B, n, m, C_k) sharing B, n, m; treated as if concatenated along channels.
    kernel: (3, 3, sum C_k, O); `kernel[a, b, c, o]` is Keras's `kernel[a, b, o, c]`.
    gemm_dtype: the GEMMs' input dtype (None: the inputs'); col2im runs in the inputs' dtype.

  Returns:
    (B, 2n, 2m, O) in the inputs' dtype (GEMMs accumulate in float32).
  """
  return _conv_transpose(tuple(inputs), kernel, gemm_dtype)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_transpose(inputs: tuple[jax.Array, ...], kernel: jax.Array, gemm_dtype) -> jax.Array:
  return _ct_fwd(inputs, kernel, gemm_dtype)[0]


def winograd_applies(inputs: Sequence[jax.Array], kernel: jax.Array, *, gemm_dtype=None,
                     backward: bool = False) -> bool:
  """Whether the Winograd form runs: on CPU, in float32, for layers wide and large enough (the forward and
  the backward decide apart: the backward needs wider layers to pay)."""
  wide = MIN_FEATURES_BACKWARD if backward else MIN_FEATURES
  return (float32_on_cpu(inputs[0], gemm_dtype) and kernel.shape[-1] >= wide
          and tile_count(inputs[0].shape) >= MIN_TILES)


def _ct_fwd(inputs, kernel, gemm_dtype):
  if winograd_applies(inputs, kernel, gemm_dtype=gemm_dtype):
    return winograd_conv_transpose3x3_s2(inputs, kernel), (tuple(inputs), kernel)
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
  if winograd_applies(inputs, kernel, gemm_dtype=gemm_dtype, backward=True):
    dxs, dkernel = winograd_conv_transpose3x3_s2_vjp(inputs, kernel, g)
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
    if dtaps.shape[1] < NARROW_GEMM_COLUMNS:
      dw = jnp.dot(x2.T, dtaps, preferred_element_type=jnp.float32)
    else:
      dw = pixel_gemm_t(x2, dtaps)
    dws.append(dw.reshape(c, 3, 3, o).transpose(1, 2, 0, 3))
    dx = jnp.dot(dtaps, w.T, preferred_element_type=jnp.float32)
    dxs.append(dx.astype(x.dtype).reshape(x.shape))
  dkernel = jnp.concatenate(dws, axis=2).astype(kernel.dtype)
  return tuple(dxs), dkernel


_conv_transpose.defvjp(_ct_fwd, _ct_bwd)


def conv_transpose3x3_s2_reference(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The same maths through `lax.conv_transpose` (the "xla" formulation; tests hold the fast forms to it).

  Args:
    x: (B, n, m, C): the inputs concatenated.
    kernel: (3, 3, C, O) as taken by `conv_transpose3x3_s2_gemm`.

  Returns:
    (B, 2n, 2m, O).
  """
  # lax.conv_transpose correlates the dilated input with the kernel, so flip it to get the scatter form.
  return jax.lax.conv_transpose(
      x, kernel[::-1, ::-1], strides=(2, 2), padding=((2, 1), (2, 1)),
      dimension_numbers=DIMENSIONS)


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
                                              dimension_numbers=DIMENSIONS))
    phases.append(jnp.stack(row, 3))  # (B, n, m, 2, O)
  return jnp.stack(phases, 2).reshape(b, 2 * n, 2 * m, kernel.shape[-1])
