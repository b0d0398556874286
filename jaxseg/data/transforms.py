"""Per-step transforms that run inside the jitted train and eval steps, on the device.

Keeping them out of the host pipeline means the host only slices cached uint8 arrays, so it never becomes
the bottleneck, and keying the randomness by step makes a resumed run see the same augmentations.

Geometry (random scale, crop, flip, padding) is one axis-aligned warp per example, applied as two small
matrix products per axis instead of gathers: static shapes for jit, and fast on every backend. Masks use
0/1 nearest-neighbour matrices, so labels are copied, never blended; pixels that fall outside the image are
IGNORE.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.data import geometry, resize_crop
from jaxseg.data.labels import IGNORE


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """The training augmentations, typed and frozen (hashable: a jitted step closes over it).

  Attributes:
    out_size: (H, W) of the model's training input (`geometry.train_size`).
    random_flip: mirror half the examples left-right.
    scale_min, scale_max: the range of the random rescale (log-uniform); 1, 1: none.
    brightness, contrast, saturation: the photometric jitter's amplitudes (0: off).
    host_rescaled: the host already rescaled and cropped each example (`data.scale`).
  """
  out_size: tuple[int, int]
  random_flip: bool
  scale_min: float
  scale_max: float
  brightness: float
  contrast: float
  saturation: float
  host_rescaled: bool

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "Augmentation":
    """`config.augment`, `random_flip` and the training size of a checked config."""
    a = config.augment
    return cls(out_size=tuple(geometry.train_size(config)), random_flip=bool(config.random_flip),
               scale_min=float(a.scale_min), scale_max=float(a.scale_max), brightness=float(a.brightness),
               contrast=float(a.contrast), saturation=float(a.saturation),
               host_rescaled=resize_crop.base_scale(config) is not None)


def normalize(images: jax.Array) -> jax.Array:
  """uint8 [0, 255] -> float32 [-1, 1], as Keras `mobilenet_v2.preprocess_input` (the ImageNet weights'
  training scaling). The TensorFlow tutorial divided by 255 instead, feeding the encoder inputs it was
  never trained on."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def pad_to(x: jax.Array, masks: jax.Array | None, size: tuple[int, int]):
  """Pads images (B, h, w, C) with zeros and masks (B, h, w) with IGNORE at the bottom and right to `size`."""
  ph, pw = size[0] - x.shape[1], size[1] - x.shape[2]
  if ph == 0 and pw == 0:
    return x, masks
  x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)))
  if masks is not None:
    masks = jnp.pad(masks, ((0, 0), (0, ph), (0, pw)), constant_values=IGNORE)
  return x, masks


def axis_matrix(n_out: int, n_in: int, scale: jax.Array, offset: jax.Array, flip: jax.Array | None = None,
                nearest: bool = False, valid_out: jax.Array | None = None) -> jax.Array:
  """(B, n_out, n_in) resampling matrices along one axis.

  Output pixel y (flipped first if `flip`) samples the input at (y + offset + 0.5) / scale - 0.5 (pixel
  centres aligned), bilinearly or at the nearest input pixel. Rows that fall outside the input, or at or
  beyond `valid_out`, are zero.

  Args:
    n_out: output length.
    n_in: input length.
    scale: (B,) output pixels per input pixel.
    offset: (B,) where the output window starts on the scaled input, in output pixels.
    flip: (B,) bool, mirror this axis.
    nearest: nearest neighbour (masks) instead of linear (images, logits).
    valid_out: (B,) number of leading output pixels to fill; the rest are zero rows.
  """
  y = jnp.arange(n_out, dtype=jnp.float32)[None, :]
  if flip is not None:
    y = jnp.where(flip[:, None], n_out - 1 - y, y)
  src = (y + offset[:, None] + 0.5) / scale[:, None] - 0.5
  inside = (src > -0.5) & (src < n_in - 0.5)
  if valid_out is not None:
    inside &= y < valid_out[:, None]
  if nearest:
    m = jax.nn.one_hot(jnp.clip(jnp.floor(src + 0.5), 0, n_in - 1).astype(jnp.int32), n_in)
  else:
    lo = jnp.floor(src)
    frac = (src - lo)[..., None]
    lo_i = jnp.clip(lo, 0, n_in - 1).astype(jnp.int32)
    hi_i = jnp.clip(lo + 1, 0, n_in - 1).astype(jnp.int32)
    m = jax.nn.one_hot(lo_i, n_in) * (1 - frac) + jax.nn.one_hot(hi_i, n_in) * frac
  return m * inside[..., None]


