"""CamVid at 480x360, U-Net over the ImageNet MobileNetV2: the levers the ablation measured one by one, together.
Cross-entropy with square-root median-frequency weights plus Lovasz-softmax, whole frames (no crops or random
scale), 80 epochs, a moving average of the weights; otherwise `configs/camvid_long.py`.

  python main.py --config configs/camvid_combined.py --workdir runs/camvid_combined \
      --config.model.backbone_weights=mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5

To choose between recipes on a street no run trains on, hold CamVid's sequence 0006R0 out of training and score
it (docs/datasets.md): `--config.data.holdout='0006R0_*' --config.data.eval_split=holdout`, or all recipes at
once with `python -m benchmarks.camvid_ablation --holdout '0006R0_*' --only combined,combined_deeplab,long`.

Result: not measured yet (each lever's effect alone: docs/results.md's ablation table). Time: 13.5 s a step of 8
whole frames on 2 AMD EPYC Zen 3 cores (about 7.5 min an epoch, 10 hours for the 80; `configs/camvid_long.py`'s
crops: 2.6 s a step there), most of it the Lovasz term, which sorts every pixel's error per class (its loss and
gradient take 45 times the cross-entropy's at this size on that CPU): a run for a GPU.
"""

from configs import camvid_long


def get_config():
  config = camvid_long.get_config()
  config.name = "camvid_combined"
  config.loss.name = "cross_entropy+lovasz"  # the weights apply to the cross-entropy term
  config.augment.crop_height, config.augment.crop_width = 0, 0  # whole frames
  config.augment.scale_min, config.augment.scale_max = 1.0, 1.0
  return config
