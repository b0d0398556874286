"""Depthwise convolutions (any odd kernel, stride, dilation and padding) as shifted multiply-adds, with a
hand-written VJP.

The forward is k x k shifted multiply-adds over one padded input, fused into one XLA loop; XLA:CPU's grouped
convolution is far slower (a 3x3 stride-2 depthwise layer of an EfficientNet took 60 ms where the loop takes
a few). Autodiff of the loop is what costs when the encoder is trained: XLA materialises the shifted windows
of the input once for the forward and the weight gradient to share, and transposes each slice into a padded
copy of the output gradient inside the input gradient's loop (per-element bounds checks, not vectorised). On
CamVid-sized batches MobileNetV2's backward took ten times its forward. Here the input gradient is the same
kind of loop over a padded output gradient (a correlation with the flipped kernel; for stride s, one loop per
output phase), and the weight gradient sums the k x k products in chunks of the width inside one loop before
reducing, so the input and the output gradient are read about once instead of k x k times.
"""

from functools import partial

import jax
import jax.numpy as jnp

from jaxseg.ops.common import ceil_div, lax_conv, same_padding, tap

# Width chunk of the weight gradient's first summation: long enough that the partial sums written out are
# small (k^2 / CHUNK of the output gradient), short enough that the chunk's window stays in cache.
CHUNK = 8

Padding = tuple[tuple[int, int], tuple[int, int]]


def same_pads(shape: tuple[int, ...], kernel: int, stride: int, dilation: int) -> Padding:
  """TensorFlow's 'same' padding (Keras `correct_pad` for stride 2) of a (B, H, W, C) input, both axes."""
  span = (kernel - 1) * dilation + 1
  return same_padding(shape[1], span, stride), same_padding(shape[2], span, stride)


def depthwise_conv_gemm(x: jax.Array, kernel: jax.Array, *, stride: int = 1, dilation: int = 1,
                        padding: Padding | None = None) -> jax.Array:
  """Keras `DepthwiseConv2D(k, strides=stride, dilation_rate=dilation)` on x zero-padded by `padding`.

  Args:
    x: (B, H, W, C).
    kernel: (k, k, C, 1).
    stride: the stride on both axes.
    dilation: the atrous rate.
    padding: ((top, bottom), (left, right)) zeros; None: TensorFlow's 'same'.

  Returns:
    (B, H', W', C) in x's dtype, H' = (top + H + bottom - (k - 1) dilation - 1) // stride + 1.
  """
  pads = same_pads(x.shape, kernel.shape[0], stride, dilation) if padding is None else padding
  return _depthwise(x, kernel, stride, dilation, tuple(map(tuple, pads)))


def depthwise_conv3x3_gemm(x: jax.Array, kernel: jax.Array, *, stride: int = 1, dilation: int = 1) -> jax.Array:
  """`depthwise_conv_gemm` of a (3, 3, C, 1) kernel with 'same'/`correct_pad` padding (MobileNetV2's)."""
  return depthwise_conv_gemm(x, kernel, stride=stride, dilation=dilation)


def depthwise_reference(x: jax.Array, kernel: jax.Array, *, stride: int = 1, dilation: int = 1,
                        padding: Padding | None = None, precision=None) -> jax.Array:
  """`depthwise_conv_gemm` as a grouped `lax` convolution (the "xla" formulation)."""
  k = kernel.shape[0]
  return lax_conv(x, kernel.reshape(k, k, 1, -1), stride=stride, dilation=dilation, groups=x.shape[-1],
                  padding=padding, precision=precision)


def _out_len(padded: int, k: int, stride: int, dilation: int) -> int:
  return (padded - (k - 1) * dilation - 1) // stride + 1


def _padded_windows(x: jax.Array, k: int, stride: int, dilation: int, pads: Padding):
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  out_h, out_w = (_out_len(xp.shape[i], k, stride, dilation) for i in (1, 2))
  return [tap(xp, a * dilation, b * dilation, out_h, out_w, stride) for a in range(k) for b in range(k)]


