"""The train state (plain pytrees) and the optimizer that keeps a frozen encoder frozen."""

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

  def to_dict(self) -> dict[str, Any]:
    return {"step": self.step, "params": self.params, "batch_stats": self.batch_stats,
            "opt_state": self.opt_state}

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "TrainState":
    return cls(step=d["step"], params=d["params"], batch_stats=d["batch_stats"], opt_state=d["opt_state"])


def make_optimizer(config: ml_collections.ConfigDict, params: Any) -> optax.GradientTransformation:
  """Adam on the decoder; the encoder gets `set_to_zero` when frozen.

  `optax.masked` would not do: it passes masked-out updates through unchanged, i.e. the raw gradient.
  """
  adam = optax.adam(config.learning_rate)
  if not config.freeze_encoder:
    return adam
  labels = {k: jax.tree.map(lambda _, k=k: "frozen" if k == ENCODER else "train", v)
            for k, v in params.items()}
  return optax.multi_transform({"train": adam, "frozen": optax.set_to_zero()}, labels)


def create_state(params: Any, batch_stats: Any, tx: optax.GradientTransformation) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=tx.init(params))


def split_encoder(params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
  """(every params subtree but the encoder, the encoder's params)."""
  return {k: v for k, v in params.items() if k != ENCODER}, params[ENCODER]
