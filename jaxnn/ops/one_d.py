"""The 1-D family on ``(N, L, C)``: ``conv1d``, ``max_pool1d``, ``avg_pool1d``, ``adaptive_avg_pool1d``, each the
2-D op on a height of 1."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxnn.ops.conv import conv2d
from jaxnn.ops.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from jaxnn.ops.window import (
    single,
)


def _as_2d(x, op):
    """(N, L, C) or (L, C) -> (N, 1, L, C), and whether x was batched."""
    x = jnp.asarray(x)
    if x.ndim not in (2, 3):
        raise ValueError(f"{op}: x must be (N, L, C) or (L, C), got shape {tuple(x.shape)}")
    return (x[:, None] if x.ndim == 3 else x[None, None]), x.ndim == 3


def _from_2d(y, batched):
    return y[:, 0] if batched else y[0, 0]


def conv1d(
    x,
    weight,
    bias=None,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    *,
    padding_mode: str = "zeros",
    precision: lax.PrecisionLike = None,
) -> jax.Array:
    """``torch.nn.functional.conv1d`` on ``(N, L, C)``: weight ``(k, C // groups, O)`` (PyTorch's ``(O, C //
    groups, k)`` channels last). Every option of :func:`conv2d`, on a height of 1."""
    x4, batched = _as_2d(x, "conv1d")
    weight = jnp.asarray(weight)
    if weight.ndim != 3:
        raise ValueError(f"conv1d: weight must be (k, C // groups, O), got shape {tuple(weight.shape)}")
    pad = padding if isinstance(padding, str) else (0, single(padding, "padding"))
    y = conv2d(
        x4,
        weight[None],
        bias,
        (1, single(stride, "stride")),
        pad,
        (1, single(dilation, "dilation")),
        groups,
        padding_mode=padding_mode,
        precision=precision,
    )
    return _from_2d(y, batched)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """``torch.nn.functional.max_pool1d`` on ``(N, L, C)``; indices are positions along L."""
    x4, batched = _as_2d(x, "max_pool1d")
    k = single(kernel_size, "kernel_size")
    out = max_pool2d(
        x4,
        (1, k),
        (1, single(stride, "stride", k)),
        (0, single(padding, "padding")),
        (1, single(dilation, "dilation")),
        ceil_mode,
        return_indices,
    )
    return tuple(_from_2d(o, batched) for o in out) if return_indices else _from_2d(out, batched)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """``torch.nn.functional.avg_pool1d`` on ``(N, L, C)``."""
    x4, batched = _as_2d(x, "avg_pool1d")
    k = single(kernel_size, "kernel_size")
    y = avg_pool2d(
        x4, (1, k), (1, single(stride, "stride", k)), (0, single(padding, "padding")), ceil_mode, count_include_pad
    )
    return _from_2d(y, batched)


def adaptive_avg_pool1d(x, output_size) -> jax.Array:
    """``torch.nn.functional.adaptive_avg_pool1d`` on ``(N, L, C)``."""
    x4, batched = _as_2d(x, "adaptive_avg_pool1d")
    return _from_2d(adaptive_avg_pool2d(x4, (1, single(output_size, "output_size"))), batched)
