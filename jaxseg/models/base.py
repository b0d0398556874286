"""What every segmentation model is configured by, and what each tells the rest of the package about itself:
how it is built from a config, what identifies it in a checkpoint, and its summary rows."""

from typing import Any, ClassVar

import flax.linen as nn
import ml_collections

from jaxseg import precision
from jaxseg.models.layers import LayerSpec


class SegmentationModel(nn.Module):
  """Fields shared by every model over MobileNetV2.

  Attributes:
    num_classes: output channels.
    alpha: MobileNetV2 width multiplier.
    spec: the layer spec of the layers after the encoder (its `bn_momentum` is the decoder's).
    encoder_bn_momentum: encoder BatchNorm momentum (Keras MobileNetV2: 0.999); the encoder otherwise
      computes as `spec` says.
  """
  num_classes: int = 3
  alpha: float = 1.0
  spec: LayerSpec = LayerSpec()
  encoder_bn_momentum: float = 0.999

  # Config fields besides the shared ones (`jaxseg.train.checkpoints`) that identify this architecture in a
  # checkpoint, as {meta key: config field}.
  IDENTITY_FIELDS: ClassVar[dict[str, str]] = {}
  # The encoder layer whose output feeds the head (the encoder ends there).
  ENCODER_OUTPUT: ClassVar[str] = ""

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "SegmentationModel":
    """The model `config` describes (`model.*`, `num_classes`, `dtype`)."""
    m = config.model
    policy = precision.precision(config.dtype)
    spec = LayerSpec(dtype=policy.compute, gemm_dtype=policy.gemm, conv_impl=m.conv_impl,
                     bn_momentum=m.decoder_bn_momentum)
    return cls(num_classes=config.num_classes, alpha=m.alpha, spec=spec,
               encoder_bn_momentum=m.encoder_bn_momentum, **cls.config_fields(config))

  @classmethod
  def config_fields(cls, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """This architecture's own constructor arguments from `config.model`."""
    return {}

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> str:
    """A one-line problem with this architecture's own config fields, or ""."""
    return ""

  def encoder_fields(self) -> dict[str, Any]:
    """Constructor arguments of this model's `MobileNetV2` encoder."""
    return {"alpha": self.alpha, "last_layer": self.ENCODER_OUTPUT,
            "spec": self.spec.replace(bn_momentum=self.encoder_bn_momentum)}

  def summary_rows(self, variables: dict[str, Any], intermediates: dict[str, Any],
                   size: Any) -> list[tuple[str, list[tuple[int, ...]], int]]:
    """(block, output shapes, parameter count) per block after the input, for `--mode summary`.

    Args:
      variables: the model's variables (shape structs).
      intermediates: what `capture_intermediates=True` recorded (shape structs).
      size: a function from a variable subtree's name to its parameter + statistics count.
    """
    raise NotImplementedError
