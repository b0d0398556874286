"""1x1 convolutions as GEMMs, and the GEMM shape XLA:CPU lays out badly on its own: a weight gradient's
contraction over every pixel."""

from functools import partial

import jax
import jax.numpy as jnp

from jaxseg.ops.common import gemm, lax_conv


def pixel_gemm_t(a: jax.Array, b: jax.Array, *, gemm_dtype=None) -> jax.Array:
  """a.T @ b for a (M, C) and b (M, O) with M the batch's pixel count (a weight gradient), in float32.

  XLA:CPU feeds such a dot by copying its wider operand into a transposed layout (for MobileNetV2's
  block_1_expand on a CamVid batch, a 69 MB copy and a slow dot). Transposing the narrower operand instead,
  kept from being folded back into the dot by an optimization barrier, makes it a plain GEMM.
  """
  dtype = gemm_dtype or a.dtype
  a, b = a.astype(dtype), b.astype(dtype)
  if a.shape[1] <= b.shape[1]:
    return jnp.dot(jax.lax.optimization_barrier(a.T), b, preferred_element_type=jnp.float32)
  return jnp.dot(jax.lax.optimization_barrier(b.T), a, preferred_element_type=jnp.float32).T


def pointwise_conv_gemm(x: jax.Array, kernel: jax.Array, *, gemm_dtype=None) -> jax.Array:
  """A 1x1 convolution as one GEMM on gemm_dtype inputs (None: x's dtype), accumulated in float32.

  Args:
    x: (..., Cin).
    kernel: (1, 1, Cin, Cout).
    gemm_dtype: the GEMM input dtype.

  Returns:
    (..., Cout) in x's dtype.
  """
  return _matmul_cast(x, kernel[0, 0].astype(x.dtype), gemm_dtype)


def pointwise_reference(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """`pointwise_conv_gemm` as a `lax` convolution (the "xla" formulation)."""
  return lax_conv(x, kernel)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul_cast(x: jax.Array, w: jax.Array, gemm_dtype) -> jax.Array:
  """x (..., C) @ w (C, O) on gemm_dtype inputs, in x's dtype. Autodiff would run the backward GEMMs on the
  float32 cotangent, and leave the weight gradient's layout to XLA (`pixel_gemm_t`)."""
  return gemm("...c,co->...o", x, w, gemm_dtype).astype(x.dtype)


def _matmul_cast_fwd(x, w, gemm_dtype):
  return _matmul_cast(x, w, gemm_dtype), (x, w)


def _matmul_cast_bwd(gemm_dtype, res, g):
  x, w = res
  dx = gemm("...o,co->...c", g, w, gemm_dtype).astype(x.dtype)
  dw = pixel_gemm_t(x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1]), gemm_dtype=gemm_dtype)
  return dx, dw.astype(w.dtype)


_matmul_cast.defvjp(_matmul_cast_fwd, _matmul_cast_bwd)
