"""ADE20K (SceneParsing, 150 classes): DeepLabV3+ (output stride 16) over the ImageNet MobileNetV2.

    python main.py --config configs/ade20k.py --config.data.root=/data/ADEChallengeData2016 --mode inspect
    python main.py --config configs/ade20k.py --config.data.root=/data/ADEChallengeData2016

Expects `ADEChallengeData2016.zip` extracted: config.data.root holds `images/{training,validation}/*.jpg` and
`annotations/{training,validation}/*.png` (8-bit, 0 = other, 1-150 the classes, trained as 0-149: label 0 is
ignored and the others shift down by one). 20,210 training and 2,000 validation images of varying sizes,
streamed at their own aspect ratio: trained on 512x512 crops of images rescaled to fit 2048x512 times
0.5-2.0, evaluated whole, rescaled to fit 2048x512, and scored at each label's own resolution. Expected
result and time: not measured (the dataset is not at hand here).
"""

from configs import standard_recipe

# objectInfo150.txt's names, in label order 1-150.
NAMES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag")


def get_config():
  config = standard_recipe.get_config("ade20k", "data/ADEChallengeData2016", crop=(512, 512), scale=(2048, 512),
                                      class_names=NAMES, class_colors=standard_recipe.voc_colors(len(NAMES), start=1))
  config.data.layout = "dirs"
  config.data.image_dir, config.data.mask_dir = "images/{split}", "annotations/{split}"
  config.data.train_split, config.data.eval_split = "training", "validation"
  config.data.class_map = {"0": "ignore", **{str(i + 1): i for i in range(len(NAMES))}}
  config.batch_size = 16
  config.eval_batch_size = 8
  config.num_epochs = 100
  config.checkpoint_every_steps = 1000
  return config
