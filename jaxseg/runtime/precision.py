"""Numeric precision policies: which dtype a model computes in, and which its GEMMs take as inputs.

"float32": everything in float32. "bfloat16": all compute in bfloat16 (the choice for GPUs and TPUs; on a CPU
every elementwise pass then converts, which is slower than float32 everywhere measured). "mixed_bfloat16":
float32 compute with bfloat16 *GEMM inputs* accumulated in float32; on a CPU with native bf16 dot products
(AVX512_BF16 or AMX) a GEMM then runs about twice as fast while BatchNorm, activations, col2im and the loss
stay float32. "auto": "mixed_bfloat16" on such a CPU, "float32" anywhere else. Parameters, optimizer state,
BatchNorm statistics and logits are float32 under every policy.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

DTYPE_NAMES = ("auto", "float32", "bfloat16", "mixed_bfloat16")

# CPU features that decide which kernels XLA and oneDNN can use.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


class Precision(NamedTuple):
  """compute: the activations' dtype; gemm: what GEMM inputs are cast to (None: the compute dtype)."""
  compute: Any
  gemm: Any = None


@functools.cache
def cpu_flags() -> tuple[str, ...]:
  """Which of `CPU_FLAGS` this CPU has (from /proc/cpuinfo; empty where that is unreadable)."""
  try:
    with open("/proc/cpuinfo") as f:
      flags = set(next(line.split(":", 1)[1].split() for line in f if line.startswith("flags")))
  except (OSError, StopIteration):
    return ()
  return tuple(f for f in CPU_FLAGS if f in flags)


def resolve_dtype_name(name: str) -> str:
  """"auto" -> "mixed_bfloat16" on a CPU backend with native bf16 dot products, else "float32"; other names
  pass through.

  Args:
    name: one of `DTYPE_NAMES` (config.dtype).
  """
  if name not in DTYPE_NAMES:
    raise ValueError(f"dtype must be one of {DTYPE_NAMES}, got {name!r}.")
  if name != "auto":
    return name
  native = jax.default_backend() == "cpu" and any(f in cpu_flags() for f in NATIVE_BF16_FLAGS)
  return "mixed_bfloat16" if native else "float32"


def precision(name: str) -> Precision:
  """The policy a config.dtype name stands for (after resolving "auto")."""
  return {"float32": Precision(jnp.float32), "bfloat16": Precision(jnp.bfloat16),
          "mixed_bfloat16": Precision(jnp.float32, jnp.bfloat16)}[resolve_dtype_name(name)]
