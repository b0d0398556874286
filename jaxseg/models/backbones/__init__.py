"""Backbones: image encoders that return feature maps by stride, and where their pretrained weights come from.

backbone = backbones.create("resnet50", output_stride=16)  # images -> {2: ..., 4: ..., 8: ..., 16: ..., 32: ...}
variables, transform, origin = backbones.pretrained("resnet50", "imagenet", (512, 512))

Every backbone is a registry entry (`Backbone`) declaring its feature strides, its input normalisation from
[0, 255] pixels and where its weights come from (a Keras applications file or a keras-hub preset). It is
called as `backbone(images, train)` on images normalised as its entry says and returns {nominal stride:
(B, H', W', C)} (`channels` gives C). Families that can trade strides for dilation take `output_stride` 16 or
8. DINOv2, a ViT of one stride (14), returns its token sequences by layer instead (`tokens`). Models ask
the registry for these properties, never for a backbone by name.
"""

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.backbones import (
  dinov2,
  efficientnet,
  keras_applications,
  keras_hub_port,
  mit,
  mobilenet_v2,
  mobilenet_v3,
  resnet,
)
from jaxseg.models.backbones.dinov2 import patch_maps
from jaxseg.models.backbones.keras_hub_port import PortError
from jaxseg.models.layers import LayerSpec

Transform = tuple[tuple[float, ...], tuple[float, ...]]
# The ImageNet normalisation keras-hub's image converters apply to [0, 255] pixels, as (scale, offset) per
# channel: x * scale + offset. A preset's own converter, where it has one, takes precedence.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGENET_TRANSFORM = (tuple(1 / (255 * s) for s in IMAGENET_STD),
                      tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)))


@dataclasses.dataclass(frozen=True)
class Backbone:
  """A registry entry: what a backbone is and what it declares to the models.

  Attributes:
    module: the Flax module class.
    arch: its architecture arguments.
    family: the architecture family ("resnet", ...).
    strides: the nominal strides of the feature maps it returns (DINOv2: its patch size).
    input_transform: (scale, offset) per channel from [0, 255] pixels to what its weights expect.
    preset: the keras-hub preset of its pretrained weights (`backbone_weights="imagenet"`: ImageNet for the
      convolutional families, SegFormer's ADE20K encoders for MiT, the self-supervised LVD-142M ones for
      DINOv2); "" where keras-hub has none (or the weights are a Keras applications file: `keras_file`).
    dilates: its output stride can be 16 or 8 (dilated convolutions with the same parameters).
    tokens: a ViT returning token sequences by layer, not feature maps.
    extract: how its keras-hub layers are ported (None: by name; else by their place in the model).
    keras_file: its weights are a Keras applications file (MobileNetV2's), not a keras-hub preset.
    decoder_width: the all-MLP decoder width of its reference segmenter (SegFormer over MiT), or 0.
  """
  module: type[nn.Module]
  arch: dict[str, Any]
  family: str
  strides: tuple[int, ...] = (2, 4, 8, 16, 32)
  input_transform: Transform = IMAGENET_TRANSFORM
  preset: str = ""
  dilates: bool = False
  tokens: bool = False
  extract: Any = None
  keras_file: bool = False
  decoder_width: int = 0


def _entries() -> dict[str, Backbone]:
  out = {name: Backbone(mobilenet_v2.MobileNetV2, arch, "mobilenet_v2", input_transform=mobilenet_v2.INPUT_TRANSFORM,
                        dilates=True, keras_file=True) for name, arch in mobilenet_v2.VARIANTS.items()}
  out |= {name: Backbone(resnet.ResNet, arch, "resnet", preset=resnet.PRESETS.get(name, ""), dilates=True)
          for name, arch in resnet.VARIANTS.items()}
  out |= {name: Backbone(mobilenet_v3.MobileNetV3, arch, "mobilenet_v3", preset=mobilenet_v3.PRESETS.get(name, ""),
                         dilates=True) for name, arch in mobilenet_v3.VARIANTS.items()}
  out |= {name: Backbone(efficientnet.EfficientNet, arch, "efficientnet", preset=efficientnet.PRESETS.get(name, ""),
                         dilates=True)
          for name, arch in efficientnet.VARIANTS.items()}
  out |= {name: Backbone(mit.MiT, arch, "mit", (4, 8, 16, 32), preset=mit.PRESETS.get(name, ""),
                         extract=mit.keras_variables, decoder_width=mit.DECODER_WIDTHS[name])
          for name, arch in mit.VARIANTS.items()}
  out |= {name: Backbone(dinov2.DINOv2, arch, "dinov2", (arch["patch_size"],), preset=dinov2.PRESETS.get(name, ""),
                         tokens=True, extract=dinov2.keras_variables) for name, arch in dinov2.VARIANTS.items()}
  return out


# Plain-dict registry: backbone name -> entry.
BACKBONES: dict[str, Backbone] = _entries()
DEFAULT = "mobilenet_v2"  # the TensorFlow segmentation tutorial's encoder


def family(name: str) -> str:
  """The family of backbone `name` ("resnet", "mobilenet_v2", ...)."""
  return BACKBONES[name].family


