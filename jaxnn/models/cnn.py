"""The lab 10 CNNs (Deep Learning Zero To All, PyTorch season 2, labs 10-1 and 10-2) as Flax Linen modules.

Activations are NHWC, so the flatten before the dense head reads the (7, 7, 64) map in (H, W, C) order, where
PyTorch's ``out.view(out.size(0), -1)`` reads its (64, 7, 7) map in (C, H, W) order. The dense kernels therefore
differ by a row permutation; :mod:`jaxnn.interop.torch` applies it when converting state_dicts.

Initialisation is PyTorch's: the default for the convolutions and dense biases, the lab's ``xavier_uniform_`` on
the dense weights.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnn.nn import Conv2d, Dropout, Linear, MaxPool2d, xavier_uniform

MNIST_SHAPE = (28, 28, 1)
FOLDER_SHAPE = (64, 128, 3)  # lab 10-4's resized pictures


def check_images(x, shape=MNIST_SHAPE, name: str = "images") -> None:
    """Raise a clear error unless ``x`` is a float batch of shape (N, *shape)."""
    if jnp.ndim(x) != 1 + len(shape) or tuple(jnp.shape(x)[1:]) != tuple(shape):
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape))}) (NHWC), got {tuple(jnp.shape(x))}")
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(
            f"{name} must be floating point (normalised pixels), got {jnp.result_type(x)}; "
            f"convert uint8 images with jaxnn.data.mnist.normalize"
        )
    if jnp.shape(x)[0] == 0:  # PyTorch's lab models refuse it too (out.view(0, -1))
        raise ValueError(f"{name} is an empty batch, shape {tuple(jnp.shape(x))}: there is nothing to classify")


class ConvBlock(nn.Module):
    """Conv2d(3x3, padding 1) -> ReLU -> MaxPool2d(2, 2, padding): one ``layerN`` Sequential of the labs."""

    out_channels: int
    pool_padding: int = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv2d(self.out_channels, 3, stride=1, padding=1, name="conv")(x)
        return MaxPool2d(2, 2, padding=self.pool_padding)(nn.relu(x))


class MnistCNN(nn.Module):
    """Lab 10-1: Conv(32)-ReLU-Pool -> Conv(64)-ReLU-Pool -> Dense(10). (N, 28, 28, 1) float -> (N, 10) logits."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        check_images(x)
        x = ConvBlock(32, name="layer1")(x)  # (N, 14, 14, 32)
        x = ConvBlock(64, name="layer2")(x)  # (N, 7, 7, 64)
        x = x.reshape(x.shape[0], -1)  # NHWC flatten: (h, w, c) order
        return Linear(self.num_classes, kernel_init=xavier_uniform(), name="fc")(x)


class DeepCNN(nn.Module):
    """Lab 10-2: three conv blocks (the third pools with padding 1: 7 -> 4), Dense(625)-ReLU-Dropout -> Dense(10).

    (N, 28, 28, 1) float -> (N, 10) logits. Dropout (rate 1 - keep_prob = 0.5) is active when ``deterministic``
    is False, and then needs a ``'dropout'`` rng.
    """

    num_classes: int = 10
    dropout_rate: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        check_images(x)
        x = ConvBlock(32, name="layer1")(x)  # (N, 14, 14, 32)
        x = ConvBlock(64, name="layer2")(x)  # (N, 7, 7, 64)
        x = ConvBlock(128, pool_padding=1, name="layer3")(x)  # (N, 4, 4, 128)
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(Linear(625, kernel_init=xavier_uniform(), name="fc1")(x))
        x = Dropout(self.dropout_rate)(x, deterministic=deterministic)
        return Linear(self.num_classes, kernel_init=xavier_uniform(), name="fc2")(x)


class FolderCNN(nn.Module):
    """Lab 10-4 (ImageFolder): Conv(6, 5)-ReLU-Pool -> Conv(16, 5)-ReLU-Pool -> Linear(120)-ReLU -> Linear(2).

    (N, 64, 128, 3) float in [0, 1] -> (N, num_classes) logits; the lab's ``Linear(16 * 13 * 29, 120)`` fixes the
    input size. PyTorch's default initialisation throughout. Submodules carry the lab's Sequential indices
    (``layer1/0``, ``layer3/0``, ``layer3/2``); its state_dict loads with ``flatten_chw={'layer3/0': (16, 13, 29)}``.
    """

    num_classes: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        check_images(x, FOLDER_SHAPE)
        x = FolderBlock(6, name="layer1")(x)  # (N, 30, 62, 6)
        x = FolderBlock(16, name="layer2")(x)  # (N, 13, 29, 16)
        return FolderHead(self.num_classes, name="layer3")(x.reshape(x.shape[0], -1))


class FolderBlock(nn.Module):
    """Conv2d(5x5) -> ReLU -> MaxPool2d(2): lab 10-4's ``layer1``/``layer2`` (the convolution is ``0``)."""

    out_channels: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv2d(self.out_channels, 5, name="0")(x)
        return MaxPool2d(2)(nn.relu(x))


class FolderHead(nn.Module):
    """Linear(120) -> ReLU -> Linear(num_classes): lab 10-4's ``layer3`` (``0`` and ``2``)."""

    num_classes: int = 2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(Linear(120, name="0")(x))
        return Linear(self.num_classes, name="2")(x)
