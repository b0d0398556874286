"""The training loop (per-epoch evaluation and Orbax checkpoints, resume, early stopping, logs and pictures)
and the evaluation of a saved checkpoint."""

import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxseg import data
from jaxseg.config import checks as config_checks
from jaxseg.errors import UserError
from jaxseg.inference import logits as inference
from jaxseg.runtime import faults, files, parallel, precision
from jaxseg.training import checkpoints, metrics, startup, workdir_lock
from jaxseg.training.metrics_writer import MetricsWriter
from jaxseg.training.mid_epoch import MidEpoch
from jaxseg.training.preemption import StopRequest
from jaxseg.training.run import Run
from jaxseg.training.state import TrainState
from jaxseg.viz import figures as visualize


class TrainingError(UserError):
  """Training cannot go on (a non-finite loss); the newest checkpoint is the last good one."""
  exit_code = 1


def _stop_reason(config, history) -> str:
  last = history[-1]
  split = last.get("eval_split", "val")
  if config.target_accuracy and last["val"]["accuracy"] >= config.target_accuracy:
    return (f"{split} pixel accuracy {last['val']['accuracy']:.4f} reached target_accuracy "
            f"{config.target_accuracy} at epoch {last['epoch']}")
  if config.patience:
    accs = [h["val"]["accuracy"] for h in history]
    best = int(np.argmax(accs))
    if len(accs) - 1 - best >= config.patience:
      return (f"no better {split} accuracy than {accs[best]:.4f} (epoch {history[best]['epoch']}) for "
              f"{config.patience} epoch(s)")
  return ""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       on_epoch: Callable[[dict[str, Any]], None] | None = None,
                       optimizer: optax.GradientTransformation | None = None) -> list[dict[str, Any]]:
  """Trains (resuming from the newest checkpoint in `workdir`), evaluating and checkpointing every epoch.

  Args:
    config: the experiment config (see jaxseg/config/defaults.py).
    workdir: where checkpoints, metrics.jsonl, TensorBoard events, samples/ and curves.png go.
    on_epoch: called after each epoch's checkpoint with its history entry plus "samples" (the path of the
      epoch's sample panel, or None), e.g. to show progress in a notebook.
    optimizer: an optax optimizer (schedule included) in place of `config.optimizer` and its learning rate
      settings; the encoder is still frozen (`freeze_encoder`) or scaled (`encoder_lr_scale`) as configured.
      Resuming needs the same optimizer again (its state is in the checkpoints).

  Returns:
    The metrics history: one dict per epoch with "epoch", "train", "val", "images_per_s".

  Raises:
    WorkdirBusy: another training runs in `workdir` (checked before anything there is touched).
  """
  config_checks.check_config(config)
  config_checks.check_workdir(workdir)
  startup.enable_compilation_cache(config)
  with workdir_lock.training_lock(workdir, print if jax.process_index() == 0 else (lambda line: None)):
    return _train_and_evaluate(config, workdir, on_epoch, optimizer)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        on_epoch: Callable[[dict[str, Any]], None] | None,
                        optimizer: optax.GradientTransformation | None) -> list[dict[str, Any]]:
  run = Run(config, workdir, optimizer=optimizer)
  primary = jax.process_index() == 0  # every process trains; the first one writes the logs and pictures
  say = print if primary else (lambda *args, **kwargs: None)
  train_data = data.open_split(config, config.data.train_split)
  eval_data = data.open_split(config, config.data.eval_split)
  split_name = str(config.data.eval_split)  # what every printout and record calls the scored split
  steps_per_epoch = len(train_data) // config.batch_size
  if steps_per_epoch == 0:
    raise config_checks.ConfigError(f"config.batch_size={config.batch_size} is larger than the training "
                                    f"split ({len(train_data)} examples): lower it.")
  class_weights = resolve_class_weights(config, train_data)
  total_steps = config.num_epochs * steps_per_epoch

  mid_epoch = MidEpoch(workdir)
  start_batch, sums, input_state = 0, None, None
  restored = run.restore(total_steps=total_steps) if run.store.latest_epoch() is not None else None
  if restored is not None:
    state, tx, epoch, meta = restored
    history = meta["history"]
    say(f"Resuming from {run.store.directory} at epoch {epoch}.")
  else:
    state, tx = run.fresh_state(load_encoder=True, total_steps=total_steps)
    epoch, history = 0, []
  partial = mid_epoch.resume(config, epoch, state.to_dict(), run.zero_sums(), say)
  if partial is not None:
    restored = partial[2]
    state = jax.device_put(TrainState.from_dict(restored["state"]), run.rep)
    sums, start_batch, history = restored["sums"], partial[1]["mid_epoch"]["batch"], partial[1]["history"]
    input_state = partial[1]["mid_epoch"].get("input") or {"batch": start_batch}
    say(f"Resuming from {mid_epoch.directory} at epoch {epoch + 1}, batch {start_batch} of {steps_per_epoch}.")
  elif epoch == 0:
    say(f"Starting a new run in {workdir}.")
  if config.dtype == "auto":
    say(f"Precision: {precision.resolve_dtype_name('auto')} (config.dtype=auto on this "
        f"{jax.default_backend().upper()}; set it to float32 to opt out).")
  jitted = run.jit_steps(tx, class_weights)
  samples = visualize.SampleSet(eval_data, config.num_samples)
  writer = MetricsWriter(workdir, enabled=primary)

  def draw(path: str) -> str:  # every process predicts (a collective computation); the first one draws
    preds = run.predict_uint8(jitted.predict, state, samples.images)
    if primary:
      samples.save(path, preds, run.classes)
    return path

  if epoch == 0 and start_batch == 0 and samples:
    draw(os.path.join(workdir, "samples", "epoch_00.png"))
  stop = _stop_reason(config, history) if history else ""
  if stop:
    say(f"Already stopped early: {stop}.")
  def first_step() -> None:  # what starting cost: imports, data, weights, compiling (or the compilation cache)
    say(f"First step done {startup.seconds_since_start():.1f} s after the command started.")

  with StopRequest() as asked, contextlib.closing(train_data), contextlib.closing(eval_data):
    while not stop and epoch < config.num_epochs:
      epoch += 1
      position = Position(epoch, start_batch, steps_per_epoch, (epoch - 1) * steps_per_epoch)
      state, train_m, rate = _train_epoch(run, jitted.train, state, train_data, position, sums, input_state,
                                          _mid_epoch_saver(run, mid_epoch, history, asked, say), first_step)
      start_batch, sums, input_state, first_step = 0, None, None, None
      if train_m is None:  # asked to stop inside the epoch: saved there
        writer.close()
        return history
      val_m = run.evaluate(jitted.evaluate, state, eval_data)
      history.append({"epoch": epoch, "step": int(state.step), "train": train_m, "val": val_m,
                      "eval_split": split_name, "images_per_s": rate})
      stop = _stop_reason(config, history)
      run.store.save(epoch, state.to_dict(), run.config, history, stop)
      mid_epoch.discard()
      writer.write(history)
      panel = draw(os.path.join(workdir, "samples", f"epoch_{epoch:02d}.png")) if samples else None
      if primary:
        visualize.save_curves(os.path.join(workdir, "curves.png"), history)
      say(f"epoch {epoch:3d}/{config.num_epochs}  train {metrics.format_metrics(train_m)}  "
          f"{split_name} {metrics.format_metrics(val_m)}  {rate:.1f} img/s")
      if on_epoch is not None:
        on_epoch({**history[-1], "samples": panel})
      if stop:
        say(f"Stopping early: {stop}.")
      elif asked.signal_name and epoch < config.num_epochs:
        say(f"{asked.signal_name} received: stopped after epoch {epoch}, saved in {run.store.directory}; "
            "rerun the same command to resume.")
        writer.close()
        return history
  writer.close()
  if history:
    last = history[-1]["val"]
    baseline = metrics.majority_baseline(last)
    say(f"Final {split_name} pixel accuracy {last['accuracy']:.4f} (majority-class baseline {baseline:.4f}), "
        f"mean IoU {last['mean_iou']:.4f}; checkpoints in {run.store.directory}")
    say(metrics.format_per_class(last, run.classes.names))
  return history


