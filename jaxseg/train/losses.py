"""Training losses over labels with an ignore value: (class-weighted) cross-entropy and soft Dice."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.data.labels import IGNORE

LOSSES = ("cross_entropy", "dice", "cross_entropy+dice")


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-pixel softmax cross-entropy with integer labels, float32 (0 where the label is out of range).

  Same value as `optax.softmax_cross_entropy_with_integer_labels`, but picks the label's logit with a
  one-hot product instead of a gather: the gather's gradient is a scatter-add, which XLA:CPU runs slowly
  and, with its constant indices, spends seconds constant-folding at compile time.
  """
  logits = logits.astype(jnp.float32)
  picked = jnp.sum(logits * jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype), axis=-1)
  return jax.nn.logsumexp(logits, axis=-1) - picked


def pixel_weights(labels: jax.Array, class_weights: np.ndarray | None) -> jax.Array:
  """Per-pixel loss weights: the class's weight (1 without class weights), 0 where the label is IGNORE."""
  valid = labels != IGNORE
  if class_weights is None:
    return valid.astype(jnp.float32)
  w = jnp.asarray(class_weights, jnp.float32)[jnp.clip(labels, 0, len(class_weights) - 1)]
  return jnp.where(valid, w, 0.0)


def weighted_cross_entropy(logits: jax.Array, labels: jax.Array, class_weights: np.ndarray | None = None
                           ) -> jax.Array:
  """Mean cross-entropy over labelled pixels, each weighted by its class's weight: sum(w * ce) / sum(w)
  (PyTorch's `CrossEntropyLoss(weight=..., ignore_index=...)` convention)."""
  w = pixel_weights(labels, class_weights)
  return jnp.sum(cross_entropy(logits, labels) * w) / jnp.maximum(jnp.sum(w), 1e-6)


def dice_loss(logits: jax.Array, labels: jax.Array, eps: float = 1.0) -> jax.Array:
  """1 - mean over classes of the soft Dice score 2|P.Y| / (|P| + |Y|), over the batch's labelled pixels.

  Classes absent from the batch's labels and (nearly) from its predictions score ~1 through `eps`.
  """
  num_classes = logits.shape[-1]
  valid = (labels != IGNORE).astype(jnp.float32)[..., None]
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1) * valid
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32) * valid
  axes = tuple(range(logits.ndim - 1))
  inter = jnp.sum(probs * onehot, axes)
  denom = jnp.sum(probs, axes) + jnp.sum(onehot, axes)
  return 1.0 - jnp.mean((2.0 * inter + eps) / (denom + eps))


def segmentation_loss(logits: jax.Array, labels: jax.Array, name: str,
                      class_weights: np.ndarray | None = None) -> jax.Array:
  """The loss `name` (one of LOSSES) of a batch; labels IGNORE count nowhere."""
  if name == "cross_entropy":
    return weighted_cross_entropy(logits, labels, class_weights)
  if name == "dice":
    return dice_loss(logits, labels)
  if name == "cross_entropy+dice":
    return weighted_cross_entropy(logits, labels, class_weights) + dice_loss(logits, labels)
  raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
