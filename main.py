"""jaxseg command line: train, evaluate, predict, export or summarize a segmentation model.

  python main.py --config configs/r224.py [--workdir DIR] [--mode train|eval|predict|export|summary|inspect]
                 [--config.field=value ...]
  python main.py --config configs/r224.py --mode export --format saved_model|tflite|stablehlo [--epoch N]
                 [--output DIR]
  python main.py --config configs/r224.py --mode predict --images FILE_OR_DIR ... [--max-pixels N]

The installed `jaxseg` command is the same (`jaxseg train --config configs/r224.py`, from any directory).
Kept short on purpose: the logic lives in the jaxseg package, importable from notebooks and Colab.
"""

import sys

from jaxseg.runtime import allocator

if __name__ == "__main__":
  allocator.reexec_tuned(sys.argv)  # before anything allocates: glibc reads its tunables at start-up

from jaxseg.cli.main import parse_flags, run  # pylint: disable=wrong-import-position

__all__ = ["parse_flags"]

if __name__ == "__main__":
  run(sys.argv)
