"""Winograd F(4x4, 3x3): a dense, 'same'-padded, stride-1 3x3 convolution in a quarter of the multiplications.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). The output is cut into 4x4 tiles;
each reads a 6x6 input tile d, and y = A^T [(G g G^T) * (B^T d B)] A. Summed over input channels, the 36
elementwise products are 36 GEMMs of (tiles x Cin) @ (Cin x Cout): 36 / 16 = 2.25 multiply-adds per output
pixel and channel pair instead of 9. The transforms are sums of shifted planes, memory-bound but cheap next
to the GEMMs they save at DeepLab's decoder sizes (304 -> 256 channels on stride-4 maps).

Every part of the VJP is the same kind of computation: the input gradient is this convolution of the output
gradient with the kernel flipped in space (in and out swapped), and the weight gradient is 36 GEMMs of the
transformed input against the transformed output gradient, mapped back to the 3x3 kernel by G^T . G.

Accuracy in float32 is a few 1e-6 relative to the output's scale (the transforms' coefficients reach 8 and
1/24); with bfloat16 GEMM inputs that would grow past what training tolerates, so callers use it in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxseg.ops.common import ceil_div, static_batch

M = 4  # output tile
N = M + 2  # input tile
# Below this many tiles per batch the 36 small GEMMs and the transform passes cost more than they save
# (jaxseg/ops/README.md names the command that shows it).
MIN_TILES = 256
BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float32)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float32)
AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float32)


def _combine(planes: list, matrix: np.ndarray) -> list:
  """[sum_i matrix[r, i] * planes[i] for each row r], skipping zeros and multiplications by +-1."""
  out = []
  for row in matrix:
    acc = None
    for coef, p in zip(row, planes):
      if coef == 0:
        continue
      term = p if coef == 1 else -p if coef == -1 else p * coef
      acc = term if acc is None else acc + term
    out.append(acc)
  return out


def _tile_counts(h: int, w: int) -> tuple[int, int]:
  return ceil_div(h, M), ceil_div(w, M)


def tile_count(shape: tuple[int, ...]) -> int:
  """Output tiles of a (B, H, W, C) input: the M of each of the 36 GEMMs (of one image where the batch size is
  symbolic)."""
  th, tw = _tile_counts(*shape[1:3])
  return static_batch(shape) * th * tw


def input_planes(x: jax.Array, axes: tuple[int, int] = (1, 2)) -> list[list[jax.Array]]:
  """B^T d B for every 6x6 input tile: 6x6 planes (B, tiles_h, tiles_w, C), plane [i][j] = entry (i, j).

  Args:
    x: the input, (B, H, W, C), or any layout with the spatial axes at `axes` (the planes keep it).
    axes: the (height, width) axes of x.
  """
  (ah, aw), (h, w) = axes, (x.shape[axes[0]], x.shape[axes[1]])
  th, tw = _tile_counts(h, w)
  pads = [(0, 0)] * x.ndim
  pads[ah], pads[aw] = (1, M * th + 1 - h), (1, M * tw + 1 - w)
  xp = jnp.pad(x, pads)
  shifted = lambda t, i, axis, n: lax.slice_in_dim(t, i, i + M * (n - 1) + 1, M, axis)
  rows = _combine([shifted(xp, i, ah, th) for i in range(N)], BT)
  return [_combine([shifted(r, j, aw, tw) for j in range(N)], BT) for r in rows]


def kernel_transform(kernel: jax.Array) -> jax.Array:
  """G g G^T: (3, 3, Cin, Cout) -> (6, 6, Cin, Cout)."""
  return jnp.einsum("xa,abio,yb->xyio", G, kernel, G, precision=lax.Precision.HIGHEST)


def _output(products: list[list[jax.Array]], h: int, w: int) -> jax.Array:
  """A^T m A per tile, the 4x4 output tiles interleaved back into (B, h, w, Cout)."""
  rows = [_combine(list(col), AT) for col in zip(*products)]  # rows[j][p]: column entry j, output row p
  out = [_combine([rows[j][p] for j in range(N)], AT) for p in range(M)]  # out[p][q]
  b, th, tw, c = out[0][0].shape
  y = jnp.stack([jnp.stack(o, 3) for o in out], 2)  # (B, th, 4, tw, 4, C)
  return y.reshape(b, M * th, M * tw, c)[:, :h, :w]


def _conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  u = kernel_transform(kernel)
  v = input_planes(x)
  products = [[jnp.einsum("bhwc,co->bhwo", v[i][j], u[i, j]) for j in range(N)] for i in range(N)]
  return _output(products, *x.shape[1:3])


@jax.custom_vjp
def winograd_conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """'same' stride-1 3x3 convolution (reference: `dense3x3.conv3x3_reference`).

  Args:
    x: (B, H, W, Cin) float32.
    kernel: (3, 3, Cin, Cout) float32.

  Returns:
    (B, H, W, Cout) float32.
  """
  return _conv(x, kernel)


def _fwd(x, kernel):
  # x, not its planes (2.25x its size), is kept: recomputing them measured as fast as storing them.
  return _conv(x, kernel), (x, kernel)


def _bwd(res, g):
  x, kernel = res
  dx = _conv(g, kernel[::-1, ::-1].transpose(0, 1, 3, 2))
  h, w = x.shape[1:3]
  th, tw = _tile_counts(h, w)
  gp = jnp.pad(g, ((0, 0), (0, M * th - h), (0, M * tw - w), (0, 0)))
  # y[p, q] = sum_ij AT[p, i] AT[q, j] m[i, j]  =>  dm[i, j] = sum_pq AT[p, i] AT[q, j] dy[p, q]
  phases = [[gp[:, p::M, q::M] for q in range(M)] for p in range(M)]
  cols = [_combine(list(row), AT.T) for row in phases]  # cols[p][j]
  dm = [_combine([cols[p][j] for p in range(M)], AT.T) for j in range(N)]  # dm[j][i]
  # The weight-gradient GEMMs contract over the tiles. With the planes in x's layout XLA copies each into
  # (Cin, tiles) order, fused with the strided transform: 20x slower than the transform itself. Transposing
  # x once (a plain copy) and transforming in that layout hands the GEMMs operands they take as they are.
  vt = input_planes(x.transpose(3, 0, 1, 2), axes=(2, 3))
  du = jnp.stack([jnp.stack([jnp.einsum("cbhw,bhwo->co", vt[i][j], dm[j][i]) for j in range(N)])
                  for i in range(N)])
  dk = jnp.einsum("xa,xyio,yb->abio", G, du, G, precision=lax.Precision.HIGHEST)
  return dx, dk.astype(kernel.dtype)


winograd_conv3x3.defvjp(_fwd, _bwd)