def resolve_class_weights(config: ml_collections.ConfigDict, train_data) -> np.ndarray | None:
  """`config.loss.class_weights` as (C,) float32, or None: "none", "median_frequency" or "sqrt_frequency"
  (computed from the training split's labelled pixels and printed) or a comma-separated list of C numbers."""
  spec = str(config.loss.class_weights).strip().lower()
  if spec in ("", "none"):
    return None
  if spec in ("median_frequency", "sqrt_frequency"):
    weights = data.median_frequency(train_data, config.num_classes)
    if spec == "sqrt_frequency":
      weights = np.sqrt(weights)
    names = data.classes_from_config(config).names
    print(f"{spec.replace('_', '-').capitalize()} class weights: " +
          ", ".join(f"{n} {w:.4f}" for n, w in zip(names, weights)))
    return weights
  try:
    weights = np.array([float(v) for v in spec.split(",")], np.float32)
  except ValueError:
    weights = np.zeros(0, np.float32)
  if len(weights) != config.num_classes or (weights < 0).any():
    raise config_checks.ConfigError(
        f"config.loss.class_weights={config.loss.class_weights!r} must be 'none', 'median_frequency', "
        f"'sqrt_frequency' or {config.num_classes} non-negative numbers separated by commas.")
  return weights


class Position(NamedTuple):
  """Where an epoch starts: its number, the batch it resumes at, its length, the global step before it."""
  epoch: int
  start_batch: int
  steps: int
  first_step: int


