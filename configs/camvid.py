"""CamVid road scenes, 11 classes (the SegNet split), at the full 480x360 frame: U-Net over the ImageNet
MobileNetV2, encoder fine-tuned, median-frequency class weights, random scale, crop and flip.

Expects the SegNet layout under config.data.root (train.txt / val.txt / test.txt of `image label` lines;
labels are 8-bit PNGs with values 0-10, 11 = void). See README.md, "CamVid".

  python main.py --config configs/camvid.py --config.model.backbone_weights=WEIGHTS.h5

Expected: 0.642 val mIoU, pixel accuracy 0.887, after its 40 epochs (about an hour on 2 AMD EPYC Zen 5 cores,
float32). `configs/camvid_long.py` is the better recipe (0.719).
"""

from configs import default

# SegNet's 11 classes and their display colours; label 11 (void) is ignored.
CLASSES = (("sky", (128, 128, 128)), ("building", (128, 0, 0)), ("pole", (192, 192, 128)),
           ("road", (128, 64, 128)), ("pavement", (60, 40, 222)), ("tree", (128, 128, 0)),
           ("sign_symbol", (192, 128, 128)), ("fence", (64, 64, 128)), ("car", (64, 0, 128)),
           ("pedestrian", (64, 64, 0)), ("bicyclist", (0, 128, 192)))


def get_config():
  config = default.get_config()
  config.name = "camvid"
  config.num_classes = len(CLASSES)
  config.image_height, config.image_width = 360, 480  # the frames' own size: nothing is resized
  config.data.source = "folder"
  config.data.root = "data/camvid"
  config.data.train_split = "train"
  config.data.eval_split = "val"
  config.data.class_names = tuple(name for name, _ in CLASSES)
  config.data.class_colors = tuple(color for _, color in CLASSES)
  config.data.class_map = {}  # label v is class v ...
  config.data.ignore_label = 11  # ... and void is ignored
  config.model.backbone_weights = "imagenet"
  config.freeze_encoder = False
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_epochs = 40
  config.learning_rate = 1e-3
  config.lr_schedule = "cosine"
  config.augment.scale_min, config.augment.scale_max = 0.75, 1.5
  config.augment.crop_height, config.augment.crop_width = 256, 352
  config.augment.brightness, config.augment.contrast, config.augment.saturation = 0.1, 0.1, 0.1
  config.loss.class_weights = "median_frequency"
  config.model.decoder_bn_momentum = 0.9  # 45 steps an epoch: statistics that follow the training
  # The precision of the CamVid results in README. On a CPU with AVX512_BF16, "auto" (bf16 GEMM inputs) trains
  # a little faster and evaluates 1.2x faster (benchmarks/README.md); its effect on CamVid accuracy is not
  # measured.
  config.dtype = "float32"
  config.log_every_steps = 10
  config.num_samples = 4
  return config
