"""Independent references built in Keras: MobileNetV2 with random BN statistics, the tutorial U-Net."""

import keras
import numpy as np

from benchmarks import keras_unet
from jaxseg.models import UNET_TAPS


def randomize_batchnorm(model: keras.Model, seed: int = 0) -> None:
  """Keras builds BN with mean 0 / variance 1 / gamma 1 / beta 0; a port that swaps them would pass."""
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      n = layer.get_weights()[0].shape[0]
      layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.5, n),
                         rng.uniform(0.5, 2.0, n)])


def mobilenet_v2(alpha: float, size: int, seed: int = 0) -> keras.Model:
  keras.utils.set_random_seed(seed)
  model = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, include_top=False,
                                         weights=None)
  randomize_batchnorm(model, seed)
  return model


def taps_model(base: keras.Model) -> keras.Model:
  return keras.Model(base.input, [base.get_layer(n).output for n in UNET_TAPS])


def tutorial_unet(size: int, num_classes: int = 3, seed: int = 0) -> keras.Model:
  """The tutorial model with random encoder and decoder BN statistics and a non-zero final bias."""
  model = keras_unet.build_unet(size, num_classes, base=mobilenet_v2(1.0, size, seed))
  rng = np.random.default_rng(seed + 1)
  for layer in model.layers:
    if isinstance(layer, keras.Sequential):
      randomize_batchnorm(layer, seed + 1)
  last = model.layers[-1]
  last.set_weights([last.get_weights()[0], rng.normal(0, 0.3, num_classes)])
  return model
