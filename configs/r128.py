"""The seed's experiment 1: 128x128, batch 64, 20 epochs, random flips (Keras reached 88.6% val accuracy)."""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "r128"
  config.image_size = 128
  return config
