"""What every op shares: the window arguments (``kernel_size``, ``stride``, ``padding``, ``dilation`` as an
int or an ``(h, w)`` pair, as ``torch.nn.functional`` takes them) checked and normalised, output sizes, NHWC input
handling and dtype rules. Public to the layers of :mod:`jaxnn.nn`, which check their arguments the same way."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

IntPair = int | Sequence[int]
Padding = int | Sequence[int] | str


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def pair(value: IntPair, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3,) -> (3, 3)``; ``(2, 3) -> (2, 3)``; anything else is a TypeError naming ``name``."""
    if isinstance(value, (tuple, list)) and len(value) == 1:  # PyTorch repeats a one-element tuple too
        value = value[0]
    if is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def check_ints(**values) -> None:
    """Each value an int (not a bool); else a TypeError naming it."""
    for name, value in values.items():
        if not is_int(value):
            raise TypeError(f"{name} must be an int, got {value!r}")


def check_at_least(values: tuple[int, int], minimum: int, name: str) -> None:
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {values}")


def window_args(kernel_size, stride, padding, dilation=1) -> tuple[tuple[int, int], ...]:
    """The pairs ``(kernel, stride, padding, dilation)`` of a window op, each checked once, here.

    ``stride`` None (or ``()``, as PyTorch's modules pass it) means ``kernel_size``."""
    kernel = pair(kernel_size, "kernel_size")
    stride = (
        kernel if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) else pair(stride, "stride")
    )
    padding, dilation = pair(padding, "padding"), pair(dilation, "dilation")
    for name, value, minimum in (
        ("kernel_size", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        check_at_least(value, minimum, name)
    return kernel, stride, padding, dilation


def taps(xp, kernel, stride, dilation, out_hw) -> list[jax.Array]:
    """The window taps of a (padded) NHWC input in PyTorch's row-major scan order: tap (i, j) is the
    ``(N, Ho, Wo, C)`` strided view of every window's element (i, j)."""
    n, c = xp.shape[0], xp.shape[3]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    return [
        lax.slice(
            xp, (0, i * dh, j * dw, 0), (n, i * dh + (oh - 1) * sh + 1, j * dw + (ow - 1) * sw + 1, c), (1, sh, sw, 1)
        )
        for i in range(kh)
        for j in range(kw)
    ]


def as_nhwc(x, name: str = "x", no_channels: bool = False) -> tuple[jax.Array, bool]:
    """Returns ``(x4, batched)``: ``x`` as a float (N, H, W, C) array and whether it came batched. An empty batch
    is fine, as in PyTorch; empty images are not, and no channels only where ``no_channels`` (convolutions)."""
    x = jnp.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} must be (N, H, W, C) or (H, W, C), got shape {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype} (shape {tuple(x.shape)})")
    if 0 in x.shape[-3:-1] or (x.shape[-1] == 0 and not no_channels):
        what = "height and width" if no_channels else "height, width and channels"
        raise ValueError(f"{name} must have non-zero {what}, got shape {tuple(x.shape)}")
    return (x if x.ndim == 4 else x[None]), x.ndim == 4


def compute_dtype(x: jax.Array, *params: jax.Array | None) -> jnp.dtype:
    """The dtype a layer computes in: the input's and its parameters' promoted (float16 input and float32 weights:
    float32), as Flax's layers and ``jnp`` do. PyTorch refuses such a mixed call; casting the weights down instead
    would silently compute in low precision."""
    return jnp.result_type(x.dtype, *(p.dtype for p in params if p is not None))


def check_real(op: str, **arrays) -> None:
    """A TypeError naming the argument when a weight or bias is complex: these ops are real, and casting would
    drop the imaginary part without a word."""
    for name, a in arrays.items():
        if a is not None and jnp.iscomplexobj(a):
            raise TypeError(f"{op}: {name} is complex ({jnp.result_type(a)}); jaxnn's layers and ops are real")


def restore(y: jax.Array, batched: bool) -> jax.Array:
    return y if batched else y[0]


def conv_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of a convolution or pooling window along one axis, as PyTorch computes it.

    ``floor((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1``; with ``ceil_mode`` the division
    rounds up, but (PyTorch's pooling rule) the last window must start inside the input or the left padding, so a
    window that would start in the right padding is dropped.

    The result may be below 1 (a kernel larger than the padded input); the ops reject that, this function reports it.
    """
    check_ints(size=size, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    span = size + 2 * padding - dilation * (kernel_size - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1  # ceil division, exact for negative spans too
        if (out - 1) * stride >= size + padding:
            out -= 1
    else:
        out = span // stride + 1
    return int(out)


def output_hw(name, hw, kernel, stride, padding, dilation, ceil_mode=False, shown=None) -> tuple[int, int]:
    """Output (H, W), raising when the (dilated) kernel does not fit the padded input.

    ``shown``: the (input, padding) to name in the message when ``hw`` is already padded (asymmetric 'same')."""
    out = tuple(conv_output_size(hw[i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode) for i in range(2))
    if min(out) < 1:
        effective = tuple(dilation[i] * (kernel[i] - 1) + 1 for i in range(2))
        padded = tuple(hw[i] + 2 * padding[i] for i in range(2))
        shown_input, shown_padding = shown or (tuple(hw), padding)
        raise ValueError(
            f"{name}: kernel_size {kernel} (dilated extent {effective}) is larger than the padded input "
            f"{padded} (input {tuple(shown_input)}, padding {shown_padding}); output size would be {out}"
        )
    return out  # type: ignore[return-value]


def single(value, name, default=None):
    """A 1-D op's int argument (or PyTorch's one-element tuple) as an int."""
    if value is None:
        return default
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not is_int(value):
        raise TypeError(f"{name} must be an int or a one-element tuple, got {value!r}")
    return int(value)
