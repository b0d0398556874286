"""CamVid at 480x360, U-Net over the ImageNet MobileNetV2, trained as the published real-time models are: SGD
with momentum 0.9, weight decay 5e-4 and a polynomial decay after one epoch of warm-up, crops at random scales
0.5-2.0, and an auxiliary head on the encoder's stride-16 features (its cross-entropy weighted 0.4); the class
weights, 80 epochs and averaged weights of `configs/camvid_long.py`.

  python main.py --config configs/camvid_sgd.py --workdir runs/camvid_sgd \
      --config.model.backbone_weights=mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5

To be compared with the others on a street no run trains on: `python -m benchmarks.camvid_ablation --holdout
'0006R0_*' --only long,sgd` (docs/datasets.md). Result: not measured yet. Time: 2.1 s a train step of 8
crops on 2 AMD EPYC Zen 3 cores, float32 (`python -m benchmarks.camvid --config configs/camvid_sgd.py`, 2 turns
alternating with `configs/camvid_long.py`'s 1.85 s: the head and the wider scales add an eighth), about 107 s an
epoch with evaluation, 80 epochs in about 2.4 hours.

Why each change (the recipes of BiSeNet, PP-LiteSeg and MMSegmentation's CamVid and Cityscapes configs):
- SGD with momentum and weight decay instead of Adam: what each of those recipes trains with; the decay is a
  regulariser the Adam recipes here go without, for a model meant for streets its frames do not show.
- scales 0.5-2.0 (from 0.75-1.5): objects at more sizes than the three training streets hold.
- the auxiliary head: a gradient into the encoder's middle stages that does not pass through the decoder.
"""

from configs import camvid_long


def get_config():
  config = camvid_long.get_config()
  config.name = "camvid_sgd"
  config.optimizer = "sgd"
  config.learning_rate = 0.01
  config.momentum = 0.9
  config.weight_decay = 5e-4
  config.lr_schedule = "poly"
  config.warmup_epochs = 1.0
  config.augment.scale_min, config.augment.scale_max = 0.5, 2.0
  config.model.aux_stride = 16
  config.loss.aux_weight = 0.4
  return config
