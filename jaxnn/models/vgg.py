"""Lab 10-5's VGG: convolutions from a ``cfg`` list (``make_layers``), optional BatchNorm, the lab's classifier.

``VGG(cfg)`` is the lab's ``VGG(make_layers(cfg, batch_norm), num_classes, init_weights)``: an int in ``cfg`` is a
3x3 convolution (padding 1) with that many output channels, then BatchNorm2d (with ``batch_norm``) and ReLU; ``'M'``
is a 2x2 max pool. The classifier is Linear(4096)-ReLU-Dropout-Linear(4096)-ReLU-Dropout-Linear(num_classes) on the
flattened features. On 32x32 inputs (lab 10-5-2, CIFAR-10) the features are used as they are (``avgpool=None``,
the lab's ``Linear(512 * 4 * 4, 4096)``); ``avgpool=(7, 7)`` is lab 10-5-1's and torchvision's ImageNet head.

Submodules carry PyTorch's indices (``features/0``, ``features/1``, ``classifier/3``...), so a state_dict of the
lab's model loads with :func:`jaxnn.interop.state_dict.from_state_dict`, given ``flatten_chw={'classifier/0':
(C, H, W)}`` for the first classifier layer: jaxnn flattens the NHWC map in (H, W, C) order.

Initialisation is the lab's ``_initialize_weights`` (with ``init_weights=True``): convolutions kaiming-normal
(fan_out, ReLU) with zero bias, BatchNorm weight 1 and bias 0, linear weights N(0, 0.01) with zero bias.

Example::

  model = VGG(CFGS["cifar"], batch_norm=True, num_classes=10)
  variables = model.init(jax.random.key(0), jnp.ones((1, 32, 32, 3)))
  logits = model.apply(variables, images)                       # eval: running statistics, no dropout
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnn import checks, ops
from jaxnn.nn import BatchNorm2d, Conv2d, Dropout, Linear, init

CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-11
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-13
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # VGG-16
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
    "custom": [64, 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M"],  # lab 10-5-1's own
    "cifar": [32, 32, "M", 64, 64, 128, 128, 128, "M", 256, 256, 256, 512, 512, 512, "M"],  # lab 10-5-2's "vgg16"
}


def check_cfg(cfg) -> None:
    """A cfg is a non-empty list of positive ints (channels) and ``'M'`` (max pool)."""
    if isinstance(cfg, str) or not isinstance(cfg, Sequence) or not cfg:
        raise ValueError(f"cfg must be a non-empty list of channel counts and 'M', got {cfg!r}")
    for v in cfg:
        if v != "M" and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            raise ValueError(f"cfg entries must be positive ints or 'M', got {v!r} in {list(cfg)}")


def _conv_init():
    return init.kaiming_normal(mode="fan_out", nonlinearity="relu")


class Features(nn.Module):
    """The lab's ``make_layers(cfg, batch_norm)``: layer ``i`` of PyTorch's Sequential is submodule ``str(i)``."""

    cfg: Sequence[int | str]
    batch_norm: bool = False
    init_weights: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        check_cfg(self.cfg)
        i = 0
        for v in self.cfg:
            if v == "M":
                x = ops.max_pool2d(x, 2, 2)
                i += 1
                continue
            kernel_init, bias_init = (_conv_init(), init.constant(0.0)) if self.init_weights else (None, None)
            x = Conv2d(v, 3, padding=1, kernel_init=kernel_init, bias_init=bias_init, name=str(i))(x)
            i += 1
            if self.batch_norm:
                x = BatchNorm2d(v, name=str(i))(x, deterministic=deterministic)
                i += 1
            x = nn.relu(x)
            i += 1
        return x


class VGG(nn.Module):
    """Lab 10-5's VGG on NHWC images: ``(N, H, W, C)`` float -> ``(N, num_classes)`` logits."""

    cfg: Sequence[int | str] = tuple(CFGS["cifar"])
    batch_norm: bool = False
    num_classes: int = 1000
    init_weights: bool = True
    dropout: float = 0.5
    avgpool: tuple[int, int] | None = None  # (7, 7): lab 10-5-1's AdaptiveAvgPool2d; None: lab 10-5-2 (32x32)
    hidden_features: int = 4096  # the classifier's two hidden Linear layers (the labs' and torchvision's 4096)

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        if jnp.ndim(x) != 4:
            raise ValueError(f"VGG: x must be (N, H, W, C) images, got shape {tuple(jnp.shape(x))}")
        if jnp.shape(x)[0] == 0:  # PyTorch's lab model refuses it too (x.view(0, -1))
            raise ValueError(f"VGG: x is an empty batch, shape {tuple(jnp.shape(x))}: there is nothing to classify")
        if not 0.0 <= self.dropout <= 1.0:
            raise ValueError(f"VGG: dropout must be in [0, 1], got {self.dropout!r}")
        x = Features(self.cfg, self.batch_norm, self.init_weights, name="features")(x, deterministic=deterministic)
        if self.avgpool is not None:
            x = ops.adaptive_avg_pool2d(x, self.avgpool)
        x = x.reshape(x.shape[0], -1)  # NHWC flatten: (h, w, c) order
        return Classifier(self.num_classes, self.init_weights, self.dropout, self.hidden_features, name="classifier")(
            x, deterministic=deterministic
        )


class Classifier(nn.Module):
    """Linear(4096)-ReLU-Dropout-Linear(4096)-ReLU-Dropout-Linear(num_classes), PyTorch's indices 0, 3 and 6
    (``hidden_features`` instead of 4096 for a smaller model)."""

    num_classes: int
    init_weights: bool = True
    dropout: float = 0.5
    hidden_features: int = 4096

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        kernel_init, bias_init = (init.normal(0.0, 0.01), init.constant(0.0)) if self.init_weights else (None, None)
        hidden = checks.positive_int(self.hidden_features, "VGG: hidden_features")
        for index, features in ((0, hidden), (3, hidden), (6, self.num_classes)):
            x = Linear(features, kernel_init=kernel_init, bias_init=bias_init, name=str(index))(x)
            if index < 6:
                x = Dropout(self.dropout)(nn.relu(x), deterministic=deterministic)
        return x
