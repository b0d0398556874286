"""The memory allocator setting XLA:CPU needs, applied before the process does any work.

XLA:CPU allocates its large per-step scratch buffers afresh every step; glibc hands blocks over 32 MB back to
the kernel on free, so each step page-faults hundreds of MB in again (15-18% of a train step on the CPUs
measured). `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (glibc >= 2.35; older ones ignore it) lets malloc use
transparent huge pages, which removes most of those faults. glibc reads the variable only at process start,
so the command-line entry points re-execute themselves once with it set. `JAXSEG_MALLOC=default` opts out.
"""

import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"


def tuned_environ(environ: dict[str, str]) -> dict[str, str] | None:
  """The environment to re-execute with, or None where nothing is to change (not Linux, opted out, or the
  tunable already set by the user or an earlier exec)."""
  if not sys.platform.startswith("linux") or environ.get("JAXSEG_MALLOC", "") == "default":
    return None
  current = environ.get("GLIBC_TUNABLES", "")
  if "glibc.malloc.hugetlb" in current:
    return None
  return {**environ, "GLIBC_TUNABLES": f"{current}:{TUNABLE}" if current else TUNABLE}


def reexec_tuned(argv: list[str]) -> None:
  """Replaces this process by `python argv...` with the tuned environment (returns where nothing changes).

  Args:
    argv: the arguments after the interpreter, e.g. ["main.py", "--config", ...] or ["-m", "package.module", ...].
  """
  env = tuned_environ(dict(os.environ))
  if env is not None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], env)
