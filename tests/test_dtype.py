"""bfloat16 compute: float32 parameters, optimizer state and loss; the loss falls on CPU."""

import jax
import jax.numpy as jnp
import numpy as np

import tiny
from jaxseg import parallel
from jaxseg.data import sources
from jaxseg.train.run import Run


def _train(config, workdir):
  """12 steps on one fixed batch: (losses, final state)."""
  run = Run(config, workdir)
  state, tx = run.fresh_state(load_encoder=False)
  train_fn = run.jit_steps(tx).train
  images, masks = sources.synthetic_arrays(4, 32, seed=0)
  batch = parallel.to_global({"image": images, "mask": masks}, run.data)
  losses = []
  for _ in range(12):
    acc = run.zero_sums()
    state, acc = train_fn(state, acc, batch)
    sums = jax.device_get(acc)
    losses.append(float(sums["loss_sum"] / sums["weight_sum"]))
  return np.array(losses), state


def test_bfloat16_training_lowers_the_loss_with_float32_state(tmp_path):
  settings = {"learning_rate": 3e-3, "batch_size": 4}
  bf16, state = _train(tiny.tiny_config(dtype="bfloat16", **settings), str(tmp_path / "bf16"))
  fp32, _ = _train(tiny.tiny_config(dtype="float32", **settings), str(tmp_path / "fp32"))
  assert np.all(np.isfinite(bf16))
  assert np.mean(bf16[-3:]) < 0.8 * np.mean(bf16[:3]), bf16
  # The compute really ran in bfloat16: the same steps give other losses than float32, though close ones.
  assert np.max(np.abs(bf16 - fp32)) > 1e-4 and np.max(np.abs(bf16 - fp32) / fp32) < 0.1, (bf16, fp32)
  dtypes = {x.dtype for x in jax.tree.leaves((state.params, state.batch_stats, state.opt_state))
            if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)}
  assert dtypes == {jnp.dtype(jnp.float32)}


def test_bfloat16_logits_stay_close_to_float32():
  from jaxseg.models import UNet  # pylint: disable=g-import-not-at-top
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)), jnp.float32)
  variables = UNet(alpha=0.35).init(jax.random.key(0), x)
  f32 = UNet(alpha=0.35).apply(variables, x)
  bf16 = UNet(alpha=0.35, dtype=jnp.bfloat16).apply(variables, x)
  assert bf16.dtype == jnp.float32
  scale = float(jnp.abs(f32).max())
  assert float(jnp.abs(bf16 - f32).max()) < 0.1 * scale
  assert float(jnp.abs(bf16 - f32).max()) > 0  # it did compute in another precision
