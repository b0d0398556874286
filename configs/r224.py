"""The seed's experiment 2: 224x224, batch 64, 20 epochs, random flips (Keras reached 90.3% val accuracy)."""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "r224"
  config.image_size = 224
  return config
