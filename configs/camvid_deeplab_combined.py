"""CamVid at 480x360, DeepLabV3+ (output stride 16) over the ImageNet MobileNetV2 with the combined levers of
`configs/camvid_combined.py` (cross-entropy with square-root weights plus Lovasz-softmax, whole frames, 80
epochs, averaged weights) and the encoder at a tenth of the learning rate, as `configs/camvid_deeplab.py`.

  python main.py --config configs/camvid_deeplab_combined.py --workdir runs/camvid_deeplab_combined \
      --config.model.backbone_weights=mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5

Result and time: not measured yet (DeepLabV3+ at stride 16 alone: +0.007 val mIoU over the U-Net in 40 epochs).
"""

from configs import camvid_combined


def get_config():
  config = camvid_combined.get_config()
  config.name = "camvid_deeplab_combined"
  config.model.name = "deeplabv3plus"
  config.model.output_stride = 16
  config.encoder_lr_scale = 0.1  # (why: configs/camvid_deeplab.py)
  config.dtype = "auto"
  return config
