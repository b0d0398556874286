"""CamVid at 480x360, U-Net over the ImageNet MobileNetV2: the levers the ablation measured one by one, together.
Cross-entropy with square-root median-frequency weights plus Lovasz-softmax, whole frames (no crops or random
scale), 80 epochs, a moving average of the weights; otherwise `configs/camvid_long.py`.

  python main.py --config configs/camvid_combined.py --workdir runs/camvid_combined \
      --config.model.backbone_weights=mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5

To choose between recipes on a street no run trains on, hold CamVid's sequence 0006R0 out of training and score
it (docs/datasets.md): `--config.data.holdout='0006R0_*' --config.data.eval_split=holdout`, or all recipes at
once with `python -m benchmarks.camvid_ablation --holdout '0006R0_*' --only combined,combined_deeplab,long`.

Result: not measured yet (each lever's effect alone: docs/results.md's ablation table). Time: 4.3 s a step of 8
whole frames on 2 AMD EPYC Zen 3 cores (`python -m benchmarks.camvid --config configs/camvid_combined.py`; about
3.5 min an epoch with the evaluation, 4.6 hours for the 80). Lovasz-softmax ranks each class's errors by a
histogram of 65536 bins (`loss.lovasz_bins`): sorting them, as Lovasz-softmax is written, makes the step 9.3 s.
"""

from configs import camvid_long


def get_config():
  config = camvid_long.get_config()
  config.name = "camvid_combined"
  config.loss.name = "cross_entropy+lovasz"  # the weights apply to the cross-entropy term
  config.loss.lovasz_bins = 65536  # errors ranked by histogram, not sorted: at most 1/65536 below the sorted loss
  config.augment.crop_height, config.augment.crop_width = 0, 0  # whole frames
  config.augment.scale_min, config.augment.scale_max = 1.0, 1.0
  return config
