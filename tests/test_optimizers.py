"""Optimizers and schedules from the config, against numpy written from the update rules PyTorch documents
(SGD with momentum and L2, AdamW's decoupled decay, Adam with L2) and from the schedules' formulas; the
encoder frozen bit for bit or at its own rate under each."""

import math

import numpy as np
import pytest
import tiny

from jaxseg.config import checks as config_checks
from jaxseg.config.checks import ConfigError
from jaxseg.training import optimizers

PARAMS = {"encoder": {"kernel": np.full((2, 3), 0.5, np.float32), "bias": np.ones(3, np.float32)},
          "up_0": {"kernel": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), "bias": np.ones(3, np.float32)}}


def _grads(step):
  rng = np.random.default_rng(step)
  return {k: {n: rng.standard_normal(v.shape).astype(np.float32) for n, v in leaves.items()}
          for k, leaves in PARAMS.items()}


def _run(config, steps=5, total=10):
  """Parameters after `steps` updates of `make_optimizer(config)` (optax.apply_updates, step by step)."""
  tx = optimizers.make_optimizer(config, PARAMS, total_steps=total)
  params, opt = PARAMS, tx.init(PARAMS)
  for t in range(steps):
    updates, opt = tx.update(_grads(t), opt, params)
    params = {k: {n: params[k][n] + np.asarray(updates[k][n]) for n in leaves} for k, leaves in params.items()}
  return params


def _lr(name, t, lr=0.1, total=10, warmup=0, power=0.9):
  if t < warmup:
    return lr * (t + 1) / (warmup + 1)
  frac = (t - warmup) / (total - warmup)
  return {"constant": lr, "cosine": lr * 0.5 * (1 + math.cos(math.pi * frac)), "poly": lr * (1 - frac) ** power}[name]


def _reference(kind, schedule, decay, warmup=0, steps=5, total=10, momentum=0.9, scale=1.0, frozen=False):
  """numpy: the same updates, written from PyTorch's SGD / Adam / AdamW pseudocode."""
  out = {}
  for part, leaves in PARAMS.items():
    out[part] = {}
    for name, p0 in leaves.items():
      p, buf, m, v = p0.astype(np.float64), None, 0.0, 0.0
      wd = decay if p0.ndim >= 2 else 0.0
      rate = scale if part == "encoder" else 1.0
      if part == "encoder" and frozen:
        out[part][name] = p0
        continue
      for t in range(steps):
        g = _grads(t)[part][name].astype(np.float64)
        lr = rate * _lr(schedule, t, total=total, warmup=warmup)
        if kind == "sgd":
          g = g + wd * p
          buf = g if buf is None else momentum * buf + g
          p = p - lr * buf
        else:
          if kind == "adam":
            g = g + wd * p
          m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
          step = (m / (1 - 0.9 ** (t + 1))) / (np.sqrt(v / (1 - 0.999 ** (t + 1))) + 1e-8)
          p = p - lr * (step + (wd * p if kind == "adamw" else 0.0))
      out[part][name] = p
  return out


@pytest.mark.parametrize("kind,schedule,decay,warmup", [
    ("sgd", "poly", 5e-4, 0), ("sgd", "poly", 0.01, 2), ("sgd", "constant", 0.0, 0), ("adamw", "cosine", 0.05, 2),
    ("adam", "constant", 0.0, 0), ("adam", "cosine", 0.01, 0), ("adamw", "poly", 0.1, 0)])
def test_optimizers_and_schedules_follow_their_update_rules(kind, schedule, decay, warmup):
  config = tiny.tiny_config(optimizer=kind, lr_schedule=schedule, weight_decay=decay, learning_rate=0.1,
                            warmup_epochs=warmup / 10, num_epochs=1, freeze_encoder=False)
  got, want = _run(config), _reference(kind, schedule, decay, warmup=warmup)
  for part in PARAMS:
    for name in PARAMS[part]:
      np.testing.assert_allclose(got[part][name], want[part][name], rtol=2e-5, atol=2e-6, err_msg=f"{part}/{name}")


@pytest.mark.parametrize("kind", optimizers.OPTIMIZERS)
def test_the_encoder_stays_frozen_or_moves_at_its_scale_under_every_optimizer(kind):
  frozen = _run(tiny.tiny_config(optimizer=kind, weight_decay=0.01, learning_rate=0.1, freeze_encoder=True))
  for name, value in PARAMS["encoder"].items():
    np.testing.assert_array_equal(frozen["encoder"][name], value)  # bit for bit, weight decay included
  scaled = _run(tiny.tiny_config(optimizer=kind, weight_decay=0.01, learning_rate=0.1, freeze_encoder=False,
                                 encoder_lr_scale=0.1, lr_schedule="poly"))
  want = _reference(kind, "poly", 0.01, scale=0.1)
  for part in PARAMS:
    for name in PARAMS[part]:
      np.testing.assert_allclose(scaled[part][name], want[part][name], rtol=2e-5, atol=2e-6, err_msg=f"{part}/{name}")


def test_cosine_without_warmup_is_the_schedule_earlier_versions_built():
  import optax  # pylint: disable=g-import-not-at-top
  config = tiny.tiny_config(lr_schedule="cosine", learning_rate=0.01)
  schedule, before = optimizers.learning_rate(config, 40), optax.cosine_decay_schedule(0.01, 40)
  assert [float(schedule(t)) for t in range(41)] == [float(before(t)) for t in range(41)]
  assert optimizers.learning_rate(tiny.tiny_config(learning_rate=0.01), 40) == 0.01  # constant: no step count


@pytest.mark.parametrize("field,value,message", [
    ("optimizer", "rmsprop", "config.optimizer='rmsprop' must be one of"),
    ("lr_schedule", "step", "config.lr_schedule='step' must be one of"),
    ("weight_decay", -0.1, "config.weight_decay=-0.1 must be at least 0"),
    ("momentum", 1.0, "config.momentum=1.0 must be in [0, 1)"),
    ("lr_power", 0.0, "config.lr_power=0.0 must be above 0"),
    ("warmup_epochs", 1.0, "config.warmup_epochs=1.0 must be in [0, num_epochs)"),
    ("nesterov", True, "config.nesterov=True needs config.optimizer='sgd' with config.momentum above 0")])
def test_bad_optimizer_fields_are_one_line(field, value, message):
  with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
    config_checks.check_config(tiny.tiny_config(**{field: value}))
