"""keras-hub SegFormer segmenters -> jaxseg: a whole pretrained model (encoder, decoder and classifier) from a
`SegFormerImageSegmenter` preset name (keras-hub downloads it where there is a network) or a directory its
`save_to_preset` wrote, with what a config needs to describe it."""

import json
import os
from typing import Any

import numpy as np

from jaxseg.models.backbones import keras_hub_port, mit
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
  """What a config needs: {"backbone", "decoder_dim", "num_classes", "image_size" (or None)}.

  Raises:
    PortError: the encoder is not one of MiT B0-B5.
  """
  encoder = segmenter.backbone.image_encoder
  arch = {"hidden_dims": tuple(encoder.hidden_dims), "layerwise_depths": tuple(encoder.layerwise_depths)}
  names = [n for n, a in mit.VARIANTS.items() if a == arch]
  if not names:
    raise PortError(f"the SegFormer preset's encoder ({arch}) is none of MiT B0-B5.")
  converter = getattr(segmenter.preprocessor, "image_converter", None) if segmenter.preprocessor else None
  size = tuple(converter.image_size) if converter is not None and converter.image_size else None
  return {"backbone": names[0], "decoder_dim": int(segmenter.backbone.projection_filters),
          "num_classes": int(segmenter.num_classes), "image_size": size}


def segmenter_variables(segmenter) -> dict[str, Any]:
  """{"params", "batch_stats"} of a keras-hub `SegFormerImageSegmenter` in `SegFormer`'s names."""
  dense = lambda layer: {"kernel": np.asarray(layer.kernel), "bias": np.asarray(layer.bias)}
  decoder = segmenter.backbone
  conv, bn = decoder.linear_fuse.layers[0], decoder.linear_fuse.layers[1]
  params = {"encoder": mit.keras_variables(decoder.image_encoder)["params"],
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
