"""Training and evaluation loops: per-epoch Orbax checkpoints, resume, early stopping, logs and pictures."""

import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from jaxseg import checkpointing, input_pipeline, metrics, models, parallel, port, train_state, visualize
from jaxseg import validation
from jaxseg.errors import UserError


class TrainingError(UserError):
  """Training cannot go on (a non-finite loss); the newest checkpoint is the last good one."""
  exit_code = 1


def _meta(config, epoch, history, stop_reason=""):
  return {"epoch": epoch, "history": history, "stop_reason": stop_reason, "config": config.to_json_best_effort(),
          "model": {"name": config.model.name, "alpha": config.model.alpha, "num_classes": config.num_classes,
                    "image_size": config.image_size}}


class Run:
  """The pieces shared by training, evaluation and prediction for one config and workdir."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, read_only: bool = False):
    validation.check_config(config)
    self.config, self.workdir = config, workdir
    self.mesh = parallel.make_mesh()
    parallel.check_batch_size(config.batch_size, "batch_size", self.mesh)
    parallel.check_batch_size(config.eval_batch_size, "eval_batch_size", self.mesh)
    self.rep, self.data = parallel.replicated(self.mesh), parallel.data_sharding(self.mesh)
    self.model = models.create_model(config)
    self.mngr = checkpointing.manager(workdir, config.keep_checkpoints, read_only=read_only)
    self.rng = jax.random.key(config.seed, impl="rbg")

  def fresh_state(self, load_encoder: bool) -> tuple[train_state.TrainState, Any]:
    """A new state (ported encoder weights if asked) and its optimizer."""
    variables = models.init_variables(self.model, self.config.image_size, self.config.seed)
    variables = jax.device_get(variables)
    if load_encoder:
      encoder = port.encoder_variables(self.config.encoder_weights, self.config.model.alpha,
                                       self.config.image_size)
      if encoder is not None:
        variables = port.merge_encoder(variables, encoder)
    tx = train_state.make_optimizer(self.config, variables["params"])
    state = train_state.create_state(variables["params"], variables["batch_stats"], tx)
    return jax.device_put(state, self.rep), tx

  def restore(self, step: int | None = None) -> tuple[train_state.TrainState, Any, int, dict[str, Any]]:
    """The state of checkpoint `step` (newest if None), its optimizer, epoch and meta."""
    step, meta = checkpointing.read_meta(self.mngr, step)
    checkpointing.check_compatible(meta, self.config, self.mngr.directory)
    state, tx = self.fresh_state(load_encoder=False)
    restored = checkpointing.restore_state(self.mngr, step, state.to_dict())
    return jax.device_put(train_state.TrainState.from_dict(restored), self.rep), tx, step, meta

  def steps(self, tx):
    return train_state.jit_steps(self.model, tx, self.config, self.rng, self.rep, self.data)

  def evaluate(self, p_eval, state, split) -> dict[str, Any]:
    acc = jax.device_put(train_state.zero_sums(self.config.num_classes), self.rep)
    batches = input_pipeline.eval_batches(split, self.config.eval_batch_size)
    for batch in parallel.prefetch(batches, self.data):
      acc = p_eval(state, acc, batch)
    return metrics.summarize(jax.device_get(acc))

  def predict_uint8(self, p_predict, state, images: np.ndarray) -> np.ndarray:
    """Class ids for uint8 images at the training size, batched and padded to the eval batch size."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return parallel.map_padded(lambda x: p_predict(variables, x), images, self.config.eval_batch_size, self.data)


def _fmt(m: dict[str, Any]) -> str:
  return f"loss {m['loss']:.4f} acc {m['accuracy']:.4f} mIoU {m['mean_iou']:.4f}"


