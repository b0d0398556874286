"""The per-epoch metrics record: `metrics.jsonl` (one JSON object per epoch) and TensorBoard scalars.

metrics.jsonl is rewritten whole from the checkpointed history after every epoch, so after a resume it
holds exactly the epochs of the checkpoint the run continued from. TensorBoard events are written as
tensorboard's record format to a plain file: tensorboard's own EventFileWriter would import TensorFlow
(seconds, and its log lines) just to create a directory.
"""

import json
import os
import socket
import time
from typing import Any

import numpy as np

from jaxseg import files

METRICS_FILE = "metrics.jsonl"


class MetricsWriter:
  """Owns `<workdir>/metrics.jsonl` and `<workdir>/tensorboard/`; writes nothing unless `enabled` (one
  process of several writes the logs)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    if not enabled:
      return
    from tensorboard.compat.proto import event_pb2  # pylint: disable=g-import-not-at-top
    from tensorboard.summary.writer.record_writer import RecordWriter  # pylint: disable=g-import-not-at-top
    self.workdir = workdir
    logdir = os.path.join(workdir, "tensorboard")
    os.makedirs(logdir, exist_ok=True)
    now = time.time()
    name = f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}.0"
    # The writer owns the file from here on and closes it in `close`.
    self._events = RecordWriter(open(os.path.join(logdir, name), "wb"))  # noqa: SIM115
    self._events.write(event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
    self._events.flush()

  def write(self, history: list[dict[str, Any]]) -> None:
    """Records the newest epoch of `history` (TensorBoard) and rewrites metrics.jsonl from all of it."""
    if not self.enabled:
      return
    files.write_text(os.path.join(self.workdir, METRICS_FILE),
                     "".join(json.dumps(h, sort_keys=True) + "\n" for h in history))
    self._scalars(history[-1])

  def _scalars(self, record: dict[str, Any]) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2  # pylint: disable=g-import-not-at-top
    tags = {"train": "train", "val": record.get("eval_split", "val")}  # the scored split by its name
    values = {f"{tags[part]}/{k}": v for part in ("train", "val") for k, v in record[part].items()
              if isinstance(v, float) and np.isfinite(v)}
    values["images_per_s"] = record["images_per_s"]
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=float(v))
                                         for t, v in values.items()])
    event = event_pb2.Event(wall_time=time.time(), step=record["epoch"], summary=summary)
    self._events.write(event.SerializeToString())
    self._events.flush()

  def close(self) -> None:
    """Flushes and closes the TensorBoard event file."""
    if self.enabled:
      self._events.close()


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
