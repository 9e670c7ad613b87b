"""``max_unpool2d`` (``torch.nn.functional.max_unpool2d``): the inverse of max pooling with its indices."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.ops.window import (
    IntPair,
    as_nhwc,
    restore,
    window_args,
)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _unpool(x3, flat_idx, plane_size):
    """Scatter ``x3`` (N, L, C) to positions ``flat_idx`` (N, L, C) of zero planes (N, plane_size, C)."""
    n, _, c = x3.shape
    out = jnp.zeros((n, plane_size, c), x3.dtype)
    b = jnp.arange(n)[:, None, None]
    ch = jnp.arange(c)[None, None, :]
    return out.at[b, flat_idx, ch].set(x3, mode="drop")


def _unpool_fwd(x3, flat_idx, plane_size):
    return _unpool(x3, flat_idx, plane_size), flat_idx


def _unpool_bwd(plane_size, flat_idx, g):
    # PyTorch's backward gathers the output gradient at each index (also when two inputs share one index).
    b = jnp.arange(g.shape[0])[:, None, None]
    ch = jnp.arange(g.shape[2])[None, None, :]
    grad = g.at[b, flat_idx, ch].get(mode="fill", fill_value=0)
    return grad, None


_unpool.defvjp(_unpool_fwd, _unpool_bwd)


def max_unpool2d(
    x: jax.Array,
    indices: jax.Array,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    output_size: Sequence[int] | None = None,
) -> jax.Array:
    """Partial inverse of :func:`max_pool2d`, like ``torch.nn.functional.max_unpool2d``.

    Places each value of ``x`` at its index (a flat ``h * W_out + w`` position, as returned by ``max_pool2d``) in a
    zero ``(H_out, W_out)`` plane per (sample, channel). ``H_out = (H - 1) * stride - 2 * padding + kernel_size``
    unless ``output_size`` ((H_out, W_out), or a full (N, H_out, W_out, C) shape) says otherwise; like PyTorch it must
    lie within ``stride`` of that default.

    Indices outside ``[0, H_out * W_out)`` are a ValueError when they can be checked (outside ``jit``); under
    ``jit`` they cannot, and an out-of-range index drops its value (PyTorch raises).

    Args:
      x: ``(N, H, W, C)`` or ``(H, W, C)`` pooled values.
      indices: integer array of x's shape.
    Returns:
      ``(N, H_out, W_out, C)`` (or unbatched). The gradient w.r.t. ``x`` gathers the output gradient at the indices.
    """
    x4, batched = as_nhwc(x)
    indices = jnp.asarray(indices)
    if tuple(indices.shape) != tuple(jnp.shape(x)):
        raise ValueError(
            f"max_unpool2d: indices shape {tuple(indices.shape)} does not match x shape {tuple(jnp.shape(x))}"
        )
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"max_unpool2d: indices must be integers, got {indices.dtype}")
    kernel, stride, padding, _ = window_args(kernel_size, stride, padding)
    n, h, w, c = x4.shape
    default = ((h - 1) * stride[0] - 2 * padding[0] + kernel[0], (w - 1) * stride[1] - 2 * padding[1] + kernel[1])
    if output_size is None:
        out_hw = default
    else:
        size = tuple(int(s) for s in output_size)
        if len(size) == 4:
            size = size[1:3]
        elif len(size) == 3:
            size = size[0:2]
        if len(size) != 2:
            raise ValueError(f"max_unpool2d: output_size must be (H, W) or a full NHWC shape, got {output_size!r}")
        for i in range(2):
            if not default[i] - stride[i] < size[i] < default[i] + stride[i]:
                raise ValueError(
                    f"max_unpool2d: output_size {size} must be within stride {stride} of the default {default} "
                    f"(x shape {tuple(jnp.shape(x))})"
                )
        out_hw = size
    if min(out_hw) < 1:
        raise ValueError(
            f"max_unpool2d: output size {out_hw} is empty (x shape {tuple(jnp.shape(x))}, "
            f"kernel_size {kernel}, stride {stride}, padding {padding})"
        )
    plane = out_hw[0] * out_hw[1]
    idx4 = indices if batched else indices[None]
    if not isinstance(idx4, jax.core.Tracer):  # concrete indices (also closed over inside jit): checked on the host
        concrete = np.asarray(idx4)
        lo, hi = (int(concrete.min()), int(concrete.max())) if concrete.size else (0, 0)
        if lo < 0 or hi >= plane:
            raise ValueError(
                f"max_unpool2d: indices must lie in [0, {plane}) for output size {out_hw}, found values in [{lo}, {hi}]"
            )
    y = _unpool(x4.reshape(n, h * w, c), idx4.reshape(n, h * w, c).astype(jnp.int32), plane)
    return restore(y.reshape(n, out_hw[0], out_hw[1], c), batched)
