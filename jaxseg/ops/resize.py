"""Bilinear upsampling by whole factors as shifted two-tap sums.

`jax.image.resize` computes a bilinear resize as a dense weight matrix per axis applied by `dot_general`, with
the transposes that puts around it. On CPU, upsampling SegFormer-B0's four projected maps (256 channels) to
stride 4 took about 130 ms of a 650 ms train step. By a whole factor f, half-pixel centres make the weights
periodic: output row f m + r reads input rows m + o and m + o + 1 with weights that depend on r only, so each
axis is f weighted sums of two shifted slices (edges replicated, as `jax.image.resize` renormalises there),
interleaved by one reshape.
"""

from functools import partial

import jax
import jax.numpy as jnp


def upsample_bilinear_reference(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Bilinear resize of x (B, H, W, C) to `size` with half-pixel centres, through `jax.image.resize`."""
  return jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), "bilinear", antialias=False)


def _phases(factor: int) -> list[tuple[int, float]]:
  """Per output phase r: (xp index of the lower neighbour of output row f m + r, minus m; the upper one's weight)."""
  out = []
  for r in range(factor):
    t = (r + 0.5) / factor - 0.5  # the source position of output row f m + r, relative to row m
    lo = 1 if t >= 0 else 0
    out.append((lo, t - (lo - 1)))
  return out


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _upsample_axis(x: jax.Array, axis: int, factor: int) -> jax.Array:
  n = x.shape[axis]
  first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
  last = jax.lax.slice_in_dim(x, n - 1, n, axis=axis)
  xp = jnp.concatenate([first, x, last], axis=axis)  # xp[i + 1] = x[i], edges repeated
  shifted = lambda start: jax.lax.slice_in_dim(xp, start, start + n, axis=axis)
  phases = [shifted(lo) * (1 - frac) + shifted(lo + 1) * frac for lo, frac in _phases(factor)]
  out = jnp.stack(phases, axis=axis + 1)
  shape = list(x.shape)
  shape[axis] = n * factor
  return out.reshape(shape)


def _upsample_axis_fwd(x, axis, factor):
  return _upsample_axis(x, axis, factor), None


def _upsample_axis_bwd(axis, factor, _, g):
  """The adjoint: each phase's gradient added back, weighted, at its two source rows. Grouped by offset, that
  is three weighted sums over the phases, S_k landing on xp row m + k (autodiff of the forward took seven
  times as long)."""
  n = g.shape[axis] // factor
  shape = list(g.shape)
  shape[axis:axis + 1] = [n, factor]
  g = g.reshape(shape)
  sums = [None, None, None]
  for r, (lo, frac) in enumerate(_phases(factor)):
    g_r = jax.lax.index_in_dim(g, r, axis=axis + 1, keepdims=False)
    for k, weight in ((lo, 1 - frac), (lo + 1, frac)):
      sums[k] = g_r * weight if sums[k] is None else sums[k] + g_r * weight
  widths = [(0, 0)] * g.ndim
  dxp = None
  for k, s_k in enumerate(sums):
    if s_k is not None:
      widths[axis] = (k, 2 - k)  # S_k occupies xp rows k .. k + n - 1
      dxp = jnp.pad(s_k, widths[:-1]) if dxp is None else dxp + jnp.pad(s_k, widths[:-1])
  inner = jax.lax.slice_in_dim(dxp, 1, n + 1, axis=axis)
  edge = lambda i: jax.lax.slice_in_dim(dxp, i, i + 1, axis=axis)
  widths[axis] = (0, n - 1)
  lead = jnp.pad(edge(0), widths[:-1])
  widths[axis] = (n - 1, 0)
  trail = jnp.pad(edge(n + 1), widths[:-1])
  return (inner + lead + trail,)


_upsample_axis.defvjp(_upsample_axis_fwd, _upsample_axis_bwd)


def upsample_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """`upsample_bilinear_reference`; by whole factors on both axes as shifted two-tap sums (the rest through
  `jax.image.resize`).

  Args:
    x: (B, H, W, C).
    size: the output (height, width).

  Returns:
    (B, *size, C) in x's dtype.
  """
  (h, w), (out_h, out_w) = x.shape[1:3], size
  if (h, w) == (out_h, out_w):
    return x
  if out_h % h or out_w % w or out_h < h or out_w < w:
    return upsample_bilinear_reference(x, size)
  if out_h > h:
    x = _upsample_axis(x, 1, out_h // h)
  if out_w > w:
    x = _upsample_axis(x, 2, out_w // w)
  return x
