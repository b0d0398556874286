"""224x224, batch 64, 20 epochs, random flips (the tutorial's Keras model reached 90.3% val pixel accuracy at
this size)."""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "r224"
  config.image_size = 224
  return config
