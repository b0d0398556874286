"""The train state (plain pytrees), its weight average and the variables evaluation applies."""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

ENCODER = "encoder"


@flax.struct.dataclass
class TrainState:
  """Everything a checkpoint holds: plain pytrees, no module or optimizer objects."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema: Any = None  # the exponential moving average of `params` (config.ema_decay > 0), else None

  def to_dict(self) -> dict[str, Any]:
    """The state as a plain dict (what a checkpoint stores; "ema" only where there is one, so checkpoints
    without it keep their structure)."""
    d = {"step": self.step, "params": self.params, "batch_stats": self.batch_stats, "opt_state": self.opt_state}
    return d if self.ema is None else {**d, "ema": self.ema}

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "TrainState":
    """The state from `to_dict`'s dict."""
    return cls(step=d["step"], params=d["params"], batch_stats=d["batch_stats"], opt_state=d["opt_state"],
               ema=d.get("ema"))


def create_state(params: Any, batch_stats: Any, tx: optax.GradientTransformation, ema: bool = False
                 ) -> TrainState:
  """A TrainState at step 0 with `tx`'s initial optimizer state (and, with `ema`, an average that starts at
  `params`)."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params), ema=jax.tree.map(jnp.array, params) if ema else None)


def ema_decay(decay: float, step: jax.Array) -> jax.Array:
  """The decay of the weights' moving average after update `step` (0-based): `decay`, but at most
  (1 + step) / (10 + step), so that the average forgets the initial weights within the first few hundred
  steps (tf.train.ExponentialMovingAverage's `num_updates` rule) rather than after ~1 / (1 - decay) of them."""
  t = step.astype(jnp.float32)
  return jnp.minimum(jnp.float32(decay), (1.0 + t) / (10.0 + t))


def update_ema(ema: Any, params: Any, decay: jax.Array) -> Any:
  """ema + (1 - decay) (params - ema), leaf by leaf, in float32."""
  return jax.tree.map(lambda e, p: e + (1.0 - decay) * (p.astype(e.dtype) - e), ema, params)


def split_encoder(params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
  """(every params subtree but the encoder, the encoder's params)."""
  return {k: v for k, v in params.items() if k != ENCODER}, params[ENCODER]


@functools.partial(jax.jit, static_argnames="momentum")  # (outside a step: one program, not an op per leaf)
def debias_batch_stats(batch_stats: Any, step: jax.Array, momentum: float) -> Any:
  """Bias-corrected moving averages of every BatchNorm outside the encoder.

  Flax starts a moving mean at 0 and a moving variance at 1; after t updates with momentum m they hold
  weight m^t of that start and 1 - m^t of the batch statistics. Dividing that weight out gives the
  statistics' own weighted average (as Adam corrects its moments): right after a few steps, where the raw
  averages (m = 0.99: 75 steps leave 47% of the start) make a short run evaluate with wrong normalisation.
  The decoder always starts from that initialisation and updates once per step, so t is the train step.
  """
  w = jnp.asarray(momentum, jnp.float32) ** step.astype(jnp.float32)
  trained = step > 0

  def fix(stats):
    return {"mean": jnp.where(trained, stats["mean"] / (1 - w), stats["mean"]),
            "var": jnp.where(trained, (stats["var"] - w) / (1 - w), stats["var"])}

  def walk(tree):
    return fix(tree) if set(tree) == {"mean", "var"} else {k: walk(v) for k, v in tree.items()}

  return {k: v if k == ENCODER else walk(v) for k, v in batch_stats.items()}


def bn_debias_momentum(config: ml_collections.ConfigDict) -> float | None:
  """The momentum the decoder's BatchNorm averages are bias-corrected with (`model.decoder_bn_debias`), or
  None where they are used as they are."""
  return config.model.decoder_bn_momentum if config.model.decoder_bn_debias else None


def inference_variables(state: TrainState, debias_momentum: float | None) -> dict[str, Any]:
  """The variables evaluation and prediction apply.

  Params are their moving average where the state keeps one. BatchNorm statistics are the trained model's
  own (moving averages already), the decoder's bias-corrected for `debias_momentum` where it is not None
  (`bn_debias_momentum`).
  """
  stats = state.batch_stats
  if debias_momentum is not None:
    stats = debias_batch_stats(stats, state.step, debias_momentum)
  return {"params": state.params if state.ema is None else state.ema, "batch_stats": stats}
