"""What a command costs before its first step: JAX's persistent compilation cache, on by default, and the time
since the process started.

With the cache, a rerun, a resume, and `--mode eval` or `predict` after training load the compiled programs of
the earlier process instead of compiling them again (XLA's compile is most of a cold start on CPU). Programs
that compile in under a second are not worth a file and are compiled as usual.
"""

import os
import time

import jax
import ml_collections

_IMPORTED = time.monotonic()


def default_cache_dir() -> str:
  """`$XDG_CACHE_HOME/jaxseg/xla`, or `~/.cache/jaxseg/xla`."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "jaxseg", "xla")


def enable_compilation_cache(config: ml_collections.ConfigDict) -> str | None:
  """Points JAX's persistent compilation cache at `config.compilation_cache` ("" = `default_cache_dir()`,
  "none" = off) unless the environment already chose one (JAX_COMPILATION_CACHE_DIR); returns the directory
  in use, or None. Takes effect for what the process has not compiled yet."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return os.environ["JAX_COMPILATION_CACHE_DIR"]
  chosen = str(config.compilation_cache)
  if chosen.lower() == "none":
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  path = os.path.abspath(os.path.expanduser(chosen or default_cache_dir()))
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None  # an unwritable cache only costs time: compile as if there were none
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  return path


def seconds_since_start() -> float:
  """Seconds since this process started (its start time from /proc on Linux; elsewhere since this module was
  imported)."""
  try:
    with open("/proc/self/stat", encoding="ascii") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    with open("/proc/uptime", encoding="ascii") as f:
      uptime = float(f.read().split()[0])
    return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5): start time in ticks
  except (OSError, ValueError, IndexError):
    return time.monotonic() - _IMPORTED
