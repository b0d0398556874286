"""Stopping cleanly when asked: SIGTERM (how preemptible TPU and GPU machines are shut down) or SIGINT (Ctrl-C).

Training does not die mid-step: it notes the signal, finishes the step it is in, saves a checkpoint, says so
in one line and returns, so that rerunning the command resumes where it stopped.
"""

import signal
import threading
from types import FrameType

import jax

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """Notes SIGTERM and SIGINT while a run trains; the loop asks `requested(step)` after every step.

  One process: the first signal sets a flag (a second one of the same kind acts as it would without jaxseg,
  so a stuck run can still be interrupted). Several processes: every process must stop after the same step,
  so the decision is JAX's preemption sync point (the distributed runtime receives SIGTERM and tells every
  process at which step to stop), and no handler of jaxseg's own is installed.
  """

  def __init__(self):
    self.signal_name = ""
    self._previous: dict[int, object] = {}

  def __enter__(self) -> "StopRequest":
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      for sig in _SIGNALS:
        self._previous[sig] = signal.signal(sig, self._note)
    return self

  def __exit__(self, *exc_info) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()

  def _note(self, signum: int, frame: FrameType | None) -> None:
    del frame
    self.signal_name = signal.Signals(signum).name
    signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

  def requested(self, step: int) -> bool:
    """Whether training should stop after global train step `step` (host-side: no device sync)."""
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      if multihost_utils.reached_preemption_sync_point(step):
        self.signal_name = self.signal_name or "SIGTERM"
    return bool(self.signal_name)
