"""Flax Linen layers over :mod:`jaxnn.ops`, initialised as PyTorch initialises its layers.

PyTorch's default for ``Conv2d`` and ``Linear`` is ``kaiming_uniform_(a=sqrt(5))`` on the weight, which is
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, and the same bound on the bias. Parameter names follow Flax (``kernel`` in
HWIO or (in, out), ``bias``); :mod:`jaxnn.interop.torch` maps them to PyTorch's ``weight``/``bias``.
"""

from __future__ import annotations

from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

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
    """``torch.nn.Conv2d`` on NHWC input: kernel ``(kh, kw, C // groups, features)``, bias ``(features,)``."""

    features: int
    kernel_size: IntPair
    stride: IntPair = 1
    padding: Padding = 0
    dilation: IntPair = 1
    groups: int = 1
    use_bias: bool = True
    kernel_init: Optional[Initializer] = None
    bias_init: Optional[Initializer] = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: (N, H, W, C) or (H, W, C) float -> (N, Ho, Wo, features)."""
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        channels = jnp.shape(x)[-1]
        if channels % self.groups:
            raise ValueError(f"Conv2d: groups={self.groups} does not divide the input channels {channels} "
                             f"(x shape {tuple(jnp.shape(x))})")
        fan_in = channels // self.groups * kh * kw
        kernel = self.param("kernel", self.kernel_init or torch_uniform(fan_in),
                            (kh, kw, channels // self.groups, self.features))
        bias = self.param("bias", self.bias_init or torch_uniform(fan_in), (self.features,)) if self.use_bias else None
        return ops.conv2d(x, kernel, bias, self.stride, self.padding, self.dilation, self.groups)


class Linear(nn.Module):
    """``torch.nn.Linear``: kernel ``(in, features)``, bias ``(features,)``, PyTorch's default initialisation."""

    features: int
    use_bias: bool = True
    kernel_init: Optional[Initializer] = None
    bias_init: Optional[Initializer] = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: (..., in) float -> (..., features)."""
        fan_in = jnp.shape(x)[-1]
        kernel = self.param("kernel", self.kernel_init or torch_uniform(fan_in), (fan_in, self.features))
        y = jnp.dot(x, kernel.astype(x.dtype))
        if self.use_bias:
            y = y + self.param("bias", self.bias_init or torch_uniform(fan_in), (self.features,)).astype(y.dtype)
        return y


class MaxPool2d(nn.Module):
    """``torch.nn.MaxPool2d`` on NHWC input (see :func:`jaxnn.ops.max_pool2d`)."""

    kernel_size: IntPair
    stride: Optional[IntPair] = None
    padding: IntPair = 0
    dilation: IntPair = 1
    ceil_mode: bool = False
    return_indices: bool = False

    def __call__(self, x: jax.Array):
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                              self.return_indices)


class AvgPool2d(nn.Module):
    """``torch.nn.AvgPool2d`` on NHWC input (see :func:`jaxnn.ops.avg_pool2d`)."""

    kernel_size: IntPair
    stride: Optional[IntPair] = None
    padding: IntPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: Optional[int] = None

    def __call__(self, x: jax.Array) -> jax.Array:
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad, self.divisor_override)


__all__ = ["Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "torch_uniform", "xavier_uniform"]
