"""What every segmentation model is configured by, and what each tells the rest of the package about itself:
how it is built from a config, what identifies it in a checkpoint, and its summary rows; and how it runs its
encoder (any of `jaxseg.models.backbones`)."""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.models import aux_head, backbones
from jaxseg.models.layers import LayerSpec
from jaxseg.runtime import precision


def check_input_size(images: jax.Array) -> None:
  """The segmentation models need heights and widths that are multiples of 32 (five stride-2 stages)."""
  if images.shape[1] % 32 or images.shape[2] % 32:
    raise ValueError(f"image height and width must be multiples of 32, got {images.shape[1:3]}.")


def feature_map_refusal(name: str, model: str) -> str:
  """A one-line refusal of backbone `name` where it returns tokens of one stride (a ViT), not the feature
  maps at strides 4 to 32 `model` reads; or ""."""
  entry = backbones.BACKBONES[name]
  if entry.tokens:
    return (f"config.model.backbone={name!r} has one stride ({entry.strides[0]}), not the feature maps at "
            f"strides 4 to 32 {model} reads; use config.model.name=linear.")
  return ""


class SegmentationModel(nn.Module):
  """Fields shared by every model.

  Attributes:
    num_classes: output channels.
    backbone: a key of `backbones.BACKBONES` (e.g. "mobilenet_v2", the Keras MobileNetV2 laid out as the
      Keras models the tests compare with).
    spec: the layer spec of the layers after the encoder (its `bn_momentum` is the decoder's).
    encoder_bn_momentum: the encoder's BatchNorm momentum where it follows Keras applications (MobileNetV2:
      0.999; keras-hub backbones keep keras-hub's); the encoder otherwise computes as `spec` says.
    input_transform: (scale, offset) per channel that turn [0, 255] pixels into what the backbone's weights
      expect (a preset's image converter); None: the backbone's own (`backbones.Backbone.input_transform`).
    aux_stride: the encoder stride an auxiliary head reads during training (`jaxseg.models.aux_head`); 0: none.
  """
  num_classes: int = 3
  backbone: str = backbones.DEFAULT
  spec: LayerSpec = LayerSpec()
  encoder_bn_momentum: float = 0.999
  input_transform: backbones.Transform | None = None
  aux_stride: int = 0

  # Config fields besides the shared ones (`jaxseg.training.checkpoints`) that identify this architecture in a
  # checkpoint, as {meta key: config field}.
  IDENTITY_FIELDS: ClassVar[dict[str, str]] = {}
  # The encoder's stride-32 features are taken before its last normalisation (`backbones.create`).
  TOP_BEFORE_NORM: ClassVar[bool] = False

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "SegmentationModel":
    """The model `config` describes (`model.*`, `num_classes`, `dtype`)."""
    m = config.model
    policy = precision.precision(config.dtype)
    spec = LayerSpec(dtype=policy.compute, gemm_dtype=policy.gemm, kernels=m.kernels,
                     bn_momentum=m.decoder_bn_momentum)
    transform = None
    if len(m.input_scale) and len(m.input_offset):
      transform = (tuple(m.input_scale), tuple(m.input_offset))
    return cls(num_classes=config.num_classes, backbone=m.backbone, spec=spec,
               encoder_bn_momentum=m.encoder_bn_momentum, input_transform=transform, aux_stride=m.aux_stride,
               **cls.config_fields(config))

  @classmethod
  def config_fields(cls, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """This architecture's own constructor arguments from `config.model`."""
    return {}

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> str:
    """A one-line problem with this architecture's own config fields, or ""."""
    return ""

  @classmethod
  def whole_model_weights(cls, source: str) -> bool:
    """`source` (a `model.backbone_weights` preset) holds this whole model's weights, not only an encoder's
    (`pretrained_model` reads them)."""
    return False

  def pretrained_model(self, variables: dict[str, Any], source: str) -> tuple[dict[str, Any], Any, str]:
    """(`variables` replaced by the whole-model preset `source`'s, its input normalisation or None, a phrase
    saying what was taken), for a model whose `whole_model_weights(source)`."""
    raise NotImplementedError

  def encoder_output_stride(self) -> int:
    """The stride of the deepest features the head reads (32 unless the model dilates)."""
    return 32

  def encode(self, images: jax.Array, train: bool) -> dict[int, jax.Array]:
    """The encoder (module "encoder") on `images` in [-1, 1]: {nominal stride: features}; call from a compact
    method. `train`: the encoder's BatchNorm uses and updates batch statistics."""
    return self.encoder_module()(self.backbone_input(images), train)

  def auxiliary(self, feats: dict[int, jax.Array], size: tuple[int, int], train: bool) -> None:
    """With `aux_stride`, the auxiliary head (module "aux_head") on `feats[aux_stride]`, its logits at `size`
    sown into the "aux" collection; call from a compact method after `encode`."""
    if self.aux_stride:
      head = aux_head.AuxiliaryHead(self.num_classes, spec=self.spec, name=aux_head.MODULE)
      head(feats[self.aux_stride], size, train)

  def encoder_module(self, **kwargs: Any) -> nn.Module:
    """The encoder, named "encoder" (bound to this model when called from its compact method; `parent=None`
    for a module of its own)."""
    return backbones.create(self.backbone, self.encoder_output_stride(),
                            self.spec.replace(bn_momentum=self.encoder_bn_momentum),
                            top_before_norm=self.TOP_BEFORE_NORM, name="encoder", **kwargs)

  def transform(self) -> backbones.Transform:
    """The input normalisation from [0, 255] pixels: `input_transform` or the backbone's own."""
    return self.input_transform or backbones.BACKBONES[self.backbone].input_transform

  def backbone_input(self, images: jax.Array) -> jax.Array:
    """Images in [-1, 1] as the backbone's weights expect them: [0, 255] pixels through `transform`; where that
    is [-1, 1] itself (MobileNetV2's), the images as they are."""
    scale, offset = self.transform()
    if all(abs(127.5 * s - 1) < 1e-9 and abs(o + 1) < 1e-9 for s, o in zip(scale, offset)):
      return images
    scale, offset = (jnp.asarray(v, jnp.float32) for v in (scale, offset))
    return ((images.astype(jnp.float32) + 1.0) * 127.5) * scale + offset

  def encoder_description(self) -> str:
    """The encoder in a summary row."""
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
