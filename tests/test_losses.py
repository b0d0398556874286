"""Losses with ignored pixels and class weights (cross-entropy, OHEM, Lovasz-softmax, Dice), and
median-frequency weights, against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tiny

from jaxseg import data, ops
from jaxseg.config.checks import ConfigError, check_config
from jaxseg.training import loop, losses


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _batch(seed=0, c=4):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(2, 6, 5, c)).astype(np.float32) * 3
  labels = rng.integers(0, c, (2, 6, 5)).astype(np.int32)
  labels[rng.random(labels.shape) < 0.2] = 255
  return logits, labels


def test_weighted_cross_entropy_ignores_and_weights_like_numpy():
  logits, labels = _batch()
  weights = np.array([0.5, 2.0, 1.0, 4.0], np.float32)
  valid = labels != 255
  nll = -np.take_along_axis(_log_softmax(logits), np.where(valid, labels, 0)[..., None], -1)[..., 0]
  w = np.where(valid, weights[np.where(valid, labels, 0)], 0.0)
  want = (nll * w).sum() / w.sum()
  got = losses.weighted_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), weights)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  plain = losses.weighted_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
  np.testing.assert_allclose(plain, nll[valid].mean(), rtol=1e-5)


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_label_smoothing_is_optaxs_smoothed_targets_with_ignore_and_weights(smoothing):
  logits, labels = _batch(7)
  valid = labels != 255
  targets = optax.smooth_labels(jax.nn.one_hot(np.where(valid, labels, 0), 4), smoothing)
  per_pixel = np.asarray(optax.softmax_cross_entropy(jnp.asarray(logits), targets))
  weights = np.array([0.5, 2.0, 1.0, 4.0], np.float32)
  w = np.where(valid, weights[np.where(valid, labels, 0)], 0.0)
  x, y = jnp.asarray(logits), jnp.asarray(labels)
  np.testing.assert_allclose(losses.weighted_cross_entropy(x, y, weights, smoothing), (per_pixel * w).sum() / w.sum(),
                             rtol=1e-5)
  np.testing.assert_allclose(losses.Loss("cross_entropy", 0.7, 1, "auto", label_smoothing=smoothing)(x, y),
                             per_pixel[valid].mean(), rtol=1e-5)
  # Online hard example mining keeps the pixels hard without smoothing, and averages their smoothed terms.
  for thresh, min_kept in ((0.3, 0), (0.05, 3), (1.0, 0)):
    np.testing.assert_allclose(losses.ohem_cross_entropy(x, y, weights, thresh, min_kept, smoothing),
                               _ohem_numpy(logits, labels, weights, thresh, min_kept, per_pixel), rtol=1e-5)
  assert not np.isclose(losses.weighted_cross_entropy(x, y), per_pixel[valid].mean(), rtol=1e-3)


def test_dice_loss_matches_numpy_and_skips_ignored_pixels():
  logits, labels = _batch(1)
  p = np.exp(_log_softmax(logits))
  valid = labels != 255
  scores = []
  for k in range(logits.shape[-1]):
    pk, yk = p[..., k][valid], (labels[valid] == k).astype(np.float64)
    scores.append((2 * (pk * yk).sum() + 1) / (pk.sum() + yk.sum() + 1))
  got = losses.dice_loss(jnp.asarray(logits), jnp.asarray(labels))
  np.testing.assert_allclose(got, 1 - np.mean(scores), rtol=1e-5)
  # Changing logits of ignored pixels changes nothing.
  moved = np.where(valid[..., None], logits, logits * -7)
  np.testing.assert_allclose(losses.dice_loss(jnp.asarray(moved), jnp.asarray(labels)), got, rtol=1e-6)


def test_median_frequency_weights_match_a_numpy_reading_of_segnet():
  rng = np.random.default_rng(2)
  masks = rng.choice([0, 1, 1, 1, 2, 255], size=(5, 8, 8)).astype(np.uint8)
  masks[0] = 3  # class 3 only in one image, filling it
  masks[1, :2] = 255
  c = 5  # class 4 never appears
  freq = []
  for k in range(c):
    imgs = [m for m in masks if (m == k).any()]
    freq.append(sum((m == k).sum() for m in imgs) / sum((m != 255).sum() for m in imgs) if imgs else 0.0)
  freq = np.array(freq)
  med = np.median(freq[freq > 0])
  want = np.where(freq > 0, med / np.where(freq > 0, freq, 1), 0.0)
  np.testing.assert_allclose(data.median_frequency_weights(masks, c), want, rtol=1e-6)
  assert data.median_frequency_weights(masks, c)[4] == 0


def test_class_weights_option(capsys):
  config = tiny.tiny_config()
  split = data.open_split(config, "train")
  assert loop.resolve_class_weights(config, split) is None
  config.loss.class_weights = "median_frequency"
  w = loop.resolve_class_weights(config, split)
  np.testing.assert_allclose(w, data.median_frequency_weights(data.load_split(config, "train").masks, 3))
  streamed = data.open_split(tiny.tiny_config(**{"data.pipeline": "stream", "data.workers": 0}), "train")
  want = data.median_frequency_weights(np.stack([streamed.source[i][1] for i in range(len(streamed))]), 3)
  np.testing.assert_allclose(loop.resolve_class_weights(config, streamed), want, rtol=1e-6)
  assert "Median-frequency class weights: pet" in capsys.readouterr().out
  config.loss.class_weights = "sqrt_frequency"
  np.testing.assert_allclose(loop.resolve_class_weights(config, split), np.sqrt(w), rtol=1e-6)
  assert "Sqrt-frequency class weights: pet" in capsys.readouterr().out
  config.loss.class_weights = "1, 2,0.5"
  np.testing.assert_allclose(loop.resolve_class_weights(config, split), [1, 2, 0.5])
  config.loss.class_weights = "1,2"
  with pytest.raises(ConfigError, match="3 non-negative numbers"):
    loop.resolve_class_weights(config, split)


def _ohem_numpy(logits, labels, weights, thresh, min_kept, per_pixel=None):
  """MMSegmentation's OHEMPixelSampler (thresh form) then its weighted cross-entropy, read literally; the kept
  pixels' `per_pixel` losses (a smoothed cross-entropy) averaged instead where given."""
  valid = labels != 255
  logp = _log_softmax(logits.astype(np.float64))
  nll = -np.take_along_axis(logp, np.where(valid, labels, 0)[..., None], -1)[..., 0]
  prob = np.exp(-nll)
  kept = np.zeros(labels.shape, bool)
  ranked = np.sort(prob[valid])
  batch_kept = min_kept * labels.shape[0]
  floor = ranked[min(batch_kept, ranked.size - 1)] if ranked.size else 0.0
  kept[valid] = prob[valid] < max(floor, thresh)
  w = np.where(kept, (weights if weights is not None else np.ones(logits.shape[-1]))[np.where(valid, labels, 0)], 0)
  return ((nll if per_pixel is None else per_pixel) * w).sum() / max(w.sum(), 1e-6)


