"""Precision policies: bfloat16 compute and mixed bfloat16 GEMM inputs keep float32 parameters, optimizer
state and loss, and train; "auto" picks mixed only where the CPU has native bf16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny

from jaxseg.data import sources
from jaxseg.runtime import parallel, precision
from jaxseg.training.run import Run


def _train(config, workdir):
  """12 steps on one fixed batch: (losses, final state)."""
  run = Run(config, workdir)
  state, tx = run.fresh_state(load_encoder=False)
  train_fn = run.jit_steps(tx).train
  images, masks = sources.synthetic_arrays(4, 32, seed=0)
  batch = parallel.to_global({"image": images, "mask": masks}, run.batch_sharding)
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
  from jaxseg.models import LayerSpec, UNet  # pylint: disable=g-import-not-at-top
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)), jnp.float32)
  variables = tiny.random_variables(UNet(backbone="mobilenet_v2_0.35"), x)
  # Compiled whole: op by op, each of the network's ops would compile on its own (slower for one call).
  f32 = jax.jit(UNet(backbone="mobilenet_v2_0.35").apply)(variables, x)
  bf16 = jax.jit(UNet(backbone="mobilenet_v2_0.35", spec=LayerSpec(dtype=jnp.bfloat16)).apply)(variables, x)
  assert bf16.dtype == jnp.float32
  scale = float(jnp.abs(f32).max())
  assert float(jnp.abs(bf16 - f32).max()) < 0.1 * scale
  assert float(jnp.abs(bf16 - f32).max()) > 0  # it did compute in another precision


def _dot_flops_by_dtype(fn, *args, convolutions: bool = False) -> dict[str, float]:
  """Multiply-add FLOPs of the dot_generals in fn's jaxpr (custom VJPs included), by operand dtype; with
  `convolutions`, of its dense (ungrouped) convolutions too."""
  flops: dict[str, float] = {}

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      n = 0
      if eqn.primitive.name == "dot_general":
        (contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval
        n = 2 * np.prod(eqn.outvars[0].aval.shape) * np.prod([lhs.shape[d] for d in contract])
      elif (convolutions and eqn.primitive.name == "conv_general_dilated"
            and eqn.params["feature_group_count"] == eqn.params["batch_group_count"] == 1):
        rhs, spec = eqn.invars[1].aval, eqn.params["dimension_numbers"].rhs_spec
        n = 2 * np.prod(eqn.outvars[0].aval.shape) * np.prod(rhs.shape) / rhs.shape[spec[0]]
      if n:
        key = "/".join(sorted({str(v.aval.dtype) for v in eqn.invars}))
        flops[key] = flops.get(key, 0) + float(n)
      for sub in jax.core.jaxprs_in_params(eqn.params):
        walk(sub)

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return flops


@pytest.mark.parametrize("name", ["unet", "deeplabv3plus"])
def test_mixed_bfloat16_feeds_every_gemm_bf16_and_keeps_the_rest_float32(name):
  from jaxseg.models import MODELS, LayerSpec  # pylint: disable=g-import-not-at-top
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)), jnp.float32)
  f32_model = MODELS[name](backbone="mobilenet_v2_0.35")
  mixed = MODELS[name](backbone="mobilenet_v2_0.35", spec=LayerSpec(gemm_dtype=jnp.bfloat16))
  variables = tiny.random_variables(f32_model, x)
  loss = lambda m: lambda p: jnp.mean(m.apply({**variables, "params": p}, x, train=True,
                                              mutable=["batch_stats"])[0] ** 2)
  assert set(_dot_flops_by_dtype(jax.grad(loss(f32_model)), variables["params"])) == {"float32"}
  flops = _dot_flops_by_dtype(jax.grad(loss(mixed)), variables["params"])
  # What stays float32 is resampling (DeepLab's bilinear upsampling is a product with weight matrices).
  assert flops.get("float32", 0) < 0.02 * flops["bfloat16"], flops
  assert set(flops) <= {"float32", "bfloat16"}, flops
  f32, got = jax.jit(f32_model.apply)(variables, x), jax.jit(mixed.apply)(variables, x)
  assert got.dtype == jnp.float32
  scale = float(jnp.abs(f32).max())
  assert 0 < float(jnp.abs(got - f32).max()) < 0.05 * scale
  g32, gmix = (jax.jit(jax.grad(loss(m)))(variables["params"]) for m in (f32_model, mixed))
  assert {x.dtype for x in jax.tree.leaves(gmix)} == {jnp.dtype(jnp.float32)}
  # bf16 inputs carry ~3 significant digits: each gradient keeps its direction, not every element. Gradients
  # that are zero in exact arithmetic (a bias in front of a training-mode BatchNorm) are rounding noise in
  # both: only those above 1e-3 of the whole gradient's norm are compared.
  total = np.sqrt(sum(float(np.sum(np.square(x))) for x in jax.tree.leaves(g32)))
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g32), jax.tree.leaves(gmix)):
    a, b = np.ravel(a), np.ravel(b)
    if np.linalg.norm(a) > 1e-3 * total:
      cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
      assert cos > 0.9, (jax.tree_util.keystr(path), cos)
  a, b = (np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)]) for g in (g32, gmix))
  assert float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) > 0.97


@pytest.mark.parametrize("name,backbone", [("deeplabv3plus", "resnet18"), ("segformer", "mit_b0")])
def test_mixed_bfloat16_reaches_the_keras_hub_backbones(name, backbone):
  # The GEMMs of a ResNet and a MiT train step (convolutions, dense layers, attention products; forward and
  # backward) take bf16 inputs; what stays float32 is resampling and the sums of layer norms and softmaxes.
  from jaxseg.models import MODELS, LayerSpec  # pylint: disable=g-import-not-at-top
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)), jnp.float32)
  f32_model = MODELS[name](backbone=backbone, num_classes=5)
  mixed = f32_model.clone(spec=LayerSpec(gemm_dtype=jnp.bfloat16))
  variables = tiny.random_variables(f32_model, x)
  loss = lambda m: lambda p: jnp.mean(m.apply({**variables, "params": p}, x, train=True, encoder_train=True,
                                              mutable=["batch_stats"])[0] ** 2)
  assert set(_dot_flops_by_dtype(jax.grad(loss(f32_model)), variables["params"], convolutions=True)) == {"float32"}
  flops = _dot_flops_by_dtype(jax.grad(loss(mixed)), variables["params"], convolutions=True)
  assert flops.get("float32", 0) < 0.03 * flops["bfloat16"], flops
  f32, got = jax.jit(f32_model.apply)(variables, x), jax.jit(mixed.apply)(variables, x)
  assert got.dtype == jnp.float32
  assert 0 < float(jnp.abs(got - f32).max()) < 0.05 * float(jnp.abs(f32).max())


def test_auto_is_mixed_only_on_a_cpu_with_native_bf16(monkeypatch):
  for flags, want in [(("avx2", "avx512f", "avx512_bf16"), "mixed_bfloat16"), (("avx2", "amx_bf16"), "mixed_bfloat16"),
                      (("avx2", "avx512f"), "float32"), ((), "float32")]:
    monkeypatch.setattr(precision, "cpu_flags", lambda flags=flags: flags)
    assert precision.resolve_dtype_name("auto") == want, flags
  assert precision.resolve_dtype_name("bfloat16") == "bfloat16"
  assert precision.precision("mixed_bfloat16") == (jnp.float32, jnp.bfloat16)
  with pytest.raises(ValueError, match="dtype must be one of"):
    precision.resolve_dtype_name("float16")


def test_mixed_bfloat16_training_lowers_the_loss_close_to_float32(tmp_path):
  settings = {"learning_rate": 3e-3, "batch_size": 4}
  mixed, _ = _train(tiny.tiny_config(dtype="mixed_bfloat16", **settings), str(tmp_path / "mixed"))
  fp32, _ = _train(tiny.tiny_config(dtype="float32", **settings), str(tmp_path / "fp32"))
  assert np.mean(mixed[-3:]) < 0.8 * np.mean(mixed[:3]), mixed
  assert np.max(np.abs(mixed - fp32)) > 1e-5 and np.max(np.abs(mixed - fp32) / fp32) < 0.05, (mixed, fp32)
