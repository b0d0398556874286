"""The training loss, and segmentation metrics from a confusion matrix accumulated on device over a whole
split."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.data.labels import IGNORE
from jaxseg.training.losses import cross_entropy


def confusion_matrix(labels: jax.Array, preds: jax.Array, weights: jax.Array | None,
                     num_classes: int) -> jax.Array:
  """(num_classes, num_classes) int32 weighted counts, rows = true class, columns = predicted class. Labels
  outside 0..num_classes-1 (IGNORE) count nowhere. Weights must be 0 or 1.

  On CPU an integer scatter-add of each pixel into its (true, predicted) cell: one pass, exact at any size.
  Elsewhere a one-hot GEMM, which accelerators run as one small matmul where a scatter into a few cells
  would serialise on atomics; its counts are exact per batch in float32 (< 2**24 pixels) and summed over a
  split as int32. (On CPU the GEMM, whose contraction runs over every pixel, takes several times as long.)
  """
  form = confusion_scatter if jax.default_backend() == "cpu" else confusion_gemm
  return form(labels, preds, weights, num_classes)


def confusion_scatter(labels: jax.Array, preds: jax.Array, weights: jax.Array | None,
                      num_classes: int) -> jax.Array:
  """`confusion_matrix` as an integer scatter-add (its CPU form)."""
  labels, preds = labels.reshape(-1).astype(jnp.int32), preds.reshape(-1).astype(jnp.int32)
  valid = (labels >= 0) & (labels < num_classes)
  if weights is not None:
    valid &= weights.reshape(-1) > 0
  cell = jnp.where(valid, labels * num_classes + preds, num_classes * num_classes)  # the last: discarded
  counts = jnp.zeros(num_classes * num_classes + 1, jnp.int32).at[cell].add(1)
  return counts[:-1].reshape(num_classes, num_classes)


def confusion_gemm(labels: jax.Array, preds: jax.Array, weights: jax.Array | None,
                   num_classes: int) -> jax.Array:
  """`confusion_matrix` as a one-hot GEMM (its accelerator form)."""
  t = jax.nn.one_hot(labels.reshape(-1), num_classes, dtype=jnp.float32)
  if weights is not None:
    t = t * weights.reshape(-1, 1)
  p = jax.nn.one_hot(preds.reshape(-1), num_classes, dtype=jnp.float32)
  return jnp.round(t.T @ p).astype(jnp.int32)


def metric_sums(logits: jax.Array, labels: jax.Array, weights: jax.Array | None) -> dict[str, jax.Array]:
  """Sums to accumulate over batches: loss over labelled pixels, their count, confusion matrix.

  Args:
    logits: (B, H, W, C) float32.
    labels: (B, H, W) int class ids, IGNORE for pixels that count nowhere.
    weights: (B, H, W) per-pixel weights (0 on eval padding), or None for all ones.
  """
  valid = (labels != IGNORE).astype(jnp.float32)
  weights = valid if weights is None else weights * valid
  loss_sum, weight_sum = jnp.sum(cross_entropy(logits, labels) * weights), jnp.sum(weights)
  return {"loss_sum": loss_sum, "weight_sum": weight_sum,
          "confusion": confusion_matrix(labels, jnp.argmax(logits, -1), weights, logits.shape[-1])}


def summarize(sums: dict[str, np.ndarray], class_names: list[str] | None = None) -> dict[str, Any]:
  """Host-side metrics from accumulated sums: loss, pixel accuracy, class-average accuracy (the mean of
  per-class recall), per-class IoU, precision and recall, mean IoU, confusion.

  A class absent from both labels and predictions has an undefined IoU; it is reported as NaN and left
  out of the mean. A class absent from the labels has no recall and is left out of the class average; one
  never predicted has no precision (NaN).
  """
  cm = np.asarray(sums["confusion"], np.float64)
  total = cm.sum()
  inter = np.diag(cm)
  union = cm.sum(0) + cm.sum(1) - inter
  with np.errstate(invalid="ignore", divide="ignore"):
    iou = np.where(union > 0, inter / union, np.nan)
    recall = np.where(cm.sum(1) > 0, inter / cm.sum(1), np.nan)
    precision = np.where(cm.sum(0) > 0, inter / cm.sum(0), np.nan)
  names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(cm.shape[0])]
  out = {"loss": float(sums["loss_sum"] / max(float(sums["weight_sum"]), 1.0)),
         "accuracy": float(inter.sum() / total) if total else float("nan"),
         "class_accuracy": float(np.nanmean(recall)) if np.isfinite(recall).any() else float("nan"),
         "mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
         "confusion": cm.astype(np.int64).tolist()}
  for name, i, p, r in zip(names, iou, precision, recall):
    out[f"iou_{name}"], out[f"precision_{name}"], out[f"recall_{name}"] = float(i), float(p), float(r)
  return out


def majority_baseline(m: dict[str, Any]) -> float:
  """Pixel accuracy of always predicting the most frequent class, from summarized metrics' confusion (rows:
  labels, at the resolution the metrics were computed at)."""
  labels = np.asarray(m["confusion"], np.float64).sum(1)
  return float(labels.max() / max(labels.sum(), 1.0))


def format_metrics(m: dict[str, Any]) -> str:
  """The one-line form of a metrics dict printed per epoch and by eval (without the loss where there is none:
  evaluation by windows, scales or flips scores class ids only)."""
  loss = f"loss {m['loss']:.4f} " if np.isfinite(m["loss"]) else ""
  return (f"{loss}acc {m['accuracy']:.4f} class-acc {m.get('class_accuracy', float('nan')):.4f} "
          f"mIoU {m['mean_iou']:.4f}")


def format_per_class(m: dict[str, Any], class_names: Sequence[str]) -> str:
  """Per-class IoU, precision and recall (class accuracy), labelled and predicted pixels, one class a line: a
  precision well below the recall is a class the model over-predicts."""
  cm = np.asarray(m["confusion"], np.float64)
  # From the confusion, not the per-class entries: a record written by an earlier release (a finished run's
  # history, printed again on a rerun) has no precision or recall entries.
  with np.errstate(invalid="ignore", divide="ignore"):
    recall, precision = np.diag(cm) / cm.sum(1), np.diag(cm) / cm.sum(0)
  width = max(len(n) for n in class_names)
  lines = [f"{'class':<{width}}  {'IoU':>6}  {'prec':>6}  {'recall':>6}  {'labelled':>10}  {'predicted':>10}"]
  for i, name in enumerate(class_names):
    lines.append(f"{name:<{width}}  {m['iou_' + name]:>6.4f}  {precision[i]:>6.4f}  {recall[i]:>6.4f}  "
                 f"{int(cm[i].sum()):>10}  {int(cm[:, i].sum()):>10}")
  return "\n".join(lines)