@pytest.mark.parametrize("thresh, min_kept",
                         [(0.7, 0), (0.7, 10), (0.3, 3), (0.05, 7), (0.01, 12), (1.0, 0), (0.05, 1000)])
def test_ohem_cross_entropy_keeps_the_pixels_mmsegmentation_keeps(thresh, min_kept):
  logits, labels = _batch(3)
  for weights in (None, np.array([0.5, 2.0, 1.0, 4.0], np.float32)):
    got = losses.ohem_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), weights, thresh, min_kept)
    np.testing.assert_allclose(got, _ohem_numpy(logits, labels, weights, thresh, min_kept), rtol=1e-5)
  # A threshold no probability reaches keeps every labelled pixel: plain cross-entropy.
  np.testing.assert_allclose(losses.ohem_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), None, 1.0, 0),
                             losses.weighted_cross_entropy(jnp.asarray(logits), jnp.asarray(labels)), rtol=1e-6)


def _lovasz_numpy(probs, labels):
  """The Lovasz extension of the Jaccard loss evaluated from its definition: errors sorted decreasingly,
  each weighted by the growth of |M| / |fg u M| as its pixel joins the set M; mean over present classes."""
  valid = labels != 255
  probs, labels = probs[valid], labels[valid]
  out = []
  for c in range(probs.shape[-1]):
    fg = labels == c
    if not fg.any():
      continue
    err = np.abs(fg - probs[:, c])
    order = np.argsort(-err, kind="stable")
    total, previous, members = 0.0, 0.0, np.zeros(len(err), bool)
    for i in order:
      members[i] = True
      delta = members.sum() / (fg | members).sum()
      total += err[i] * (delta - previous)
      previous = delta
    out.append(total)
  return np.mean(out)


