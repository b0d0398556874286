"""keras-hub SegFormer segmenters -> jaxseg: a whole pretrained model (encoder, decoder and classifier) from a
`SegFormerImageSegmenter` preset name (keras-hub downloads it where there is a network) or a directory its
`save_to_preset` wrote, with what a config needs to describe it."""

import json
import os
from typing import Any

import jax
import numpy as np

from jaxseg.models import aux_head, backbones
from jaxseg.models.backbones import keras_hub_port
from jaxseg.models.backbones.keras_hub_port import PortError


def is_segmenter_preset(source: str) -> bool:
  """Whether `source` names a keras-hub SegFormer segmenter preset (a name "segformer_*", or a directory whose
  task is `SegFormerImageSegmenter`)."""
  if not os.path.isdir(source):
    return source.startswith("segformer_")
  try:
    with open(os.path.join(source, "task.json"), encoding="utf-8") as f:
      return "SegFormerImageSegmenter" in json.load(f).get("class_name", "")
  except (OSError, ValueError):
    return False


def load_segmenter(source: str) -> Any:
  """The keras-hub `SegFormerImageSegmenter` of a preset name or directory.

  Raises:
    PortError: it cannot be read or fetched.
  """
  return keras_hub_port.load_backbone(source, task="SegFormerImageSegmenter")


def describe(segmenter) -> dict[str, Any]:
  """What a config needs: {"name", "backbone", "decoder_dim", "num_classes", "image_size" (or None)}.

  Raises:
    PortError: the encoder is not one of MiT B0-B5.
  """
  encoder = segmenter.backbone.image_encoder
  arch = {"hidden_dims": tuple(encoder.hidden_dims), "layerwise_depths": tuple(encoder.layerwise_depths)}
  names = [n for n, e in backbones.BACKBONES.items() if e.arch == arch]
  if not names:
    raise PortError(f"the SegFormer preset's encoder ({arch}) is none of MiT B0-B5.")
  converter = getattr(segmenter.preprocessor, "image_converter", None) if segmenter.preprocessor else None
  size = tuple(converter.image_size) if converter is not None and converter.image_size else None
  return {"name": "segformer", "backbone": names[0], "decoder_dim": int(segmenter.backbone.projection_filters),
          "num_classes": int(segmenter.num_classes), "image_size": size}


def segmenter_variables(segmenter) -> dict[str, Any]:
  """{"params", "batch_stats"} of a keras-hub `SegFormerImageSegmenter` in `SegFormer`'s names."""
  dense = lambda layer: {"kernel": np.asarray(layer.kernel), "bias": np.asarray(layer.bias)}
  decoder = segmenter.backbone
  conv, bn = decoder.linear_fuse.layers[0], decoder.linear_fuse.layers[1]
  encoder_name = describe(segmenter)["backbone"]
  params = {"encoder": backbones.BACKBONES[encoder_name].extract(decoder.image_encoder)["params"],
            **{f"linear_{i}": dense(block) for i, block in enumerate(decoder.mlp_blocks)},
            "linear_fuse": {"kernel": np.asarray(conv.kernel)},
            "linear_fuse_bn": {"scale": np.asarray(bn.gamma), "bias": np.asarray(bn.beta)},
            "logits": dense(segmenter.output_segmentation_head)}
  stats = {"linear_fuse_bn": {"mean": np.asarray(bn.moving_mean), "var": np.asarray(bn.moving_variance)}}
  return {"params": params, "batch_stats": stats}


def port(segmenter, want: dict[str, Any]) -> dict[str, Any]:
  """The segmenter's weights in the structure of `want` (a SegFormer's initialised variables).

  Raises:
    PortError: naming the first layer missing or of another shape.
  """
  return keras_hub_port.port(segmenter, want, segmenter_variables)


def into_model(variables: dict[str, Any], source: str, backbone: str, width: int) -> tuple[dict[str, Any], Any, str]:
  """`variables` (a SegFormer's) replaced by the segmenter preset `source`'s, all of them, or all but the
  classifier where the model has another class count.

  Returns:
    (variables, the preset's input normalisation or None, a phrase saying what was taken).

  Raises:
    PortError: the preset is SegFormer over another encoder or decoder width, or does not fit.
  """
  segmenter = load_segmenter(source)
  found = describe(segmenter)
  if (found["backbone"], found["decoder_dim"]) != (backbone, width):
    raise PortError(
        f"config.model.backbone_weights={source} is SegFormer over {found['backbone']} with a decoder of "
        f"{found['decoder_dim']}; set --config.model.backbone={found['backbone']} --config.model.decoder_dim="
        f"{found['decoder_dim']} (this config: {backbone}, {width}).")
  ported = segmenter_variables(segmenter)
  classes = variables["params"]["logits"]["bias"].shape[-1]
  fresh_head = found["num_classes"] != classes
  if fresh_head:
    ported["params"]["logits"] = variables["params"]["logits"]
  for collection, tree in variables.items():  # an auxiliary head for training is new: the preset has none
    if aux_head.MODULE in tree:
      ported[collection][aux_head.MODULE] = tree[aux_head.MODULE]
  if jax.tree.map(np.shape, ported) != jax.tree.map(np.shape, variables):
    raise PortError(f"the SegFormer preset {source} does not fit this model's shapes.")
  what = (f"keras-hub SegFormer preset {source}" +
          (f" (its {found['num_classes']}-class classifier replaced by a new one for {classes} classes)"
           if fresh_head else ""))
  return jax.tree.map(np.asarray, ported), keras_hub_port.image_transform(source), what
