"""CamVid reduced to five classes for driving (road, sidewalk, vehicle, person, other): the class reduction
of the original report's next steps, done in the config through `data.class_map`."""

from configs import camvid

# CamVid label (SegNet ids 0-10) -> driving class.
CLASSES = (("road", (128, 64, 128)), ("sidewalk", (60, 40, 222)), ("vehicle", (64, 0, 128)),
           ("person", (220, 20, 60)), ("other", (150, 150, 150)))
MERGE = {"0": 4, "1": 4, "2": 4, "3": 0, "4": 1, "5": 4, "6": 4, "7": 4, "8": 2, "9": 3, "10": 3,
         "11": "ignore"}  # sky building pole road pavement tree sign fence car pedestrian bicyclist void


def get_config():
  config = camvid.get_config()
  config.name = "camvid_driving"
  config.num_classes = len(CLASSES)
  config.data.class_names = tuple(name for name, _ in CLASSES)
  config.data.class_colors = tuple(color for _, color in CLASSES)
  config.data.class_map = MERGE
  config.data.ignore_label = -1  # void is mapped to "ignore" above
  return config
