"""Several processes training one model: `jax.distributed` set up from config fields, the environment, or
the cluster's own auto-detection (TPU pods, SLURM, Open MPI, Kubernetes).

Every process runs the same command; each reads only its rows of every global batch, and checkpoints are
written once, together (Orbax). On CPUs the processes exchange data through gloo collectives.
"""

import ipaddress
import os

import jax
import ml_collections

from jaxseg.errors import UserError

# Also read from the environment where the config leaves them unset (JAX itself reads the first).
ENV = {"coordinator": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES",
       "process_id": "JAX_PROCESS_ID"}


class DistributedError(UserError):
  """Distributed settings that cannot work."""


def settings(config: ml_collections.ConfigDict) -> dict | None:
  """`jax.distributed.initialize` keyword arguments for `config.distributed`, or None for one process.

  Configs saved by earlier versions hold a bool (`distributed=True`: the cluster's auto-detection).
  """
  d = config.distributed
  if isinstance(d, bool):
    return {} if d else None
  coordinator = d.coordinator or os.environ.get(ENV["coordinator"], "")
  num_processes = d.num_processes or int(os.environ.get(ENV["num_processes"], "0") or 0)
  process_id = d.process_id if d.process_id >= 0 else int(os.environ.get(ENV["process_id"], "-1") or -1)
  if not (d.enabled or coordinator):
    return None
  if not coordinator:
    return {}  # the cluster's auto-detection
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise DistributedError(
        f"config.distributed.coordinator={coordinator!r} also needs config.distributed.num_processes (>= 1, or "
        f"{ENV['num_processes']}) and config.distributed.process_id (0 to num_processes - 1, or "
        f"{ENV['process_id']}); got {num_processes} and {process_id}.")
  out = {"coordinator_address": coordinator, "num_processes": num_processes, "process_id": process_id}
  if _is_loopback(coordinator.rsplit(":", 1)[0]):
    out["coordinator_bind_address"] = coordinator  # listen on loopback only, not on every interface
  return out


def _is_loopback(host: str) -> bool:
  host = host.strip("[]")
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def initialize(config: ml_collections.ConfigDict) -> None:
  """Joins the other processes when `config.distributed` asks for it; call before anything else uses JAX. A
  process that has joined already (a second run in the same process) stays joined."""
  kwargs = settings(config)
  if kwargs is None:
    return
  if jax.distributed.is_initialized():
    joined = (jax.process_count(), jax.process_index())
    asked = (kwargs.get("num_processes", joined[0]), kwargs.get("process_id", joined[1]))
    if asked != joined:
      raise DistributedError(f"this process has joined a cluster as process {joined[1]} of {joined[0]}; "
                             f"config.distributed asks for process {asked[1]} of {asked[0]}: start a new "
                             "process for another cluster.")
    return
  # CPU devices of different processes talk through gloo (a no-op on GPUs and TPUs, which have their own).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
