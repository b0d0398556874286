"""Metrics over a split against a numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.training import metrics, steps


def _numpy_reference(logits, labels, weights, c):
  preds = logits.argmax(-1)
  m = (weights > 0) & (labels != 255)
  weights = weights * m
  cm = np.zeros((c, c), np.int64)
  np.add.at(cm, (labels[m], preds[m]), 1)
  logp = logits - logits.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  nll = -np.take_along_axis(logp, np.where(m, labels, 0)[..., None], -1)[..., 0]
  iou = [cm[k, k] / (cm[k].sum() + cm[:, k].sum() - cm[k, k]) for k in range(c)]
  recall = [cm[k, k] / cm[k].sum() for k in range(c)]
  # precision: of the pixels predicted as k (where labelled), the share labelled k
  precision = [((preds == k) & (labels == k) & m).sum() / ((preds == k) & m).sum() for k in range(c)]
  return {"loss": (nll * weights).sum() / weights.sum(), "accuracy": np.trace(cm) / cm.sum(),
          "class_accuracy": np.mean(recall), "recall": recall, "precision": precision,
          "confusion": cm, "iou": iou, "mean_iou": np.mean(iou)}


def test_split_metrics_match_numpy_with_padding_and_ignored_pixels():
  rng = np.random.default_rng(0)
  c, batches = 3, []
  acc = steps.zero_sums(c)
  for b in range(3):
    logits = rng.normal(size=(4, 8, 8, c)).astype(np.float32)
    labels = rng.integers(0, c, (4, 8, 8))
    labels[rng.random(labels.shape) < 0.15] = 255  # ignored pixels
    weight = np.array([1, 1, 1, 0 if b == 2 else 1], np.float32)  # padding in the last batch
    weights = np.broadcast_to(weight[:, None, None], labels.shape)
    batches.append((logits, labels, weights))
    acc = steps.accumulate(acc, metrics.metric_sums(jnp.asarray(logits), jnp.asarray(labels),
                                                          jnp.asarray(weights)), jnp.int32(b))
  got = metrics.summarize({k: np.asarray(v) for k, v in acc.items()}, ["pet", "background", "boundary"])
  all_labels = np.concatenate([b[1] for b in batches])
  want = _numpy_reference(*(np.concatenate(x) for x in zip(*batches)), c)
  np.testing.assert_array_equal(got["confusion"], want["confusion"])
  # padding and ignored pixels never count
  assert np.asarray(got["confusion"]).sum() == (all_labels[:11] != 255).sum() < 11 * 64
  np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
  np.testing.assert_allclose(got["accuracy"], want["accuracy"], rtol=1e-6)
  np.testing.assert_allclose(got["class_accuracy"], want["class_accuracy"], rtol=1e-6)
  np.testing.assert_allclose([got["iou_pet"], got["iou_background"], got["iou_boundary"]], want["iou"],
                             rtol=1e-6)
  np.testing.assert_allclose(got["mean_iou"], want["mean_iou"], rtol=1e-6)
  names = ("pet", "background", "boundary")
  np.testing.assert_allclose([got[f"precision_{n}"] for n in names], want["precision"], rtol=1e-6)
  np.testing.assert_allclose([got[f"recall_{n}"] for n in names], want["recall"], rtol=1e-6)
  table = metrics.format_per_class(got, names).splitlines()
  assert table[0].split() == ["class", "IoU", "prec", "recall", "labelled", "predicted"]
  row = table[2].split()  # background
  np.testing.assert_allclose([float(v) for v in row[1:4]], [want["iou"][1], want["precision"][1], want["recall"][1]],
                             atol=6e-5)
  assert [int(v) for v in row[4:]] == [want["confusion"][1].sum(), want["confusion"][:, 1].sum()]


def test_absent_class_is_left_out_of_mean_iou_and_class_accuracy():
  sums = {"loss_sum": 1.0, "weight_sum": 4.0, "confusion": np.array([[3, 0, 0], [1, 0, 0], [0, 0, 0]])}
  m = metrics.summarize(sums, ["pet", "background", "boundary"])
  assert np.isnan(m["iou_boundary"]) and np.isnan(m["precision_background"]) and np.isnan(m["recall_boundary"])
  np.testing.assert_allclose(m["mean_iou"], np.mean([3 / 4, 0.0]))
  np.testing.assert_allclose(m["class_accuracy"], np.mean([3 / 3, 0 / 1]))  # no boundary label: left out


def test_non_finite_loss_step_is_remembered():
  acc = steps.zero_sums(3)
  good = {"loss_sum": jnp.float32(1), "weight_sum": jnp.float32(1), "confusion": jnp.zeros((3, 3), jnp.int32)}
  bad = dict(good, loss_sum=jnp.float32(np.nan))
  for step, sums in enumerate([good, bad, good, bad]):
    acc = steps.accumulate(acc, sums, jnp.int32(step + 10))
  assert int(acc["first_bad_step"]) == 11


def test_cross_entropy_matches_optax():
  import optax  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  logits = jnp.asarray(rng.normal(size=(2, 5, 7, 4)) * 4, jnp.float32)
  labels = jnp.asarray(rng.integers(0, 4, (2, 5, 7)))
  np.testing.assert_allclose(metrics.cross_entropy(logits, labels),
                             optax.softmax_cross_entropy_with_integer_labels(logits, labels), rtol=1e-5, atol=1e-6)
  grad = lambda f: jax.grad(lambda z: f(z, labels).sum())(logits)
  np.testing.assert_allclose(grad(metrics.cross_entropy), grad(optax.softmax_cross_entropy_with_integer_labels),
                             atol=1e-6)


def test_both_confusion_forms_count_like_numpy_and_skip_ignored_and_unweighted_pixels():
  rng = np.random.default_rng(1)
  c = 5
  labels = rng.integers(0, c, (3, 7, 9))
  labels[rng.random(labels.shape) < 0.2] = 255
  preds = rng.integers(0, c, labels.shape)
  weights = np.broadcast_to(np.array([1, 0, 1], np.float32)[:, None, None], labels.shape)
  keep = (labels != 255) & (weights > 0)
  want = np.zeros((c, c), np.int64)
  np.add.at(want, (labels[keep], preds[keep]), 1)
  args = (jnp.asarray(labels, jnp.int32), jnp.asarray(preds, jnp.int32))
  for form in (metrics.confusion_scatter, metrics.confusion_gemm):
    np.testing.assert_array_equal(form(*args, jnp.asarray(weights), c), want)
    unweighted = np.zeros((c, c), np.int64)
    np.add.at(unweighted, (labels[labels != 255], preds[labels != 255]), 1)
    np.testing.assert_array_equal(jax.jit(form, static_argnums=3)(*args, None, c), unweighted)


def test_the_one_line_form_leaves_out_a_loss_that_was_not_computed():
  m = metrics.summarize({"loss_sum": 2.0, "weight_sum": 4.0, "confusion": [[3, 1], [0, 4]]}, ("a", "b"))
  assert metrics.format_metrics(m) == "loss 0.5000 acc 0.8750 class-acc 0.8750 mIoU 0.7750"
  tiled = metrics.summarize({"loss_sum": np.nan, "weight_sum": 1.0, "confusion": [[3, 1], [0, 4]]}, ("a", "b"))
  assert metrics.format_metrics(tiled) == "acc 0.8750 class-acc 0.8750 mIoU 0.7750"  # windows, scales or flips
