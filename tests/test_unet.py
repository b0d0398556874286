"""The U-Net is the tutorial's model: parameter counts, and logits equal to Keras's with all weights copied."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keras_reference
from jaxseg import models, port
from jaxseg.unet import UNet


def test_parameter_counts_match_the_keras_tutorial():
  counts = models.count_params(jax.eval_shape(
      lambda: UNet(num_classes=3, alpha=1.0).init(jax.random.key(0), jnp.zeros((1, 128, 128, 3)))))
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
  variables = port.from_keras_unet(keras_model)
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


def test_image_size_must_be_multiple_of_32():
  with pytest.raises(ValueError, match="multiples of 32"):
    UNet().init(jax.random.key(0), jnp.zeros((1, 48, 48, 3)))
