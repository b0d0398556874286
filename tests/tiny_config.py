"""A tiny config for end-to-end tests (also a config file for main.py in subprocess tests):
32 px, MobileNetV2 0.35, batch 2, a handful of synthetic examples, one epoch."""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "tiny"
  config.image_size = 32
  config.model.backbone = "mobilenet_v2_0.35"
  config.model.backbone_weights = "none"
  config.data.source = "synthetic"
  config.data.synthetic_train_size = 8
  config.data.synthetic_eval_size = 5
  config.batch_size = 2
  config.eval_batch_size = 4
  config.num_epochs = 1
  config.log_every_steps = 2
  config.num_samples = 2
  # Exact comparisons (devices, restored models, twins) need one precision everywhere; "auto" would pick
  # mixed bf16 on some CPUs only. tests/test_dtype.py covers the other policies.
  config.dtype = "float32"
  return config
