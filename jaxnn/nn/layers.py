"""Flax Linen layers over :mod:`jaxnn.ops`, initialised as PyTorch initialises its layers.

PyTorch's default for ``Conv2d`` and ``Linear`` is ``kaiming_uniform_(a=sqrt(5))`` on the weight, which is
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, and the same bound on the bias.

Arguments carry PyTorch's names and defaults (``out_channels``, ``out_features``, ``bias=True``), with one deliberate
difference: there is no ``in_channels``/``in_features``, since Flax infers them from the first input. Parameters
are named ``kernel`` (HWIO, or (in, out)) and ``bias``: the kernel's layout is not PyTorch's ``weight``, and
:mod:`jaxnn.interop.torch` converts between the two.

``precision`` is that of the layer's products (``lax.Precision`` or ``'highest'``/``'high'``/``'default'``):
None leaves the backend's default, which on recent NVIDIA GPUs may be TF32; ``'highest'`` is full float32.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.lax import PrecisionLike

from jaxnn import ops
from jaxnn.ops import IntPair, Padding

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]


def torch_uniform(fan_in: int) -> Initializer:
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: PyTorch's default for Conv/Linear weights and biases."""
    bound = 1.0 / float(fan_in) ** 0.5 if fan_in > 0 else 0.0

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


xavier_uniform: Callable[[], Initializer] = nn.initializers.xavier_uniform
"""``torch.nn.init.xavier_uniform_`` for a (in, out) kernel: ``U(+-sqrt(6 / (in + out)))``."""


class Conv2d(nn.Module):
    """``torch.nn.Conv2d`` on NHWC input: kernel ``(kh, kw, C // groups, out_channels)``, bias ``(out_channels,)``.

    Example::

      conv = Conv2d(32, 3, padding=1)                       # torch.nn.Conv2d(1, 32, 3, padding=1)
      params = conv.init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))
    """

    out_channels: int
    kernel_size: IntPair
    stride: IntPair = 1
    padding: Padding = 0
    dilation: IntPair = 1
    groups: int = 1
    bias: bool = True
    precision: PrecisionLike = None
    kernel_init: Initializer | None = None
    bias_init: Initializer | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: (N, H, W, C) or (H, W, C) float -> (N, Ho, Wo, out_channels)."""
        (kh, kw), _, _, _ = ops._window_args(self.kernel_size, 1, 0)
        channels = jnp.shape(x)[-1]
        if channels % self.groups:
            raise ValueError(
                f"Conv2d: groups={self.groups} does not divide the input channels {channels} "
                f"(x shape {tuple(jnp.shape(x))})"
            )
        fan_in = channels // self.groups * kh * kw
        kernel = self.param(
            "kernel", self.kernel_init or torch_uniform(fan_in), (kh, kw, channels // self.groups, self.out_channels)
        )
        bias = self.param("bias", self.bias_init or torch_uniform(fan_in), (self.out_channels,)) if self.bias else None
        return ops.conv2d(
            x, kernel, bias, self.stride, self.padding, self.dilation, self.groups, precision=self.precision
        )


class Linear(nn.Module):
    """``torch.nn.Linear``: kernel ``(in, out_features)``, bias ``(out_features,)``, PyTorch's initialisation.

    Example::

      fc = Linear(10)                                       # torch.nn.Linear(3136, 10)
      params = fc.init(jax.random.key(0), jnp.ones((1, 3136)))
    """

    out_features: int
    bias: bool = True
    precision: PrecisionLike = None
    kernel_init: Initializer | None = None
    bias_init: Initializer | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: (..., in) float -> (..., out_features)."""
        fan_in = jnp.shape(x)[-1]
        kernel = self.param("kernel", self.kernel_init or torch_uniform(fan_in), (fan_in, self.out_features))
        y = jnp.dot(x, kernel.astype(x.dtype), precision=self.precision)
        if self.bias:
            y = y + self.param("bias", self.bias_init or torch_uniform(fan_in), (self.out_features,)).astype(y.dtype)
        return y


class MaxPool2d(nn.Module):
    """``torch.nn.MaxPool2d`` on NHWC input (see :func:`jaxnn.ops.max_pool2d`)."""

    kernel_size: IntPair
    stride: IntPair | None = None
    padding: IntPair = 0
    dilation: IntPair = 1
    return_indices: bool = False
    ceil_mode: bool = False

    def __call__(self, x: jax.Array):
        return ops.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
        )


class AvgPool2d(nn.Module):
    """``torch.nn.AvgPool2d`` on NHWC input (see :func:`jaxnn.ops.avg_pool2d`)."""

    kernel_size: IntPair
    stride: IntPair | None = None
    padding: IntPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    def __call__(self, x: jax.Array) -> jax.Array:
        return ops.avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


__all__ = ["Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "torch_uniform", "xavier_uniform"]
