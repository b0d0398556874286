"""Backbones: image encoders that return feature maps by stride, and their keras-hub weights.

backbone = backbones.create("resnet50", output_stride=16)  # images -> {2: ..., 4: ..., 8: ..., 16: ..., 32: ...}
variables = backbones.from_keras_hub("resnet50", keras_hub_model_or_preset)

Every backbone is called as `backbone(images, train)` on images preprocessed as its weights expect
(`input_transform`) and returns {nominal stride: (B, H', W', C)} for strides 4, 8, 16, 32 and 2 where it has
one. Families that can trade strides for dilation take `output_stride` 16 or 8 (`DILATES`). DINOv2, a ViT of one
stride (14), returns its token sequences by layer instead (`dinov2`); the models say which families they take.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.backbones import dinov2, efficientnet, keras_hub_port, mit, mobilenet_v3, resnet
from jaxseg.models.backbones.keras_hub_port import PortError
from jaxseg.models.layers import LayerSpec

# Plain-dict registry: backbone name -> (module class, architecture arguments, family).
BACKBONES: dict[str, tuple[type[nn.Module], dict[str, Any], str]] = {
    **{name: (resnet.ResNet, arch, "resnet") for name, arch in resnet.VARIANTS.items()},
    **{name: (mobilenet_v3.MobileNetV3, arch, "mobilenet_v3") for name, arch in mobilenet_v3.VARIANTS.items()},
    **{name: (efficientnet.EfficientNet, arch, "efficientnet") for name, arch in efficientnet.VARIANTS.items()},
    **{name: (mit.MiT, arch, "mit") for name, arch in mit.VARIANTS.items()},
    **{name: (dinov2.DINOv2, arch, "dinov2") for name, arch in dinov2.VARIANTS.items()},
}
# Families whose keras-hub layers are ported by their place in the model, not by name.
EXTRACTORS = {"mit": mit.keras_variables, "dinov2": dinov2.keras_variables}
# The keras-hub preset of each backbone's pretrained weights (`backbone_weights="imagenet"`: ImageNet for the
# convolutional families, SegFormer's ADE20K encoders for MiT, the self-supervised LVD-142M ones for DINOv2).
IMAGENET_PRESETS: dict[str, str] = {**resnet.PRESETS, **mobilenet_v3.PRESETS, **efficientnet.PRESETS,
                                   **mit.PRESETS, **dinov2.PRESETS}
# Families whose output stride can be 16 or 8 (dilated convolutions with the same parameters).
DILATES = {"resnet", "mobilenet_v3", "efficientnet"}
# The ImageNet normalisation keras-hub's image converters apply to [0, 255] pixels, as (scale, offset) per
# channel: x * scale + offset. A preset's own converter, where it has one, takes precedence.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGENET_TRANSFORM = (tuple(1 / (255 * s) for s in IMAGENET_STD),
                      tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)))


def family(name: str) -> str:
  """The family of backbone `name` ("resnet", ...; "mobilenet_v2" for the Keras MobileNetV2)."""
  return "mobilenet_v2" if name == "mobilenet_v2" else BACKBONES[name][2]


def members(fam: str) -> list[str]:
  """The backbone names of family `fam`, sorted."""
  return sorted(n for n in BACKBONES if BACKBONES[n][2] == fam)


def create(backbone: str, output_stride: int = 32, spec: LayerSpec | None = None, **kwargs: Any) -> nn.Module:
  """The backbone named `backbone` (a key of `BACKBONES`) at `output_stride`, computing as `spec` says (None:
  float32; its dtype, GEMM input dtype and kernel forms; keras-hub's BatchNorm settings stay the backbone's); `kwargs`:
  Flax module arguments such as `name`."""
  module, arch, fam = BACKBONES[backbone]
  extra = {"output_stride": output_stride} if fam in DILATES else {}
  return module(**arch, **extra, spec=spec or LayerSpec(), **kwargs)


def weights_source(name: str, weights: str) -> str | None:
  """The keras-hub preset (name or directory) `config.model.backbone_weights` means for backbone `name`:
  "imagenet" is the backbone's ImageNet preset; "none" or "" is None (random weights)."""
  if weights in ("none", ""):
    return None
  return IMAGENET_PRESETS[name] if weights == "imagenet" else weights


def from_keras_hub(name: str, source: Any) -> dict[str, Any]:
  """Variables of backbone `name` from a keras-hub model, or a preset directory or name.

  Raises:
    PortError: the model is of another architecture, or the preset cannot be read.
  """
  keras_model = keras_hub_port.load_backbone(source) if isinstance(source, str) else source
  want = jax.eval_shape(lambda: create(name).init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))
  return keras_hub_port.port(keras_model, want, EXTRACTORS.get(family(name)))


__all__ = ["BACKBONES", "DILATES", "IMAGENET_PRESETS", "IMAGENET_TRANSFORM", "PortError", "create", "family",
           "from_keras_hub", "members", "weights_source"]


def keras_hub_model(name: str, size: int = 224) -> Any:
  """keras-hub's own backbone for jaxseg backbone `name`, with random weights, built offline from its
  architecture arguments (EfficientNet: keras-hub's own configuration of its preset): the reference the ports
  are tested and benchmarked against. MiT and DINOv2 are built for `size` x `size` inputs (keras-hub's assume
  square maps)."""
  import keras_hub  # pylint: disable=g-import-not-at-top
  from keras_hub.src.utils.timm import convert_efficientnet  # pylint: disable=g-import-not-at-top
  arch = {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
          for k, v in BACKBONES[name][1].items()}
  if family(name) == "resnet":
    return keras_hub.models.ResNetBackbone(**arch)
  if family(name) == "mobilenet_v3":  # (output_num_filters: an argument keras-hub's MobileNet does not use)
    return keras_hub.models.MobileNetBackbone(**arch, output_num_filters=1024)
  if family(name) == "efficientnet":
    return keras_hub.models.EfficientNetBackbone(**convert_efficientnet.convert_backbone_config({"architecture": name}))
  if family(name) == "dinov2":
    return keras_hub.models.DINOV2Backbone(**arch, image_shape=(size, size, 3), position_embedding_shape=(518, 518))
  return keras_hub.models.MiTBackbone(**arch, num_layers=4, layerwise_num_heads=[1, 2, 5, 8],
                                      layerwise_sr_ratios=[8, 4, 2, 1], layerwise_patch_sizes=[7, 3, 3, 3],
                                      layerwise_strides=[4, 2, 2, 2], max_drop_path_rate=0.1,
                                      image_shape=(size, size, 3))
