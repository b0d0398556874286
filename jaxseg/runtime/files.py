"""Writing files so that a kill or a full disk never leaves a half-written one behind.

Every file jaxseg writes (checkpoint records, metrics.jsonl, pictures, predicted masks, data caches) goes
through `atomic_path`: the content is written beside the target under a temporary name and renamed over it
only once complete, so a reader sees the previous version or the new one, never a mix.
"""

import contextlib
import errno
import os
import re
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path beside `path`; on success it replaces `path`, on failure it is removed.

  The temporary name keeps the target's extension, so writers that pick a format from it (PIL,
  numpy) write the right one.

  Args:
    path: the file to (re)write; its directory is created if missing.
  """
  directory, base = os.path.split(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  stem, ext = os.path.splitext(base)
  tmp = os.path.join(directory, f".{stem}.tmp{os.getpid()}{ext}")
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def safe_name(text: str) -> str:
  """`text` (e.g. a split such as "test[:50%]") as a file-name part: runs of other characters than letters,
  digits, ".", "-" and "_" become one "_"."""
  return re.sub(r"[^\w.-]+", "_", text).strip("_") or "_"


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically and durably (fsync before the rename)."""
  with atomic_path(path) as tmp, open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())


def describe_os_error(e: OSError, what: str) -> str:
  """One line for an OSError met while writing `what`."""
  if e.errno == errno.ENOSPC:
    return f"the disk is full while writing {what}; free space and rerun the same command to resume."
  return f"cannot write {what}: {e.strerror or e}."
