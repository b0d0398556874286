"""DINOv2 (Oquab et al. 2023; with registers, Darcet et al. 2024) in Flax, layer for layer as keras-hub's
`DINOV2Backbone`: a ViT of stride `patch_size` (14) with a class token, optional register tokens, layer
scale and a GELU or SwiGLU MLP.

The position embeddings are kept at the grid they were trained on (37 x 37, for 518 px) and interpolated
bicubically to the input's patch grid on every call, with TensorFlow's bicubic kernel (Keys, a = -0.5,
half-pixel centres, coefficients from a 1024-step table, taps outside the grid dropped and the rest
renormalised), which is what keras-hub computes once for the `image_shape` it was built for. So any height and
width work here, non-square ones included (keras-hub's backbone takes square images only), and the two
agree wherever keras-hub runs; the parameter count is keras-hub's less its interpolated copy of the table.

Unlike the convolutional backbones this one has a single stride, so it returns keras-hub's pyramid outputs
(token sequences, not maps): "stem" (the embedded tokens), "stage1".."stageN" (each layer's output) and
"output" (the last one after the final LayerNorm). `patch_maps` turns a sequence into its class token and its
(B, H / 14, W / 14, C) map. Pixels past the last whole patch are not seen (as keras-hub's "valid" patch
convolution); `jaxseg.models.linear` pads images to whole patches first. Dropout and stochastic depth are left
out (the presets are used frozen or fine-tuned without them).
"""

from functools import lru_cache
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import ops
from jaxseg.models.backbones import layers
from jaxseg.models.layers import LayerSpec

TABLE = 1024  # TensorFlow's bicubic coefficient table steps


@lru_cache(maxsize=64)
def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
  """(n_out, n_in) float32 weights of TensorFlow's bicubic resize along one axis (`tf.image.resize(...,
  "bicubic")`, no antialiasing): the identity where n_in == n_out."""
  a, m = -0.5, np.zeros((n_out, n_in), np.float64)
  near = lambda t: ((a + 2) * t - (a + 3)) * t * t + 1  # |t| <= 1
  far = lambda t: ((a * t - 5 * a) * t + 8 * a) * t - 4 * a  # 1 < |t| < 2
  scale = np.float32(n_in) / np.float32(n_out)
  for i in range(n_out):
    where = (np.float32(i) + np.float32(0.5)) * scale - np.float32(0.5)  # float32, as TensorFlow computes it
    first = np.floor(where)
    x = np.float32(int(np.rint((where - first) * np.float32(TABLE)))) / TABLE
    for j, w in zip(range(int(first) - 1, int(first) + 3), (far(x + 1), near(x), near(1 - x), far(2 - x))):
      if 0 <= j < n_in:
        m[i, j] += w
    m[i] /= m[i].sum()
  return m.astype(np.float32)


def interpolate_positions(table: jax.Array, grid: tuple[int, int]) -> jax.Array:
  """Position embeddings (1, 1 + G * G, C) for a `grid` (h, w) of patches: the class token's row as it is,
  the G x G rows resized bicubically (`bicubic_matrix`) to h x w."""
  size = round((table.shape[1] - 1) ** 0.5)
  if grid == (size, size):
    return table
  rows, cols = bicubic_matrix(size, grid[0]), bicubic_matrix(size, grid[1])
  patches = table[0, 1:].astype(jnp.float32).reshape(size, size, -1)
  resized = jnp.einsum("ij,jkc,lk->ilc", rows, patches, cols, precision=jax.lax.Precision.HIGHEST)
  return jnp.concatenate([table[:, :1], resized.reshape(1, -1, table.shape[-1]).astype(table.dtype)], axis=1)


def patch_maps(tokens: jax.Array, grid: tuple[int, int], num_register_tokens: int) -> tuple[jax.Array, jax.Array]:
  """(class token (B, C), patch map (B, h, w, C)) of a token sequence (B, 1 + registers + h * w, C)."""
  # lax slices, not indexing: with a symbolic batch size (export) indexing lowers to a gather LiteRT lacks.
  patches = jax.lax.slice_in_dim(tokens, 1 + num_register_tokens, tokens.shape[1], axis=1)
  return (jax.lax.index_in_dim(tokens, 0, axis=1, keepdims=False),
          patches.reshape(tokens.shape[0], *grid, tokens.shape[-1]))


