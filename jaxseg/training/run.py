"""`Run`: what training, evaluation and prediction share for one config and workdir (the device mesh,
the model and its first variables from `build`, the checkpoint `store`, the run's random key) and the
operations built from them; `loop` is the trainer that drives it."""

import functools
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from jaxseg import data, models
from jaxseg.config import checks as config_checks
from jaxseg.inference import forward
from jaxseg.inference import logits as inference
from jaxseg.runtime import parallel
from jaxseg.training import build, checkpoints, metrics, steps, tiled_eval
from jaxseg.training.optimizers import make_optimizer
from jaxseg.training.state import TrainState, bn_debias_momentum, create_state, inference_variables
from jaxseg.training.store import CheckpointStore


class Run:
  """One config and workdir, checked before anything else happens: the device mesh, the model (`build`),
  the checkpoint store (`store`), the run's random key, and the steps and evaluation built from them."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, read_only: bool = False,
               optimizer: optax.GradientTransformation | None = None):
    """
    Args:
      config: the experiment config; checked here (`config_checks.check_config`).
      workdir: holds `checkpoints/`.
      read_only: open the checkpoints for reading only (eval, predict): nothing is written or cleaned up.
      optimizer: the user's optimizer in place of the config's (`make_optimizer`'s `base`).
    """
    config_checks.check_config(config)
    self.config, self.workdir, self.read_only, self.optimizer = config, workdir, read_only, optimizer
    self.mesh = parallel.make_mesh()
    self.rep, self.batch_sharding = parallel.replicated(self.mesh), parallel.data_sharding(self.mesh)
    self.model = models.create_model(config)
    self.store = CheckpointStore(workdir, config.keep_checkpoints, read_only=read_only)
    self.mngr = self.store.mngr  # the Orbax manager beneath (mid-epoch checkpoints share its directory)
    self.rng = jax.random.key(config.seed, impl="rbg")
    self.classes = data.classes_from_config(config)
    self._logits = None  # `logits_fn`'s compiled model
    self._total_steps = 0  # the optimizer's run length (`fresh_state`), which a decaying schedule depends on

  def fresh_state(self, load_encoder: bool, total_steps: int = 0) -> tuple[TrainState, Any]:
    """A new state (pretrained weights if asked: `build.with_pretrained`) and its optimizer (`total_steps`:
    for the schedule)."""
    variables = build.initial_variables(self.config, self.model)
    if load_encoder:
      variables, self.config, self.model = build.with_pretrained(self.config, self.model, variables)
    return self.state_from(variables, total_steps)

  def state_from(self, variables: dict[str, Any], total_steps: int = 0) -> tuple[TrainState, Any]:
    """A new state of `variables` (`{"params", "batch_stats"}`) and its optimizer, on the devices."""
    tx = make_optimizer(self.config, variables["params"], total_steps, self.optimizer)
    self._total_steps = total_steps
    state = create_state(variables["params"], variables["batch_stats"], tx,
                         ema=self.config.ema_decay > 0)
    return jax.device_put(state, self.rep), tx

  def restore(self, total_steps: int = 0) -> tuple[TrainState, Any, int, dict[str, Any]] | None:
    """The state of the newest checkpoint that restores, its optimizer, epoch and meta; damaged newer ones are
    moved aside (`intact.restore_newest`), and None is returned where none restores."""
    target, tx = self.fresh_state(load_encoder=False, total_steps=total_steps)
    found = self.store.restore(target.to_dict(), self.config)
    if found is None:
      return None
    restored, epoch, meta = found
    self.config, self.model = build.with_trained_settings(self.config, self.model, meta, inference=False)
    return jax.device_put(TrainState.from_dict(restored), self.rep), tx, epoch, meta

  def restore_for_inference(self, epoch: int | None = None) -> tuple[TrainState, int]:
    """Parameters (their moving average where the checkpoint keeps one) and BatchNorm statistics of the
    checkpoint of `epoch` (newest intact if None) as a TrainState without optimizer state, and its epoch.
    Checked against the config's model first, then against its shapes; a damaged checkpoint is named and
    skipped, never changed."""
    restored, epoch, meta = self.store.restore_variables(self.config, self.rep, epoch)
    self.config, self.model = build.with_trained_settings(self.config, self.model, meta, inference=True)
    want = jax.eval_shape(lambda: models.init_variables(self.model, data.model_size(self.config)))
    got = {"params": restored.get("ema") or restored["params"], "batch_stats": restored["batch_stats"]}
    if jax.tree.map(lambda x: x.shape, want) != jax.tree.map(lambda x: x.shape, got):
      raise checkpoints.CheckpointError(f"the checkpoint of epoch {epoch} in {self.store.directory} holds parameters "
                                        "of another shape than this config's model; use the config it was trained "
                                        "with.")
    return TrainState(step=restored["step"], params=got["params"], batch_stats=got["batch_stats"],
                      opt_state=None), epoch

  def jit_steps(self, tx: Any, class_weights: np.ndarray | None = None) -> steps.Steps:
    """The jitted steps (`tx`: the optimizer, None where only eval and predict are used; `class_weights`:
    per-class loss weights or None)."""
    return steps.shared_jit_steps(self.model, tx, self.config, self._total_steps, self.rng, self.rep,
                                  self.batch_sharding, class_weights, self.optimizer)

  def zero_sums(self) -> dict[str, jax.Array]:
    """A fresh metric accumulator on the devices."""
    return jax.device_put(steps.zero_sums(self.config.num_classes), self.rep)

  def evaluate(self, eval_fn, state: TrainState, split) -> dict[str, Any]:
    """Metrics of `state` over the whole split (`data.open_split`'s; `eval_fn`: `Steps.evaluate`), or, where
    `config.eval` or `data.scale` ask for it, example by example as prediction sees them (`tiled_eval`)."""
    if inference.settings_apply(self.config):
      return tiled_eval.evaluate(self, state, split.name)
    sums = self.zero_sums()
    for batch in parallel.prefetch(split.eval_batches(self.config.eval_batch_size), self.batch_sharding):
      sums = eval_fn(state, sums, batch)
    return metrics.summarize(jax.device_get(sums), self.classes.names)

  def logits_fn(self, variables: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """The model with `variables` on uint8 images (B, h, w, 3) of any size -> (B, h, w, C) logits on the host,
    batched over the devices (a batch fitted to B, at most the eval batch size); compiled once per run."""
    if self._logits is None:
      self._logits = jax.jit(functools.partial(forward.stored_logits, model=self.model),
                             in_shardings=(self.rep, self.batch_sharding), out_shardings=self.batch_sharding)
    cap = self.config.eval_batch_size
    return lambda x: parallel.map_padded(lambda b: self._logits(variables, b), x,
                                         parallel.fitted_batch(len(x), cap, self.mesh), self.batch_sharding)

  def predict_uint8(self, predict_fn, state: TrainState, images: np.ndarray) -> np.ndarray:
    """Class ids for uint8 images at the stored size, batched and padded to the eval batch size."""
    variables = inference_variables(state, bn_debias_momentum(self.config))
    return parallel.map_padded(lambda x: predict_fn(variables, x), images, self.config.eval_batch_size,
                               self.batch_sharding)
