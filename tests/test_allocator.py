"""The command line runs with glibc's huge-page malloc tunable, set before the process starts."""

import os
import subprocess
import sys
import time

import pytest
from conftest import REPO

from jaxseg.runtime import allocator


def test_tuned_environ_adds_the_tunable_once_and_respects_the_user():
  assert allocator.tuned_environ({"A": "1"}) == {"A": "1", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
  assert allocator.tuned_environ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})["GLIBC_TUNABLES"] == (
      "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
  assert allocator.tuned_environ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None  # the user's choice
  assert allocator.tuned_environ({"JAXSEG_MALLOC": "default"}) is None


def _environ_while_running(env):
  proc = subprocess.Popen([sys.executable, "main.py", "--config", "tests/tiny_config.py", "--mode", "summary"],
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  seen = b""
  while proc.poll() is None:
    try:
      with open(f"/proc/{proc.pid}/environ", "rb") as f:
        seen = f.read() or seen
    except OSError:
      pass
    if b"Total params" in seen or b"jaxseg-seen" in seen:
      break
    time.sleep(0.05)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-2000:]
  assert b"Total params" in out  # the re-executed process did the work, with its output intact
  return seen.split(b"\0")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux-only")
def test_main_py_reexecutes_itself_with_the_tunable():
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "JAXSEG_MALLOC")}
  env["PYTHONPATH"] = str(REPO)
  assert b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in _environ_while_running(env)
  assert not any(v.startswith(b"GLIBC_TUNABLES") for v in _environ_while_running({**env, "JAXSEG_MALLOC": "default"}))
