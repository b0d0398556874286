"""DeepLabV3+ against an independent Keras twin: ported random weights give the same logits, the same
parameter counts; any class count and non-square sizes."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
import tiny
from keras_reference import randomize_batchnorm

from benchmarks import keras_deeplab
from jaxseg import models
from jaxseg.models import keras_models


@pytest.mark.parametrize("output_stride,separable,impl", [(16, False, "gemm"), (8, True, "gemm"),
                                                          (16, True, "xla")])
def test_logits_match_the_keras_twin(output_stride, separable, impl):
  h, w, c = 320, 352, 5  # features of 20x22 (stride 16) or 40x44 (stride 8): every ASPP rate reaches in
  keras.utils.set_random_seed(3)
  twin = keras_deeplab.build_deeplab(h, w, c, 0.35, output_stride, separable)
  randomize_batchnorm(twin, seed=3)  # encoder and head: statistics a port that swaps them would not pass
  last = twin.get_layer("logits")
  last.set_weights([last.get_weights()[0], np.random.default_rng(4).normal(0, 0.3, c)])
  x = np.random.default_rng(0).uniform(-1, 1, (1, h, w, 3)).astype(np.float32)
  want = twin.predict(x, verbose=0)
  model = models.DeepLabV3Plus(num_classes=c, backbone="mobilenet_v2_0.35", output_stride=output_stride,
                               separable=separable, spec=models.LayerSpec(kernels=impl))
  variables = keras_models.from_keras_deeplab(twin)
  shapes = lambda v: jax.tree.map(lambda a: a.shape, v)
  assert shapes(variables) == shapes(jax.eval_shape(lambda: models.init_variables(model, (h, w))))
  got = model.apply(variables, jnp.asarray(x))
  assert got.shape == (1, h, w, c)
  np.testing.assert_allclose(got, want, atol=1e-4)
  counts = models.count_params(variables, freeze_encoder=False)
  assert counts["total"] == twin.count_params()
  assert counts["trainable"] == sum(int(np.prod(v.shape)) for v in twin.trainable_weights)


def test_deeplab_trains_on_a_non_square_size_and_its_checkpoint_is_its_own(tmp_path):
  from jaxseg.training import checkpoints, loop  # pylint: disable=g-import-not-at-top
  config = tiny.tiny_config(image_height=40, image_width=72, **{"model.name": "deeplabv3plus_mobilenet_v2"})
  history = loop.train_and_evaluate(config, str(tmp_path))
  assert np.array(history[0]["val"]["confusion"]).sum() == 5 * 40 * 72
  unet = tiny.tiny_config(image_height=40, image_width=72)
  with pytest.raises(checkpoints.CheckpointError, match="name: checkpoint has 'deeplabv3plus'"):
    loop.evaluate(unet, str(tmp_path))
  stride8 = tiny.tiny_config(image_height=40, image_width=72, **{"model.name": "deeplabv3plus_mobilenet_v2",
                                                                 "model.output_stride": 8})
  with pytest.raises(checkpoints.CheckpointError, match="output_stride: checkpoint has 16, config has 8"):
    loop.evaluate(stride8, str(tmp_path))
