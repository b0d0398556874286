"""The per-epoch metrics record: `metrics.jsonl` (one JSON object per epoch) and TensorBoard scalars.

metrics.jsonl is rewritten whole from the checkpointed history after every epoch, so after a resume it
holds exactly the epochs of the checkpoint the run continued from. TensorBoard event files are written by
tensorboardX, which needs neither TensorFlow nor the TensorBoard server.
"""

import json
import os
import sys
import time
from typing import Any

import numpy as np

from jaxseg.runtime import files

METRICS_FILE = "metrics.jsonl"


class MetricsWriter:
  """Owns `<workdir>/metrics.jsonl` and `<workdir>/tensorboard/`; writes nothing unless `enabled` (one
  process of several writes the logs)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if not enabled:
      return
    self.workdir = workdir
    logdir = os.path.join(workdir, "tensorboard")
    os.makedirs(logdir, exist_ok=True)
    # flush_secs: events are flushed after every epoch anyway; the writer's thread need not wake up for them.
    self._events = _summary_writer_class()(logdir, flush_secs=3600, filename_suffix=f".{os.getpid()}")

  def write(self, history: list[dict[str, Any]]) -> None:
    """Records the newest epoch of `history` (TensorBoard) and rewrites metrics.jsonl from all of it."""
    if not self.enabled:
      return
    files.write_text(os.path.join(self.workdir, METRICS_FILE),
                     "".join(json.dumps(h, sort_keys=True) + "\n" for h in history))
    self._scalars(history[-1])

  def _scalars(self, record: dict[str, Any]) -> None:
    tags = {"train": "train", "val": record.get("eval_split", "val")}  # the scored split by its name
    values = {f"{tags[part]}/{k}": v for part in ("train", "val") for k, v in record[part].items()
              if isinstance(v, float) and np.isfinite(v)}
    values["images_per_s"] = record["images_per_s"]
    now = time.time()
    for tag, value in values.items():
      self._events.add_scalar(tag, float(value), global_step=record["epoch"], walltime=now)
    self._events.flush()

  def close(self) -> None:
    """Flushes and closes the TensorBoard event file."""
    if self.enabled:
      self._events.close()


def _summary_writer_class():
  """tensorboardX's SummaryWriter. tensorboardX imports PyTorch at import time where it is installed (for
  tensors it is never given here): hidden for that import, it costs no second of startup."""
  hide = "torch" not in sys.modules
  if hide:
    sys.modules["torch"] = None  # importing PyTorch raises ImportError while this is set
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  finally:
    if hide:
      del sys.modules["torch"]
  return SummaryWriter


def read_history(workdir: str) -> list[dict[str, Any]]:
  """The per-epoch records of a run's metrics.jsonl.

  Raises:
    FileNotFoundError / ValueError: with the path, when the file is missing or not JSON lines.
  """
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no {METRICS_FILE} (is {workdir} the --workdir of a training run?)")
  history = []
  with open(path) as f:
    for n, line in enumerate(f, 1):
      if line.strip():
        try:
          history.append(json.loads(line))
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}:{n}: not JSON ({e.msg}).") from None
  if not history:
    raise ValueError(f"{path}: no epochs recorded yet.")
  return history
