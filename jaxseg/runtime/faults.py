"""Fault points: a process that kills or signals itself where training gets to, for resilience tests.

`JAXSEG_FAULT` names what to do and where, e.g. `kill@save=2` (SIGKILL once checkpoint 2 is written but not
yet renamed into place), `kill@step=5` (after global train step 5), `term@step=11` (SIGTERM, as a
preemption would send it), `term_group@input_worker=0` (input worker 0, still starting, sends SIGTERM to
its whole process group, as a shutdown would: start such a process in a session of its own). Several may be
given, separated by commas. A test that kills at a point the code reaches exercises the same recovery every
time, however busy the machine; one that kills after a sleep may hit nothing or the wrong thing. Unset (the
normal case), every check is one environment lookup.
"""

import os
import signal

from jaxseg.errors import UserError

VARIABLE = "JAXSEG_FAULT"
_ACTIONS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT,
            "term_group": signal.SIGTERM, "int_group": signal.SIGINT}  # *_group: to the process group


def _parse(text: str) -> dict[str, str]:
  """{"point[=n]": action} of a `JAXSEG_FAULT` value; a malformed one is a one-line error."""
  out = {}
  for entry in filter(None, (e.strip() for e in text.split(","))):
    action, _, point = entry.partition("@")
    if action not in _ACTIONS or not point:
      raise UserError(f"{VARIABLE}={text!r}: entries are ACTION@POINT[=N] with ACTION one of "
                       f"{sorted(_ACTIONS)}, e.g. kill@save=2.")
    out[point] = action
  return out


def reached(point: str, n: int | None = None) -> None:
  """Acts on `point` (with number `n`, e.g. the step) where `JAXSEG_FAULT` names it; returns otherwise.

  Args:
    point: "step" (a train step finished), "save" (a checkpoint's files written, not yet renamed into
      place), "mid_epoch_save" (the same for a mid-epoch checkpoint), "input_worker" (an input worker process
      starting, before it ignores stop signals).
    n: the step, checkpoint or worker number the point is at, where it has one.
  """
  text = os.environ.get(VARIABLE)
  if not text:
    return
  faults = _parse(text)
  action = faults.get(point if n is None else f"{point}={n}")
  if action is None:
    return
  if action.endswith("_group"):
    os.killpg(os.getpgid(0), _ACTIONS[action])
  else:
    os.kill(os.getpid(), _ACTIONS[action])
