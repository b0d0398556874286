"""Helpers every kernel shares: TensorFlow's 'same' padding, tap windows, sizes, and the GEMM and `lax`
convolution every formulation reduces to."""

import jax
import jax.numpy as jnp

DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def ceil_div(n: int, m: int) -> int:
  """ceil(n / m) for integers, without floats."""
  return -(-n // m)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TensorFlow's 'same' padding for one spatial axis (also Keras `correct_pad` for stride 2).

  Args:
    size: input length along the axis.
    kernel: kernel length (with a dilation d, `(kernel - 1) * d + 1`).
    stride: stride.

  Returns:
    (pad_before, pad_after); for stride 2 and even sizes this is (0, 1).
  """
  total = max((ceil_div(size, stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def pad_same(x: jax.Array, kernel: int, stride: int) -> jax.Array:
  """x (B, H, W, C) zero-padded by `same_padding` on both spatial axes."""
  ph = same_padding(x.shape[1], kernel, stride)
  pw = same_padding(x.shape[2], kernel, stride)
  return jnp.pad(x, ((0, 0), ph, pw, (0, 0)))


def out_size(shape: tuple[int, ...], stride: int) -> tuple[int, int]:
  """The 'same'-padded output (height, width) of a (B, H, W, C) input at `stride`."""
  return ceil_div(shape[1], stride), ceil_div(shape[2], stride)


def tap(xp: jax.Array, a: int, b: int, out_h: int, out_w: int, stride: int) -> jax.Array:
  """The window of the padded input that kernel tap offset (a, b) multiplies, for every output pixel."""
  return xp[:, a:a + stride * (out_h - 1) + 1:stride, b:b + stride * (out_w - 1) + 1:stride, :]


def static_batch(shape: tuple[int, ...]) -> int:
  """The batch size of a (B, ...) shape, or 1 where it is symbolic (an export for any batch size): what the
  size thresholds of the Winograd forms count."""
  return shape[0] if jax.core.is_constant_dim(shape[0]) else 1


def float32_on_cpu(x: jax.Array, gemm_dtype) -> bool:
  """Where the Winograd forms run: float32 compute and GEMMs (bf16 would amplify their rounding), on CPU (on
  accelerators the model is memory-bound, and the transforms add traffic)."""
  return x.dtype == jnp.float32 and gemm_dtype is None and jax.default_backend() == "cpu"


def row_dot(x: jax.Array, weight: float) -> jax.Array:
  """weight times the sum of each row of x (..., K), as a product with a constant (K, 1) column: (..., 1).
  Inside a fusion XLA:CPU reduces a short minor axis one row at a time; as a matrix-vector product the same
  sum runs through the GEMM library (`norm.py`, `softmax.py`)."""
  return x @ jnp.full((x.shape[-1], 1), weight, x.dtype)


def gemm(spec: str, a: jax.Array, b: jax.Array, gemm_dtype=None) -> jax.Array:
  """einsum of a and b cast to gemm_dtype (default a's dtype), accumulated and returned in float32."""
  dtype = gemm_dtype or a.dtype
  return jnp.einsum(spec, a.astype(dtype), b.astype(dtype), preferred_element_type=jnp.float32)


def lax_conv(x: jax.Array, kernel: jax.Array, *, stride: int = 1, dilation: int = 1, groups: int = 1,
             padding=None, precision=None) -> jax.Array:
  """A 'same'-padded (TensorFlow rule) convolution through `lax.conv_general_dilated`: the plain reference
  every fast form is tested against, and the "xla" formulation itself.

  Args:
    x: (B, H, W, Cin).
    kernel: (kh, kw, Cin / groups, Cout), cast to x's dtype.
    stride: the stride on both axes.
    dilation: the kernel's dilation (atrous rate) on both axes.
    groups: `feature_group_count` (Cin for a depthwise convolution).
    padding: ((top, bottom), (left, right)) zeros; None: TensorFlow's 'same'.
    precision: `lax.Precision` of the convolution (None: the backend's default).

  Returns:
    (B, ceil(H / stride), ceil(W / stride), Cout) in x's dtype ('same'; otherwise as `padding` gives).
  """
  pads = [same_padding(x.shape[i], (kernel.shape[i - 1] - 1) * dilation + 1, stride) for i in (1, 2)]
  pads = pads if padding is None else [tuple(p) for p in padding]
  return jax.lax.conv_general_dilated(x, kernel.astype(x.dtype), (stride, stride), pads,
                                      rhs_dilation=(dilation, dilation), feature_group_count=groups,
                                      dimension_numbers=DIMENSIONS, precision=precision)
