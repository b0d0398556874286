"""MobileNetV2's depthwise 3x3 convolutions as shifted multiply-adds, with a hand-written VJP.

The forward is nine shifted multiply-adds over one padded input, fused into one XLA loop. Autodiff of
it is what costs when the encoder is trained: XLA materialises the nine shifted windows of the input once
for the forward and the weight gradient to share, and transposes each slice into a padded copy of the output
gradient inside the input gradient's loop (per-element bounds checks, not vectorised). On CamVid-sized
batches the encoder's backward took ten times its forward. Here the input gradient is the same kind of loop
over a padded output gradient (a correlation with the flipped kernel; for stride 2, one loop per output
phase), and the weight gradient sums the nine products in chunks of the width inside one loop before
reducing, so the input and the output gradient are read about once instead of nine times.
"""

from functools import partial

import jax
import jax.numpy as jnp

from jaxseg.ops.common import lax_conv, out_size, pad_same, same_padding, tap

# Width chunk of the weight gradient's first summation: long enough that the partial sums written out are
# small (9 / CHUNK of the output gradient), short enough that the chunk's window stays in cache.
CHUNK = 8


def _windows_sum(x: jax.Array, kernel: jax.Array, stride: int, dilation: int) -> jax.Array:
  xp = pad_same(x, 2 * dilation + 1, stride)
  out_h, out_w = out_size(x.shape, stride)
  k = kernel[..., 0].astype(x.dtype)
  out = None
  for a in range(3):
    for b in range(3):
      term = tap(xp, a * dilation, b * dilation, out_h, out_w, stride) * k[a, b]
      out = term if out is None else out + term
  return out


def depthwise_conv3x3_gemm(x: jax.Array, kernel: jax.Array, *, stride: int = 1, dilation: int = 1) -> jax.Array:
  """Keras `DepthwiseConv2D(3, strides=stride, dilation_rate=dilation)`, 'same'/correct_pad padded.

  Args:
    x: (B, H, W, C).
    kernel: (3, 3, C, 1).
    stride: 1 or 2 (with stride 2, dilation 1).
    dilation: the atrous rate.

  Returns:
    (B, ceil(H / stride), ceil(W / stride), C) in x's dtype.
  """
  return _depthwise(x, kernel, stride, dilation)


def depthwise_reference(x: jax.Array, kernel: jax.Array, *, stride: int = 1, dilation: int = 1,
                        precision=None) -> jax.Array:
  """`depthwise_conv3x3_gemm` as a grouped `lax` convolution (the "xla" formulation)."""
  return lax_conv(x, kernel.reshape(3, 3, 1, -1), stride=stride, dilation=dilation, groups=x.shape[-1],
                  precision=precision)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise(x: jax.Array, kernel: jax.Array, stride: int, dilation: int) -> jax.Array:
  return _windows_sum(x, kernel, stride, dilation)


def _dw_fwd(x, kernel, stride, dilation):
  return _windows_sum(x, kernel, stride, dilation), (x, kernel)


def _dw_input_grad(g: jax.Array, k: jax.Array, stride: int, dilation: int, h: int, w: int) -> jax.Array:
  """d loss / d x of `depthwise_conv3x3_gemm` from g (B, out_h, out_w, C); k (3, 3, C) in g's dtype."""
  d = dilation
  lo_h, lo_w = same_padding(h, 2 * d + 1, stride)[0], same_padding(w, 2 * d + 1, stride)[0]
  if stride == 1:
    # out[i] = sum_a x[i - lo + a d] k[a]  =>  dx[q] = sum_a g[q + lo - a d] k[a]
    gp = jnp.pad(g, ((0, 0), (2 * d - lo_h, lo_h), (2 * d - lo_w, lo_w), (0, 0)))
    out = None
    for a in range(3):
      for b in range(3):
        term = gp[:, (2 - a) * d:(2 - a) * d + h, (2 - b) * d:(2 - b) * d + w, :] * k[a, b]
        out = term if out is None else out + term
    return out
  # Stride 2, in padded coordinates: even rows 2r take tap 0 from g[r] and tap 2 from g[r - 1], odd rows tap 1
  # from g[r]; columns alike. Each of the four phases is one loop; interleaving them is one copy.
  n, m = g.shape[1] + 1, g.shape[2] + 1
  gp = jnp.pad(g, ((0, 0), (1, 1), (1, 1), (0, 0)))  # gp[r + 1] = g[r]
  taps = {0: ((0, 0), (2, -1)), 1: ((1, 0),)}  # phase -> (kernel tap, row offset into g)
  rows = []
  for p in (0, 1):
    cols = []
    for q in (0, 1):
      out = None
      for a, dr in taps[p]:
        for b, dc in taps[q]:
          term = gp[:, 1 + dr:1 + dr + n, 1 + dc:1 + dc + m, :] * k[a, b]
          out = term if out is None else out + term
      cols.append(out)
    rows.append(jnp.stack(cols, axis=3))
  full = jnp.stack(rows, axis=2).reshape(g.shape[0], 2 * n, 2 * m, g.shape[3])
  return full[:, lo_h:lo_h + h, lo_w:lo_w + w, :]


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


def _dw_bwd(stride, dilation, res, g):
  x, kernel = res
  g = g.astype(x.dtype)
  h, w = x.shape[1:3]
  dx = _dw_input_grad(g, kernel[..., 0].astype(x.dtype), stride, dilation, h, w)
  xp = pad_same(x, 2 * dilation + 1, stride)
  out_h, out_w = g.shape[1:3]
  wins = [tap(xp, a * dilation, b * dilation, out_h, out_w, stride) for a in range(3) for b in range(3)]
  dk = _window_products_sum(wins, g).reshape(3, 3, -1, 1)
  return dx, dk.astype(kernel.dtype)


_depthwise.defvjp(_dw_fwd, _dw_bwd)
