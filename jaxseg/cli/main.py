"""The command line: `jaxseg MODE [--config FILE] [flags]` (the console script) and `python main.py --mode MODE
...`, one set of flags for both; the modes themselves are `jaxseg.cli.modes.run`.

  jaxseg train   [--config configs/r224.py] [--workdir DIR] [--config.FIELD=VALUE ...]
  jaxseg eval | predict --images FILE_OR_DIR ... | export --format FMT | summary | inspect   (same flags)

Without --config the package's default config runs (`jaxseg.config.defaults`: Oxford-IIIT Pet at 128 px). A
config file of a `configs` folder may import its siblings (`from configs import camvid`) from any directory.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxseg.config import defaults as default_config
from jaxseg.config import files as config_files
from jaxseg.config import upgrade
from jaxseg.errors import ConfigError
from jaxseg.runtime import allocator

MODES = ("train", "eval", "predict", "export", "summary", "inspect")
FLAGS = flags.FLAGS

# (No default here: ml_collections would apply the command line's --config.FIELD overrides to a default while
# defining the flag, outside `parse_flags`; `parse_flags` names the default file instead.)
config_flags.DEFINE_config_file("config", None, "A config file, e.g. configs/r224.py (default: the package's "
                                "default config, jaxseg/config/defaults.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Checkpoints, metrics and pictures go here (default runs/<config name>).")
flags.DEFINE_enum("mode", "train", list(MODES),
                  "What to do (inspect: check and describe the dataset; export: write a model for serving).")
flags.DEFINE_list("images", [], "predict: image files or directories (more may follow as plain arguments).")
flags.DEFINE_string("output", None, "predict: output directory (default <workdir>/predictions); export: a new "
                    "directory (default <workdir>/export/<format>).")
flags.DEFINE_integer("epoch", None, "eval/predict/export: restore the checkpoint of this epoch; default the newest.")
flags.DEFINE_integer("step", None, "Renamed --epoch (checkpoints are numbered by epoch; a step is a train step).")
flags.DEFINE_string("format", "saved_model", "export: saved_model, tflite or stablehlo.")
flags.DEFINE_bool("probabilities", False, "export: also output softmax probabilities.")
flags.DEFINE_integer("max-pixels", 0, "Read images of up to this many pixels (0: PIL's limit, 178,956,970; "
                     "larger images are refused as possible decompression bombs).")


def _config_path(argv: list[str]) -> str | None:
  """The --config file named in `argv`, if any."""
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def parse_flags(argv: list[str], flag_values: flags.FlagValues = FLAGS) -> list[str]:
  """absl's parser, but a config file that fails to load, or an unknown or ill-typed --config.field, is one
  line, not a traceback."""
  for arg in argv[1:]:  # a renamed field is not in today's config: name its replacement, not "unknown"
    field, _, value = arg.removeprefix("--config.").partition("=")
    if arg.startswith("--config.") and (message := upgrade.renamed(field, value, "--config.")):
      sys.exit(f"error: {message}.")
  path = _config_path(argv)
  if path is None:
    path = default_config.__file__
    argv = [argv[0], f"--config={path}", *argv[1:]]
  config_files.importable_configs(path)
  try:
    argv = flag_values(argv)
    flag_values.config.get("name")  # the config file loads lazily: fail here, not mid-run
    return argv
  except flags.Error as e:
    sys.exit(f"error: {e} (run with --help for the flags; configs are in configs/).")
  except Exception as e:  # pylint: disable=broad-except  # the file's own problem, or an override's?
    try:
      config_files.load_config(path)  # the file alone: its problems are named as such
    except ConfigError as file_error:
      sys.exit(f"error: {file_error}")
    if not isinstance(e, (AttributeError, KeyError, TypeError, ValueError)):
      raise
    bad = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    sys.exit(f"error: bad config override among {bad}: {str(e).strip(chr(34) + chr(39))}. Every "
             "--config.FIELD must exist in the config file (see jaxseg/config/defaults.py).")


def _main(argv: list[str]) -> None:
  if FLAGS.step is not None:
    sys.exit(f"error: --step is now --epoch (checkpoints are numbered by the epoch that wrote them): "
             f"--epoch={FLAGS.step}.")
  from jaxseg.cli import modes as cli  # pylint: disable=g-import-not-at-top  # imports JAX: after flag parsing
  sys.exit(cli.run(FLAGS.config, FLAGS.mode, FLAGS.workdir, FLAGS.images + argv[1:], FLAGS.output,
                   FLAGS.epoch, FLAGS.format, FLAGS.probabilities, FLAGS["max-pixels"].value))


def run(argv: list[str]) -> None:
  """Parses `argv` (program name first) and runs its mode; exits with the mode's code."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  logging.set_verbosity(logging.WARNING)
  for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \udcXX, not a traceback
    stream.reconfigure(errors="backslashreplace")
  app.run(_main, argv=argv, flags_parser=parse_flags)


def console() -> None:
  """The `jaxseg` console script: `jaxseg MODE [flags]`, MODE one of `MODES`."""
  argv = list(sys.argv)
  if len(argv) < 2 or argv[1] not in (*MODES, "-h", "--help", "--helpfull"):
    sys.exit(f"usage: jaxseg {{{','.join(MODES)}}} [--config FILE] [--workdir DIR] [--config.FIELD=VALUE ...] "
             "(jaxseg MODE --help lists the flags)")
  allocator.reexec_tuned(argv)  # before anything allocates: glibc reads its tunables at start-up
  if argv[1] in MODES:
    argv = [argv[0], f"--mode={argv[1]}", *argv[2:]]
  run(argv)
