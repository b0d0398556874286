"""Mix Transformer (MiT B0-B5, SegFormer's encoder) in Flax, layer for layer as keras-hub's `MiTBackbone`.

Four stages, each an overlapping patch embedding (a strided convolution and LayerNorm), transformer blocks
with sequence-reduced attention (keys and values from a strided convolution of the tokens) and a Mix-FFN (a
depthwise 3x3 convolution between its two dense layers, tanh-approximated GELU), and a LayerNorm. The backbone
returns each stage's map: strides 4, 8, 16 and 32. Attention needs no fixed size: maps of any height and width
are fine (keras-hub's own layers assume square ones; on those both agree).

keras-hub names most of these layers automatically (`dense_12`, ...), names that change with the order models
are built in, so they are ported by their place in the model instead (`keras_variables`). Stochastic depth
(dropped blocks while training) is left out.
"""

from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import ops
from jaxseg.models.backbones import layers
from jaxseg.models.layers import LayerSpec


class Attention(nn.Module):
  """keras-hub's `SegFormerMultiheadAttention`: queries from every token, keys and values from the tokens
  reduced `sr_ratio` times in each direction."""
  dim: int
  num_heads: int
  sr_ratio: int
  spec: LayerSpec = LayerSpec()  # dtype, GEMM input dtype, kernel forms (BatchNorm keeps its own settings)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Attention over x (B, H, W, C), returned in the same shape."""
    b, h, w, c = x.shape
    dense = lambda name: layers.Dense(self.dim, spec=self.spec, name=name)
    heads = lambda t: t.reshape(b, -1, self.num_heads, c // self.num_heads)
    q = heads(dense("q")(x.reshape(b, h * w, c)))
    kv = x
    if self.sr_ratio > 1:
      kv = layers.conv(x, self.dim, self.sr_ratio, self.sr_ratio, bias=True, spec=self.spec, name="sr")
      kv = layers.LayerNorm(1e-5, spec=self.spec, name="norm")(kv)
    kv = kv.reshape(b, -1, c)
    k, v = heads(dense("k")(kv)), heads(dense("v")(kv))
    logits = ops.gemm("bqhd,bkhd->bhqk", q, k, self.spec.gemm_dtype) * (c // self.num_heads) ** -0.5
    attn = ops.softmax_last(logits.astype(jnp.float32), kernels=self.spec.kernels).astype(v.dtype)
    out = ops.gemm("bhqk,bkhd->bqhd", attn, v, self.spec.gemm_dtype).astype(v.dtype).reshape(b, h, w, c)
    return dense("proj")(out)


class MixFFN(nn.Module):
  """keras-hub's `MixFFN`: dense to 4x, depthwise 3x3, GELU, dense back."""
  dim: int
  spec: LayerSpec = LayerSpec()  # dtype, GEMM input dtype, kernel forms (BatchNorm keeps its own settings)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """The block on x (B, H, W, C)."""
    x = layers.Dense(4 * self.dim, spec=self.spec, name="fc1")(x)
    x = layers.conv(x, x.shape[-1], 3, 1, 1, groups=x.shape[-1], bias=True, spec=self.spec,
                    name="dwconv")
    return layers.Dense(self.dim, spec=self.spec, name="fc2")(nn.gelu(x, approximate=True))


class MiT(nn.Module):
  """keras-hub's `MiTBackbone` (same architecture arguments; see `VARIANTS`)."""
  hidden_dims: Sequence[int]
  layerwise_depths: Sequence[int]
  layerwise_num_heads: Sequence[int] = (1, 2, 5, 8)
  layerwise_sr_ratios: Sequence[int] = (8, 4, 2, 1)
  layerwise_patch_sizes: Sequence[int] = (7, 3, 3, 3)
  layerwise_strides: Sequence[int] = (4, 2, 2, 2)
  spec: LayerSpec = LayerSpec()  # dtype, GEMM input dtype, kernel forms (BatchNorm keeps its own settings)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[int, jax.Array]:
    """Feature maps {stride: (B, H / stride, W / stride, C)} of images x (B, H, W, 3), preprocessed as the
    weights expect (`train` is unused: there is no BatchNorm, and no dropout here)."""
    del train
    features, stride, x = {}, 1, x.astype(self.spec.dtype)
    norm = partial(layers.LayerNorm, spec=self.spec)
    for i, dim in enumerate(self.hidden_dims):
      patch, step = self.layerwise_patch_sizes[i], self.layerwise_strides[i]
      x = layers.conv(x, dim, patch, step, patch // 2, bias=True, spec=self.spec,
                      name=f"patch_and_embed_{i}_proj")
      x = norm(1e-5, name=f"patch_and_embed_{i}_norm")(x)
      for k in range(self.layerwise_depths[i]):
        name = f"hierarchical_encoder_{i}_{k}"
        x = x + Attention(dim, self.layerwise_num_heads[i], self.layerwise_sr_ratios[i], self.spec,
                          name=f"{name}_attn")(norm(1e-6, name=f"{name}_norm1")(x))
        x = x + MixFFN(dim, self.spec, name=f"{name}_mlp")(norm(1e-6, name=f"{name}_norm2")(x))
      x = norm(1e-5, name=f"norm_{i}")(x)
      stride *= step
      features[stride] = x
    return features


def keras_variables(model) -> dict[str, dict[str, Any]]:
  """{"params": ...} of a keras-hub `MiTBackbone`, in `MiT`'s names, by each layer's place in the model."""
  dense = lambda layer: {"kernel": np.asarray(layer.kernel), "bias": np.asarray(layer.bias)}
  norm = lambda layer: {"scale": np.asarray(layer.gamma), "bias": np.asarray(layer.beta)}
  params = {}
  stage_norms = [layer for layer in model.layers if type(layer).__name__ == "LayerNormalization"]
  for i in range(model.num_layers):
    embed = model.get_layer(f"patch_and_embed_{i}")
    params[f"patch_and_embed_{i}_proj"], params[f"patch_and_embed_{i}_norm"] = dense(embed.proj), norm(embed.norm)
    for k in range(model.layerwise_depths[i]):
      name = f"hierarchical_encoder_{i}_{k}"
      block = model.get_layer(name)
      attn = {part: dense(getattr(block.attn, part)) for part in ("q", "k", "v", "proj")}
      if block.attn.sr_ratio > 1:
        attn["sr"], attn["norm"] = dense(block.attn.sr), norm(block.attn.norm)
      mlp = {"fc1": dense(block.mlp.fc1), "fc2": dense(block.mlp.fc2),
             "dwconv": {"kernel": np.swapaxes(np.asarray(block.mlp.dwconv.kernel), 2, 3),
                        "bias": np.asarray(block.mlp.dwconv.bias)}}
      params.update({f"{name}_norm1": norm(block.norm1), f"{name}_attn": attn, f"{name}_norm2": norm(block.norm2),
                     f"{name}_mlp": mlp})
    params[f"norm_{i}"] = norm(stage_norms[i])
  return {"params": params, "batch_stats": {}}


def _variant(dims: Sequence[int], depths: Sequence[int]) -> dict[str, Any]:
  return {"hidden_dims": tuple(dims), "layerwise_depths": tuple(depths)}


_WIDE = (64, 128, 320, 512)
# Backbone name -> architecture arguments (those of keras-hub's presets mit_b0..b5, SegFormer's encoders).
VARIANTS = {"mit_b0": _variant((32, 64, 160, 256), (2, 2, 2, 2)), "mit_b1": _variant(_WIDE, (2, 2, 2, 2)),
            "mit_b2": _variant(_WIDE, (3, 4, 6, 3)), "mit_b3": _variant(_WIDE, (3, 4, 18, 3)),
            "mit_b4": _variant(_WIDE, (3, 8, 27, 3)), "mit_b5": _variant(_WIDE, (3, 6, 40, 3))}
# Backbone name -> keras-hub preset of its weights (ImageNet-pretrained encoders, as SegFormer fine-tuned them
# on ADE20K; keras-hub ships no ImageNet-only MiT).
# SegFormer's decoder width over each (the paper's: 256 for B0 and B1, 768 for B2-B5).
DECODER_WIDTHS = {name: 256 if name in ("mit_b0", "mit_b1") else 768 for name in VARIANTS}
PRESETS = {f"mit_b{i}": f"mit_b{i}_ade20k_512" for i in range(5)} | {"mit_b5": "mit_b5_ade20k_640"}
