"""jaxseg: pure-JAX semantic segmentation (U-Net, DeepLabV3+, SegFormer and a linear head over ImageNet
backbones ported from Keras), its trainer and its exporter: `jaxseg.train`, `jaxseg.load`, `jaxseg.export`,
`jaxseg.load_config`."""

__version__ = "0.1.0"


def load(workdir: str, epoch: int | None = None, config=None):
  """A predictor for a trained run: `jaxseg.load("runs/r224")(image)` -> (H, W) class mask; or for a pretrained
  keras-hub SegFormer: `jaxseg.load("segformer_b0_ade20k_512")` (a preset name or save_to_preset directory).

  Args:
    workdir: the run's --workdir (holds checkpoints/), or a keras-hub SegFormer segmenter preset.
    epoch: the checkpoint of this epoch; the newest if None.
    config: override the config saved in the checkpoint.
  """
  from jaxseg.inference import predict  # pylint: disable=g-import-not-at-top  # keep `import jaxseg` light
  return predict.load(workdir, epoch, config)


def train(config, workdir: str, *, optimizer=None, on_epoch=None) -> list[dict]:
  """Trains `config` in `workdir` (resuming from its newest checkpoint), evaluating and checkpointing every
  epoch, as `jaxseg train` does; returns the metrics history (one dict per epoch).

  `jaxseg.train(jaxseg.load_config("configs/r224.py"), "runs/r224")`. A model class registered in
  `jaxseg.models.MODELS` trains by its name (`config.model.name`); `optimizer`, an optax optimizer, replaces the
  config's (the encoder is still frozen or scaled as configured). See docs/examples/custom_model.py.

  Args:
    config: the experiment config (`jaxseg.load_config`, or `jaxseg.config.defaults.get_config()` changed).
    workdir: where checkpoints, metrics.jsonl, TensorBoard events and pictures go.
    optimizer: an `optax.GradientTransformation` (schedule included), or None for `config.optimizer`.
    on_epoch: called with each epoch's history entry once its checkpoint is written.
  """
  from jaxseg.training import loop  # pylint: disable=g-import-not-at-top
  return loop.train_and_evaluate(config, workdir, on_epoch, optimizer)


def export(workdir: str, fmt: str, output: str | None = None, epoch: int | None = None, config=None,
           probabilities: bool = False):
  """Exports a trained run for serving ("saved_model", "tflite" or "stablehlo") and checks it against jaxseg.

  `jaxseg.export("runs/r224", "tflite")` writes runs/r224/export/tflite/model.tflite; see
  `jaxseg.inference.export.export`.
  """
  from jaxseg.inference import export as deploy  # pylint: disable=g-import-not-at-top
  return deploy.export(workdir, fmt, output, epoch, config, probabilities)


def load_config(path: str, overrides: dict | None = None):
  """The config of a config file (`get_config()` of e.g. configs/r224.py), with `overrides` applied:
  `jaxseg.load_config("configs/r224.py", {"num_epochs": 5, "data.source": "folder"})`."""
  from jaxseg.config import files as config_files  # pylint: disable=g-import-not-at-top
  return config_files.load_config(path, overrides)
