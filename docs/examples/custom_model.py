"""Train a model you define, with your own optax optimizer, through jaxseg's trainer.

  python docs/examples/custom_model.py --workdir /tmp/fcn [--epochs 4]

The model is an FCN-style head (a 1x1 classifier on the encoder's features at strides 8, 16 and 32, each
upsampled and added to the next finer one) over a ResNet-18 backbone; the optimizer is SGD with Nesterov
momentum on a cosine schedule behind gradient clipping. Registering the class in `jaxseg.models.MODELS` is
all the trainer needs: checkpoints, evaluation, `jaxseg.load` and the summary then work by its name. The data
are jaxseg's synthetic shapes, so the example runs offline in about a minute on a CPU; point `config.data` at
a folder dataset (docs/datasets.md) to train on your own.
"""

import argparse
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import jaxseg
from jaxseg import models
from jaxseg.config import defaults
from jaxseg.ops import upsample_bilinear


class FCNHead(models.SegmentationModel):
  """1x1 classifiers on strides 32, 16 and 8 summed coarse to fine, then upsampled to the image. Everything a
  `SegmentationModel` has (num_classes, backbone, spec, input normalisation) comes from the config."""

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False, encoder_train: bool = False) -> jax.Array:
    """(B, H, W, num_classes) float32 logits of images (B, H, W, 3) in [-1, 1]."""
    del train  # no BatchNorm in this head
    feats = self.encode(images, encoder_train)  # {stride: (B, H / stride, W / stride, C)}
    logits = None
    for stride in (32, 16, 8):
      score = nn.Conv(self.num_classes, (1, 1), name=f"score_{stride}")(feats[stride].astype(jnp.float32))
      logits = score if logits is None else upsample_bilinear(logits, score.shape[1:3]) + score
    return upsample_bilinear(logits, images.shape[1:3])

  def summary_rows(self, variables: dict[str, Any], intermediates: dict[str, Any],
                   size: Any) -> list[tuple[str, list[tuple[int, ...]], int]]:
    """The encoder, then one row per classifier (for `jaxseg summary`)."""
    taps = intermediates["encoder"]["__call__"][0]
    rows = [(f"encoder ({self.encoder_description()})", [taps[s].shape for s in (8, 16, 32)], size("encoder"))]
    for stride in (32, 16, 8):
      rows.append((f"score_{stride} (1x1)", [intermediates[f"score_{stride}"]["__call__"][0].shape],
                   size(f"score_{stride}")))
    return rows


models.MODELS["fcn"] = FCNHead


def get_config(epochs: int = 4):
  """The default config with the FCN over a randomly initialised ResNet-18 on synthetic shapes at 64 px."""
  config = defaults.get_config()
  config.model.name, config.model.backbone, config.model.backbone_weights = "fcn", "resnet18", "none"
  config.freeze_encoder = False  # a random encoder must learn too
  config.data.source = "synthetic"
  config.data.synthetic_train_size, config.data.synthetic_eval_size = 64, 16
  config.image_size, config.batch_size, config.num_epochs = 64, 8, epochs
  config.dtype = "float32"
  return config


def optimizer(config) -> optax.GradientTransformation:
  """SGD with Nesterov momentum, cosine decay over the run, gradients clipped to norm 1."""
  steps = config.num_epochs * (config.data.synthetic_train_size // config.batch_size)
  return optax.chain(optax.clip_by_global_norm(1.0),
                     optax.sgd(optax.cosine_decay_schedule(0.05, steps), momentum=0.9, nesterov=True))


def main(argv: list[str] | None = None) -> list[dict]:
  """Trains the FCN with the SGD above, then predicts a photo from the newest checkpoint; returns the history."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--epochs", type=int, default=4)
  args = parser.parse_args(argv)
  config = get_config(args.epochs)
  history = jaxseg.train(config, args.workdir, optimizer=optimizer(config))
  predictor = jaxseg.load(args.workdir)  # restores the newest checkpoint by the model's registered name
  image = jax.random.uniform(jax.random.key(0), (96, 128, 3), maxval=255).astype(jnp.uint8)
  print(f"val mIoU {history[-1]['val']['mean_iou']:.4f}; a 128x96 photo -> mask {predictor(image).shape}")
  return history


if __name__ == "__main__":
  main()
