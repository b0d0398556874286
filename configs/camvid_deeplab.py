"""CamVid (11 classes, full 480x360 frames) with DeepLabV3+ over the ImageNet MobileNetV2 at output stride 16
(ASPP rates 6/12/18); otherwise as configs/camvid.py."""

from configs import camvid


def get_config():
  config = camvid.get_config()
  config.name = "camvid_deeplab"
  config.model.name = "deeplabv3plus_mobilenet_v2"
  config.model.output_stride = 16
  return config