def _stop_reason(config, history) -> str:
  last = history[-1]
  if config.target_accuracy and last["val"]["accuracy"] >= config.target_accuracy:
    return (f"val pixel accuracy {last['val']['accuracy']:.4f} reached target_accuracy "
            f"{config.target_accuracy} at epoch {last['epoch']}")
  if config.patience:
    accs = [h["val"]["accuracy"] for h in history]
    best = int(np.argmax(accs))
    if len(accs) - 1 - best >= config.patience:
      return (f"no better val accuracy than {accs[best]:.4f} (epoch {history[best]['epoch']}) for "
              f"{config.patience} epoch(s)")
  return ""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (resuming from the newest checkpoint in `workdir`), evaluating and checkpointing every epoch.

  Args:
    config: the experiment config (see configs/default.py).
    workdir: where checkpoints, metrics.jsonl, TensorBoard events, samples/ and curves.png go.

  Returns:
    The metrics history: one dict per epoch with "epoch", "train", "val", "images_per_s".
  """
  validation.check_workdir(workdir)
  run = Run(config, workdir)
  train_split = input_pipeline.load_split(config, config.data.train_split)
  eval_split = input_pipeline.load_split(config, config.data.eval_split)
  steps_per_epoch = input_pipeline.steps_per_epoch(train_split, config.batch_size)
  if steps_per_epoch == 0:
    raise validation.ConfigError(f"config.batch_size={config.batch_size} is larger than the training split "
                                 f"({len(train_split)} examples): lower it.")
  baseline = input_pipeline.majority_baseline(eval_split)

  if run.mngr.latest_step() is not None:
    state, tx, epoch, meta = run.restore()
    history = meta["history"]
    print(f"Resuming from {run.mngr.directory} at epoch {epoch}.")
  else:
    print(f"Starting a new run in {workdir}.")
    state, tx = run.fresh_state(load_encoder=True)
    epoch, history = 0, []
  p_train, p_eval, p_predict = run.steps(tx)
  samples = visualize.SampleSet(eval_split, config.num_samples)
  writer = visualize.Writer(workdir)

  if epoch == 0 and samples:
    samples.save(os.path.join(workdir, "samples", "epoch_00.png"), run.predict_uint8(p_predict, state,
                                                                                       samples.images))
  stop = _stop_reason(config, history) if history else ""
  if stop:
    print(f"Already stopped early: {stop}.")
  while not stop and epoch < config.num_epochs:
    epoch += 1
    state, train_m, rate = _train_epoch(run, p_train, state, train_split, epoch, steps_per_epoch)
    val_m = run.evaluate(p_eval, state, eval_split)
    history.append({"epoch": epoch, "step": int(state.step), "train": train_m, "val": val_m,
                    "images_per_s": rate})
    stop = _stop_reason(config, history)
    checkpointing.save(run.mngr, epoch, state.to_dict(), _meta(config, epoch, history, stop))
    checkpointing.write_metrics_jsonl(workdir, history)
    writer.scalars(epoch, history[-1])
    if samples:
      samples.save(os.path.join(workdir, "samples", f"epoch_{epoch:02d}.png"),
                   run.predict_uint8(p_predict, state, samples.images))
    visualize.save_curves(os.path.join(workdir, "curves.png"), history)
    print(f"epoch {epoch:3d}/{config.num_epochs}  train {_fmt(train_m)}  val {_fmt(val_m)}  "
          f"{rate:.1f} img/s")
    if stop:
      print(f"Stopping early: {stop}.")
  writer.close()
  if history:
    last = history[-1]["val"]
    print(f"Final val pixel accuracy {last['accuracy']:.4f} (majority-class baseline {baseline:.4f}), "
          f"mean IoU {last['mean_iou']:.4f}; checkpoints in {run.mngr.directory}")
  return history


def _train_epoch(run: Run, p_train, state, split, epoch: int, steps_per_epoch: int):
  config = run.config
  acc = jax.device_put(train_state.zero_sums(config.num_classes), run.rep)
  batches = input_pipeline.train_batches(split, config.batch_size, config.seed, epoch)
  bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{config.num_epochs}", unit="step", leave=False,
             disable=jax.process_index() != 0, dynamic_ncols=True)
  start = time.perf_counter()
  for i, batch in enumerate(parallel.prefetch(batches, run.data)):
    state, acc = p_train(state, acc, batch)
    if (i + 1) % config.log_every_steps == 0 or i + 1 == steps_per_epoch:
      host = jax.device_get(acc)  # the only host sync: at log steps
      _check_finite(host, epoch)
      m = metrics.summarize(host)
      bar.set_postfix(loss=f"{m['loss']:.4f}", acc=f"{m['accuracy']:.4f}",
                      img_s=f"{(i + 1) * config.batch_size / (time.perf_counter() - start):.1f}")
      bar.update(i + 1 - bar.n)
  bar.close()
  rate = steps_per_epoch * config.batch_size / (time.perf_counter() - start)
  return state, metrics.summarize(jax.device_get(acc)), rate


def _check_finite(host_sums: dict[str, Any], epoch: int) -> None:
  bad = int(host_sums["first_bad_step"])
  if bad >= 0:
    raise TrainingError(f"the training loss became non-finite at step {bad + 1} (epoch {epoch}); stopped "
                        "without saving this epoch, so the newest checkpoint is the last good one. Lower "
                        "--config.learning_rate or check the data.")


def evaluate(config: ml_collections.ConfigDict, workdir: str, step: int | None = None) -> dict[str, Any]:
  """Restores checkpoint `step` (newest if None) read-only and evaluates it on the eval split."""
  run = Run(config, workdir, read_only=True)
  state, tx, step, meta = run.restore(step)
  eval_split = input_pipeline.load_split(config, config.data.eval_split)
  _, p_eval, p_predict = run.steps(tx)
  val = run.evaluate(p_eval, state, eval_split)
  out_dir = os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  samples = visualize.SampleSet(eval_split, max(config.num_samples, 1))
  samples.save(os.path.join(out_dir, f"step_{step}_samples.png"), run.predict_uint8(p_predict, state,
                                                                                   samples.images))
  print(f"checkpoint {step}: val {_fmt(val)}  " + "  ".join(
      f"IoU {n} {val['iou_' + n]:.4f}" for n in input_pipeline.CLASS_NAMES[:config.num_classes]))
  print(json.dumps({"step": step, "val": val}))
  return val
