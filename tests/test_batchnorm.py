"""Bias-corrected decoder BatchNorm statistics: right after one step and after many, against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import tiny

from jaxseg.data import sources
from jaxseg.runtime import parallel
from jaxseg.training.run import Run
from jaxseg.training.state import bn_debias_momentum, debias_batch_stats, inference_variables


def test_debiasing_recovers_the_weighted_average_of_the_batch_statistics():
  rng = np.random.default_rng(0)
  m, steps = 0.99, 40
  means, variances = rng.normal(3, 1, (steps, 5)), rng.uniform(0.5, 4, (steps, 5))
  ra_mean, ra_var = np.zeros(5), np.ones(5)  # Flax's initial moving statistics
  for mu, var in zip(means, variances):
    ra_mean, ra_var = m * ra_mean + (1 - m) * mu, m * ra_var + (1 - m) * var
  weights = m ** np.arange(steps - 1, -1, -1)  # the EMA's weight of each step's statistics
  stats = {"encoder": {"bn": {"mean": jnp.full(5, 7.0), "var": jnp.full(5, 9.0)}},
           "up_0": {"bn": {"mean": jnp.asarray(ra_mean, jnp.float32), "var": jnp.asarray(ra_var, jnp.float32)}}}
  got = debias_batch_stats(stats, jnp.int32(steps), m)
  np.testing.assert_allclose(got["up_0"]["bn"]["mean"], weights @ means / weights.sum(), rtol=1e-4)
  np.testing.assert_allclose(got["up_0"]["bn"]["var"], weights @ variances / weights.sum(), rtol=1e-4)
  np.testing.assert_array_equal(got["encoder"]["bn"]["mean"], 7.0)  # the encoder's are real statistics
  unchanged = debias_batch_stats(stats, jnp.int32(0), m)  # nothing to correct before the first step
  np.testing.assert_array_equal(unchanged["up_0"]["bn"]["var"], stats["up_0"]["bn"]["var"])


def test_after_one_step_eval_uses_that_batchs_own_statistics(tmp_path):
  """With momentum 0.99 one step leaves 99% of the initial statistics; corrected, they are the batch's."""
  config = tiny.tiny_config(batch_size=4)
  run = Run(config, str(tmp_path))
  state, tx = run.fresh_state(load_encoder=False)
  images, masks = sources.synthetic_arrays(4, 32, seed=1)
  batch = {"image": images, "mask": masks}
  # The reference: the batch statistics themselves, from a decoder whose BatchNorm keeps no history.
  model0 = run.model.clone(spec=run.model.spec.replace(bn_momentum=0.0))
  x = jnp.asarray(images, jnp.float32) / 127.5 - 1.0
  _, fresh = model0.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=True,
                          mutable=["batch_stats"])
  state, _ = run.jit_steps(tx).train(state, run.zero_sums(), parallel.to_global(batch, run.batch_sharding))
  raw = jax.device_get(state.batch_stats["up_2"]["bn"])
  corrected = jax.device_get(inference_variables(state, bn_debias_momentum(config))["batch_stats"]["up_2"]["bn"])
  want = jax.device_get(fresh["batch_stats"]["up_2"]["bn"])
  np.testing.assert_allclose(corrected["mean"], want["mean"], rtol=1e-3, atol=1e-5)
  np.testing.assert_allclose(corrected["var"], want["var"], rtol=1e-3, atol=1e-5)
  assert np.abs(raw["mean"] - want["mean"]).max() > 0.5 * np.abs(want["mean"]).max()  # raw is far off
  config.model.decoder_bn_debias = False
  corrected = inference_variables(state, bn_debias_momentum(config))["batch_stats"]
  np.testing.assert_array_equal(corrected["up_2"]["bn"]["mean"], raw["mean"])
