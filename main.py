"""jaxseg command line: train, evaluate, predict, export or summarize a segmentation model.

  python main.py --config configs/r224.py [--workdir DIR] [--mode train|eval|predict|export|summary|inspect]
                 [--config.field=value ...]
  python main.py --config configs/r224.py --mode export --format saved_model|tflite|stablehlo [--step N]
                 [--output DIR]
  python main.py --config configs/r224.py --mode predict --images FILE_OR_DIR ... [--max-pixels N]

Kept short on purpose: the logic lives in the jaxseg package, importable from notebooks and Colab.
"""

import os
import sys

from jaxseg import allocator

if __name__ == "__main__":
  allocator.reexec_tuned(sys.argv)  # before anything allocates: glibc reads its tunables at start-up
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags, logging  # pylint: disable=g-import-not-at-top,wrong-import-position
from ml_collections import config_flags  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file in configs/.", lock_config=True)
flags.DEFINE_string("workdir", None, "Checkpoints, metrics and pictures go here (default runs/<config name>).")
flags.DEFINE_enum("mode", "train", ["train", "eval", "predict", "export", "summary", "inspect"],
                  "What to do (inspect: check and describe the dataset; export: write a model for serving).")
flags.DEFINE_list("images", [], "predict: image files or directories (more may follow as plain arguments).")
flags.DEFINE_string("output", None, "predict: output directory (default <workdir>/predictions); export: a new "
                    "directory (default <workdir>/export/<format>).")
flags.DEFINE_integer("step", None, "eval/predict/export: checkpoint step (epoch) to restore; default the newest.")
flags.DEFINE_string("format", "saved_model", "export: saved_model, tflite or stablehlo.")
flags.DEFINE_bool("probabilities", False, "export: also output softmax probabilities.")
flags.DEFINE_integer("max-pixels", 0, "Read images of up to this many pixels (0: PIL's limit, 178,956,970; "
                     "larger images are refused as possible decompression bombs).")
flags.mark_flags_as_required(["config"])


def parse_flags(argv, flag_values=FLAGS):
  """absl's parser, but an unknown or ill-typed --config.field is one line, not a traceback."""
  try:
    argv = flag_values(argv)
    flag_values.config.get("name")  # the config file loads lazily: fail here, not mid-run
    return argv
  except OSError as e:
    sys.exit(f"error: cannot load --config: {str(e).splitlines()[-1].strip()}")
  except flags.Error as e:
    sys.exit(f"error: {e} (run with --help for the flags; configs are in configs/).")
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    bad = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    sys.exit(f"error: bad config override among {bad}: {str(e).strip(chr(34) + chr(39))}. Every "
             "--config.FIELD must exist in the config file (see configs/default.py).")


def main(argv):
  """Runs the command line: `argv` as absl passes it."""
  from jaxseg import cli  # pylint: disable=g-import-not-at-top  # imports JAX and TF: after flag parsing
  sys.exit(cli.run(FLAGS.config, FLAGS.mode, FLAGS.workdir, FLAGS.images + argv[1:], FLAGS.output,
                   FLAGS.step, FLAGS.format, FLAGS.probabilities, FLAGS["max-pixels"].value))


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \udcXX, not a traceback
    stream.reconfigure(errors="backslashreplace")
  app.run(main, flags_parser=parse_flags)
