"""The U-Net is the tutorial's model: parameter counts, and logits equal to Keras's with all weights copied."""

import jax
import jax.numpy as jnp
import keras_reference
import numpy as np
import pytest

from jaxseg import models
from jaxseg.models import LayerSpec, UNet, keras_models


def test_parameter_counts_match_the_keras_tutorial():
  counts = models.count_params(jax.eval_shape(
      lambda: UNet(num_classes=3, backbone="mobilenet_v2").init(jax.random.key(0), jnp.zeros((1, 128, 128, 3)))))
  assert counts == {"total": 6_504_227, "trainable": 4_660_323, "non_trainable": 1_843_904,
                    "encoder": 1_841_984, "decoder_bn_stats": 1_920}


def test_other_class_counts_change_only_the_head():
  shapes = jax.eval_shape(
      lambda: UNet(num_classes=5).init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))
  assert shapes["params"]["logits"]["kernel"].shape == (3, 3, 64 + 96, 5)
  assert models.count_params(shapes)["trainable"] == 4_660_323 - 4_323 + (3 * 3 * 160 * 5 + 5)


@pytest.mark.parametrize("size", [64, 96])
def test_logits_match_the_keras_tutorial_model(size):
  keras_model = keras_reference.tutorial_unet(size, seed=size)
  variables = keras_models.from_keras_unet(keras_model)
  ours = UNet(num_classes=3)
  # The copied tree has exactly the shapes jaxseg's own init makes.
  shapes = jax.eval_shape(lambda: ours.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))
  assert jax.tree.map(lambda x: x.shape, shapes) == jax.tree.map(lambda x: x.shape, variables)
  images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
  want = np.asarray(keras_model(images, training=False))
  got = np.asarray(jax.jit(lambda v, x: ours.apply(v, x))(variables, jnp.asarray(images)))
  assert got.shape == want.shape == (2, size, size, 3)
  assert np.abs(got - want).max() <= 1e-4, np.abs(got - want).max()
  assert np.abs(want).max() > 0.1  # the comparison is not between two near-zero tensors


def test_kernelss_agree_on_logits_and_decoder_gradients():
  x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)), jnp.float32)
  labels = jnp.asarray(np.random.default_rng(2).integers(0, 3, (2, 64, 64)))
  variables = UNet(backbone="mobilenet_v2_0.35").init(jax.random.key(0), x)

  def loss_and_grads(impl):
    model = UNet(backbone="mobilenet_v2_0.35", spec=LayerSpec(kernels=impl))
    def loss(params):
      logits, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], -1)), logits
    return jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])

  (loss_g, logits_g), grads_g = loss_and_grads("gemm")
  (loss_x, logits_x), grads_x = loss_and_grads("xla")
  assert np.abs(np.asarray(logits_g - logits_x)).max() <= 1e-4
  assert abs(float(loss_g - loss_x)) <= 1e-5
  for name in ("up_0", "up_3", "logits"):
    g, r = jax.tree.leaves(grads_g[name]), jax.tree.leaves(grads_x[name])
    for a, b in zip(g, r):
      assert np.abs(np.asarray(a - b)).max() <= 1e-4 * max(1.0, float(jnp.abs(b).max()))
  assert float(jnp.abs(grads_g["logits"]["kernel"]).max()) > 0


def test_image_size_must_be_multiple_of_32():
  with pytest.raises(ValueError, match="multiples of 32"):
    UNet().init(jax.random.key(0), jnp.zeros((1, 48, 48, 3)))
