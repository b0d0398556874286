"""The optimizer and learning-rate schedule a config asks for, with the encoder frozen or at its own rate.

- `optimizer`: "adam" (the Keras default and jaxseg's), "adamw" (decoupled weight decay) or "sgd" (with
  `momentum`, Nesterov with `nesterov`), the published CamVid and Cityscapes recipes' choice.
- `weight_decay` acts on kernels only (parameters of two or more dimensions; not biases, norm scales or
  embeddings' 1-D terms), as big_vision and timm decay: AdamW subtracts `lr * weight_decay * w` from its
  update (decoupled); Adam and SGD add `weight_decay * w` to the gradient (L2), as PyTorch's and PaddleSeg's
  SGD do.
- `lr_schedule`: "constant", "cosine" (to 0) or "poly" (`(1 - t / T) ** lr_power` to 0) over the run, after a
  linear warm-up over `warmup_epochs` (`lr * (t + 1) / (W + 1)` at step t of W).

The encoder gets `optax.set_to_zero` when frozen (`optax.masked` would pass its raw gradient through), or the
same optimizer at `encoder_lr_scale` times the learning rate; labels by `optax.multi_transform`.
"""

from typing import Any

import jax
import ml_collections
import optax

from jaxseg.training.state import ENCODER

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "poly")


def decays(config: ml_collections.ConfigDict) -> bool:
  """Whether the learning rate changes over the run (so the optimizer depends on the run's length)."""
  return config.lr_schedule != "constant" or config.warmup_epochs > 0


def learning_rate(config: ml_collections.ConfigDict, total_steps: int) -> float | optax.Schedule:
  """`config.learning_rate` under `lr_schedule` and `warmup_epochs` for a run of `total_steps` steps.

  A constant rate stays a float (the optimizer then keeps no step count, as checkpoints of constant-rate runs
  expect); "cosine" without warm-up is `optax.cosine_decay_schedule` itself, as earlier versions built it.
  """
  lr, name = config.learning_rate, config.lr_schedule
  if not decays(config) or total_steps <= 0:
    return lr
  warmup = min(round(config.warmup_epochs / max(config.num_epochs, 1) * total_steps), total_steps - 1)
  rest = total_steps - warmup
  if name == "cosine":
    main = optax.cosine_decay_schedule(lr, rest)
  elif name == "poly":
    main = optax.polynomial_schedule(lr, 0.0, config.lr_power, rest)
  else:
    main = optax.constant_schedule(lr)
  if warmup <= 0:
    return main
  # lr (t + 1) / (warmup + 1) for t < warmup: the first step already moves, the last warm-up step is near lr.
  return optax.join_schedules([optax.linear_schedule(lr / (warmup + 1), lr, warmup), main], [warmup])


def _kernels(params: Any) -> Any:
  """True for the parameters weight decay acts on: those of two or more dimensions."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def base_optimizer(config: ml_collections.ConfigDict, lr: float | optax.Schedule) -> optax.GradientTransformation:
  """`config.optimizer` at learning rate `lr`, with `config.weight_decay` on kernels."""
  name, decay = config.optimizer, config.weight_decay
  if name == "adamw":
    return optax.adamw(lr, weight_decay=decay, mask=_kernels)
  sgd = name == "sgd"
  tx = optax.sgd(lr, momentum=config.momentum or None, nesterov=config.nesterov) if sgd else optax.adam(lr)
  if decay > 0:  # L2: the decay joins the gradient before the optimizer's own scaling
    tx = optax.chain(optax.masked(optax.add_decayed_weights(decay), _kernels), tx)
  return tx


def make_optimizer(config: ml_collections.ConfigDict, params: Any, total_steps: int = 0,
                   base: optax.GradientTransformation | None = None) -> optax.GradientTransformation:
  """The whole model's optimizer: `base_optimizer` on the decoder; on the encoder `set_to_zero` when frozen, or
  `base_optimizer` at `encoder_lr_scale` times the learning rate when fine-tuned with a scale other than 1.

  Args:
    config: the experiment config.
    params: the parameter tree (for the frozen/trainable labels).
    total_steps: the run's optimizer steps, for a schedule that changes over the run.
    base: the user's own optimizer (schedule included), in place of `config.optimizer` and its learning rate
      settings; the encoder is still frozen or scaled as the config says.
  """
  lr = None if base is not None else learning_rate(config, total_steps)
  decoder = base if base is not None else base_optimizer(config, lr)
  scale = config.encoder_lr_scale
  if not config.freeze_encoder and scale == 1.0:
    return decoder
  if config.freeze_encoder:  # (label "frozen": the optimizer state's key in existing checkpoints)
    name, encoder = "frozen", optax.set_to_zero()
  elif base is not None:  # the user's updates, scaled
    name, encoder = "encoder", optax.chain(base, optax.scale(scale))
  else:  # a pretrained encoder fine-tuned more gently than the freshly initialised head
    name, encoder = "encoder", base_optimizer(config, (lambda step: scale * lr(step)) if callable(lr) else scale * lr)
  labels = {k: jax.tree.map(lambda _, k=k: name if k == ENCODER else "train", v) for k, v in params.items()}
  return optax.multi_transform({"train": decoder, name: encoder}, labels)
