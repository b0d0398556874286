"""The PyTorch comparison model is the same model: logits and training steps equal jaxseg's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny

from jaxseg import data
from jaxseg.config import upgrade
from jaxseg.data import sources
from jaxseg.models import UNet
from jaxseg.runtime import parallel
from jaxseg.training.run import Run

torch = pytest.importorskip("torch")  # only PyTorch itself is optional: an error in the twin must fail
from benchmarks import torch_unet  # noqa: E402 (after the importorskip above)


def _nchw(x):
  return torch.from_numpy(np.array(x, np.float32)).permute(0, 3, 1, 2).contiguous()


def _randomize_statistics(variables, seed):
  """Random BN scales, offsets and statistics, so no layer is an identity that could hide a mismatch."""
  rng = np.random.default_rng(seed)
  def perturb(path, x):
    name = jax.tree_util.keystr(path)
    if "'scale'" in name or "'var'" in name:
      return jnp.asarray(rng.uniform(0.5, 1.5, x.shape), x.dtype)
    if "'bias'" in name or "'mean'" in name:
      return jnp.asarray(rng.normal(0, 0.2, x.shape), x.dtype)
    return x
  return jax.tree_util.tree_map_with_path(perturb, variables)


@pytest.mark.parametrize("alpha,size,train_mode", [(0.35, 64, False), (1.0, 32, True)])
def test_logits_match_jaxseg(alpha, size, train_mode):
  x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
  ours = UNet(backbone=upgrade.mobilenet_v2_name(alpha))
  variables = _randomize_statistics(ours.init(jax.random.key(1), jnp.asarray(x)), seed=size)
  want = ours.apply(variables, jnp.asarray(x), train=train_mode, mutable=["batch_stats"])[0]
  model = torch_unet.load_jaxseg_variables(torch_unet.TorchUNet(alpha=alpha).freeze_encoder(), variables)
  model.train(train_mode)
  with torch.no_grad():
    got = model(_nchw(x)).permute(0, 2, 3, 1).numpy()
  want = np.asarray(want)
  assert got.shape == want.shape == (2, size, size, 3)
  assert np.abs(want).max() > 0.5  # not a comparison of near-zero tensors
  assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
  assert not model.encoder.training  # a frozen encoder keeps inference-mode BatchNorm


def test_parameter_counts_match_jaxseg():
  model = torch_unet.TorchUNet()
  params = sum(p.numel() for p in model.parameters())
  stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
  assert params + stats == 6_504_227
  model.freeze_encoder()
  assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 4_660_323


def test_training_steps_match_jaxseg(tmp_path):
  """Three Adam steps on the decoder: same losses, same BatchNorm statistics, same logits afterwards."""
  config = tiny.tiny_config(image_size=64, batch_size=4, random_flip=False)
  run = Run(config, str(tmp_path))
  state, tx = run.fresh_state(load_encoder=False)
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  model = torch_unet.TorchUNet(alpha=0.35).freeze_encoder()
  torch_unet.load_jaxseg_variables(model, variables)
  step = torch_unet.make_train_step(model, config.learning_rate)
  train_fn = run.jit_steps(tx).train
  images, masks = sources.synthetic_arrays(4, 64, seed=3)
  batch = parallel.to_global({"image": images, "mask": masks}, run.batch_sharding)
  x = _nchw(data.normalize(jnp.asarray(images)))
  labels = torch.from_numpy(masks.astype(np.int64))
  ours, theirs = [], []
  for _ in range(3):
    state, acc = train_fn(state, run.zero_sums(), batch)
    sums = jax.device_get(acc)
    ours.append(float(sums["loss_sum"] / sums["weight_sum"]))
    theirs.append(float(step(x, labels)))
  np.testing.assert_allclose(theirs, ours, rtol=1e-5)
  assert ours[-1] < ours[0]  # the steps did train
  np.testing.assert_allclose(model.ups[0][1].running_var.numpy(),
                             np.asarray(state.batch_stats["up_0"]["bn"]["var"]), rtol=1e-4)
  model.eval()
  with torch.no_grad():
    got = model(x).permute(0, 2, 3, 1).numpy()
  want = np.asarray(run.model.apply({"params": state.params, "batch_stats": state.batch_stats},
                                    data.normalize(jnp.asarray(images))))
  assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()


def test_mismatched_variables_name_the_layer():
  shapes = jax.eval_shape(lambda: UNet(backbone="mobilenet_v2_0.35").init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  with pytest.raises(ValueError, match="Conv1: PyTorch shape"):
    torch_unet.load_jaxseg_variables(torch_unet.TorchUNet(alpha=1.0), variables)
