"""CamVid at 480x360, U-Net over the ImageNet MobileNetV2: `configs/camvid.py` trained twice as long with
gentler class weights and evaluated with a moving average of the weights.

  python main.py --config configs/camvid_long.py --workdir runs/camvid_long \
      --config.model.backbone_weights=mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5

Expected: 0.719 val mIoU, pixel accuracy 0.934 (0.731 with `--mode eval --config.eval.flip=True`, 0.749 adding
`--config.eval.scales="(0.75,1.0,1.25)"`); above 0.68 from epoch 25 on. About 90 minutes on 2 AMD EPYC Zen 5
cores (65 s an epoch, float32). The first step ends 56 s after the command with nothing compiled yet, 23 s on a
rerun (2 AMD EPYC Zen 3 cores, frames decoded anew each time).

Why each change (the ablation table in docs/results.md has the measured effect of each):
- 80 epochs: the 40-epoch schedule was still improving when its cosine schedule ended.
- square-root median-frequency class weights: full median-frequency weights make the thin classes (pole,
  fence, sign) over-predicted, which costs IoU on frames from other sequences.
- an exponential moving average of the weights (0.999, about 22 epochs of 45 steps): a smoother model to
  evaluate and deploy, at no training cost.
"""

from configs import camvid


def get_config():
  config = camvid.get_config()
  config.name = "camvid_long"
  config.num_epochs = 80
  config.loss.class_weights = "sqrt_frequency"
  config.ema_decay = 0.999
  return config
