"""DeepLabV3+ on CamVid at output stride 8 (ASPP rates 12/24/36): finer features, about twice the encoder
cost of stride 16."""

from configs import camvid_deeplab


def get_config():
  config = camvid_deeplab.get_config()
  config.name = "camvid_deeplab_os8"
  config.model.output_stride = 8
  return config
