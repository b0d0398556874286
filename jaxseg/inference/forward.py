"""The model's forward pass on photos: the one path from uint8 images to logits that evaluation, tiled
evaluation, prediction and export all take, so that what is scored is what is served."""

from typing import Any

import jax
import jax.numpy as jnp

from jaxseg.data import geometry, transforms


def stored_logits(variables: dict[str, Any], images: jax.Array, *, model) -> jax.Array:
  """uint8 images (B, h, w, 3) at any size -> (B, h, w, C) logits: zero-padded to multiples of 32 for the
  model, the padding cut off again.

  Args:
    variables: the model's {"params", "batch_stats"} (`training.state.inference_variables` of a state).
    images: uint8 RGB.
    model: the Flax model.
  """
  h, w = images.shape[1:3]
  x, _ = transforms.pad_to(transforms.normalize(images), None, (geometry.round_up(h), geometry.round_up(w)))
  return model.apply(variables, x, train=False)[:, :h, :w]


def predict_classes(variables: dict[str, Any], images: jax.Array, *, model) -> jax.Array:
  """uint8 images (B, h, w, 3) -> (B, h, w) class ids."""
  return jnp.argmax(stored_logits(variables, images, model=model), -1)


def first_argmax(logits: jax.Array) -> jax.Array:
  """argmax over the last axis (the first maximum on ties) as max, compare and min: ops every runtime has
  (exported models use it)."""
  c = logits.shape[-1]
  best = jnp.max(logits, axis=-1, keepdims=True)
  ids = jnp.where(logits == best, jnp.arange(c, dtype=jnp.int32), c)
  return jnp.min(ids, axis=-1)
