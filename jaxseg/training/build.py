"""Build: a config -> its model and first variables, pretrained weights included (read, or downloaded once,
from the files and presets the config names). A config they change (a preset's input normalisation, a
checkpoint's trained settings) is returned as a new config with its model, never changed in place."""

from typing import Any

import jax
import ml_collections

from jaxseg import data, models
from jaxseg.config import checks
from jaxseg.models import backbones
from jaxseg.training import checkpoints


def initial_variables(config: ml_collections.ConfigDict, model: models.SegmentationModel) -> dict[str, Any]:
  """`model`'s random {"params", "batch_stats"} for `config.seed`, on the host."""
  return jax.device_get(models.init_variables(model, data.model_size(config), config.seed))


def with_input_transform(config: ml_collections.ConfigDict, scale: Any,
                         offset: Any) -> tuple[ml_collections.ConfigDict, models.SegmentationModel]:
  """A copy of `config` whose `model.input_scale` / `input_offset` (recorded in checkpoints) are these, and
  its model."""
  config = config.copy_and_resolve_references()
  config.model.input_scale, config.model.input_offset = tuple(scale), tuple(offset)
  return config, models.create_model(config)


def with_pretrained(config: ml_collections.ConfigDict, model: models.SegmentationModel,
                    variables: dict[str, Any]) -> tuple[dict[str, Any], ml_collections.ConfigDict,
                                                         models.SegmentationModel]:
  """`variables` with what `model.backbone_weights` names: the encoder's (`backbones.pretrained`), or the
  whole model's where the model reads such a preset. The source's input normalisation, where it declares
  one and the config names none, becomes the model's.

  Returns:
    (variables, config, model), the last two changed where the normalisation was adopted.

  Raises:
    WeightsError / PortError: the weights cannot be read or do not fit (one line each).
  """
  m = config.model
  if model.whole_model_weights(m.backbone_weights):
    variables, transform, origin = model.pretrained_model(variables, m.backbone_weights)
  else:
    encoder, transform, origin = backbones.pretrained(m.backbone, m.backbone_weights, data.model_size(config))
    if encoder is None:
      return variables, config, model
    variables = backbones.merge(variables, encoder)
  if transform is not None and not len(m.input_scale):
    config, model = with_input_transform(config, *transform)
  if jax.process_index() == 0:
    print(f"{m.backbone}: weights from {origin}{' and its input normalisation' if transform is not None else ''}.")
  return variables, config, model


def build(config: ml_collections.ConfigDict, pretrained: bool = True) -> tuple[dict[str, Any],
                                                                             ml_collections.ConfigDict,
                                                                             models.SegmentationModel]:
  """(variables, config, model) of `config` (checked here, `config.checks.check_config`): its model's random
  variables, with the pretrained weights `model.backbone_weights` names where `pretrained`."""
  checks.check_config(config)
  model = models.create_model(config)
  variables = initial_variables(config, model)
  return with_pretrained(config, model, variables) if pretrained else (variables, config, model)


def with_trained_settings(config: ml_collections.ConfigDict, model: models.SegmentationModel, meta: dict[str, Any],
                          inference: bool) -> tuple[ml_collections.ConfigDict, models.SegmentationModel]:
  """`config` and its model as a checkpoint (its `meta`) needs them: a config that names no input
  normalisation takes the one the checkpoint was trained with; for inference, the decoder's BatchNorm
  momentum too (its averages are corrected with the momentum they were trained with, whatever the config at
  hand says)."""
  trained = checkpoints.saved_config(meta).model  # in today's fields
  if not len(config.model.input_scale) and len(trained.input_scale):
    config, model = with_input_transform(config, trained.input_scale, trained.input_offset)
  momentum = trained.decoder_bn_momentum
  if inference and momentum != config.model.decoder_bn_momentum:
    config = config.copy_and_resolve_references()
    config.model.decoder_bn_momentum = momentum
  return config, model