def warp(x: jax.Array, ry: jax.Array, rx: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, Ho, Wo, C) with row matrices ry (B, Ho, H) and column matrices rx (B, Wo, W)."""
  t = jnp.einsum("bph,bhwc->bpwc", ry.astype(x.dtype), x)
  return jnp.einsum("bqw,bpwc->bpqc", rx.astype(x.dtype), t)


def warp_mask(masks: jax.Array, ry: jax.Array, rx: jax.Array) -> jax.Array:
  """Nearest-neighbour warp of (B, H, W) class ids; pixels mapped from outside the mask become IGNORE."""
  m = masks.astype(jnp.float32)[..., None]
  out = jnp.einsum("bph,bhwc->bpwc", ry, m, precision=jax.lax.Precision.HIGHEST)
  out = jnp.einsum("bqw,bpwc->bpqc", rx, out, precision=jax.lax.Precision.HIGHEST)[..., 0]
  valid = (ry.sum(-1)[:, :, None] * rx.sum(-1)[:, None, :]) > 0.5
  return jnp.where(valid, jnp.round(out), IGNORE).astype(masks.dtype)


def _photometric(rng: jax.Array, images: jax.Array, aug: Augmentation) -> jax.Array:
  """Brightness, contrast and saturation jitter of float images in [0, 255], then clipped to that range.

  In order: add 255 * U(-brightness, brightness); scale the distance to the image's mean by
  U(1 - contrast, 1 + contrast); scale the distance to the pixel's grey (ITU-R 601 luma) by
  U(1 - saturation, 1 + saturation). The first two are one affine map per image, so the whole is one
  reduction (the mean) and one elementwise pass: written step by step, XLA:CPU made four passes over the
  full frame and this took as long as the rest of the augmentation.
  """
  b = images.shape[0]
  kb, kc, ks = jax.random.split(rng, 3)
  jitter = lambda key, r: jax.random.uniform(key, (b, 1, 1, 1), minval=-r, maxval=r)
  beta = 255.0 * jitter(kb, aug.brightness) if aug.brightness else 0.0
  c = 1.0 + jitter(kc, aug.contrast) if aug.contrast else 1.0
  offset = beta
  if aug.contrast:  # c * (x + beta) + (1 - c) * mean(x + beta)
    mean = jnp.mean(images.reshape(b, -1), axis=1).reshape(b, 1, 1, 1) + beta
    offset = c * beta + (1.0 - c) * mean
  x = c * images + offset
  if aug.saturation:
    s = 1.0 + jitter(ks, aug.saturation)
    gray = jnp.einsum("bhwc,c->bhw", x, jnp.array([0.299, 0.587, 0.114]))[..., None]
    x = s * x + (1.0 - s) * gray
  return jnp.clip(x, 0.0, 255.0)


def augment(rng: jax.Array, images: jax.Array, masks: jax.Array,
            aug: Augmentation) -> tuple[jax.Array, jax.Array]:
  """The training augmentations `aug` for one batch, as normalized model inputs and their labels.

  Args:
    rng: this step's key.
    images: (B, h, w, 3) uint8 at the stored size.
    masks: (B, h, w) uint8 class ids (IGNORE allowed).
    aug: what to do (`Augmentation.from_config`).

  Returns:
    (B, H, W, 3) float32 in [-1, 1] and (B, H, W) uint8 labels. Without scaling, the stored example is
    placed at a random position in (or cropped randomly to) the training size.
  """
  out_size = aug.out_size
  k_flip, k_photo, k_scale, k_y, k_x = jax.random.split(rng, 5)
  b, h, w = masks.shape
  if aug.brightness or aug.contrast or aug.saturation:
    images = _photometric(k_photo, images.astype(jnp.float32), aug)
  flip = jax.random.bernoulli(k_flip, 0.5, (b,)) if aug.random_flip else None
  # With data.scale the host already rescaled and cropped each example (`resize_crop`).
  host_geometry = aug.host_rescaled and (h, w) == tuple(out_size)
  if host_geometry or (aug.scale_min == aug.scale_max == 1.0 and (h, w) == tuple(out_size)):
    if flip is not None:  # the plain flip: no resampling at all
      images = jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)
      masks = jnp.where(flip[:, None, None], masks[:, :, ::-1], masks)
    return normalize(images), masks
  # Log-uniform scale, so that zooming in and out by the same factor are equally likely.
  scale = jnp.exp(jax.random.uniform(k_scale, (b,), minval=jnp.log(aug.scale_min), maxval=jnp.log(aug.scale_max)))
  oy = jax.random.uniform(k_y, (b,)) * (h * scale - out_size[0])
  ox = jax.random.uniform(k_x, (b,)) * (w * scale - out_size[1])
  x = normalize(images)
  ry, rx = axis_matrix(out_size[0], h, scale, oy), axis_matrix(out_size[1], w, scale, ox, flip)
  x = warp(x, ry, rx)
  ny, nx = (axis_matrix(out_size[0], h, scale, oy, nearest=True),
            axis_matrix(out_size[1], w, scale, ox, flip, nearest=True))
  return x, warp_mask(masks, ny, nx)
