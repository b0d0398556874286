"""The pure train, eval and predict steps, and their jitted, sharded, state-donating forms."""

import collections
import dataclasses
import functools
import json
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxseg.data import transforms
from jaxseg.inference.forward import predict_classes, stored_logits
from jaxseg.models.aux_head import COLLECTION as AUX
from jaxseg.training import losses, metrics, optimizers
from jaxseg.training.state import (
  ENCODER,
  TrainState,
  bn_debias_momentum,
  ema_decay,
  inference_variables,
  split_encoder,
  update_ema,
)


@dataclasses.dataclass(frozen=True)
class StepSettings:
  """What the jitted steps read of a config, typed and frozen (hashable: the steps close over it).

  Attributes:
    augment: the training augmentations.
    loss: the training loss.
    encoder_bn_train: the encoder's BatchNorm trains (batch statistics, updated averages).
    freeze_encoder: no encoder gradient is computed and its weights stay as they are.
    ema_decay: the decay of the weights' moving average (0: none).
    debias_momentum: the decoder BatchNorm averages are bias-corrected with it for evaluation (None: not).
  """
  augment: transforms.Augmentation
  loss: losses.Loss
  encoder_bn_train: bool
  freeze_encoder: bool
  ema_decay: float
  debias_momentum: float | None

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "StepSettings":
    """The settings of a checked config."""
    return cls(transforms.Augmentation.from_config(config), losses.Loss.from_config(config),
               bool(config.encoder_bn_train), bool(config.freeze_encoder), float(config.ema_decay),
               bn_debias_momentum(config))


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array, *, model,
               tx: optax.GradientTransformation, settings: StepSettings,
               class_weights: np.ndarray | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on one global batch.

  Args:
    state: the train state (donated by the caller's jit).
    batch: {"image": (B, h, w, 3) uint8, "mask": (B, h, w) uint8} at the stored size.
    rng: the run's base key; the step's key is `fold_in(rng, step)`, so a resumed run augments alike.
    model: the UNet.
    tx: the optimizer from `optimizers.make_optimizer`.
    settings: what the step does (`StepSettings.from_config`).
    class_weights: (C,) loss weights per class, or None.

  Returns:
    (new state, metric sums of this batch).
  """
  x, masks = transforms.augment(jax.random.fold_in(rng, state.step), batch["image"], batch["mask"],
                                settings.augment)
  labels = masks.astype(jnp.int32)

  def loss_fn(trainable, encoder):
    variables = {"params": {**trainable, ENCODER: encoder}, "batch_stats": state.batch_stats}
    logits, new_vars = model.apply(variables, x, train=True, encoder_train=settings.encoder_bn_train,
                                   mutable=["batch_stats", AUX])
    loss = settings.loss(logits, labels, class_weights)
    if AUX in new_vars:  # the model has an auxiliary head (`jaxseg.models.aux_head`)
      (aux_logits,) = jax.tree.leaves(new_vars[AUX])
      loss = loss + settings.loss.auxiliary(aux_logits, labels, class_weights)
    return loss, (logits, new_vars["batch_stats"])

  trainable, encoder = split_encoder(state.params)
  grad_fn = jax.value_and_grad(loss_fn, argnums=0 if settings.freeze_encoder else (0, 1), has_aux=True)
  (loss, (logits, batch_stats)), grads = grad_fn(trainable, encoder)
  if settings.freeze_encoder:
    # Only decoder gradients are computed: no encoder gradient exists for XLA to keep alive, so the
    # encoder backward pass is never built. The zeros are constants that set_to_zero ignores.
    grads = {**grads, ENCODER: jax.tree.map(jnp.zeros_like, encoder)}
  else:
    grads = {**grads[0], ENCODER: grads[1]}
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  if settings.freeze_encoder:
    params = {**params, ENCODER: encoder}  # bit-identical, whatever x + 0.0 does to a -0.0
  sums = metrics.metric_sums(logits, labels, None)
  sums["loss_sum"] = loss * sums["weight_sum"]  # the exact loss that was differentiated
  ema = state.ema
  if ema is not None:
    ema = update_ema(ema, params, ema_decay(settings.ema_decay, state.step))
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                            ema=ema)
  return new_state, sums


def resize_logits(logits: jax.Array, sizes: jax.Array, canvas: tuple[int, int]) -> jax.Array:
  """(B, h, w, C) logits -> (B, H, W, C): example i resized bilinearly (pixel centres aligned) to sizes[i]
  at the top left of the (H, W) canvas, zeros around it."""
  b, h, w = logits.shape[:3]
  sizes = sizes.astype(jnp.float32)
  zero = jnp.zeros((b,), jnp.float32)
  ry = transforms.axis_matrix(canvas[0], h, sizes[:, 0] / h, zero, valid_out=sizes[:, 0])
  rx = transforms.axis_matrix(canvas[1], w, sizes[:, 1] / w, zero, valid_out=sizes[:, 1])
  return transforms.warp(logits.astype(jnp.float32), ry, rx)


def eval_step(state: TrainState, batch: dict[str, jax.Array], *, model,
              settings: StepSettings) -> dict[str, jax.Array]:
  """Metric sums of one padded eval batch ({"image", "mask", "weight"}) at the stored size; padding examples
  have weight 0, IGNORE pixels count nowhere."""
  logits = stored_logits(inference_variables(state, settings.debias_momentum), batch["image"], model=model)
  return score_logits(logits, batch["mask"], batch["weight"])


def score_logits(logits: jax.Array, labels: jax.Array, weight: jax.Array,
                 label_size: jax.Array | None = None) -> dict[str, jax.Array]:
  """Metric sums of (B, h, w, C) logits against labels (B, H, W); with `label_size` (B, 2), example i is
  first resized to its own labels' size (at the top left of the canvas, IGNORE around it)."""
  if label_size is not None:
    logits = resize_logits(logits, label_size, labels.shape[1:3])
  weights = jnp.broadcast_to(weight[:, None, None], labels.shape)
  return metrics.metric_sums(logits, labels.astype(jnp.int32), weights)


def zero_sums(num_classes: int) -> dict[str, jax.Array]:
  """Empty metric sums: loss and weight totals, a (C, C) confusion matrix, no bad step yet."""
  return {"loss_sum": jnp.zeros((), jnp.float32), "weight_sum": jnp.zeros((), jnp.float32),
          "confusion": jnp.zeros((num_classes, num_classes), jnp.int32),
          "first_bad_step": jnp.full((), -1, jnp.int32)}


def accumulate(acc: dict[str, jax.Array], sums: dict[str, jax.Array], step: jax.Array) -> dict[str, jax.Array]:
  """Adds a batch's sums on device; remembers the first step whose loss was not finite."""
  bad = ~jnp.isfinite(sums["loss_sum"])
  out = {k: acc[k] + sums[k] for k in ("loss_sum", "weight_sum", "confusion")}
  out["first_bad_step"] = jnp.where(bad & (acc["first_bad_step"] < 0), step, acc["first_bad_step"])
  return out


class Steps(NamedTuple):
  """The step functions for one model, optimizer and device mesh (`train` and `predict` jitted; `evaluate`
  dispatches to two jitted functions).

  train(state, sums, batch) -> (state, sums): one optimizer step, metric sums added to `sums` (both donated).
  evaluate(state, sums, batch) -> sums: metric sums of a padded eval batch added to `sums` (donated). A batch with
    "label" and "label_size" is scored at the labels' own size: the model runs in one compiled function (the
    stored size never changes), the resizing and scoring in another, compiled once per label canvas shape.
  predict(variables, images) -> class ids (B, S, S).
  """
  train: Any
  evaluate: Any
  predict: Any


def jit_steps(model, tx: optax.GradientTransformation, settings: StepSettings, rng: jax.Array,
              state_sharding, data_sharding, class_weights: np.ndarray | None = None) -> Steps:
  """Jits the steps with replicated state and batches split over the `data` mesh axis.

  Args:
    model: the Flax model.
    tx: the optimizer from `optimizers.make_optimizer`.
    settings: what the steps do (`StepSettings.from_config`).
    rng: the run's base key (per-step keys are folded in from it).
    state_sharding: sharding of the state and accumulators (replicated).
    data_sharding: sharding of batches.
    class_weights: (C,) loss weights per class, or None.
  """

  def train_acc(state, acc, batch):
    new_state, sums = train_step(state, batch, rng, model=model, tx=tx, settings=settings,
                                 class_weights=class_weights)
    return new_state, accumulate(acc, sums, state.step)

  def eval_acc(state, acc, batch):
    return accumulate(acc, eval_step(state, batch, model=model, settings=settings), jnp.zeros((), jnp.int32))

  def score_acc(acc, logits, batch):
    sums = score_logits(logits, batch["label"], batch["weight"], batch["label_size"])
    return accumulate(acc, sums, jnp.zeros((), jnp.int32))

  rep = state_sharding
  fused = jax.jit(eval_acc, in_shardings=(rep, rep, data_sharding), out_shardings=rep, donate_argnums=(1,))
  logits_fn = jax.jit(lambda state, images: stored_logits(inference_variables(state, settings.debias_momentum),
                                                         images, model=model),
                      in_shardings=(rep, data_sharding), out_shardings=data_sharding)
  score_fn = jax.jit(score_acc, in_shardings=(rep, data_sharding, data_sharding), out_shardings=rep,
                     donate_argnums=(0,))

  def evaluate(state, sums, batch):
    if "label" not in batch:
      return fused(state, sums, batch)
    return score_fn(sums, logits_fn(state, batch["image"]),
                    {k: batch[k] for k in ("label", "label_size", "weight")})

  return Steps(
      train=jax.jit(train_acc, in_shardings=(rep, rep, data_sharding), out_shardings=(rep, rep),
                    donate_argnums=(0, 1)),
      evaluate=evaluate,
      predict=jax.jit(functools.partial(predict_classes, model=model), in_shardings=(rep, data_sharding),
                      out_shardings=data_sharding))


# Config fields that never reach a compiled step: the run's length, logging and checkpointing, where the data
# come from and how they are read. Two runs whose configs differ only in these share their compiled steps.
_HOST_ONLY = ("name", "num_epochs", "keep_checkpoints", "checkpoint_every_steps", "target_accuracy", "patience",
              "log_every_steps", "num_samples", "distributed")
_HOST_ONLY_DATA = ("source", "tfds_name", "data_dir", "download", "root", "layout", "image_dir", "mask_dir",
                   "image_suffix", "mask_suffix", "color_table", "train_split", "eval_split", "max_train_examples",
                   "max_eval_examples", "synthetic_train_size", "synthetic_eval_size", "skip_bad", "cache_dir",
                   "pipeline", "workers", "prefetch", "holdout")
_COMPILED: collections.OrderedDict = collections.OrderedDict()
_KEEP = 4  # compiled step sets a process keeps (the least recently used goes first)


def program_key(config: ml_collections.ConfigDict, total_steps: int) -> str:
  """What of `config` (and of the run's length, where a schedule decays over it) the compiled steps depend on."""
  d = config.to_dict()
  for field in _HOST_ONLY:
    d.pop(field, None)
  for field in _HOST_ONLY_DATA:
    d["data"].pop(field, None)
  d["total_steps"] = total_steps if optimizers.decays(config) else 0
  return json.dumps(d, sort_keys=True, default=repr)


def shared_jit_steps(model, tx: optax.GradientTransformation | None, config: ml_collections.ConfigDict,
                     total_steps: int, rng: jax.Array, state_sharding, data_sharding,
                     class_weights: np.ndarray | None = None,
                     base: optax.GradientTransformation | None = None) -> Steps:
  """`jit_steps`, shared by the runs of one process whose programs are the same (the same model, the same
  config but for `_HOST_ONLY` fields, the same optimizer, key, devices and class weights): a second training,
  the evaluation after it, a notebook's rerun trace and compile nothing again. `tx` must be the optimizer
  `make_optimizer` builds for `config`, `total_steps` and the user's `base` optimizer, if any (None:
  evaluation and prediction only)."""
  weights = None if class_weights is None else np.asarray(class_weights).tobytes()
  # A user's optimizer is told apart by identity (its functions hold its settings where no config can see).
  key = (model, program_key(config, total_steps), tx is None, None if tx is None else base, state_sharding,
         data_sharding, np.asarray(jax.random.key_data(rng)).tobytes(), weights)
  found = _COMPILED.pop(key, None)
  if found is None:
    found = jit_steps(model, tx, StepSettings.from_config(config), rng, state_sharding, data_sharding,
                      class_weights)
  _COMPILED[key] = found
  while len(_COMPILED) > _KEEP:
    _COMPILED.popitem(last=False)
  return found
