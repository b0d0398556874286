"""Run by test_multiprocess.py: trains the tiny learning config in WORKDIR/memory and then WORKDIR/stream (the
two input pipelines) through `jaxseg.cli.modes.run`, main.py's body, in this one process.

  python tests/two_processes.py WORKDIR [COORDINATOR PROCESS_ID]

With a coordinator (HOST:PORT) the process is one of two that train as one run (jax.distributed, one CPU
device each); without, it is the single-process reference. The second training compiles nothing again (its
steps are the first one's programs), which is why both pipelines share a process.
"""

import os
import sys

import tiny

from jaxseg.cli import modes as cli

EPOCHS = 2
PIPELINES = ("memory", "stream")


def config(pipeline: str, coordinator: str = "", process_id: int = 0):
  """The tiny learning config for `pipeline`, in two processes when `coordinator` is given."""
  settings = {"num_epochs": EPOCHS, "data.pipeline": pipeline, "data.workers": 0}
  if coordinator:
    settings.update({"distributed.coordinator": coordinator, "distributed.num_processes": 2,
                     "distributed.process_id": process_id})
  return tiny.learning_config(**settings)


def main(argv: list[str]) -> int:
  workdir, *cluster = argv
  coordinator, process_id = (cluster[0], int(cluster[1])) if cluster else ("", 0)
  for pipeline in PIPELINES:
    code = cli.run(config(pipeline, coordinator, process_id), "train", os.path.join(workdir, pipeline))
    if code:
      return code
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
