"""keras-hub models as references: random, non-neutral normalisation parameters and statistics."""

import keras
import numpy as np


def randomize_norms(model, seed=0, gamma_range=(0.5, 1.5)):
  """Random BatchNorm statistics and affine terms, and random LayerNorm affine terms, instead of the neutral
  initial ones (nested layers too), so that a swapped or misplaced one shows."""
  rng = np.random.default_rng(seed)
  for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
    if isinstance(layer, keras.layers.BatchNormalization):
      gamma, beta, mean, var = layer.get_weights()
      layer.set_weights([rng.uniform(*gamma_range, gamma.shape), rng.normal(0, 0.2, beta.shape),
                         rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    elif isinstance(layer, keras.layers.LayerNormalization):
      layer.set_weights([rng.uniform(*gamma_range, w.shape) if i == 0 else rng.normal(0, 0.2, w.shape)
                         for i, w in enumerate(layer.get_weights())])
  return model


def keras_hub_backbone(name, size=64):
  """keras-hub's backbone for jaxseg backbone `name`, random weights, built offline from the architecture
  arguments (EfficientNet: keras-hub's own configuration of its preset); MiT at `size` x `size` (it assumes
  square maps)."""
  import keras_hub  # pylint: disable=g-import-not-at-top
  from keras_hub.src.utils.timm import convert_efficientnet  # pylint: disable=g-import-not-at-top

  from jaxseg.models import backbones  # pylint: disable=g-import-not-at-top
  family = backbones.family(name)
  arch = {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
          for k, v in backbones.BACKBONES[name][1].items()}
  if family == "resnet":
    return keras_hub.models.ResNetBackbone(**arch)
  if family == "mobilenet_v3":  # (output_num_filters: an argument keras-hub's MobileNet does not use)
    return keras_hub.models.MobileNetBackbone(**arch, output_num_filters=1024)
  if family == "efficientnet":
    return keras_hub.models.EfficientNetBackbone(
        **convert_efficientnet.convert_backbone_config({"architecture": name}))
  return keras_hub.models.MiTBackbone(**arch, num_layers=4, layerwise_num_heads=[1, 2, 5, 8],
                                      layerwise_sr_ratios=[8, 4, 2, 1], layerwise_patch_sizes=[7, 3, 3, 3],
                                      layerwise_strides=[4, 2, 2, 2], max_drop_path_rate=0.1,
                                      image_shape=(size, size, 3))
