"""The auxiliary head: its loss is added to the step's with its weight, its gradient reaches the encoder,
inference never computes it, checkpoints record it, and its options are checked."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tiny

from jaxseg import data
from jaxseg.config.checks import ConfigError, check_config
from jaxseg.models import summary
from jaxseg.training import build, checkpoints, steps
from jaxseg.training.state import create_state
from jaxseg.training.store import CheckpointStore


def _config(**overrides):
  return tiny.tiny_config(**{"freeze_encoder": False, "random_flip": False, "model.aux_stride": 16, **overrides})


WEIGHTS = np.array([0.5, 2.0, 1.0], np.float32)
CASES = {"unet": ({}, None),
         "deeplab_os8": ({"model.name": "deeplabv3plus", "model.output_stride": 8}, WEIGHTS)}


def _numpy_ce(logits, labels, smoothing, weights=None):
  logits = np.asarray(logits, np.float64)
  logp = logits - logits.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  c = logits.shape[-1]
  target = (1 - smoothing) * np.eye(c)[labels] + smoothing / c
  w = np.ones(labels.shape) if weights is None else weights[labels]  # the synthetic masks label every pixel
  return (-(target * logp).sum(-1) * w).sum() / w.sum()


def _one_step(config, class_weights=None):
  check_config(config)
  variables, config, model = build.build(config, pretrained=False)
  state = create_state(variables["params"], variables["batch_stats"], optax.sgd(0.5), ema=False)
  split = data.open_split(config, config.data.train_split)
  batch, _ = next(iter(split.train_batches(config.batch_size, config.seed, 1, None)))
  settings = steps.StepSettings.from_config(config)
  rng = jax.random.key(0)
  new_state, sums = jax.jit(lambda s, b: steps.train_step(s, b, rng, model=model, tx=optax.sgd(0.5),
                                                           settings=settings, class_weights=class_weights))(state,
                                                                                                            batch)
  x, masks = data.augment(jax.random.fold_in(rng, state.step), batch["image"], batch["mask"], settings.augment)
  return model, variables, new_state, sums, np.asarray(x), np.asarray(masks).astype(np.int32)


@pytest.mark.parametrize("case", CASES)
def test_the_step_adds_the_auxiliary_cross_entropy_with_its_weight_and_trains_the_encoder_with_it(case):
  overrides, weights = CASES[case]
  model, variables, new_state, sums, x, labels = _one_step(
    _config(**overrides, **{"loss.aux_weight": 0.4, "loss.label_smoothing": 0.1}), weights)
  logits, new = model.apply(variables, x, train=True, encoder_train=False, mutable=["batch_stats", "aux"])
  (aux,) = jax.tree.leaves(new["aux"])
  assert aux.shape == logits.shape
  want = _numpy_ce(logits, labels, 0.1, weights) + 0.4 * _numpy_ce(aux, labels, 0.1, weights)
  np.testing.assert_allclose(sums["loss_sum"] / sums["weight_sum"], want, rtol=1e-5)
  # A head of (almost) no weight: the step is the main loss alone, and the encoder moves differently.
  _, _, unweighted, sums0, _, _ = _one_step(
    _config(**overrides, **{"loss.aux_weight": 1e-30, "loss.label_smoothing": 0.1}), weights)
  np.testing.assert_allclose(sums0["loss_sum"] / sums0["weight_sum"], _numpy_ce(logits, labels, 0.1, weights),
                             rtol=1e-5)
  moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(new_state.params["encoder"]),
                                               jax.tree.leaves(unweighted.params["encoder"]))]
  assert max(moved) > 1e-4


def test_the_summary_lists_the_head_at_its_real_stride_and_adds_up():
  model = build.build(_config(**CASES["deeplab_os8"][0]), pretrained=False)[2]
  rows, counts = summary.summary_rows(model, 64)
  assert rows[-1][0] == "aux_head (training only: stride 8, 3x3 ConvBN, 1x1, bilinear)" and rows[-1][2] > 0
  assert sum(r[2] for r in rows) == counts["total"]


def test_inference_computes_the_same_logits_without_the_head():
  config = _config()
  variables, _, model = build.build(config, pretrained=False)
  plain_model = build.build(_config(**{"model.aux_stride": 0}), pretrained=False)[2]
  plain = {k: {name: v for name, v in tree.items() if name != "aux_head"} for k, tree in variables.items()}
  assert "aux_head" in variables["params"] and "aux_head" in variables["batch_stats"]
  images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  with_head = jax.jit(lambda v, x: model.apply(v, x))
  without = jax.jit(lambda v, x: plain_model.apply(v, x))
  np.testing.assert_array_equal(with_head(variables, images), without(plain, images))
  # Compiled, the head is dead code: no operation of the program comes from it, where training's has some.
  compiled = lambda f, v: f.lower(v, images).compile().as_text()
  assert "/aux_head/" not in compiled(with_head, variables)
  train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats", "aux"]))
  assert "/aux_head/" in compiled(train, variables)


def test_a_checkpoint_records_its_head_and_another_config_is_told_the_flag(tmp_path):
  config = _config()
  variables = build.build(config, pretrained=False)[0]
  state = create_state(variables["params"], variables["batch_stats"], optax.sgd(0.1), ema=False)
  CheckpointStore(str(tmp_path)).save(1, state.to_dict(), config, [])
  reader = CheckpointStore(str(tmp_path), read_only=True)
  got, _, _ = reader.restore_variables(config, None)
  assert "aux_head" in got["params"]
  told = r"aux_stride: checkpoint has 16.*--config\.model\.aux_stride=16"
  with pytest.raises(checkpoints.CheckpointError, match=told):
    reader.restore_variables(_config(**{"model.aux_stride": 0}), None)


@pytest.mark.parametrize("overrides, message", [
  ({"model.aux_stride": 12}, r"config\.model\.aux_stride=12 must be 0 .* \[2, 4, 8, 16, 32\]"),
  ({"freeze_encoder": True}, r"config\.model\.aux_stride=16 needs config\.freeze_encoder=False"),
  ({"loss.aux_weight": -0.1}, r"config\.loss\.label_smoothing must be in \[0, 1\) and config\.loss\.aux_weight"),
  ({"loss.label_smoothing": 1.0}, r"config\.loss\.label_smoothing must be in \[0, 1\)"),
  ({"model.name": "linear", "model.backbone": "dinov2_small"}, r"config\.model\.aux_stride=16 must be 0 .*dinov2"),
  ({"loss.aux_weight": 0.0}, r"config\.loss\.aux_weight=0 leaves the auxiliary head .* untrained"),
  ({"model.aux_stride": 0, "loss.name": "lovasz", "loss.label_smoothing": 0.1},
   r"config\.loss\.label_smoothing smooths cross-entropy, and config\.loss\.name='lovasz' has none"),
])
def test_its_options_are_checked_in_one_line(overrides, message):
  with pytest.raises(ConfigError, match=message):
    check_config(_config(**overrides))
