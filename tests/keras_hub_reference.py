"""keras-hub models as references: random, non-neutral normalisation parameters and statistics."""

import keras
import numpy as np


def randomize_neutral_terms(model, seed=0, gamma_range=(0.5, 1.5)):
  """Random BatchNorm statistics and affine terms, random LayerNorm affine terms and random biases of dense,
  einsum-dense (attention projections) and convolution layers, instead of the neutral initial ones (nested
  layers too), so that a swapped, misplaced or dropped one shows."""
  rng = np.random.default_rng(seed)
  for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
    bias = getattr(layer, "bias", None)
    dense_or_conv = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    if isinstance(layer, dense_or_conv) and bias is not None:
      bias.assign(rng.normal(0, 0.2, tuple(bias.shape)).astype(np.float32))
    if isinstance(layer, keras.layers.BatchNormalization):
      gamma, beta, mean, var = layer.get_weights()
      layer.set_weights([rng.uniform(*gamma_range, gamma.shape), rng.normal(0, 0.2, beta.shape),
                         rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    elif isinstance(layer, keras.layers.LayerNormalization):
      layer.set_weights([rng.uniform(*gamma_range, w.shape) if i == 0 else rng.normal(0, 0.2, w.shape)
                         for i, w in enumerate(layer.get_weights())])
  return model


def keras_hub_backbone(name, size=64):
  """keras-hub's backbone for jaxseg backbone `name`, random weights (MiT at `size` x `size`)."""
  from jaxseg.models import backbones  # pylint: disable=g-import-not-at-top
  return backbones.keras_hub_model(name, size)
