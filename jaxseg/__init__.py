"""jaxseg: pure-JAX semantic segmentation (a U-Net over an ImageNet MobileNetV2) and its trainer."""

__version__ = "0.1.0"


def load(workdir: str, step: int | None = None, config=None):
  """A predictor for a trained run: `jaxseg.load("runs/r224")(image)` -> (H, W) class mask.

  Args:
    workdir: the run's --workdir (holds checkpoints/).
    step: checkpoint step (epoch); the newest if None.
    config: override the config saved in the checkpoint.
  """
  from jaxseg import predict  # pylint: disable=g-import-not-at-top  # keep `import jaxseg` light
  return predict.load(workdir, step, config)