def _windows_sum(x: jax.Array, kernel: jax.Array, stride: int, dilation: int, pads: Padding) -> jax.Array:
  k = kernel.shape[0]
  w = kernel[..., 0].astype(x.dtype).reshape(k * k, -1)
  out = None
  for i, win in enumerate(_padded_windows(x, k, stride, dilation, pads)):
    out = win * w[i] if out is None else out + win * w[i]
  return out


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _depthwise(x: jax.Array, kernel: jax.Array, stride: int, dilation: int, pads: Padding) -> jax.Array:
  return _windows_sum(x, kernel, stride, dilation, pads)


def _dw_fwd(x, kernel, stride, dilation, pads):
  return _windows_sum(x, kernel, stride, dilation, pads), (x, kernel)


def _dw_input_grad(g: jax.Array, k: jax.Array, stride: int, dilation: int, pads: Padding,
                   h: int, w: int) -> jax.Array:
  """d loss / d x from g (B, out_h, out_w, C); k (kh, kw, C) in g's dtype.

  In padded coordinates out[r] = sum_a xp[s r + a d] k[a], so padded row s m + p gathers g[m - j] k[a] from the
  taps with a d = s j + p: one stride-1 loop per phase p (and per column phase), interleaved by one copy."""
  s, d, n = stride, dilation, k.shape[0]
  hp, wp = h + sum(pads[0]), w + sum(pads[1])
  rows_m, cols_m = ceil_div(hp, s), ceil_div(wp, s)
  taps = [divmod(a * d, s) for a in range(n)]  # (j, phase) per tap
  jmax = max(j for j, _ in taps)
  # gp[J + t] = g[t], zero elsewhere, long enough for every phase's window of rows_m x cols_m.
  gp = jnp.pad(g, ((0, 0), (jmax, rows_m - g.shape[1]), (jmax, cols_m - g.shape[2]), (0, 0)))
  phases = []
  for p in range(s):
    row = []
    for q in range(s):
      out = None
      for a, (ja, pa) in enumerate(taps):
        for b, (jb, pb) in enumerate(taps):
          if (pa, pb) != (p, q):
            continue
          term = gp[:, jmax - ja:jmax - ja + rows_m, jmax - jb:jmax - jb + cols_m, :] * k[a, b]
          out = term if out is None else out + term
      row.append(jnp.zeros((g.shape[0], rows_m, cols_m, g.shape[3]), g.dtype) if out is None else out)
    phases.append(row)
  if s == 1:
    full = phases[0][0]
  else:
    full = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)
    full = full.reshape(g.shape[0], s * rows_m, s * cols_m, g.shape[3])
  (top, _), (left, _) = pads
  return full[:, top:top + h, left:left + w, :]


def _window_products_sum(windows, g: jax.Array) -> jax.Array:
  """sum over (B, H, W) of window * g for each window (each (B, H, W, C)): (len(windows), C) in float32.

  The products are first summed over chunks of CHUNK columns by explicit adds, all windows in one loop (their
  inputs overlap, so they are read from cache), then reduced."""
  bsz, h, w, c = g.shape
  pad = -w % CHUNK
  g = g.astype(jnp.float32)
  parts = []
  for win in windows:
    prod = win.astype(jnp.float32) * g
    if pad:
      prod = jnp.pad(prod, ((0, 0), (0, 0), (0, pad), (0, 0)))
    prod = prod.reshape(bsz, h, (w + pad) // CHUNK, CHUNK, c)
    acc = prod[:, :, :, 0]
    for u in range(1, CHUNK):
      acc = acc + prod[:, :, :, u]
    parts.append(acc)
  return jnp.stack(parts, axis=3).sum(axis=(0, 1, 2))


def _dw_bwd(stride, dilation, pads, res, g):
  x, kernel = res
  g = g.astype(x.dtype)
  k = kernel.shape[0]
  dx = _dw_input_grad(g, kernel[..., 0].astype(x.dtype), stride, dilation, pads, *x.shape[1:3])
  dk = _window_products_sum(_padded_windows(x, k, stride, dilation, pads), g).reshape(k, k, -1, 1)
  return dx, dk.astype(kernel.dtype)


_depthwise.defvjp(_dw_fwd, _dw_bwd)