class Attention(nn.Module):
  """keras `MultiHeadAttention` over the tokens (queries, keys and values from the same sequence)."""
  dim: int
  num_heads: int
  spec: LayerSpec = LayerSpec()  # dtype, GEMM input dtype, kernel forms (BatchNorm keeps its own settings)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x (B, T, C) -> (B, T, C)."""
    b, t, c = x.shape
    dense = lambda name: layers.Dense(self.dim, spec=self.spec, name=name)
    # Heads-major (B, heads, T, d) before the products: XLA:CPU's batched dot over a (B, T, heads, d) operand
    # took 5 against 1.9 ms for the weighted sum of DINOv2-S's values at 420 px.
    heads = lambda y: y.reshape(b, t, self.num_heads, c // self.num_heads).transpose(0, 2, 1, 3)
    q, k, v = heads(dense("query")(x)), heads(dense("key")(x)), heads(dense("value")(x))
    logits = ops.gemm("bhqd,bhkd->bhqk", q * (c // self.num_heads) ** -0.5, k, self.spec.gemm_dtype)
    attn = ops.softmax_last(logits.astype(jnp.float32), kernels=self.spec.kernels).astype(v.dtype)
    out = ops.gemm("bhqk,bhkd->bhqd", attn, v, self.spec.gemm_dtype).astype(v.dtype).transpose(0, 2, 1, 3)
    return dense("output")(out.reshape(b, t, c))


class LayerScale(nn.Module):
  """A learned per-channel scale ("lambda1")."""
  init_value: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x (..., C) times the scale."""
    return x * self.param("lambda1", nn.initializers.constant(self.init_value), (x.shape[-1],)).astype(x.dtype)


class Block(nn.Module):
  """keras-hub's `DINOV2Layer`: LayerNorm, attention, layer scale, residual; LayerNorm, MLP (GELU, exact) or
  SwiGLU, layer scale, residual."""
  dim: int
  num_heads: int
  intermediate_dim: int
  layer_scale: float = 1.0
  swiglu: bool = False
  spec: LayerSpec = LayerSpec()  # dtype, GEMM input dtype, kernel forms (BatchNorm keeps its own settings)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x (B, T, C) -> (B, T, C)."""
    dense = lambda width, name: layers.Dense(width, spec=self.spec, name=name)
    norm = lambda name: layers.LayerNorm(1e-6, spec=self.spec, name=name)
    y = Attention(self.dim, self.num_heads, self.spec, name="attention")(norm("norm1")(x))
    x = x + LayerScale(self.layer_scale, name="layer_scale1")(y)
    y = norm("norm2")(x)
    if self.swiglu:  # keras-hub's width rule: 2/3 of intermediate_dim, rounded up to a multiple of 8
      width = (int(self.intermediate_dim * 2 / 3) + 7) // 8 * 8
      gate, value = jnp.split(dense(2 * width, "weights_in")(y), 2, axis=-1)
      y = dense(self.dim, "weights_out")(nn.silu(gate) * value)
    else:
      y = dense(self.dim, "fc2")(nn.gelu(dense(self.intermediate_dim, "fc1")(y), approximate=False))
    return x + LayerScale(self.layer_scale, name="layer_scale2")(y)


class DINOv2(nn.Module):
  """keras-hub's `DINOV2Backbone` (same architecture arguments; `position_grid`: its position_embedding_shape
  over patch_size)."""
  patch_size: int
  num_layers: int
  hidden_dim: int
  num_heads: int
  intermediate_dim: int
  layer_scale_init_value: float = 1.0
  num_register_tokens: int = 0
  use_mask_token: bool = True
  use_swiglu_ffn: bool = False
  position_grid: int = 37
  apply_layernorm: bool = False  # also normalize "stem" and every "stageN" with the final LayerNorm
  spec: LayerSpec = LayerSpec()  # dtype, GEMM input dtype, kernel forms (BatchNorm keeps its own settings)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    """keras-hub's pyramid outputs and "output" (see the module docstring) of images x (B, H, W, 3),
    preprocessed as the weights expect (`train` is unused: no BatchNorm, no dropout here)."""
    del train
    p, c, b = self.patch_size, self.hidden_dim, x.shape[0]
    grid = (x.shape[1] // p, x.shape[2] // p)
    x = jax.lax.slice(x, (0, 0, 0, 0), (b, grid[0] * p, grid[1] * p, x.shape[3]))  # whole patches only
    x = layers.conv(x.astype(self.spec.dtype), c, p, p, bias=True, spec=self.spec,
                    name="patch_embeddings").reshape(b, -1, c)
    init = nn.initializers.truncated_normal(0.02)
    cls = self.param("cls_token", init, (1, 1, c))
    if self.use_mask_token:  # used by DINOv2's masked pre-training only; kept so that presets port whole
      self.param("mask_token", nn.initializers.zeros, (1, c))
    table = self.param("position_embeddings", init, (1, self.position_grid ** 2 + 1, c))
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, c)).astype(self.spec.dtype), x], axis=1)
    x = x + interpolate_positions(table, grid).astype(self.spec.dtype)
    if self.num_register_tokens:
      registers = self.param("register_tokens", nn.initializers.zeros, (1, self.num_register_tokens, c))
      split = lambda lo, hi: jax.lax.slice_in_dim(x, lo, hi, axis=1)
      x = jnp.concatenate([split(0, 1), jnp.broadcast_to(registers, (b, *registers.shape[1:])).astype(self.spec.dtype),
                           split(1, x.shape[1])], axis=1)
    final_norm = layers.LayerNorm(1e-6, spec=self.spec, name="layernorm")
    keep = final_norm if self.apply_layernorm else (lambda y: y)
    out = {"stem": keep(x)}
    for i in range(self.num_layers):
      x = Block(c, self.num_heads, self.intermediate_dim, self.layer_scale_init_value, self.use_swiglu_ffn,
                self.spec, name=f"layers_{i}")(x)
      out[f"stage{i + 1}"] = keep(x)
    out["output"] = final_norm(x)
    return out


def keras_variables(model) -> dict[str, dict[str, Any]]:
  """{"params": ...} of a keras-hub `DINOV2Backbone`, in `DINOv2`'s names, by each layer's place in the model.

  Raises:
    ValueError: the backbone interpolates with antialiasing (DINOv3-style), which `DINOv2` does not.
  """
  if getattr(model, "antialias_in_interpolation", False):
    raise ValueError("antialiased position-embedding interpolation is not supported")
  value = lambda v: np.asarray(v)
  dense = lambda layer: {"kernel": value(layer.kernel), "bias": value(layer.bias)}
  heads = lambda layer: {"kernel": value(layer.kernel).reshape(value(layer.kernel).shape[0], -1),
                         "bias": value(layer.bias).reshape(-1)}
  norm = lambda layer: {"scale": value(layer.gamma), "bias": value(layer.beta)}
  embed = model.embeddings
  params = {"patch_embeddings": dense(embed.patch_embeddings.projection), "cls_token": value(embed.cls_token),
            "position_embeddings": value(embed.position_embeddings), "layernorm": norm(model.layernorm)}
  if embed.use_mask_token:
    params["mask_token"] = value(embed.mask_token)
  if embed.num_register_tokens:
    params["register_tokens"] = value(embed.register_tokens)
  for i, block in enumerate(model.encoder.layers):
    mha = block.attention.attention
    out = mha.output_dense
    mlp = ({"weights_in": dense(block.mlp.weights_in), "weights_out": dense(block.mlp.weights_out)}
           if block.use_swiglu_ffn else {"fc1": dense(block.mlp.fc1), "fc2": dense(block.mlp.fc2)})
    params[f"layers_{i}"] = {
        "norm1": norm(block.norm1), "norm2": norm(block.norm2),
        "attention": {"query": heads(mha.query_dense), "key": heads(mha.key_dense), "value": heads(mha.value_dense),
                      "output": {"kernel": value(out.kernel).reshape(-1, value(out.kernel).shape[-1]),
                                 "bias": value(out.bias)}},
        "layer_scale1": {"lambda1": value(block.layer_scale1.lambda1)},
        "layer_scale2": {"lambda1": value(block.layer_scale2.lambda1)}, **mlp}
  return {"params": params, "batch_stats": {}}


def _variant(dim: int, depth: int, heads: int, registers: int = 0, swiglu: bool = False) -> dict[str, Any]:
  return {"patch_size": 14, "num_layers": depth, "hidden_dim": dim, "num_heads": heads, "intermediate_dim": 4 * dim,
          "num_register_tokens": registers, "use_swiglu_ffn": swiglu}


_SIZES = {"small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16), "giant": (1536, 40, 24)}
# Backbone name -> architecture arguments (those of keras-hub's presets of the same names, from the DINOv2
# checkpoints: 518 px position grids, layer scale 1.0, SwiGLU in the giant model).
VARIANTS = {**{f"dinov2_{s}": _variant(*a, swiglu=s == "giant") for s, a in _SIZES.items()},
            **{f"dinov2_with_registers_{s}": _variant(*a, registers=4, swiglu=s == "giant") for s, a in _SIZES.items()}}
# Backbone name -> keras-hub preset of its self-supervised weights (same names).
PRESETS = {name: name for name in VARIANTS}
