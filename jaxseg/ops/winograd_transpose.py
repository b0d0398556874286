"""The U-Net decoder's transposed convolution (3x3, stride 2, 'same') in Winograd form: 25 instead of 36
multiply-adds per 2x2 block of input pixels, for the forward.

Output pixel (2i + r, 2j + c) of a stride-2 transposed convolution only sees the kernel taps of its phase
(r, c): along an axis, even outputs take tap 0 from input i and tap 2 from input i - 1, odd outputs tap 1
from input i. So phase (0, 0) is a 2x2 convolution, phases (0, 1) and (1, 0) 2x1 and 1x2 ones and phase (1, 1)
a 1x1 one. Over tiles of 2x2 input pixels, Winograd's F(2, 2) computes a 2-tap filter's two outputs from three
transformed inputs (d0 - d1, d1, d2 - d1 for inputs i - 1, i, i + 1) with three products instead of four; the
one-tap phase reads the same transformed inputs (d1 and d2 = (d2 - d1) + d1). On both axes that makes nine
transformed planes of the input, each multiplied in one GEMM by the transformed kernels of every phase that
reads it (1, 2 or 4 of them: 25 kernel products instead of 36), and an output transform of additions only.
The transforms' coefficients are 0 and +-1, so float32 results stay within rounding of the direct form.

The decoder is GEMM-bound on CPU (its GEMMs were ~80% of the U-Net's eval step), so it runs this way on CPU in
float32, forward and backward: `winograd_conv_transpose3x3_s2_vjp` is the adjoint of each linear step (output
transform -> plane gradients; plane GEMMs -> input-plane and transformed-kernel gradients; input and kernel
transforms), so the input and weight gradients also take 25 / 36 of the GEMM work.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxseg.ops.common import ceil_div, static_batch
from jaxseg.ops.pointwise import pixel_gemm_t

# Phase parity -> {transformed input index alpha: the kernel taps summed into its transformed kernel}.
_KERNEL_TAPS = ({0: (2,), 1: (2, 0), 2: (0,)}, {1: (1,), 2: (1,)})
# Phase parity -> output transform: output s of a tile = sum over alpha of _OUT[parity][s][alpha] * m[alpha].
_OUT = (((1, 1, 0), (0, 1, 1)), ((0, 1, 0), (0, 1, 1)))

# The thresholds below are where this form starts to pay on CPU (jaxseg/ops/README.md names the bench that
# shows each). Below MIN_FEATURES output channels the per-plane GEMMs get too narrow (the logits layer).
MIN_FEATURES = 32
# The backward's transforms cost more against its GEMMs, so it needs wider layers.
MIN_FEATURES_BACKWARD = 128
# Below this many 2x2 input tiles (each plane GEMM's M) the nine GEMMs and the transforms cost more than they
# save (a single image's first decoder layers have 4 and 16).
MIN_TILES = 512


def tile_count(shape: tuple[int, ...]) -> int:
  """2x2 input tiles of a (B, n, m, C) input (of one image where the batch size is symbolic)."""
  return static_batch(shape) * ceil_div(shape[1], 2) * ceil_div(shape[2], 2)


def _input_transform(x: jax.Array, axis: int) -> list[jax.Array]:
  """Along `axis` (length L), tiles t of two inputs: [x[2t - 1] - x[2t], x[2t], x[2t + 1] - x[2t]], zero
  outside x; each of length ceil(L / 2)."""
  length = x.shape[axis]
  tiles = ceil_div(length, 2)
  pad = [(0, 0)] * x.ndim
  pad[axis] = (1, 2 * tiles - length)
  xp = jnp.pad(x, pad)  # xp[k] = x[k - 1]
  take = lambda start: jax.lax.slice_in_dim(xp, start, start + 2 * tiles - 1, 2, axis)
  prev, cur, nxt = take(0), take(1), take(2)
  return [prev - cur, cur, nxt - cur]


def _kernel_transform(kernel: jax.Array, alpha: int, beta: int, r: int, c: int) -> jax.Array:
  """The (Cin, O) kernel that transformed plane (alpha, beta) is multiplied by for output phase (r, c)."""
  out = None
  for a in _KERNEL_TAPS[r][alpha]:
    for b in _KERNEL_TAPS[c][beta]:
      out = kernel[a, b] if out is None else out + kernel[a, b]
  return out


def _phases(alpha: int, beta: int) -> list[tuple[int, int]]:
  return [(r, c) for r in (0, 1) for c in (0, 1) if alpha in _KERNEL_TAPS[r] and beta in _KERNEL_TAPS[c]]


def winograd_conv_transpose3x3_s2(inputs: Sequence[jax.Array], kernel: jax.Array) -> jax.Array:
  """Keras `Conv2DTranspose(O, 3, strides=2, padding="same")` over the channel concatenation of `inputs`
  (reference: `conv_transpose.conv_transpose3x3_s2_reference`).

  Args:
    inputs: arrays (B, n, m, C_k) sharing B, n, m.
    kernel: (3, 3, sum C_k, O) as `conv_transpose.conv_transpose3x3_s2_gemm` takes it.

  Returns:
    (B, 2n, 2m, O) in the inputs' dtype.
  """
  bsz, n, m, _ = inputs[0].shape
  o = kernel.shape[-1]
  kernel = kernel.astype(inputs[0].dtype)
  # products[(r, c)][alpha][beta]: the (B, T, S, O) product of plane (alpha, beta) for phase (r, c)
  products = {(r, c): {} for r in (0, 1) for c in (0, 1)}
  planes_k, off = [], 0
  for x in inputs:
    cin = x.shape[-1]
    planes_k.append(([_input_transform(u, 2) for u in _input_transform(x, 1)], kernel[:, :, off:off + cin]))
    off += cin
  for alpha in range(3):
    for beta in range(3):
      phases = _phases(alpha, beta)
      acc = None
      for planes, k in planes_k:
        u = planes[alpha][beta]
        w = jnp.concatenate([_kernel_transform(k, alpha, beta, r, c) for r, c in phases], axis=-1)
        y = jnp.dot(u.reshape(-1, u.shape[-1]), w, preferred_element_type=jnp.float32)
        acc = y if acc is None else acc + y
      acc = acc.astype(inputs[0].dtype).reshape(*planes_k[0][0][alpha][beta].shape[:3], len(phases), o)
      for i, rc in enumerate(phases):
        products[rc].setdefault(alpha, {})[beta] = acc[..., i, :]
  rows_out = []
  for s in (0, 1):
    for r in (0, 1):
      cols_out = []
      for q in (0, 1):
        for c in (0, 1):
          out = None
          for alpha, by_beta in products[(r, c)].items():
            for beta, prod in by_beta.items():
              if _OUT[r][s][alpha] and _OUT[c][q][beta]:
                out = prod if out is None else out + prod
          cols_out.append(out)
      rows_out.append(jnp.stack(cols_out, axis=3))  # (B, T, S, 4, O): column offset 2q + c
  y = jnp.stack(rows_out, axis=2)  # (B, T, 4, S, 4, O): row offset 2s + r
  t, sdim = y.shape[1], y.shape[3]
  return y.reshape(bsz, 4 * t, 4 * sdim, o)[:, :2 * n, :2 * m]


def _input_transform_adjoint(du: Sequence[jax.Array], axis: int, length: int) -> jax.Array:
  """The adjoint of `_input_transform`: [du0, du1, du2] (each T long on `axis`) -> d x (`length` long)."""
  d0, d1, d2 = du
  zero = jnp.zeros_like(jax.lax.slice_in_dim(d0, 0, 1, axis=axis))
  d0_next = jnp.concatenate([jax.lax.slice_in_dim(d0, 1, d0.shape[axis], axis=axis), zero], axis=axis)
  even, odd = d1 - d0 - d2, d2 + d0_next  # x[2t] is cur of tile t; x[2t + 1] nxt of t and prev of t + 1
  both = jnp.stack([even, odd], axis=axis + 1)
  shape = list(d0.shape)
  shape[axis] *= 2
  return jax.lax.slice_in_dim(both.reshape(shape), 0, length, axis=axis)


def winograd_conv_transpose3x3_s2_vjp(inputs: Sequence[jax.Array], kernel: jax.Array,
                                      g: jax.Array) -> tuple[tuple[jax.Array, ...], jax.Array]:
  """The VJP of `winograd_conv_transpose3x3_s2`: (input gradients, kernel gradient) for the output gradient g.

  Args:
    inputs: the forward's inputs, (B, n, m, C_k).
    kernel: (3, 3, sum C_k, O).
    g: (B, 2n, 2m, O).

  Returns:
    (tuple of d inputs in their dtypes, d kernel (3, 3, sum C_k, O) float32).
  """
  bsz, n, m, _ = inputs[0].shape
  o = kernel.shape[-1]
  dtype = inputs[0].dtype
  t, sdim = ceil_div(n, 2), ceil_div(m, 2)
  kernel = kernel.astype(dtype)
  g = jnp.pad(g.astype(dtype), ((0, 0), (0, 4 * t - 2 * n), (0, 4 * sdim - 2 * m), (0, 0)))
  g = g.reshape(bsz, t, 2, 2, sdim, 2, 2, o)  # (B, t, s, r, u, q, c, O)
  sizes = [x.shape[-1] for x in inputs]
  planes = [[[_input_transform(r, 2)[beta] for beta in range(3)] for r in _input_transform(x, 1)]
            for x in inputs]
  d_planes = [[[None] * 3 for _ in range(3)] for _ in inputs]
  dk = jnp.zeros((3, 3, sum(sizes), o), jnp.float32)
  for alpha in range(3):
    for beta in range(3):
      phases = _phases(alpha, beta)
      # Adjoint of the output transform: the plane's gradient for phase (r, c) sums the output positions
      # (s, q) whose transform reads this plane.
      gm = []
      for r, c in phases:
        acc = None
        for s_ in (0, 1):
          for q in (0, 1):
            if _OUT[r][s_][alpha] and _OUT[c][q][beta]:
              part = g[:, :, s_, r, :, q, c]
              acc = part if acc is None else acc + part
        gm.append(acc)
      gm = jnp.stack(gm, axis=3).reshape(bsz * t * sdim, len(phases) * o)
      off = 0
      for i, (x_planes, cin) in enumerate(zip(planes, sizes)):
        k = kernel[:, :, off:off + cin]
        w = jnp.concatenate([_kernel_transform(k, alpha, beta, r, c) for r, c in phases], axis=-1)
        d_planes[i][alpha][beta] = jnp.dot(gm, w.T, preferred_element_type=jnp.float32).astype(dtype).reshape(
            bsz, t, sdim, cin)
        u = x_planes[alpha][beta]
        dw = pixel_gemm_t(u.reshape(-1, cin), gm).reshape(cin, len(phases), o)
        # Adjoint of the kernel transform: each tap summed into a transformed kernel gets its gradient.
        for j, (r, c) in enumerate(phases):
          for a in _KERNEL_TAPS[r][alpha]:
            for b in _KERNEL_TAPS[c][beta]:
              dk = dk.at[a, b, off:off + cin].add(dw[:, j])
        off += cin
  dxs = []
  for x, dp in zip(inputs, d_planes):
    rows = [_input_transform_adjoint(dp[alpha], 2, m) for alpha in range(3)]
    dxs.append(_input_transform_adjoint(rows, 1, n).astype(x.dtype))
  return tuple(dxs), dk
