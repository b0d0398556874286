"""What every segmentation model is configured by, and what each tells the rest of the package about itself:
how it is built from a config, what identifies it in a checkpoint, and its summary rows; and how it runs its
encoder (the Keras MobileNetV2, or any of `jaxseg.models.backbones`)."""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.models import backbones
from jaxseg.models.layers import LayerSpec
from jaxseg.models.mobilenet_v2 import MobileNetV2
from jaxseg.runtime import precision


def single_stride_refusal(name: str, model: str) -> str:
  """A one-line refusal of backbone `name` where it has one stride only (DINOv2), or ""."""
  if backbones.family(name) == "dinov2":
    return (f"config.model.backbone={name!r} has one stride (14), not the feature maps at strides 4 to 32 {model} "
            "reads; use config.model.name=linear.")
  return ""


class SegmentationModel(nn.Module):
  """Fields shared by every model.

  Attributes:
    num_classes: output channels.
    backbone: "mobilenet_v2" (the Keras MobileNetV2, laid out as the Keras models the tests compare with)
      or a key of `backbones.BACKBONES`.
    alpha: MobileNetV2 width multiplier.
    spec: the layer spec of the layers after the encoder (its `bn_momentum` is the decoder's).
    encoder_bn_momentum: MobileNetV2's BatchNorm momentum (Keras: 0.999; other backbones keep keras-hub's);
      the encoder otherwise computes as `spec` says.
    input_transform: (scale, offset) per channel that turn [0, 255] pixels into what the backbone's weights
      expect (the preset's image converter); MobileNetV2 takes the pipeline's [-1, 1] as they are.
  """
  num_classes: int = 3
  backbone: str = "mobilenet_v2"
  alpha: float = 1.0
  spec: LayerSpec = LayerSpec()
  encoder_bn_momentum: float = 0.999
  input_transform: tuple[tuple[float, ...], tuple[float, ...]] = backbones.IMAGENET_TRANSFORM

  # Config fields besides the shared ones (`jaxseg.training.checkpoints`) that identify this architecture in a
  # checkpoint, as {meta key: config field}.
  IDENTITY_FIELDS: ClassVar[dict[str, str]] = {}
  # MobileNetV2's layers the head reads, by stride; the encoder ends at the last.
  MOBILENET_TAPS: ClassVar[dict[int, str]] = {}

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "SegmentationModel":
    """The model `config` describes (`model.*`, `num_classes`, `dtype`)."""
    m = config.model
    policy = precision.precision(config.dtype)
    spec = LayerSpec(dtype=policy.compute, gemm_dtype=policy.gemm, kernels=m.kernels,
                     bn_momentum=m.decoder_bn_momentum)
    transform = backbones.IMAGENET_TRANSFORM
    if len(m.input_scale) and len(m.input_offset):
      transform = (tuple(m.input_scale), tuple(m.input_offset))
    return cls(num_classes=config.num_classes, backbone=m.backbone, alpha=m.alpha, spec=spec,
               encoder_bn_momentum=m.encoder_bn_momentum, input_transform=transform, **cls.config_fields(config))

  @classmethod
  def config_fields(cls, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """This architecture's own constructor arguments from `config.model`."""
    return {}

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> str:
    """A one-line problem with this architecture's own config fields, or ""."""
    return ""

  def encoder_output_stride(self) -> int:
    """The stride of the deepest features the head reads (32 unless the model dilates)."""
    return 32

  def encode(self, images: jax.Array, train: bool) -> dict[int, jax.Array]:
    """The encoder (module "encoder") on `images` in [-1, 1]: {nominal stride: features}; call from a compact
    method. `train`: the encoder's BatchNorm uses and updates batch statistics."""
    if self.backbone == "mobilenet_v2":
      feats = self.encoder_module()(images, train)
      return {stride: feats[name] for stride, name in self.MOBILENET_TAPS.items()}
    return self.encoder_module()(self.backbone_input(images), train)

  def encoder_module(self, **kwargs: Any) -> nn.Module:
    """The encoder, named "encoder" (bound to this model when called from its compact method; `parent=None`
    for a module of its own)."""
    if self.backbone == "mobilenet_v2":
      return MobileNetV2(alpha=self.alpha, last_layer=list(self.MOBILENET_TAPS.values())[-1],
                         output_stride=self.encoder_output_stride(),
                         spec=self.spec.replace(bn_momentum=self.encoder_bn_momentum), name="encoder", **kwargs)
    # keras-hub's BatchNorm settings stay the backbone's own: the spec gives dtypes and kernel forms.
    return backbones.create(self.backbone, self.encoder_output_stride(), self.spec, name="encoder", **kwargs)

  def backbone_input(self, images: jax.Array) -> jax.Array:
    """Images in [-1, 1] as a (non-MobileNetV2) backbone's weights expect them: [0, 255] pixels through
    `input_transform`."""
    scale, offset = (jnp.asarray(v, jnp.float32) for v in self.input_transform)
    return ((images.astype(jnp.float32) + 1.0) * 127.5) * scale + offset

  def encoder_description(self) -> str:
    """The encoder in a summary row."""
    if self.backbone == "mobilenet_v2":
      return f"MobileNetV2 alpha={self.alpha}, to {list(self.MOBILENET_TAPS.values())[-1]}"
    return f"{self.backbone}, output stride {self.encoder_output_stride()}"

  def summary_rows(self, variables: dict[str, Any], intermediates: dict[str, Any],
                   size: Any) -> list[tuple[str, list[tuple[int, ...]], int]]:
    """(block, output shapes, parameter count) per block after the input, for `--mode summary`.

    Args:
      variables: the model's variables (shape structs).
      intermediates: what `capture_intermediates=True` recorded (shape structs).
      size: a function from a variable subtree's name to its parameter + statistics count.
    """
    raise NotImplementedError
