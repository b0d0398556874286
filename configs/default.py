"""The package's default config (`jaxseg/config/defaults.py`, a comment per field): the TensorFlow segmentation
tutorial's U-Net on Oxford-IIIT Pet at 128 px. The other recipes here start from it.

  python main.py --config configs/default.py      (the same as `jaxseg train`)

The tutorial's Keras model reached 88.6% val pixel accuracy at this size in its 20 epochs.
"""

from jaxseg.config.defaults import get_config

__all__ = ["get_config"]
