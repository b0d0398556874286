"""Training losses over labels with an ignore value: (class-weighted) cross-entropy, its online hard example
mining form, the Lovasz-softmax surrogate of the Jaccard index, and soft Dice."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxseg import ops
from jaxseg.data.labels import IGNORE

LOSSES = ("cross_entropy", "ohem_cross_entropy", "lovasz", "dice", "cross_entropy+dice", "cross_entropy+lovasz")


def cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
  """Per-pixel softmax cross-entropy with integer labels, float32 (a label out of range picks no logit: weight
  those pixels 0). With `smoothing` e, the target puts 1 - e on the label and e / C on each of the C classes.

  Same value as `optax.softmax_cross_entropy_with_integer_labels`, but picks the label's logit with a
  one-hot product instead of a gather: the gather's gradient is a scatter-add, which XLA:CPU runs slowly
  and, with its constant indices, spends seconds constant-folding at compile time.
  """
  logits = logits.astype(jnp.float32)
  picked = jnp.sum(logits * jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype), axis=-1)
  if smoothing:
    picked = (1.0 - smoothing) * picked + smoothing * jnp.mean(logits, axis=-1)
  return jax.nn.logsumexp(logits, axis=-1) - picked


def pixel_weights(labels: jax.Array, class_weights: np.ndarray | None) -> jax.Array:
  """Per-pixel loss weights: the class's weight (1 without class weights), 0 where the label is IGNORE."""
  valid = labels != IGNORE
  if class_weights is None:
    return valid.astype(jnp.float32)
  w = jnp.asarray(class_weights, jnp.float32)[jnp.clip(labels, 0, len(class_weights) - 1)]
  return jnp.where(valid, w, 0.0)


def weighted_cross_entropy(logits: jax.Array, labels: jax.Array, class_weights: np.ndarray | None = None,
                           smoothing: float = 0.0) -> jax.Array:
  """Mean cross-entropy over labelled pixels, each weighted by its class's weight: sum(w * ce) / sum(w)
  (PyTorch's `CrossEntropyLoss(weight=..., ignore_index=...)` convention). With `smoothing`, each pixel's whole
  smoothed term takes its label's weight, where PyTorch weights each class's share of the uniform part by
  that class's weight."""
  w = pixel_weights(labels, class_weights)
  return jnp.sum(cross_entropy(logits, labels, smoothing) * w) / jnp.maximum(jnp.sum(w), 1e-6)


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


def ohem_cross_entropy(logits: jax.Array, labels: jax.Array, class_weights: np.ndarray | None = None,
                       threshold: float = 0.7, min_kept: int = 100000, smoothing: float = 0.0) -> jax.Array:
  """Cross-entropy over the batch's hard pixels only (online hard example mining, MMSegmentation's
  `OHEMPixelSampler` with `thresh`): the labelled pixels whose predicted probability of their true class is
  below `threshold`, or below the (min_kept * batch)-th smallest such probability where that is higher, so at
  least that many pixels (all of them if there are fewer) make the loss. Class weights apply as in
  `weighted_cross_entropy`.

  Args:
    logits: (B, H, W, C).
    labels: (B, H, W) class ids, IGNORE where unlabelled.
    class_weights: (C,) or None.
    threshold: the probability below which a pixel is hard.
    min_kept: pixels kept per image at least.
    smoothing: label smoothing of the cross-entropy (`cross_entropy`); hardness is judged without it.
  """
  ce = cross_entropy(logits, labels)
  w = pixel_weights(labels, class_weights)
  valid = labels != IGNORE
  prob = jax.lax.stop_gradient(jnp.exp(-ce))  # the true class's softmax probability
  if smoothing:
    ce = cross_entropy(logits, labels, smoothing)
  ranked = jnp.sort(jnp.where(valid, prob, jnp.inf).ravel())  # unlabelled pixels last
  n_valid = jnp.sum(valid)
  kth = ranked[jnp.clip(jnp.minimum(min_kept * labels.shape[0], n_valid - 1), 0, ranked.size - 1)]
  keep = valid & (prob < jnp.maximum(jnp.float32(threshold), kth))
  w = jnp.where(keep, w, 0.0)
  return jnp.sum(ce * w) / jnp.maximum(jnp.sum(w), 1e-6)


