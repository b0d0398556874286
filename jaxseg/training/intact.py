"""Damaged checkpoints: finding the newest one that restores, and moving a damaged one aside.

Disk or copy damage shows up in many ways: Orbax failing to decode a file (its reader threads then print
hundreds of lines of tracebacks), a missing or truncated metadata file, or bytes changed in array data or in
jaxseg's own record that still decode. Every restore here runs under `attempt`: what the reader prints goes
to a scratch file, not the terminal, and any failure, or a checksum that no longer matches the one saved with
the checkpoint, marks the step damaged with a one-line reason. Training moves a damaged step aside
(`checkpoints/5` -> `checkpoints/5.damaged`, never deleted: a later save of step 5 would otherwise overwrite
it) and resumes from the newest intact one; evaluation, prediction and export leave the directory as it is.
"""

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import jax

from jaxseg.errors import UserError
from jaxseg.training import checkpoints

T = TypeVar("T")


class DamagedCheckpoint(checkpoints.CheckpointError):
  """A checkpoint that cannot be read back as it was saved."""


def _reason(e: BaseException) -> str:
  """One line saying what went wrong: the innermost message, without TensorStore's spec."""
  while e.__cause__ is not None and str(e.__cause__):
    e = e.__cause__
  text = str(e).split("[tensorstore_spec", 1)[0].strip().splitlines()
  first = text[0] if text else type(e).__name__
  return (first[:197] + "...") if len(first) > 200 else first


@contextlib.contextmanager
def _stderr_to_scratch() -> Iterator[None]:
  """Sends standard error (file descriptor 2 and `sys.stderr`, which differ in a notebook) to a scratch file
  for the block, and, if the block fails, until Orbax's reader threads stop writing: they report their
  failures there after the read has given up."""
  sys.stderr.flush()
  saved_fd, saved_stream = os.dup(2), sys.stderr
  with tempfile.TemporaryFile("w+") as scratch:
    os.dup2(scratch.fileno(), 2)
    sys.stderr = scratch
    failed = True
    try:
      yield
      failed = False
    finally:
      if failed:
        # Quiet for a second (their reports come in bursts, later on a busy machine), at most 10 s.
        size, quiet_since, deadline = -1, time.monotonic(), time.monotonic() + 10.0
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 1.0:
          time.sleep(0.05)
          scratch.flush()
          now = os.fstat(scratch.fileno()).st_size
          if now != size:
            size, quiet_since = now, time.monotonic()
      scratch.flush()
      sys.stderr = saved_stream
      os.dup2(saved_fd, 2)
      os.close(saved_fd)


def attempt(restore: Callable[[], T]) -> tuple[T | None, str]:
  """(restore(), "") or (None, why it failed). A mistake of the user's (a checkpoint of another model, say)
  is not damage: it propagates."""
  try:
    with _stderr_to_scratch():
      return restore(), ""
  except DamagedCheckpoint as e:
    return None, str(e)
  except UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (any failure to read it back is damage)
    return None, _reason(e)


def move_aside(directory: str, step: int) -> str:
  """Renames `<directory>/<step>` to `<step>.damaged` (`.damaged-2`, ... if taken); returns the new path."""
  source = os.path.join(directory, str(step))
  target, n = source + ".damaged", 1
  while os.path.exists(target):
    n += 1
    target = f"{source}.damaged-{n}"
  os.rename(source, target)
  return target


def restore_newest(mngr: Any, restore: Callable[[int], T], step: int | None = None, *, writer: bool = False,
                   say: Callable[[str], None] | None = print, unit: str = "epoch") -> tuple[int, T] | None:
  """(step, restore(step)) for `step`, or for the newest step that restores.

  Args:
    mngr: the Orbax CheckpointManager.
    restore: reads one step back, raising on any damage (a `UserError` for anything else, which propagates).
    step: the step asked for, or None for the newest intact one.
    writer: move damaged steps aside (training); readers only skip them.
    say: where the one line per damaged step goes (None: nowhere).
    unit: what the manager's step numbers count, as messages name them: "epoch" (the epochs' checkpoints)
      or "step" (mid-epoch checkpoints, numbered by train step).

  Returns:
    (step, value); None where no step restores and `writer` (every step moved aside: start afresh).

  Raises:
    CheckpointError: no checkpoint, or no such step.
    DamagedCheckpoint: `step` is damaged, or (readers) every step is.
  """
  say = say or (lambda line: None)
  where = mngr.directory
  steps = checkpoints.checked_steps(mngr, step)
  if step is not None:
    value, why = attempt(lambda: restore(step))
    if not why:
      return step, value
    good = [s for s in sorted(steps) if s != step and not attempt(lambda s=s: restore(s))[1]]
    raise DamagedCheckpoint(f"the checkpoint of {unit} {step} in {where} is damaged ({why}); {unit}s that "
                            f"restore: {', '.join(map(str, good)) or 'none'}.")
  damaged = []
  for s in steps:
    value, why = attempt(lambda s=s: restore(s))
    if not why:
      if damaged:
        say(f"Using the checkpoint of {unit} {s}, the newest that restores.")
      return s, value
    damaged.append(s)
    if writer:
      moved = _move_aside_everywhere(mngr, s)
      say(f"The checkpoint of {unit} {s} in {where} is damaged ({why}); moved aside to {moved}.")
    else:
      say(f"The checkpoint of {unit} {s} in {where} is damaged ({why}); skipping it.")
  if writer:
    say(f"No checkpoint in {where} restores: starting a new run.")
    return None
  raise DamagedCheckpoint(f"no checkpoint in {where} restores ({unit}s {', '.join(map(str, damaged))} are "
                          "damaged); train again, or copy the checkpoints from a backup.")


def _move_aside_everywhere(mngr: Any, step: int) -> str:
  """The first process renames; every process waits for it, then rereads the step list."""
  moved = os.path.join(str(mngr.directory), f"{step}.damaged")
  if jax.process_index() == 0:
    moved = move_aside(str(mngr.directory), step)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f"jaxseg: checkpoint {step} moved aside")
  mngr.reload()
  return moved