def create(backbone: str, output_stride: int = 32, spec: LayerSpec | None = None, top_before_norm: bool = False,
           **kwargs: Any) -> nn.Module:
  """The backbone named `backbone` (a key of `BACKBONES`).

  Args:
    backbone: the registry name.
    output_stride: 32, or 16 / 8 for a family that dilates.
    spec: how it computes (None: the module's default, float32): dtype, GEMM input dtype and kernel forms; the
      BatchNorm momentum where the backbone follows Keras applications (MobileNetV2); keras-hub's BatchNorm
      settings stay its own.
    top_before_norm: the stride-32 features before the last block's normalisation, where the architecture
      ends in one (MobileNetV2's linear bottleneck: what the TensorFlow segmentation tutorial's U-Net reads).
    **kwargs: Flax module arguments such as `name`, and the family's own options.
  """
  entry = BACKBONES[backbone]
  extra = {"output_stride": output_stride} if entry.dilates else {}
  if entry.keras_file:
    extra |= {"by_stride": True, "top_before_norm": top_before_norm}
  extra |= {} if spec is None else {"spec": spec}  # (None: the module's own default)
  return entry.module(**entry.arch, **extra, **kwargs)


@functools.cache
def channels(name: str, top_before_norm: bool = False) -> dict[int, int]:
  """{stride: channels} of backbone `name`'s feature maps (its width for a ViT)."""
  module = create(name, top_before_norm=top_before_norm)
  out = jax.eval_shape(lambda: module.init_with_output(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))[0])
  if BACKBONES[name].tokens:
    return {BACKBONES[name].strides[0]: out["output"].shape[-1]}
  return {s: f.shape[-1] for s, f in out.items()}


def pretrained(name: str, weights: str, image_size: tuple[int, int]) -> tuple[dict[str, Any] | None,
                                                                             Transform | None, str]:
  """The encoder variables `config.model.backbone_weights` names for backbone `name`.

  Args:
    name: the registry name.
    weights: "imagenet" (the entry's Keras download or keras-hub preset), a Keras weights file (MobileNetV2),
      a keras-hub preset name or directory (the others), or "none" / "" (random weights: None is returned).
    image_size: the model's (H, W) input (Keras ships MobileNetV2 files per square size).

  Returns:
    (variables {"params", "batch_stats"} or None, the input normalisation the source declares or None, a
    phrase saying where the weights came from).

  Raises:
    WeightsError / PortError: the weights cannot be read or do not fit.
  """
  entry = BACKBONES[name]
  if weights in ("none", "", None):
    return None, None, ""
  if entry.keras_file:
    size = keras_applications.weights_size(*image_size)
    alpha = entry.arch["alpha"]
    what = (f"Keras ImageNet file {keras_applications.keras_weights_filename(alpha, size)}" if weights == "imagenet"
            else f"Keras weights {weights}")
    return keras_applications.encoder_variables(weights, alpha, size), None, what
  source = weights_source(name, weights)
  transform = keras_hub_port.image_transform(source)
  return from_keras_hub(name, source), transform, f"keras-hub preset {source}"


def merge(variables: dict[str, Any], encoder: dict[str, Any]) -> dict[str, Any]:
  """`variables` with every leaf under "encoder" taken from `encoder` (which may hold more layers).

  Raises:
    PortError: naming the first layer `encoder` lacks or holds in another shape.
  """
  out = {c: dict(v) for c, v in variables.items()}
  for c in variables:
    if "encoder" in variables[c]:
      out[c]["encoder"] = keras_hub_port.fill(
          variables[c]["encoder"], encoder.get(c, {}),
          lambda name, got, want, c=c: (f"the weights have no {name} ({c})." if got is None else
                                        f"{name}: expected shape {want}, found {got}."))
  return out


def weights_source(name: str, weights: str) -> str | None:
  """The keras-hub preset (name or directory) `config.model.backbone_weights` means for backbone `name`:
  "imagenet" is the backbone's ImageNet preset; "none" or "" is None (random weights).

  Raises:
    PortError: "imagenet" for a backbone keras-hub has no ImageNet preset of.
  """
  if weights in ("none", ""):
    return None
  if weights == "imagenet" and not BACKBONES[name].preset:
    raise PortError(f"keras-hub has no ImageNet preset of {name}; pass a keras-hub preset name or directory, or "
                    "none.")
  return BACKBONES[name].preset if weights == "imagenet" else weights


def from_keras_hub(name: str, source: Any) -> dict[str, Any]:
  """Variables of backbone `name` from a keras-hub model, or a preset directory or name.

  Raises:
    PortError: the model is of another architecture, or the preset cannot be read.
  """
  keras_model = keras_hub_port.load_backbone(source) if isinstance(source, str) else source
  want = jax.eval_shape(lambda: create(name).init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))
  return keras_hub_port.port(keras_model, want, BACKBONES[name].extract)


__all__ = ["BACKBONES", "DEFAULT", "IMAGENET_TRANSFORM", "Backbone", "PortError", "channels", "create", "family",
           "from_keras_hub", "merge", "patch_maps", "pretrained", "weights_source"]


def keras_hub_model(name: str, size: int = 224) -> Any:
  """keras-hub's own backbone for jaxseg backbone `name`, with random weights, built offline from its
  architecture arguments (EfficientNet: keras-hub's own configuration of its preset): the reference the ports
  are tested and benchmarked against. MiT and DINOv2 are built for `size` x `size` inputs (keras-hub's assume
  square maps)."""
  if BACKBONES[name].keras_file:
    raise ValueError(f"{name} is ported from keras.applications, not keras-hub (keras_applications.py).")
  import keras_hub  # pylint: disable=g-import-not-at-top
  from keras_hub.src.utils.timm import convert_efficientnet  # pylint: disable=g-import-not-at-top
  arch = {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
          for k, v in BACKBONES[name].arch.items()}
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