def test_lovasz_softmax_is_the_lovasz_extension_of_the_jaccard_loss():
  logits, labels = _batch(4)
  probs = np.exp(_log_softmax(logits.astype(np.float64)))
  got = losses.lovasz_softmax(jnp.asarray(logits), jnp.asarray(labels))
  np.testing.assert_allclose(got, _lovasz_numpy(probs, labels), rtol=1e-5)
  # At one-hot predictions it is 1 - IoU per class (classes present in the labels), from the confusion.
  hard = np.eye(4, dtype=np.float32)[np.argmax(logits, -1)] * 60.0
  valid = labels != 255
  pred = np.argmax(logits, -1)
  ious = [((pred == c) & (labels == c)).sum() / (((pred == c) & valid) | (labels == c)).sum()
          for c in range(4) if (labels == c).any()]
  np.testing.assert_allclose(losses.lovasz_softmax(jnp.asarray(hard), jnp.asarray(labels)), 1 - np.mean(ious),
                             atol=1e-5)
  # Ignored pixels count nowhere, and the gradient is finite and reaches the labelled pixels' logits only.
  moved = np.where(valid[..., None], logits, -logits)
  np.testing.assert_allclose(losses.lovasz_softmax(jnp.asarray(moved), jnp.asarray(labels)), got, rtol=1e-6)
  grad = jax.grad(losses.lovasz_softmax)(jnp.asarray(logits), jnp.asarray(labels))
  assert np.isfinite(grad).all() and np.abs(grad[valid]).sum() > 0 and not np.asarray(grad)[~valid].any()


@pytest.mark.parametrize("levels", [0, 8])  # 0: distinct errors; 8: errors on 9 values, many tied
def test_the_sorted_key_lovasz_extension_is_the_two_operand_sorts(levels):
  rng = np.random.default_rng(levels)
  errors = rng.uniform(0, 1, (5, 4000)).astype(np.float32)
  if levels:
    errors = np.round(errors * levels) / levels
  errors[:, :300] = 0.0  # as unlabelled pixels are
  fg = rng.uniform(size=errors.shape) < np.array([[0.0], [0.01], [0.3], [0.7], [1.0]])  # absent to everywhere
  fg[:, :300] = False
  g = jnp.asarray(rng.normal(size=5), jnp.float32)
  fast = lambda e: jnp.sum(g * ops.lovasz_extension(e, jnp.asarray(fg), kernels="gemm"))
  plain = lambda e: jnp.sum(g * ops.lovasz_extension(e, jnp.asarray(fg), kernels="xla"))
  np.testing.assert_allclose(jax.jit(fast)(errors), plain(errors), rtol=2e-6, atol=1e-7)
  got, want = np.asarray(jax.jit(jax.grad(fast))(errors)), np.asarray(jax.grad(plain)(errors))
  if not levels:  # every pixel its own rank: the same gradient
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
  # Tied errors share their run's steps in another order: per error value, the same total.
  for c in range(5):
    for value in np.unique(errors[c]):
      at = errors[c] == value
      np.testing.assert_allclose(got[c][at].sum(), want[c][at].sum(), rtol=1e-4, atol=1e-7)
  assert np.abs(got).sum() > 0


def _binned_steps_numpy(errors, fg):
  """Per pixel of one class, from the definition in float64: its Jaccard step |M| / |fg u M| with the errors
  sorted decreasingly, among equal errors the class's pixels first, and equal errors' other pixels sharing
  their mean step. Returns (loss, steps)."""
  order = np.lexsort((~fg, -errors))
  in_order = fg[order]
  members = np.arange(1, len(errors) + 1)
  jaccard = members / (fg.sum() + np.cumsum(~in_order))
  steps = np.empty(len(errors))
  steps[order] = np.diff(jaccard, prepend=0.0)
  for value in np.unique(errors):
    others = (errors == value) & ~fg
    steps[others] = steps[others].mean() if others.any() else 0.0
  return float(np.dot(errors.astype(np.float64), steps)), steps