def _mid_epoch_saver(run: Run, mid_epoch: MidEpoch, history: list[dict[str, Any]], asked: StopRequest,
                     say: Callable[[str], None]):
  """A function called after every train step that saves a mid-epoch checkpoint when one is due (every
  `checkpoint_every_steps`, or when asked to stop) and returns True when training must stop (`say`: this
  process's printer)."""
  every = run.config.checkpoint_every_steps

  def after_step(position: Position, batch: int, state, sums, input_state) -> bool:
    step = position.first_step + batch
    faults.reached("step", step)
    stop = asked.requested(step)
    if batch == position.steps:  # the epoch's own checkpoint follows
      return False
    if stop or (every and step % every == 0):
      meta = checkpoints.make_meta(run.config, position.epoch - 1, history)
      mid_epoch.save(step, state.to_dict(), sums, meta, position.epoch, batch, input_state)
    if stop:
      say(f"{asked.signal_name} received: stopped at step {step} (epoch {position.epoch}, batch {batch} "
          f"of {position.steps}), saved in {mid_epoch.directory}; rerun the same command to resume.")
    return stop

  return after_step


def _train_epoch(run: Run, train_fn, state, train_data, position: Position, sums, input_state, after_step,
                 first_step: Callable[[], None] | None = None):
  """Trains one epoch from `position.start_batch` (with `sums` so far, or fresh ones; `input_state`: the
  input iterator's, saved there); returns (state, train metrics, images/s), the metrics None where
  `after_step` asked to stop inside the epoch. `first_step` is called once the epoch's first step is done
  (the one host sync besides the log steps')."""
  config = run.config
  sums = run.zero_sums() if sums is None else sums
  batches = train_data.train_batches(config.batch_size, config.seed, position.epoch, input_state)
  bar = tqdm(total=position.steps, initial=position.start_batch, desc=f"epoch {position.epoch}/{config.num_epochs}",
             unit="step", leave=False, disable=jax.process_index() != 0, dynamic_ncols=True)
  start = time.perf_counter()
  for i, (batch, batch_state) in enumerate(parallel.prefetch(batches, run.batch_sharding), position.start_batch):
    state, sums = train_fn(state, sums, batch)
    if first_step is not None:
      jax.block_until_ready(sums)
      first_step()
      first_step = None
    done = i + 1
    if done % config.log_every_steps == 0 or done == position.steps:
      host = jax.device_get(sums)  # the only host sync: at log steps
      _check_finite(host, position.epoch)
      m = metrics.summarize(host)
      rate = (done - position.start_batch) * config.batch_size / (time.perf_counter() - start)
      bar.set_postfix(loss=f"{m['loss']:.4f}", acc=f"{m['accuracy']:.4f}", img_s=f"{rate:.1f}")
      bar.update(done - bar.n)
    if after_step(position, done, state, sums, batch_state):
      bar.close()
      return state, None, 0.0
  bar.close()
  rate = (position.steps - position.start_batch) * config.batch_size / (time.perf_counter() - start)
  return state, metrics.summarize(jax.device_get(sums)), rate


def _check_finite(host_sums: dict[str, Any], epoch: int) -> None:
  bad = int(host_sums["first_bad_step"])
  if bad >= 0:
    raise TrainingError(f"the training loss became non-finite at step {bad + 1} (epoch {epoch}); stopped "
                        "without saving this epoch, so the newest checkpoint is the last good one. Lower "
                        "--config.learning_rate or check the data.")


def evaluate(config: ml_collections.ConfigDict, workdir: str, epoch: int | None = None) -> dict[str, Any]:
  """Restores the checkpoint of `epoch` (newest if None) read-only and evaluates it on
  `config.data.eval_split`: prints its figures and per-class table, and writes them and sample pictures to
  `eval/epoch_<epoch>_<split>[_<settings>].json` and `..._samples.png` (settings: `config.eval`'s test-time
  scales, flip or sliding window, so that no evaluation overwrites another of the same checkpoint)."""
  run = Run(config, workdir, read_only=True)
  state, epoch = run.restore_for_inference(epoch)
  split = str(config.data.eval_split)
  eval_data = data.open_split(config, split)
  jitted = run.jit_steps(tx=None)  # the eval and predict steps use no optimizer
  scores = run.evaluate(jitted.evaluate, state, eval_data)
  out_dir = os.path.join(workdir, "eval")
  os.makedirs(out_dir, exist_ok=True)
  tag = inference.settings_tag(run.config)
  stem = os.path.join(out_dir, f"epoch_{epoch}_{files.safe_name(split)}" + (f"_{files.safe_name(tag)}" if tag else ""))
  samples = visualize.SampleSet(eval_data, max(config.num_samples, 1))
  eval_data.close()
  samples.save(f"{stem}_samples.png", run.predict_uint8(jitted.predict, state, samples.images), run.classes)
  record = {"epoch": epoch, "split": split, split: scores, "eval": inference.eval_settings(run.config)}
  files.write_text(f"{stem}.json", json.dumps(record, sort_keys=True) + "\n")
  print(f"epoch {epoch} checkpoint: {split} {metrics.format_metrics(scores)}")
  print(metrics.format_per_class(scores, run.classes.names))
  print(json.dumps(record))
  return scores
