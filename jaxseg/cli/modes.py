"""Dispatch of main.py's modes, turning user mistakes into one clear line and an exit code."""

import os
import sys

import ml_collections

from jaxseg.errors import UserError


def default_workdir(config: ml_collections.ConfigDict) -> str:
  """The default workdir of a config: `runs/<config.name>`."""
  return os.path.join("runs", config.name)


def run(config: ml_collections.ConfigDict, mode: str, workdir: str | None = None,
        images: list[str] | None = None, output: str | None = None, epoch: int | None = None,
        export_format: str = "saved_model", probabilities: bool = False, max_pixels: int = 0) -> int:
  """Runs one mode; returns the process exit code (0 ok, 1 some predictions failed, training stopped or the
  dataset has problems, 2 a usage or input error)."""
  workdir = workdir or default_workdir(config)
  if images and mode != "predict":
    print(f"error: unexpected arguments {images}: only --mode=predict takes images.", file=sys.stderr)
    return 2
  try:
    return _run(config, mode, workdir, images or [], output, epoch, export_format, probabilities, max_pixels)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return e.exit_code
  except OSError as e:
    if e.errno is None:
      raise
    from jaxseg.runtime import files  # pylint: disable=g-import-not-at-top
    print(f"error: {files.describe_os_error(e, e.filename or workdir)}", file=sys.stderr)
    return 2


def _run(config, mode, workdir, images, output, epoch, export_format, probabilities, max_pixels) -> int:
  from jaxseg.runtime import distributed  # pylint: disable=g-import-not-at-top
  distributed.initialize(config)
  from jaxseg.training import startup  # pylint: disable=g-import-not-at-top
  startup.enable_compilation_cache(config)  # before anything compiles
  from jaxseg.data import images as image_files  # pylint: disable=g-import-not-at-top
  image_files.set_max_pixels(max_pixels)
  from jaxseg import models  # pylint: disable=g-import-not-at-top
  from jaxseg.config import checks as config_checks  # pylint: disable=g-import-not-at-top
  from jaxseg.inference import predict  # pylint: disable=g-import-not-at-top
  from jaxseg.training import loop  # pylint: disable=g-import-not-at-top
  if mode == "summary":
    config_checks.check_config(config)
    from jaxseg import data  # pylint: disable=g-import-not-at-top
    print(models.format_summary(models.create_model(config), data.model_size(config), config.freeze_encoder))
    return 0
  if mode == "inspect":
    from jaxseg.data import dataset_checks  # pylint: disable=g-import-not-at-top
    config_checks.check_config(config)
    report, problems = dataset_checks.inspect_dataset(config)
    print(report)
    return 1 if problems else 0
  if mode == "train":
    loop.train_and_evaluate(config, workdir)
    return 0
  if mode == "eval":
    loop.evaluate(config, workdir, epoch)
    return 0
  if mode == "export":
    from jaxseg.inference import export as deploy  # pylint: disable=g-import-not-at-top
    config_checks.check_config(config)
    print(deploy.describe(deploy.export(workdir, export_format, output, epoch, config, probabilities)))
    return 0
  if mode == "predict":
    failures = predict.predict_files(config, workdir, images, output, epoch)
    return 1 if failures else 0
  raise ValueError(f"unknown mode {mode}")
