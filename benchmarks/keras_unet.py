"""The TensorFlow segmentation tutorial's Keras model: the twin for `keras_models.from_keras_unet` tests
and the Keras side of the benchmarks. Importing this module imports Keras (set KERAS_BACKEND first)."""

import keras

from jaxseg.models import UNET_TAPS


def upsample(filters: int, size: int = 3) -> keras.Sequential:
  """pix2pix `upsample`: Conv2DTranspose (no bias, N(0, 0.02)), BatchNormalization, ReLU."""
  return keras.Sequential([
      keras.layers.Conv2DTranspose(filters, size, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02)),
      keras.layers.BatchNormalization(), keras.layers.ReLU()])


def build_unet(size: int | tuple[int, int], num_classes: int = 3, alpha: float = 1.0, weights: str | None = None,
               base: keras.Model | None = None, freeze_encoder: bool = True) -> keras.Model:
  """The tutorial's U-Net: frozen MobileNetV2 down stack, four upsample blocks, final Conv2DTranspose.

  Args:
    size: input height and width, or (height, width).
    num_classes: output channels.
    alpha: MobileNetV2 width multiplier.
    weights: "imagenet" or None, passed to `keras.applications.MobileNetV2`.
    base: an already built MobileNetV2 to use instead.
    freeze_encoder: False trains the down stack too (its BatchNorm then in training mode, as Keras does).
  """
  h, w = (size, size) if isinstance(size, int) else size
  base = base or keras.applications.MobileNetV2(input_shape=(h, w, 3), alpha=alpha, include_top=False,
                                                weights=weights)
  down_stack = keras.Model(base.input, [base.get_layer(n).output for n in UNET_TAPS])
  down_stack.trainable = not freeze_encoder
  inputs = keras.layers.Input(shape=(h, w, 3))
  skips = down_stack(inputs)
  x = skips[-1]
  for filters, skip in zip((512, 256, 128, 64), reversed(skips[:-1])):
    x = keras.layers.Concatenate()([upsample(filters)(x), skip])
  x = keras.layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same")(x)
  return keras.Model(inputs, x)