@pytest.mark.parametrize("bins", [64, 4096])
def test_the_binned_lovasz_extension_ranks_by_histogram_bin(bins):
  rng = np.random.default_rng(bins)
  fg = rng.uniform(size=(5, 4000)) < np.array([[0.0], [0.01], [0.3], [0.7], [1.0]])  # absent to everywhere
  fg[:, :300] = False
  g = rng.normal(size=5).astype(np.float32)
  binned = lambda e: jnp.sum(jnp.asarray(g) * ops.lovasz_extension(e, jnp.asarray(fg), bins=bins))
  # Errors on 9 values, each its own bin's ties: the loss and gradient of ranking in that order, exactly.
  tied = (np.round(rng.uniform(0, 1, fg.shape) * 8) / 8).astype(np.float32)
  tied[:, :300] = 0.0  # as unlabelled pixels are
  want = [_binned_steps_numpy(tied[c], fg[c]) for c in range(5)]
  np.testing.assert_allclose(jax.jit(binned)(tied), np.dot(g, [loss for loss, _ in want]), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(jax.grad(binned))(tied), g[:, None] * np.stack([s for _, s in want]),
                             rtol=1e-4, atol=1e-9)
  # Distinct errors, most of them small as a softmax's are, and a confident model's (most under 1 / bins): never
  # above the sorted loss and within 1 / bins of it per class.
  cases = [(rng.uniform(0, 1, fg.shape) ** 4).astype(np.float32),
           (10.0 ** rng.uniform(-7, -3, fg.shape)).astype(np.float32)]
  for errors in cases:
    errors[:, :300] = 0.0
    per_class = np.asarray(ops.lovasz_extension(jnp.asarray(errors), jnp.asarray(fg), bins=bins))
    exact = np.asarray(ops.lovasz_extension(jnp.asarray(errors), jnp.asarray(fg), kernels="xla"))
    assert np.all(per_class <= exact * (1 + 1e-5) + 1e-9), (per_class, exact)
    assert np.all(exact - per_class <= 1.0 / bins), (per_class, exact)
  # And, for the first errors, nearly the sorted form's gradient.
  errors = cases[0]
  sorted_grad = jax.grad(lambda e: jnp.sum(jnp.asarray(g) * ops.lovasz_extension(e, jnp.asarray(fg))))(errors)
  got = np.asarray(jax.grad(binned)(errors))
  for c in range(1, 5):  # (an absent class's one step lands on one pixel of the top bin in the sorted form)
    cosine = np.dot(got[c], sorted_grad[c]) / np.linalg.norm(got[c]) / np.linalg.norm(sorted_grad[c])
    assert cosine > 1 - 4.0 / bins, (c, cosine)


def test_the_loss_takes_its_lovasz_bins_and_checks_them():
  logits, labels = _batch(6)
  x, y = jnp.asarray(logits), jnp.asarray(labels)
  coarse = losses.Loss("cross_entropy+lovasz", 0.7, 1, "auto", lovasz_bins=4)
  np.testing.assert_allclose(coarse(x, y), losses.weighted_cross_entropy(x, y) + losses.lovasz_softmax(x, y, bins=4),
                             rtol=1e-6)
  assert abs(losses.lovasz_softmax(x, y, bins=4) - losses.lovasz_softmax(x, y)) > 1e-3  # coarse: not the sort
  assert losses.Loss.from_config(tiny.tiny_config(**{"loss.name": "lovasz", "loss.lovasz_bins": 64})).lovasz_bins == 64
  for overrides, message in [({"loss.name": "lovasz", "loss.lovasz_bins": 1}, r"lovasz_bins=1 must be 0 \(sort"),
                             ({"loss.lovasz_bins": 64}, r"config\.loss\.name='cross_entropy' has no Lovasz term")]:
    with pytest.raises(ConfigError, match=message):
      check_config(tiny.tiny_config(**overrides))


def test_combined_losses_add_their_terms():
  logits, labels = _batch(5)
  x, y = jnp.asarray(logits), jnp.asarray(labels)
  loss = lambda name, threshold=0.7, kept=1: losses.Loss(name, threshold, kept, "auto")
  np.testing.assert_allclose(loss("cross_entropy+lovasz")(x, y),
                             losses.weighted_cross_entropy(x, y) + losses.lovasz_softmax(x, y), rtol=1e-6)
  np.testing.assert_allclose(loss("ohem_cross_entropy", 0.5, 2)(x, y),
                             losses.ohem_cross_entropy(x, y, None, 0.5, 2), rtol=1e-6)
  with pytest.raises(ValueError, match="unknown loss"):
    loss("lovasz+dice")(x, y)
