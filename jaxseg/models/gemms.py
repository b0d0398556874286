"""A GEMM shape XLA:CPU lays out badly on its own: the weight gradient's contraction over every pixel."""

import jax
import jax.numpy as jnp


def pixel_gemm_t(a: jax.Array, b: jax.Array, gemm_dtype=None) -> jax.Array:
  """a.T @ b for a (M, C) and b (M, O) with M the batch's pixel count (a weight gradient), in float32.

  XLA:CPU feeds such a dot by copying its wider operand into a transposed layout (for MobileNetV2's
  block_1_expand on 8 CamVid crops, a 69 MB copy and a slow dot: ~95 ms). Transposing the narrower operand
  instead, kept from being folded back into the dot by an optimization barrier, makes it a plain GEMM
  (the encoder's backward 0.68 -> 0.55 s there).
  """
  dtype = gemm_dtype or a.dtype
  a, b = a.astype(dtype), b.astype(dtype)
  if a.shape[1] <= b.shape[1]:
    return jnp.dot(jax.lax.optimization_barrier(a.T), b, preferred_element_type=jnp.float32)
  return jnp.dot(jax.lax.optimization_barrier(b.T), a, preferred_element_type=jnp.float32).T
