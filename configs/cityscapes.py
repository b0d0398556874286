"""Cityscapes (fine annotations), 19 classes: DeepLabV3+ (output stride 16) over the ImageNet MobileNetV2.

    python main.py --config configs/cityscapes.py --config.data.root=/data/cityscapes --mode inspect
    python main.py --config configs/cityscapes.py --config.data.root=/data/cityscapes

Expects the official release extracted under config.data.root: `leftImg8bit/{split}/{city}/*_leftImg8bit.png`
and `gtFine/{split}/{city}/*_gtFine_labelIds.png` (label ids 0-33, mapped to the 19 train ids; every other id
is ignored). 2,975 train and 500 val frames of 2048x1024, streamed at full resolution: trained on 512x1024
crops of frames rescaled by 0.5-2.0, evaluated with 512x1024 windows slid over the whole 2048x1024 frame
(logits averaged where they overlap), scored at the labels' full resolution. Expected result and time: not
measured (the dataset is not at hand here).
"""

from configs import standard_recipe

# Train id -> (name, label id, colour).
CLASSES = (("road", 7, (128, 64, 128)), ("sidewalk", 8, (244, 35, 232)), ("building", 11, (70, 70, 70)),
           ("wall", 12, (102, 102, 156)), ("fence", 13, (190, 153, 153)), ("pole", 17, (153, 153, 153)),
           ("traffic light", 19, (250, 170, 30)), ("traffic sign", 20, (220, 220, 0)),
           ("vegetation", 21, (107, 142, 35)), ("terrain", 22, (152, 251, 152)), ("sky", 23, (70, 130, 180)),
           ("person", 24, (220, 20, 60)), ("rider", 25, (255, 0, 0)), ("car", 26, (0, 0, 142)),
           ("truck", 27, (0, 0, 70)), ("bus", 28, (0, 60, 100)), ("train", 31, (0, 80, 100)),
           ("motorcycle", 32, (0, 0, 230)), ("bicycle", 33, (119, 11, 32)))
NUM_LABEL_IDS = 34  # labelIds PNGs hold 0-33


def class_map() -> dict[str, int | str]:
  """Label id -> train id; the ids of no training class (unlabeled, ego vehicle, ..., license plate) ignored."""
  train_ids = {label_id: i for i, (_, label_id, _) in enumerate(CLASSES)}
  return {str(i): train_ids.get(i, "ignore") for i in range(NUM_LABEL_IDS)}


def get_config():
  config = standard_recipe.get_config("cityscapes", "data/cityscapes", crop=(512, 1024), scale=(2048, 1024),
                                      class_names=[name for name, _, _ in CLASSES],
                                      class_colors=[color for _, _, color in CLASSES])
  config.eval.mode = "slide"  # windows of the model's size (the crop) over the whole frame
  config.data.layout = "dirs"
  config.data.image_dir, config.data.mask_dir = "leftImg8bit/{split}", "gtFine/{split}"
  config.data.image_suffix, config.data.mask_suffix = "_leftImg8bit", "_gtFine_labelIds"
  config.data.train_split, config.data.eval_split = "train", "val"
  config.data.class_map = class_map()
  config.batch_size = 8
  config.eval_batch_size = 4
  config.num_epochs = 80
  config.checkpoint_every_steps = 500
  return config
