"""One training per workdir: `<workdir>/train.lock` names the host, process and start time of the training
that holds it.

Two trainings in one workdir would delete and overwrite each other's checkpoints (each Orbax manager keeps
its own `max_to_keep`), and with two configs silently mix two runs. The lock is created atomically
(`O_EXCL`), so of two commands started together exactly one proceeds; the other stops with one line naming
the running one. A lock whose process is gone (same host: no such PID, or the PID now belongs to a process
started later) is taken over with a line saying so; one from another host is respected, since its process
cannot be checked from here. Evaluation, prediction and export do not take the lock: they only read.
"""

import contextlib
import datetime
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from jaxseg.errors import UserError

LOCK_NAME = "train.lock"


class WorkdirBusy(UserError):
  """Another training holds the workdir."""


def _process_start(pid: int) -> str:
  """The kernel's start time of `pid` (clock ticks since boot, from /proc), or "" where unknown."""
  try:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return ""


def _running(holder: dict[str, Any]) -> bool:
  """Whether the lock's process may still run: always for another host, which cannot be checked."""
  if holder.get("host") != socket.gethostname():
    return True
  pid = int(holder.get("pid", -1))
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except (PermissionError, OverflowError, ValueError):
    return pid > 0  # PermissionError: it exists (another user's); the others: not a PID at all
  recorded = holder.get("process_start", "")
  return not recorded or recorded == _process_start(pid)  # a reused PID is another process


class WorkdirLock:
  """The lock file of one workdir."""

  def __init__(self, workdir: str):
    self.path = os.path.join(os.path.abspath(workdir), LOCK_NAME)
    self.held = False

  def _read(self) -> dict[str, Any] | None:
    """The holder's record; None where the file vanished or is not a record (being written, or damaged)."""
    try:
      with open(self.path, encoding="utf-8") as f:
        holder = json.load(f)
      return holder if isinstance(holder, dict) and "pid" in holder else None
    except (OSError, ValueError, UnicodeDecodeError):
      return None

  def acquire(self, say: Callable[[str], None]) -> None:
    """Takes the lock, or raises WorkdirBusy naming the training that holds it."""
    me = {"host": socket.gethostname(), "pid": os.getpid(), "process_start": _process_start(os.getpid()),
          "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    for _ in range(5):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = self._read()
        if holder is None:  # a lock being written this instant: look again before judging it
          time.sleep(0.5)
          holder = self._read()
        if holder is not None and _running(holder):
          raise WorkdirBusy(
              f"{os.path.dirname(self.path)} is in use by a training started {holder.get('started', '?')} on "
              f"{holder.get('host', '?')} (PID {holder.get('pid')}); wait for it to end or use another --workdir "
              f"(if that training no longer runs, delete {self.path}).") from None
        self._take_over(holder, say)
        continue
      with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(me, f)
        f.flush()
        os.fsync(f.fileno())
      self.held = True
      return
    raise WorkdirBusy(f"could not take {self.path}: other trainings keep starting in this workdir.")

  def _take_over(self, holder: dict[str, Any] | None, say: Callable[[str], None]) -> None:
    """Removes a stale lock; of several processes doing so at once, one renames it away, the rest retry."""
    aside = f"{self.path}.stale-{os.getpid()}"
    try:
      os.rename(self.path, aside)
    except FileNotFoundError:
      return
    os.remove(aside)
    if holder is None:
      say(f"Taking over {self.path}: it held no readable record.")
    else:
      say(f"Taking over {self.path}: its training (PID {holder.get('pid')} on {holder.get('host')}, started "
          f"{holder.get('started', '?')}) no longer runs.")

  def release(self) -> None:
    """Removes the lock if this process holds it."""
    if self.held:
      holder = self._read()
      if holder is not None and holder.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
          os.remove(self.path)
      self.held = False


@contextlib.contextmanager
def training_lock(workdir: str, say: Callable[[str], None] = print) -> Iterator[None]:
  """Holds the workdir's lock for the block (the first process takes it for all of a multi-process run).

  Raises:
    WorkdirBusy: another training holds it (in every process of the run).
  """
  lock, error = WorkdirLock(workdir), None
  if jax.process_index() == 0:
    try:
      lock.acquire(say)
    except WorkdirBusy as e:
      error = e
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    busy = int(multihost_utils.broadcast_one_to_all(np.int32(error is not None)))
    if busy and error is None:
      error = WorkdirBusy(f"{workdir} is in use by another training (see the first process's message).")
  if error is not None:
    raise error
  try:
    yield
  finally:
    lock.release()
