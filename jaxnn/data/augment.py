"""Image augmentation and normalisation of the CIFAR labs, on NHWC batches, on the device, deterministic by key.

``random_crop(key, images, 32, padding=4)`` is ``transforms.RandomCrop(32, padding=4)`` (zero padding, then a crop
at a uniformly drawn offset, per image) and ``random_horizontal_flip(key, images)`` is
``transforms.RandomHorizontalFlip()``; both take the whole batch, so they run inside a jitted step. The draws are
JAX's, not torchvision's: the same key gives the same crops, but not PyTorch's crops. ``crop`` and ``flip`` take
the offsets and flips instead (PyTorch's, from :func:`jaxnn.random.run.crop_and_flip`).

Example::

  k1, k2 = jax.random.split(jax.random.fold_in(key, step))
  x = random_horizontal_flip(k2, random_crop(k1, x, 32, padding=4))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _check_batch(images, name="images") -> None:
    if jnp.ndim(images) != 4:
        raise ValueError(f"{name} must be an (N, H, W, C) batch, got shape {tuple(jnp.shape(images))}")


def random_crop(
    key: jax.Array, images: jax.Array, size: int | tuple[int, int], padding: int = 0, fill=0.0
) -> jax.Array:
    """Each image padded by ``padding`` on every side with ``fill`` (a number or one per channel), then cropped to
    ``size`` at a random offset. torchvision pads the raw pixels with 0 (black); on normalised images pass
    ``fill=-mean / std``, the normalised black."""
    _check_batch(images)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    n, height, width, _ = images.shape
    if h > height + 2 * padding or w > width + 2 * padding or h < 1 or w < 1:
        raise ValueError(
            f"size {(h, w)} does not fit images of {(height, width)} with padding {padding} "
            f"(images shape {tuple(images.shape)})"
        )
    ky, kx = jax.random.split(key)
    top = jax.random.randint(ky, (n,), 0, height + 2 * padding - h + 1)
    left = jax.random.randint(kx, (n,), 0, width + 2 * padding - w + 1)
    return crop(images, top, left, (h, w), padding, fill)


def crop(images: jax.Array, top, left, size: tuple[int, int], padding: int = 0, fill=0.0) -> jax.Array:
    """Each image padded by ``padding`` with ``fill``, then cropped to ``size`` at its ``(top[i], left[i])``
    (offsets on the padded image, as ``RandomCrop.get_params`` draws them)."""
    n, height, width, channels = images.shape
    fill = jnp.broadcast_to(jnp.asarray(fill, images.dtype), (channels,))
    padded = jnp.broadcast_to(fill, (n, height + 2 * padding, width + 2 * padding, channels))
    padded = padded.at[:, padding : padding + height, padding : padding + width].set(images)

    def one(image, t, left_):
        return jax.lax.dynamic_slice(image, (t, left_, 0), (*size, channels))

    return jax.vmap(one)(padded, jnp.asarray(top), jnp.asarray(left))


def random_horizontal_flip(key: jax.Array, images: jax.Array, p: float = 0.5) -> jax.Array:
    """Each image mirrored left-right with probability ``p``."""
    _check_batch(images)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return flip(images, jax.random.bernoulli(key, p, (images.shape[0],)))


def flip(images: jax.Array, flips) -> jax.Array:
    """The images whose ``flips[i]`` is true mirrored left-right."""
    return jnp.where(jnp.asarray(flips).reshape(-1, 1, 1, 1), images[:, :, ::-1, :], images)


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of uint8 ``(N, H, W, C)`` images on the 0-1 scale, as the ResNet lab
    computes them from the training set (``train_data.mean(axis=(0, 1, 2)) / 255``)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
    mean = np.zeros(images.shape[-1])
    sq = np.zeros(images.shape[-1])
    for start in range(0, len(images), 10000):  # float64 sums in chunks: no 8-bytes-per-pixel copy of the split
        chunk = images[start : start + 10000].astype(np.float64)
        mean += chunk.sum(axis=(0, 1, 2))
        sq += np.square(chunk).sum(axis=(0, 1, 2))
    count = images.shape[0] * images.shape[1] * images.shape[2]
    mean /= count
    std = np.sqrt(np.maximum(sq / count - mean**2, 0.0))
    return (mean / 255).astype(np.float32), (std / 255).astype(np.float32)


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    """uint8 pixels -> float32 ``(x / 255 - mean) / std`` per channel (``ToTensor`` then ``Normalize``)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 pixels, got {images.dtype}")
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if np.any(std <= 0) or not np.all(np.isfinite(std)):
        raise ValueError(f"std must be finite and > 0 per channel, got {std}")
    return ((images.astype(np.float32) / 255.0) - mean) / std
