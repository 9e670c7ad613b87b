"""``torch.nn.init``'s rules as Flax initializers: ``initializer(key, shape, dtype) -> array``.

PyTorch's functions fill a tensor in place (``kaiming_uniform_(w)``); these return an initializer with the same
rule, for a layer's ``kernel_init``/``bias_init`` (no trailing underscore: nothing is modified in place). Fans are
computed as PyTorch computes them, on jaxnn's channels-last kernels: the last axis holds the outputs, the one before
it the inputs, and the leading axes the receptive field (``(kh, kw, I, O)``, ``(k, I, O)``, ``(in, out)``). For a
weight in PyTorch's own layout (``(out, in)``, as :class:`jaxnn.models.RNN` keeps them) pass ``in_axis=-1,
out_axis=-2``.

Example::

  Conv2d(64, 3, kernel_init=init.kaiming_normal(mode="fan_out", nonlinearity="relu"))   # torchvision's ResNet
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

GAINS = {
    "linear": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "conv_transpose1d": 1.0,
    "conv_transpose2d": 1.0,
    "conv_transpose3d": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3,
    "relu": math.sqrt(2.0),
    "selu": 3.0 / 4,
}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """``torch.nn.init.calculate_gain``: the recommended gain of a nonlinearity (``leaky_relu`` takes its slope)."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in GAINS:
        raise ValueError(
            f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; one of {sorted([*GAINS, 'leaky_relu'])}"
        )
    return GAINS[nonlinearity]


def _fans(shape, in_axis: int, out_axis: int) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need at least 2 dimensions, got shape {tuple(shape)}")
    receptive = math.prod(s for i, s in enumerate(shape) if i not in (in_axis % len(shape), out_axis % len(shape)))
    return shape[in_axis] * receptive, shape[out_axis] * receptive


def _fan(shape, mode, in_axis, out_axis) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(shape, in_axis, out_axis)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform(
    a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *, in_axis: int = -2, out_axis: int = -1
):
    """``kaiming_uniform_``: ``U(-b, b)`` with ``b = gain * sqrt(3 / fan)``."""

    def init(key, shape, dtype=jnp.float32):
        bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(shape, mode, in_axis, out_axis))
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def kaiming_normal(
    a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *, in_axis: int = -2, out_axis: int = -1
):
    """``kaiming_normal_``: ``N(0, std^2)`` with ``std = gain / sqrt(fan)``."""

    def init(key, shape, dtype=jnp.float32):
        std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode, in_axis, out_axis))
        return std * jax.random.normal(key, shape, dtype)

    return init


def xavier_uniform(gain: float = 1.0, *, in_axis: int = -2, out_axis: int = -1):
    """``xavier_uniform_``: ``U(-b, b)`` with ``b = gain * sqrt(6 / (fan_in + fan_out))``."""

    def init(key, shape, dtype=jnp.float32):
        fan_in, fan_out = _fans(shape, in_axis, out_axis)
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def xavier_normal(gain: float = 1.0, *, in_axis: int = -2, out_axis: int = -1):
    """``xavier_normal_``: ``N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""

    def init(key, shape, dtype=jnp.float32):
        fan_in, fan_out = _fans(shape, in_axis, out_axis)
        return gain * math.sqrt(2.0 / (fan_in + fan_out)) * jax.random.normal(key, shape, dtype)

    return init


def normal(mean: float = 0.0, std: float = 1.0):
    """``normal_``: ``N(mean, std^2)``."""

    def init(key, shape, dtype=jnp.float32):
        return mean + std * jax.random.normal(key, shape, dtype)

    return init


def constant(val: float):
    """``constant_``: every element ``val``."""

    def init(key, shape, dtype=jnp.float32):
        return jnp.full(shape, val, dtype)

    return init


__all__ = [
    "calculate_gain",
    "kaiming_uniform",
    "kaiming_normal",
    "xavier_uniform",
    "xavier_normal",
    "normal",
    "constant",
]
