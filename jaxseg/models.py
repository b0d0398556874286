"""Model registry, construction from a config, and parameter bookkeeping."""

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxseg import ops
from jaxseg.mobilenet_v2 import ALPHAS, UNET_TAPS, MobileNetV2, check_alpha, make_divisible
from jaxseg.unet import UNet

__all__ = ["MobileNetV2", "UNet", "MODELS", "create_model", "init_variables", "count_params",
           "ALPHAS", "UNET_TAPS", "make_divisible"]

# Plain-dict registry: config.model.name -> constructor.
MODELS = {"unet_mobilenet_v2": UNet}

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def create_model(config: ml_collections.ConfigDict) -> UNet:
  """Builds the model named by `config.model.name`.

  Args:
    config: the experiment config (uses `model.name`, `model.alpha`, `num_classes`, `dtype`).

  Returns:
    An unbound Flax module.
  """
  name = config.model.name
  if name not in MODELS:
    raise ValueError(f"config.model.name={name!r} is unknown; choose one of {sorted(MODELS)}.")
  if config.dtype not in DTYPES:
    raise ValueError(f"config.dtype={config.dtype!r} is unsupported; choose one of {sorted(DTYPES)}.")
  try:
    check_alpha(config.model.alpha)
    conv_impl = config.model.get("conv_impl", "auto")
    ops.resolve_impl(conv_impl)
  except ValueError as e:
    raise ValueError(f"config.model: {e}") from None
  return MODELS[name](num_classes=config.num_classes, alpha=config.model.alpha, dtype=DTYPES[config.dtype],
                      encoder_bn_momentum=config.model.encoder_bn_momentum,
                      decoder_bn_momentum=config.model.decoder_bn_momentum, conv_impl=conv_impl)


def init_variables(model: UNet, image_size: int, seed: int = 0) -> dict[str, Any]:
  """Random `{"params", "batch_stats"}` for `model` at `image_size` (shapes do not depend on it)."""
  dummy = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  return jax.jit(lambda k: model.init(k, dummy, train=False))(jax.random.key(seed))


def count_params(variables: dict[str, Any], freeze_encoder: bool = True) -> dict[str, int]:
  """Keras-style counts: trainable = decoder params (+ encoder params when not frozen); non-trainable = the
  frozen encoder and all BatchNorm statistics.

  Args:
    variables: `{"params", "batch_stats"}` of a UNet (arrays or shape structs).
    freeze_encoder: count the encoder's params as non-trainable.

  Returns:
    {"total", "trainable", "non_trainable", "encoder", "decoder_bn_stats"}.
  """
  size = lambda tree: int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
  params, stats = variables["params"], variables.get("batch_stats", {})
  encoder = size(params.get("encoder", {})) + size(stats.get("encoder", {}))
  decoder_stats = size({k: v for k, v in stats.items() if k != "encoder"})
  trainable = size({k: v for k, v in params.items() if k != "encoder"})
  total = encoder + decoder_stats + trainable
  if not freeze_encoder:
    trainable += size(params.get("encoder", {}))
  return {"total": total, "trainable": trainable, "non_trainable": total - trainable, "encoder": encoder,
          "decoder_bn_stats": decoder_stats}
