"""``pad`` (``torch.nn.functional.pad``) on NHWC input, with PyTorch's four modes."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxnn.ops.window import (
    is_int,
)

PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(x: jax.Array, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> jax.Array:
    """``torch.nn.functional.pad`` on channel-last input: pads the spatial axes before the channel axis.

    ``pad`` lists (before, after) pairs starting from the *last* spatial axis, PyTorch's reversed order:
    ``(left, right)`` pads W (or L), ``(left, right, top, bottom)`` pads W and H. On an NHWC array that is the same
    tuple PyTorch takes for the NCHW array, which surprises people used to ``np.pad``'s first-axis-first order.
    The channel axis is never padded.

    Modes as PyTorch's: ``'constant'`` (``value``, default 0), ``'reflect'`` (mirror without the edge; each pad
    smaller than its axis), ``'replicate'`` (repeat the edge), ``'circular'`` (wrap around; each pad at most its
    axis). Negative pads (cropping) are not supported.

    Example::

      pad(jnp.ones((1, 4, 4, 3)), (1, 1, 2, 2), mode="reflect").shape   # (1, 8, 6, 3)
    """
    x = jnp.asarray(x)
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {sorted(PAD_MODES)}, got {mode!r}")
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or not all(is_int(p) for p in pad):
        raise TypeError(f"pad: pad must be a tuple of an even number of ints, got {pad!r}")
    spatial = len(pad) // 2
    if spatial > x.ndim - 1:
        raise ValueError(
            f"pad: {len(pad)} values pad {spatial} spatial axes, but x of shape {tuple(x.shape)} has at "
            f"most {x.ndim - 1} before its channel axis"
        )
    if min(pad, default=0) < 0:
        raise ValueError(f"pad: negative padding (cropping) is not supported, got {tuple(pad)}")
    if value is not None and mode != "constant":
        raise ValueError(f"pad: value applies to mode='constant' only, got mode={mode!r}")
    widths = [(0, 0)] * x.ndim
    for k in range(spatial):  # pair k pads the k-th spatial axis counted from the channel axis backwards
        axis = x.ndim - 2 - k
        before, after = int(pad[2 * k]), int(pad[2 * k + 1])
        size = x.shape[axis]
        if mode == "reflect" and max(before, after) >= size:
            raise ValueError(
                f"pad: reflect padding {(before, after)} must be smaller than the padded axis "
                f"{axis} of size {size} (x shape {tuple(x.shape)})"
            )
        if mode == "circular" and max(before, after) > size:
            raise ValueError(
                f"pad: circular padding {(before, after)} must be at most the padded axis {axis} of "
                f"size {size} (x shape {tuple(x.shape)})"
            )
        widths[axis] = (before, after)
    if mode == "constant":
        return jnp.pad(x, widths, constant_values=0.0 if value is None else value)
    return jnp.pad(x, widths, mode=PAD_MODES[mode])
