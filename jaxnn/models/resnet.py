"""Lab 10-6's ResNet: BasicBlock and Bottleneck, any ``layers`` list, the lab's CIFAR stem or torchvision's.

``ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10)`` is the lab's class (lab 10-6-2): with ``stem='cifar'`` (the
default) a 3x3 convolution to 16 channels, no max pool, and stages of 16, 32, 64 and 128 planes with strides 1, 1,
2, 2; with ``stem='imagenet'`` torchvision's (and lab 10-6-1's): 7x7 stride-2 convolution to 64 channels, a 3x3
stride-2 max pool, and stages of 64, 128, 256 and 512 planes with strides 1, 2, 2, 2. :func:`resnet18`,
:func:`resnet34` and :func:`resnet50` give torchvision's block layouts with either stem.

Submodules carry PyTorch's names (``conv1``, ``bn1``, ``layer1/0/conv1``, ``layer2/0/downsample/0``, ``fc``), so a
state_dict of the lab's model loads with :func:`jaxnn.interop.state_dict.from_state_dict` as it is.

Initialisation is the lab's: convolutions kaiming-normal (fan_out, ReLU), BatchNorm weight 1 and bias 0, and
PyTorch's default for ``fc``; ``zero_init_residual`` starts the last BatchNorm weight of every residual branch at 0.

Example::

  model = ResNet(Bottleneck, (3, 4, 6, 3), num_classes=10, zero_init_residual=True)   # the lab's ResNet-50
  variables = model.init(jax.random.key(0), jnp.ones((1, 32, 32, 3)))
  logits, updates = model.apply(variables, images, deterministic=False, mutable=["batch_stats"])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnn import checks, ops
from jaxnn.nn import BatchNorm2d, Conv2d, Linear, init

STEMS = {  # stem -> (stem channels, planes per stage, stride per stage)
    "cifar": (16, (16, 32, 64, 128), (1, 1, 2, 2)),
    "imagenet": (64, (64, 128, 256, 512), (1, 2, 2, 2)),
}


def _conv(out_channels, kernel_size, stride=1, padding=0, name=None):
    return Conv2d(
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        bias=False,
        kernel_init=init.kaiming_normal(mode="fan_out", nonlinearity="relu"),
        name=name,
    )


class Downsample(nn.Module):
    """conv1x1(stride) -> BatchNorm2d: the shortcut of a block that changes the shape (PyTorch's ``0`` and ``1``)."""

    out_channels: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        x = _conv(self.out_channels, 1, self.stride, name="0")(x)
        return BatchNorm2d(self.out_channels, name="1")(x, deterministic=deterministic)


class BasicBlock(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU. Output channels ``planes``."""

    planes: int
    stride: int = 1
    downsample: bool = False  # the conv1x1-BN shortcut (PyTorch passes the module itself)
    zero_init_residual: bool = False

    expansion: ClassVar[int] = 1

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        out = _conv(self.planes, 3, self.stride, 1, name="conv1")(x)
        out = nn.relu(BatchNorm2d(self.planes, name="bn1")(out, deterministic=deterministic))
        out = _conv(self.planes, 3, 1, 1, name="conv2")(out)
        last_init = init.constant(0.0) if self.zero_init_residual else None
        out = BatchNorm2d(self.planes, weight_init=last_init, name="bn2")(out, deterministic=deterministic)
        identity = x
        if self.downsample:
            identity = Downsample(self.planes, self.stride, name="downsample")(x, deterministic=deterministic)
        return nn.relu(out + identity)


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1-BN, plus the shortcut, then ReLU. Output ``4 * planes``."""

    planes: int
    stride: int = 1
    downsample: bool = False
    zero_init_residual: bool = False

    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        out = _conv(self.planes, 1, name="conv1")(x)
        out = nn.relu(BatchNorm2d(self.planes, name="bn1")(out, deterministic=deterministic))
        out = _conv(self.planes, 3, self.stride, 1, name="conv2")(out)
        out = nn.relu(BatchNorm2d(self.planes, name="bn2")(out, deterministic=deterministic))
        width = self.planes * self.expansion
        out = _conv(width, 1, name="conv3")(out)
        last_init = init.constant(0.0) if self.zero_init_residual else None
        out = BatchNorm2d(width, weight_init=last_init, name="bn3")(out, deterministic=deterministic)
        identity = x
        if self.downsample:
            identity = Downsample(width, self.stride, name="downsample")(x, deterministic=deterministic)
        return nn.relu(out + identity)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class Stage(nn.Module):
    """The lab's ``_make_layer``: ``blocks`` blocks, the first with the stride and (if needed) the downsample."""

    block: type
    planes: int
    blocks: int
    stride: int = 1
    zero_init_residual: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        downsample = self.stride != 1 or x.shape[-1] != self.planes * self.block.expansion
        for i in range(self.blocks):
            x = self.block(
                self.planes,
                self.stride if i == 0 else 1,
                downsample and i == 0,
                self.zero_init_residual,
                name=str(i),
            )(x, deterministic=deterministic)
        return x


class ResNet(nn.Module):
    """Lab 10-6's ResNet on NHWC images: ``(N, H, W, C)`` float -> ``(N, num_classes)`` logits.

    ``block`` is :class:`BasicBlock` or :class:`Bottleneck` (or ``'basic'``/``'bottleneck'``), ``layers`` the
    number of blocks of each of the four stages.
    """

    block: type | str
    layers: Sequence[int]
    num_classes: int = 1000
    zero_init_residual: bool = False
    stem: str = "cifar"
    width: int | None = None  # the stem's channels, the stages' planes in proportion (None: the stem's, 16 or 64)

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        block = BLOCKS.get(self.block, self.block) if isinstance(self.block, str) else self.block
        if block not in (BasicBlock, Bottleneck):
            raise ValueError(
                f"ResNet: block must be BasicBlock, Bottleneck, 'basic' or 'bottleneck', got {self.block!r}"
            )
        layers = tuple(self.layers)
        if len(layers) != 4 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layers):
            raise ValueError(f"ResNet: layers must be 4 positive ints (blocks per stage), got {self.layers!r}")
        if self.stem not in STEMS:
            raise ValueError(f"ResNet: stem must be one of {sorted(STEMS)}, got {self.stem!r}")
        if jnp.ndim(x) != 4:
            raise ValueError(f"ResNet: x must be (N, H, W, C) images, got shape {tuple(jnp.shape(x))}")
        channels, planes, strides = STEMS[self.stem]
        if self.width is not None:
            width = checks.positive_int(self.width, "ResNet: width")
            channels, planes = width, tuple(p * width // channels for p in planes)
        if self.stem == "cifar":
            x = _conv(channels, 3, 1, 1, name="conv1")(x)
        else:
            x = _conv(channels, 7, 2, 3, name="conv1")(x)
        x = nn.relu(BatchNorm2d(channels, name="bn1")(x, deterministic=deterministic))
        if self.stem == "imagenet":
            x = ops.max_pool2d(x, 3, 2, 1)
        for i, (n, p, s) in enumerate(zip(layers, planes, strides, strict=True)):
            x = Stage(block, p, n, s, self.zero_init_residual, name=f"layer{i + 1}")(x, deterministic=deterministic)
        with jax.named_scope("adaptive_avg_pool2d"):  # PyTorch's avgpool module, for jaxnn.testing's comparisons
            x = jnp.mean(x, axis=(1, 2))  # AdaptiveAvgPool2d((1, 1)) and the flatten
        return Linear(self.num_classes, name="fc")(x)


LAYOUTS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def resnet18(**kwargs) -> ResNet:
    """torchvision's ResNet-18 blocks (BasicBlock, [2, 2, 2, 2]); ``stem='imagenet'`` for torchvision's stem."""
    return ResNet(*LAYOUTS["resnet18"], **kwargs)


def resnet34(**kwargs) -> ResNet:
    """torchvision's ResNet-34 blocks (BasicBlock, [3, 4, 6, 3])."""
    return ResNet(*LAYOUTS["resnet34"], **kwargs)


def resnet50(**kwargs) -> ResNet:
    """torchvision's ResNet-50 blocks (Bottleneck, [3, 4, 6, 3]); the lab trains it with the CIFAR stem."""
    return ResNet(*LAYOUTS["resnet50"], **kwargs)
