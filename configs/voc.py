"""Pascal VOC 2012 segmentation, 21 classes (background included): DeepLabV3+ (output stride 16) over the
ImageNet MobileNetV2.

    python main.py --config configs/voc.py --config.data.root=/data/VOCdevkit/VOC2012 --mode inspect
    python main.py --config configs/voc.py --config.data.root=/data/VOCdevkit/VOC2012
    # SBD's augmented training set (10,582 images), its masks and list placed beside VOC's own:
    python main.py --config configs/voc.py --config.data.root=/data/VOCdevkit/VOC2012
        --config.data.train_split=trainaug --config.data.mask_dir=SegmentationClassAug

Expects `VOCtrainval_11-May-2012.tar` extracted: config.data.root is `VOCdevkit/VOC2012` with `JPEGImages/*.jpg`,
`SegmentationClass/*.png` (palette PNGs: value = class 0-20, 255 = boundaries and difficult regions, ignored)
and `ImageSets/Segmentation/{train,val}.txt` (1,464 train, 1,449 val ids). Streamed at their own aspect ratio: trained
on 512x512 crops of images rescaled to fit 2048x512 times 0.5-2.0, evaluated whole, rescaled to fit 2048x512,
and scored at each label's own resolution. Expected result and time: not measured (the dataset is not at
hand here).
"""

from configs import standard_recipe

NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
         "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
         "tvmonitor")


def get_config():
  config = standard_recipe.get_config("voc", "data/VOCdevkit/VOC2012", crop=(512, 512), scale=(2048, 512),
                                      class_names=NAMES, class_colors=standard_recipe.voc_colors(len(NAMES)))
  config.data.layout = "voc"
  config.data.image_dir, config.data.mask_dir = "JPEGImages", "SegmentationClass"
  config.data.train_split, config.data.eval_split = "train", "val"
  config.data.class_map = {}  # value v is class v ...
  config.data.ignore_label = 255  # ... and the boundaries are ignored
  config.data.ignore_color = (224, 224, 192)
  config.batch_size = 16
  config.eval_batch_size = 8
  config.num_epochs = 50
  return config
