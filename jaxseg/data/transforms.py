"""Per-step transforms that run inside the jitted train and eval steps, on the device.

Keeping them out of the host pipeline means the host only slices cached uint8 arrays, so it never becomes
the bottleneck, and keying the randomness by step makes a resumed run see the same flips.
"""

import jax
import jax.numpy as jnp


def normalize(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1], as Keras `mobilenet_v2.preprocess_input` (the ImageNet weights'
  training scaling). The TensorFlow tutorial divided by 255 instead, feeding the encoder inputs it was
  never trained on."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def augment(rng: jax.Array, images: jax.Array, masks: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Random horizontal flip of each image together with its mask."""
  flip = jax.random.bernoulli(rng, 0.5, (images.shape[0],))
  images = jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)
  masks = jnp.where(flip[:, None, None], masks[:, :, ::-1], masks)
  return images, masks
