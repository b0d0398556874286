"""The training loss, and segmentation metrics from a confusion matrix accumulated on device over a whole
split."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.data.classes import class_names as default_class_names


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-pixel softmax cross-entropy with integer labels, float32.

  Same value as `optax.softmax_cross_entropy_with_integer_labels`, but picks the label's logit with a
  one-hot product instead of a gather: the gather's gradient is a scatter-add, which XLA:CPU runs slowly
  and, with its constant indices, spends seconds constant-folding at compile time.
  """
  logits = logits.astype(jnp.float32)
  picked = jnp.sum(logits * jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype), axis=-1)
  return jax.nn.logsumexp(logits, axis=-1) - picked


def confusion_matrix(labels: jax.Array, preds: jax.Array, weights: jax.Array | None,
                     num_classes: int) -> jax.Array:
  """(num_classes, num_classes) weighted counts, rows = true class, columns = predicted class.

  A one-hot GEMM rather than a scatter-add: XLA runs it as one small matmul on every backend. Counts of one
  batch are exact in float32 (< 2**24 pixels); they are returned as int32 so that sums over a whole split
  (184M pixels at 224 px) stay exact too. Weights must be 0 or 1.
  """
  t = jax.nn.one_hot(labels.reshape(-1), num_classes, dtype=jnp.float32)
  if weights is not None:
    t = t * weights.reshape(-1, 1)
  p = jax.nn.one_hot(preds.reshape(-1), num_classes, dtype=jnp.float32)
  return jnp.round(t.T @ p).astype(jnp.int32)


def metric_sums(logits: jax.Array, labels: jax.Array, weights: jax.Array | None) -> dict[str, jax.Array]:
  """Sums to accumulate over batches: weighted loss, pixel weight, confusion matrix.

  Args:
    logits: (B, H, W, C) float32.
    labels: (B, H, W) int class ids.
    weights: (B, H, W) per-pixel weights (0 on eval padding), or None for all ones.
  """
  loss = cross_entropy(logits, labels)
  if weights is None:
    loss_sum, weight_sum = jnp.sum(loss), jnp.float32(loss.size)
  else:
    loss_sum, weight_sum = jnp.sum(loss * weights), jnp.sum(weights)
  return {"loss_sum": loss_sum, "weight_sum": weight_sum,
          "confusion": confusion_matrix(labels, jnp.argmax(logits, -1), weights, logits.shape[-1])}


def summarize(sums: dict[str, np.ndarray], class_names: list[str] | None = None) -> dict[str, Any]:
  """Host-side metrics from accumulated sums: loss, pixel accuracy, class-average accuracy (the mean of
  per-class recall), per-class and mean IoU, confusion.

  A class absent from both labels and predictions has an undefined IoU; it is reported as NaN and left
  out of the mean. A class absent from the labels has no recall and is left out of the class average.
  """
  cm = np.asarray(sums["confusion"], np.float64)
  total = cm.sum()
  inter = np.diag(cm)
  union = cm.sum(0) + cm.sum(1) - inter
  with np.errstate(invalid="ignore", divide="ignore"):
    iou = np.where(union > 0, inter / union, np.nan)
    recall = np.where(cm.sum(1) > 0, inter / cm.sum(1), np.nan)
  names = list(class_names) if class_names is not None else default_class_names(cm.shape[0])
  out = {"loss": float(sums["loss_sum"] / max(float(sums["weight_sum"]), 1.0)),
         "accuracy": float(inter.sum() / total) if total else float("nan"),
         "class_accuracy": float(np.nanmean(recall)) if np.isfinite(recall).any() else float("nan"),
         "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
         "confusion": cm.astype(np.int64).tolist()}
  for name, value in zip(names, iou):
    out[f"iou_{name}"] = float(value)
  return out


def format_metrics(m: dict[str, Any]) -> str:
  """The one-line form of a metrics dict printed per epoch and by eval."""
  return f"loss {m['loss']:.4f} acc {m['accuracy']:.4f} mIoU {m['mean_iou']:.4f}"