def lovasz_softmax(logits: jax.Array, labels: jax.Array, kernels: str = "auto", bins: int = 0) -> jax.Array:
  """The Lovasz-softmax loss (Berman, Rannen Triki and Blaschko, CVPR 2018) over the batch's labelled pixels:
  per class present in the labels, the Lovasz extension of the Jaccard loss at the errors |[y = c] - p_c|,
  averaged over those classes. At one-hot predictions it equals 1 - IoU per class.

  Args:
    logits: (B, H, W, C).
    labels: (B, H, W) class ids, IGNORE where unlabelled (they count nowhere).
    kernels: the form of the sort and its gradient (`jaxseg.ops.lovasz_extension`).
    bins: 0 sorts the errors; more ranks them in this many equal-width bins instead (within 1 / bins).
  """
  num_classes = logits.shape[-1]
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).reshape(-1, num_classes)
  labels = labels.reshape(-1)
  valid = labels != IGNORE
  fg = (labels[:, None] == jnp.arange(num_classes)) & valid[:, None]
  errors = jnp.where(valid[:, None], jnp.abs(fg.astype(jnp.float32) - probs), 0.0)  # unlabelled: 0, last
  loss = ops.lovasz_extension(errors.T, fg.T, kernels=kernels, bins=bins)
  present = jnp.any(fg, axis=0)
  return jnp.sum(jnp.where(present, loss, 0.0)) / jnp.maximum(jnp.sum(present), 1)


@dataclasses.dataclass(frozen=True)
class Loss:
  """A training loss, typed and frozen.

  Attributes:
    name: one of LOSSES (a "+" adds two).
    ohem_threshold, ohem_min_kept: online hard example mining's (`ohem_cross_entropy`).
    kernels: Lovasz-softmax's form (`jaxseg.ops.KERNELS`).
    label_smoothing: of the cross-entropy terms (`cross_entropy`).
    aux_weight: the weight of an auxiliary head's cross-entropy (`auxiliary`).
    lovasz_bins: Lovasz-softmax's error ranking: 0 sorts, more bins a histogram (`lovasz_softmax`).
  """
  name: str
  ohem_threshold: float
  ohem_min_kept: int
  kernels: str
  label_smoothing: float = 0.0
  aux_weight: float = 0.4
  lovasz_bins: int = 0

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "Loss":
    """`config.loss` and `config.model.kernels` of a checked config."""
    loss = config.loss
    return cls(loss.name, loss.ohem_threshold, loss.ohem_min_kept, config.model.kernels,
               float(loss.label_smoothing), float(loss.aux_weight), int(loss.lovasz_bins))

  def __call__(self, logits: jax.Array, labels: jax.Array, class_weights: np.ndarray | None = None) -> jax.Array:
    """The loss of a batch; labels IGNORE count nowhere. Class weights apply to the cross-entropy terms."""
    return segmentation_loss(logits, labels, self, class_weights)

  def auxiliary(self, logits: jax.Array, labels: jax.Array, class_weights: np.ndarray | None = None) -> jax.Array:
    """An auxiliary head's term: `aux_weight` times its (class-weighted, smoothed) cross-entropy."""
    return self.aux_weight * weighted_cross_entropy(logits, labels, class_weights, self.label_smoothing)


def segmentation_loss(logits: jax.Array, labels: jax.Array, loss: Loss,
                      class_weights: np.ndarray | None = None) -> jax.Array:
  """The loss `loss` of a batch (`Loss.__call__`)."""
  if loss.name not in LOSSES:
    raise ValueError(f"unknown loss {loss.name!r}; choose one of {LOSSES}")
  smoothing = loss.label_smoothing
  terms = {"cross_entropy": lambda: weighted_cross_entropy(logits, labels, class_weights, smoothing),
           "ohem_cross_entropy": lambda: ohem_cross_entropy(logits, labels, class_weights, loss.ohem_threshold,
                                                            loss.ohem_min_kept, smoothing),
           "lovasz": lambda: lovasz_softmax(logits, labels, loss.kernels, loss.lovasz_bins),
           "dice": lambda: dice_loss(logits, labels)}
  return sum(terms[term]() for term in loss.name.split("+"))
