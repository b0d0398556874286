"""224x224, batch 64, 20 epochs, random flips (the tutorial's Keras model reached 90.3% val pixel accuracy at
this size).

Oxford-IIIT Pet is prepared by tfds as ArrayRecord and streamed by Grain workers (no TensorFlow, and memory
bounded by workers x prefetch x batch rather than the 3,680 decoded photos at 224 px); the streamed batches
equal the in-memory pipeline's for a seed.

  python main.py --config configs/r224.py --workdir runs/r224
"""

from configs import default


def get_config():
  config = default.get_config()
  config.name = "r224"
  config.image_size = 224
  config.data.tfds_file_format = "array_record"
  config.data.pipeline = "stream"
  return config
