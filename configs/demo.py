"""Offline demo: synthetic shapes, random-init encoder, 64 px; trains, checkpoints, evaluates and draws
predictions in a few minutes on 2 CPU cores. Needs no network and no downloaded data."""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "demo"
  config.image_size = 64
  config.model.backbone = "mobilenet_v2_0.35"
  config.model.backbone_weights = "none"
  config.freeze_encoder = False  # A random encoder has nothing to keep: train it all,
  config.encoder_bn_train = True  # BatchNorm included (inference-mode BN with fresh statistics won't train).
  # Few steps: statistics must forget their initial values within the run.
  config.model.encoder_bn_momentum = 0.9
  config.model.decoder_bn_momentum = 0.9
  config.data.source = "synthetic"
  config.data.synthetic_train_size = 512
  config.data.synthetic_eval_size = 128
  config.batch_size = 32
  config.eval_batch_size = 64
  config.num_epochs = 8
  config.learning_rate = 2e-3
  config.log_every_steps = 4
  return config
