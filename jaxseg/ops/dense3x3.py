"""Dense 3x3 convolutions: DeepLab's stride-1 (optionally atrous) ones with a weight gradient written as GEMMs,
and MobileNetV2's stem (3 input channels, stride 2) as broadcast multiply-adds.

On XLA:CPU the forward `lax` convolution and its input gradient (a convolution with the flipped kernel) run at
the speed of a GEMM of the same size, but the autodiffed weight gradient does not. Here it is nine GEMMs of
the input against shifted windows of the output gradient (shifting the narrower tensor is the cheaper copy).
Taps whose window lies wholly in the zero padding (an atrous rate at least the map's size, as ASPP's rate 18
on a 14x14 map) are dropped, which turns such a branch into the 1x1 convolution it really is. With bfloat16
GEMM inputs the forward is nine shifted GEMMs too: XLA:CPU's convolution does not use the CPU's bf16 dot
products, its GEMMs do.
"""

from functools import partial

import jax
import jax.numpy as jnp

from jaxseg.ops.common import gemm, lax_conv, out_size, pad_same, tap


def live_taps(h: int, w: int, dilation: int) -> list[tuple[int, int]]:
  """Kernel taps (a, b) whose input window overlaps an (h, w) map: |offset| < size on both axes."""
  live = lambda t, size: abs(t - 1) * dilation < size
  return [(a, b) for a in range(3) for b in range(3) if live(a, h) and live(b, w)]


def conv3x3_gemm(x: jax.Array, kernel: jax.Array, *, dilation: int = 1, gemm_dtype=None) -> jax.Array:
  """A 'same'-padded, stride-1, optionally atrous 3x3 convolution with the hand-written VJP above.

  Args:
    x: (B, H, W, Cin).
    kernel: (3, 3, Cin, Cout), cast to x's dtype.
    dilation: the atrous rate.
    gemm_dtype: the GEMM input dtype (None: x's dtype), accumulated in float32.

  Returns:
    (B, H, W, Cout) in x's dtype.
  """
  return _conv3x3(x, kernel.astype(x.dtype), dilation, gemm_dtype)


def conv3x3_reference(x: jax.Array, kernel: jax.Array, *, stride: int = 1, dilation: int = 1,
                      precision=None) -> jax.Array:
  """`conv3x3_gemm`, `stem_conv3x3_gemm` and `winograd.winograd_conv3x3` as a `lax` convolution
  (the "xla" formulation)."""
  return lax_conv(x, kernel, stride=stride, dilation=dilation, precision=precision)


def _shifted_sum(x: jax.Array, kernel: jax.Array, dilation: int, gemm_dtype) -> jax.Array:
  """sum over live taps of window(x, tap) @ kernel[tap]: the convolution as shifted GEMMs."""
  h, w = x.shape[1:3]
  d = dilation
  xp = jnp.pad(x.astype(gemm_dtype or x.dtype), ((0, 0), (d, d), (d, d), (0, 0)))
  out = None
  for a, b in live_taps(h, w, d):
    term = gemm("bhwc,co->bhwo", tap(xp, a * d, b * d, h, w, 1), kernel[a, b], gemm_dtype)
    out = term if out is None else out + term
  return out.astype(x.dtype)


def _apply(x: jax.Array, kernel: jax.Array, dilation: int, gemm_dtype) -> jax.Array:
  if gemm_dtype is None and len(live_taps(*x.shape[1:3], dilation)) == 9:
    return lax_conv(x, kernel, dilation=dilation)
  return _shifted_sum(x, kernel, dilation, gemm_dtype)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv3x3(x: jax.Array, kernel: jax.Array, dilation: int, gemm_dtype) -> jax.Array:
  return _apply(x, kernel, dilation, gemm_dtype)


def _conv3x3_fwd(x, kernel, dilation, gemm_dtype):
  return _apply(x, kernel, dilation, gemm_dtype), (x, kernel)


def _conv3x3_bwd(dilation, gemm_dtype, res, g):
  x, kernel = res
  g = g.astype(x.dtype)
  # The input gradient is the convolution of g with the kernel flipped in space, in and out swapped.
  dx = _apply(g, kernel[::-1, ::-1].transpose(0, 1, 3, 2), dilation, gemm_dtype)
  h, w = x.shape[1:3]
  d = dilation
  gp = jnp.pad(g.astype(gemm_dtype or g.dtype), ((0, 0), (d, d), (d, d), (0, 0)))
  dk = jnp.zeros(kernel.shape, jnp.float32)
  for a, b in live_taps(h, w, d):
    # out[i, j] += x[i + (a-1)d, j + (b-1)d] K[a, b]  =>  dK[a, b] = sum x[p] g[p - (a-1)d]
    win = tap(gp, (2 - a) * d, (2 - b) * d, h, w, 1)
    dk = dk.at[a, b].set(gemm("bhwc,bhwo->co", x, win, gemm_dtype))
  return dx, dk.astype(kernel.dtype)


_conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def stem_conv3x3_gemm(x: jax.Array, kernel: jax.Array, *, stride: int = 2) -> jax.Array:
  """A 'same'-padded 3x3 convolution on few input channels (MobileNetV2's `Conv1`) as 9 * Cin broadcast
  multiply-adds (a GEMM only 27 deep would be too shallow to be efficient).

  Its weight gradient is one GEMM of the 9 * Cin input windows (small: Cin columns each) against the output
  gradient; autodiff would broadcast every input channel to the output's width first.

  Args:
    x: (B, H, W, Cin), Cin small.
    kernel: (3, 3, Cin, Cout).
    stride: the stride.

  Returns:
    (B, ceil(H / stride), ceil(W / stride), Cout) in x's dtype.
  """
  return _stem(x, kernel, stride)


def _stem_apply(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  xp = pad_same(x, 3, stride)
  out_h, out_w = out_size(x.shape, stride)
  kernel = kernel.astype(x.dtype)
  out = None
  for a in range(3):
    for b in range(3):
      window = tap(xp, a, b, out_h, out_w, stride)
      for c in range(x.shape[-1]):
        term = window[..., c:c + 1] * kernel[a, b, c]
        out = term if out is None else out + term
  return out


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _stem(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  return _stem_apply(x, kernel, stride)


def _stem_fwd(x, kernel, stride):
  return _stem_apply(x, kernel, stride), (x, kernel)


def _stem_bwd(stride, res, g):
  x, kernel = res
  xp = pad_same(x, 3, stride)
  out_h, out_w = g.shape[1:3]
  cols = jnp.concatenate([tap(xp, a, b, out_h, out_w, stride) for a in range(3) for b in range(3)], axis=-1)
  dk = jnp.einsum("bhwk,bhwo->ko", cols, g.astype(x.dtype), preferred_element_type=jnp.float32)
  # The input gradient (of images, so unused by training; XLA drops it) through XLA's convolution transpose.
  dx = jax.vjp(lambda x: lax_conv(x, kernel, stride=stride), x)[1](g.astype(x.dtype))[0]
  return dx, dk.reshape(kernel.shape).astype(kernel.dtype)


_stem.defvjp(_stem_fwd, _stem_bwd)
