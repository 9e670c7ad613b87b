"""Convolution and pooling with PyTorch's semantics, on NHWC activations and HWIO kernels.

Every op takes a batched ``(N, H, W, C)`` or an unbatched ``(H, W, C)`` input and returns the same rank. Arguments
that describe a window (``kernel_size``, ``stride``, ``padding``, ``dilation``) take an int or an ``(h, w)`` pair,
exactly like ``torch.nn.functional``. The functions are pure: they jit, vmap and differentiate, and their values,
indices and gradients equal PyTorch's (max-pool gradients go to the first maximum of each window, as in PyTorch).

Shapes are checked in Python before anything is traced, so bad input raises a ``ValueError`` or ``TypeError`` that
names the argument and the shapes rather than an XLA error.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

IntPair = int | Sequence[int]
Padding = int | Sequence[int] | str

__all__ = [
    "conv_output_size",
    "conv_transpose_output_size",
    "conv2d",
    "convolve2d",
    "conv_transpose2d",
    "pad",
    "max_pool2d",
    "avg_pool2d",
    "max_unpool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "conv1d",
    "max_pool1d",
    "avg_pool1d",
    "adaptive_avg_pool1d",
]


# --------------------------------------------------------------------------------------------------------------
# Argument checking
# --------------------------------------------------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3,) -> (3, 3)``; ``(2, 3) -> (2, 3)``; anything else is a TypeError naming ``name``."""
    if isinstance(value, (tuple, list)) and len(value) == 1:  # PyTorch repeats a one-element tuple too
        value = value[0]
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def _check_ints(**values) -> None:
    """Each value an int (not a bool); else a TypeError naming it."""
    for name, value in values.items():
        if not _is_int(value):
            raise TypeError(f"{name} must be an int, got {value!r}")


def _check_at_least(values: tuple[int, int], minimum: int, name: str) -> None:
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {values}")


def _window_args(kernel_size, stride, padding, dilation=1) -> tuple[tuple[int, int], ...]:
    """The pairs ``(kernel, stride, padding, dilation)`` of a window op, each checked once, here.

    ``stride`` None (or ``()``, as PyTorch's modules pass it) means ``kernel_size``."""
    kernel = _pair(kernel_size, "kernel_size")
    stride = (
        kernel
        if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
        else _pair(stride, "stride")
    )
    padding, dilation = _pair(padding, "padding"), _pair(dilation, "dilation")
    for name, value, minimum in (
        ("kernel_size", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        _check_at_least(value, minimum, name)
    return kernel, stride, padding, dilation


def _taps(xp, kernel, stride, dilation, out_hw) -> list[jax.Array]:
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


def _as_nhwc(x, name: str = "x", no_channels: bool = False) -> tuple[jax.Array, bool]:
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


def _restore(y: jax.Array, batched: bool) -> jax.Array:
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
    _check_ints(size=size, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)
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


def _output_hw(name, hw, kernel, stride, padding, dilation, ceil_mode=False, shown=None) -> tuple[int, int]:
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


# --------------------------------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------------------------------


def _conv_padding(padding: Padding, kernel, dilation, stride) -> tuple[tuple[int, int], tuple[int, int]]:
    """Per-axis (low, high) padding. PyTorch's 'same' puts the odd extra element at the bottom/right."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            if max(stride) > 1:
                raise ValueError(f"padding='same' is only supported with stride 1 (as in PyTorch), got stride {stride}")
            pads = []
            for k, d in zip(kernel, dilation, strict=True):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return pads[0], pads[1]
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = _pair(padding, "padding")
    _check_at_least((ph, pw), 0, "padding")
    return (ph, ph), (pw, pw)


def _check_conv_args(x4, weight, bias, stride, padding, dilation, groups, op):
    check_real(op, weight=weight, bias=bias)
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be (kh, kw, C // groups, O), got shape {tuple(weight.shape)}")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    kh, kw, cin_g, cout = weight.shape
    c = x4.shape[-1]
    if c % groups:
        raise ValueError(f"{op}: groups={groups} does not divide the input channels {c} (x shape {tuple(x4.shape)})")
    if cout % groups:
        raise ValueError(
            f"{op}: groups={groups} does not divide the output channels {cout} (weight shape {tuple(weight.shape)})"
        )
    if cin_g * groups != c:
        raise ValueError(
            f"{op}: input channels {c} (x shape {tuple(x4.shape)}) do not match weight "
            f"{tuple(weight.shape)}: expected weight.shape[2] == {c} // groups = {c // groups}"
        )
    if bias is not None and tuple(bias.shape) != (cout,):
        raise ValueError(f"{op}: bias must have shape ({cout},), got {tuple(bias.shape)}")
    _, stride, _, dilation = _window_args((kh, kw), stride, 0, dilation)
    pad_h, pad_w = _conv_padding(padding, (kh, kw), dilation, stride)
    # Output size from the padded extent; 'same' may pad asymmetrically, so use the sum of both sides.
    padded = (x4.shape[1] + pad_h[0] + pad_h[1], x4.shape[2] + pad_w[0] + pad_w[1])
    _output_hw(op, padded, (kh, kw), stride, (0, 0), dilation, shown=(x4.shape[1:3], (pad_h, pad_w)))
    return stride, (pad_h, pad_w), dilation


def conv2d(
    x: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    precision: lax.PrecisionLike = None,
) -> jax.Array:
    """2-D cross-correlation, like ``torch.nn.functional.conv2d`` (which is a cross-correlation, not a convolution).

    Args:
      x: ``(N, H, W, C)`` or ``(H, W, C)`` floating array.
      weight: ``(kh, kw, C // groups, O)`` (HWIO). From PyTorch's ``(O, C // groups, kh, kw)`` use
        ``jaxnn.layout.oihw_to_hwio``.
      bias: ``(O,)`` or None.
      stride, dilation: int or pair, each >= 1.
      padding: int or pair of zero padding on both sides, ``'valid'`` (none) or ``'same'`` (stride 1 only; the odd
        extra element goes to the bottom/right, as PyTorch places it).
      groups: channel groups; divides both C and O.
      padding_mode: what the padding holds, as ``torch.nn.Conv2d`` applies it: ``'zeros'``, ``'reflect'``,
        ``'replicate'`` or ``'circular'`` (see :func:`pad`).
      precision: of the convolution's products, as in ``lax.conv_general_dilated``: ``'highest'`` is full float32
        on GPUs, whose default may be TF32 (see the README's "Exact on GPUs").

    Returns:
      ``(N, Ho, Wo, O)`` (or ``(Ho, Wo, O)``) with ``Ho = conv_output_size(H, kh, sh, ph, dh)``, in x's dtype.

    Example::

      y = conv2d(jnp.ones((8, 28, 28, 1)), jnp.ones((3, 3, 1, 32)), padding=1)  # (8, 28, 28, 32)
    """
    x4, batched = _as_nhwc(x, no_channels=True)
    weight = jnp.asarray(weight)
    bias = None if bias is None else jnp.asarray(bias)
    stride, pads, dilation = _check_conv_args(x4, weight, bias, stride, padding, dilation, groups, "conv2d")
    if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
        raise ValueError(
            f"conv2d: padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', got {padding_mode!r}"
        )
    dtype = compute_dtype(x4, weight, bias)
    x4, weight = x4.astype(dtype), weight.astype(dtype)
    # With no input channels the sums are empty: the output is the bias (zeros without), and any padding mode pads
    # nothing but the extent.
    if padding_mode != "zeros" and x4.shape[-1]:  # pad first, as nn.Conv2d does, then convolve without padding
        (top, bottom), (left, right) = pads
        x4 = pad(x4, (left, right, top, bottom), mode=padding_mode)
        pads = ((0, 0), (0, 0))
    elif groups == 1 and any(
        (k, s, d, lo) == (2, 2, 1, 1) for k, s, d, (lo, _) in zip(weight.shape[:2], stride, dilation, pads, strict=True)
    ):
        # Kernel 2, stride 2, padding 1: the input gradient autodiff builds for this window makes XLA's CPU compiler
        # (jaxlib 0.10.2) abort when it swaps the convolution's operands (a small input beside it). With the padding
        # written out that gradient has other padding, and compiles. Only here: the written-out pad costs time.
        x4 = lax.pad(x4, jnp.zeros((), x4.dtype), ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))
        pads = ((0, 0), (0, 0))
    y = lax.conv_general_dilated(
        x4,
        weight,
        window_strides=stride,
        padding=pads,
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        precision=precision,
    )
    if bias is not None:
        y = y + bias.astype(y.dtype)
    return _restore(y, batched)


def convolve2d(
    x: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    precision: lax.PrecisionLike = None,
) -> jax.Array:
    """True 2-D convolution: the kernel is flipped in both spatial axes before sliding.

    Identity: ``convolve2d(x, w, ...) == conv2d(x, w[::-1, ::-1], ...)``, and so
    ``conv2d(x, w, ...) == convolve2d(x, w[::-1, ::-1], ...)``. For a kernel symmetric under a 180-degree rotation
    the two agree. Arguments and shapes are those of :func:`conv2d`.
    """
    weight = jnp.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"convolve2d: weight must be (kh, kw, C // groups, O), got shape {tuple(weight.shape)}")
    return conv2d(x, weight[::-1, ::-1], bias, stride, padding, dilation, groups, precision=precision)


# --------------------------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------------------------


def _pool_geometry(x4, kernel_size, stride, padding, dilation, ceil_mode, op):
    kernel, stride, padding, dilation = _window_args(kernel_size, stride, padding, dilation)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding {padding} must be at most half of kernel_size {kernel} "
            f"(PyTorch's rule: padding <= kernel_size // 2)"
        )
    out = _output_hw(op, x4.shape[1:3], kernel, stride, padding, dilation, ceil_mode)
    return kernel, stride, padding, dilation, out


def _windows(x4, pad_value, kernel, stride, padding, dilation, out_hw) -> jax.Array:
    """All pooling windows: ``(N, Ho, Wo, kh*kw, C)``, window elements in row-major (PyTorch's scan) order.

    The input is padded with ``pad_value`` on the left/top by ``padding`` and on the right/bottom by ``padding`` plus
    whatever ceil_mode's last window overhangs.
    """
    if stride == kernel and dilation == (1, 1):  # non-overlapping windows tile the padded input: a reshape
        n, c, (kh, kw), (oh, ow) = x4.shape[0], x4.shape[3], kernel, out_hw
        xt = _tiled_input(x4, kernel, padding, out_hw, pad_value)
        return xt.reshape(n, oh, kh, ow, kw, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, oh, ow, kh * kw, c)
    h, w = x4.shape[1:3]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out_hw
    hi_h = max((oh - 1) * sh + (kh - 1) * dh + 1 - h - ph, 0)
    hi_w = max((ow - 1) * sw + (kw - 1) * dw + 1 - w - pw, 0)
    xp = jnp.pad(x4, ((0, 0), (ph, hi_h), (pw, hi_w), (0, 0)), constant_values=pad_value)
    return jnp.stack(_taps(xp, kernel, stride, dilation, out_hw), axis=3)


def max_pool2d(
    x: jax.Array,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
):
    """Max pooling like ``torch.nn.functional.max_pool2d``.

    Args:
      x: ``(N, H, W, C)`` or ``(H, W, C)`` floating array.
      kernel_size: window size, int or pair.
      stride: defaults to ``kernel_size``.
      padding: implicit ``-inf`` padding on both sides, at most ``kernel_size // 2``.
      dilation: spacing between window elements.
      ceil_mode: round the output size up (the last window must still start inside the input or left padding).
      return_indices: also return int32 indices of the maxima, flat positions ``h * W + w`` in the unpadded ``H*W``
        plane of each (sample, channel): PyTorch's convention, usable by :func:`max_unpool2d`.

    Returns:
      ``(N, Ho, Wo, C)`` values, and with ``return_indices`` the indices of the same shape. Ties go to the first
      maximum in row-major window order, and so does the gradient, as in PyTorch; a window holding NaN reports its
      last NaN, as PyTorch does, and sends it the gradient, except in the tiling fast path (stride == kernel_size,
      no dilation, no indices), where such a window sends no gradient.
    """
    x4, batched = _as_nhwc(x)
    kernel, stride, padding, dilation, (oh, ow) = _pool_geometry(
        x4, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d"
    )
    if stride == kernel and dilation == (1, 1) and not return_indices:
        return _restore(_max_pool_tiles(x4, kernel, padding, (oh, ow)), batched)
    values, indices = _max_pool2d(
        x4,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        out_hw=(oh, ow),
        return_indices=return_indices,
    )
    if not return_indices:
        return _restore(values, batched)
    return _restore(values, batched), _restore(indices, batched)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool_tiles(x4, kernel, padding, out_hw):
    """Max over non-overlapping (kh, kw) tiles (stride == kernel, no dilation) of the ``-inf``-padded input.

    The common case (every lab CNN pool): a pad, a reshape and a max, with a backward that gives each tile's
    gradient to its first maximum inside the input in row-major order, as PyTorch does (a tile whose input taps are
    all -inf gives it to its first input tap, PyTorch's initial choice), through elementwise ops that XLA fuses.
    Every tile holds at least one input tap: PyTorch's padding <= kernel // 2 and its ceil_mode rule ensure it.
    """
    return _tile_max(_tiled_input(x4, kernel, padding, out_hw, -jnp.inf), kernel)


def _tiled_input(x4, kernel, padding, out_hw, pad_value):
    """The padded input cut to exactly (oh * kh, ow * kw) rows and columns: tile (r, s) is [r*kh:(r+1)*kh, ...]."""
    (h, w), (kh, kw), (ph, pw), (oh, ow) = x4.shape[1:3], kernel, padding, out_hw
    extra_h, extra_w = max(oh * kh - ph - h, 0), max(ow * kw - pw - w, 0)
    if ph or pw or extra_h or extra_w:
        x4 = jnp.pad(x4, ((0, 0), (ph, extra_h), (pw, extra_w), (0, 0)), constant_values=pad_value)
    return x4[:, : oh * kh, : ow * kw]


def _tile_max(xt, kernel):
    n, h, w, c = xt.shape
    (kh, kw), oh, ow = kernel, h // kernel[0], w // kernel[1]
    return xt.reshape(n, oh, kh, ow, kw, c).max(axis=(2, 4))


def _max_pool_tiles_fwd(x4, kernel, padding, out_hw):
    y = _max_pool_tiles(x4, kernel, padding, out_hw)
    return y, (x4, y)


def _max_pool_tiles_bwd(kernel, padding, out_hw, res, g):
    x4, y = res
    (h, w), (kh, kw), (ph, pw), (oh, ow) = x4.shape[1:3], kernel, padding, out_hw
    xt = _tiled_input(x4, kernel, padding, out_hw, -jnp.inf)
    n, c = x4.shape[0], x4.shape[3]
    taken = jnp.zeros(y.shape, bool)
    parts = []
    # Window taps in PyTorch's scan order; the first input tap equal to the max takes the gradient.
    for k, tap in enumerate(_taps(xt, kernel, kernel, (1, 1), out_hw)):
        rows, cols = np.arange(oh) * kh + k // kw - ph, np.arange(ow) * kw + k % kw - pw
        first = (tap == y) & ~taken
        inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
        if not inside.all():  # a padding tap never takes the gradient (it equals the max only when it is -inf)
            first = first & inside[None, :, :, None]
        taken = taken | first
        parts.append(jnp.where(first, g, jnp.zeros_like(g)))
    dxt = jnp.stack(parts, axis=3).reshape(n, oh, ow, kh, kw, c).transpose(0, 1, 3, 2, 4, 5)
    dxt = dxt.reshape(n, oh * kh, ow * kw, c)
    # Back from the tiled frame (padded by ph, pw, then cut to oh*kh, ow*kw) to the input's.
    dxt = jnp.pad(dxt, ((0, 0), (0, max(ph + h - oh * kh, 0)), (0, max(pw + w - ow * kw, 0)), (0, 0)))
    return (dxt[:, ph : ph + h, pw : pw + w],)


_max_pool_tiles.defvjp(_max_pool_tiles_fwd, _max_pool_tiles_bwd)


def _torch_argmax(win: jax.Array, axis: int) -> jax.Array:
    """PyTorch's max-pool choice in each window: the first maximum (its scan updates on a strict '>'), or, in a
    window holding NaN, the last NaN (the scan also updates on every NaN)."""
    first_max = jnp.argmax(win, axis=axis)
    isnan = jnp.isnan(win)
    last_nan = win.shape[axis] - 1 - jnp.argmax(jnp.flip(isnan, axis), axis=axis)
    return jnp.where(isnan.any(axis=axis), last_nan, first_max)


def _first_tap(size, kernel, stride, padding, dilation, out):
    """Per output position along one axis: the first window tap inside the input (PyTorch skips the taps that fall
    in the left padding) as (tap, position). ``tap == kernel`` marks a window with no tap inside the input."""
    start = np.arange(out) * stride - padding
    tap = -(-np.maximum(-start, 0) // dilation)
    pos = start + tap * dilation
    tap = np.where((tap < kernel) & (pos < size), tap, kernel)
    return tap, pos


@functools.partial(jax.jit, static_argnames=("kernel", "stride", "padding", "dilation", "out_hw", "return_indices"))
def _max_pool2d(x4, kernel, stride, padding, dilation, out_hw, return_indices):
    h, w = x4.shape[1:3]
    win = _windows(x4, -jnp.inf, kernel, stride, padding, dilation, out_hw)
    k = _torch_argmax(win, axis=3)
    # A window whose maximum is -inf keeps PyTorch's initial choice: its first tap inside the input.
    tap_h, row_h = _first_tap(h, kernel[0], stride[0], padding[0], dilation[0], out_hw[0])
    tap_w, col_w = _first_tap(w, kernel[1], stride[1], padding[1], dilation[1], out_hw[1])
    inside = (tap_h[:, None] < kernel[0]) & (tap_w[None, :] < kernel[1])
    first = np.where(inside, tap_h[:, None] * kernel[1] + tap_w[None, :], 0)[None, :, :, None]
    win_max = jnp.max(win, axis=3)
    k = jnp.where((win_max == -jnp.inf) & inside[None, :, :, None], first, k)
    values = jnp.take_along_axis(win, k[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    if not return_indices:
        return values, None
    row0 = (np.arange(out_hw[0]) * stride[0] - padding[0])[None, :, None, None]
    col0 = (np.arange(out_hw[1]) * stride[1] - padding[1])[None, None, :, None]
    rows = row0 + (k // kernel[1]) * dilation[0]
    cols = col0 + (k % kernel[1]) * dilation[1]
    indices = rows * w + cols
    # A window entirely in the padding reports PyTorch's index for it (its first non-negative tap, even if past the
    # input); its value is -inf and no gradient flows to it.
    default = (row_h[:, None] * w + col_w[None, :])[None, :, :, None]
    indices = jnp.where(win_max == -jnp.inf, default, indices)
    return values, indices.astype(jnp.int32)


def _avg_divisor(size, kernel, stride, padding, out, count_include_pad) -> np.ndarray:
    """PyTorch's per-window divisor along one axis (the ceil_mode overhang is never counted)."""
    start = np.arange(out) * stride - padding
    end = np.minimum(start + kernel, size + padding)
    with_pad = end - start
    without_pad = np.minimum(end, size) - np.maximum(start, 0)
    return with_pad if count_include_pad else without_pad


def avg_pool2d(
    x: jax.Array,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> jax.Array:
    """Average pooling like ``torch.nn.functional.avg_pool2d``.

    Each window's sum is divided by ``divisor_override`` when given; else by the window's extent clipped to the
    padded input (``count_include_pad=True``) or to the input itself (``False``). The extra cells that ceil_mode adds
    past the right padding are never counted, exactly as in PyTorch.

    Args and shapes as :func:`max_pool2d` (there is no dilation); zero padding. Returns ``(N, Ho, Wo, C)``.
    """
    x4, batched = _as_nhwc(x)
    kernel, stride, padding, _, (oh, ow) = _pool_geometry(x4, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    if divisor_override is not None and (not _is_int(divisor_override) or divisor_override == 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a non-zero int, got {divisor_override!r}")
    y = _avg_pool2d(
        x4,
        kernel=kernel,
        stride=stride,
        padding=padding,
        out_hw=(oh, ow),
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
    )
    return _restore(y, batched)


@functools.partial(
    jax.jit, static_argnames=("kernel", "stride", "padding", "out_hw", "count_include_pad", "divisor_override")
)
def _avg_pool2d(x4, kernel, stride, padding, out_hw, count_include_pad, divisor_override):
    sums = _windows(x4, 0.0, kernel, stride, padding, (1, 1), out_hw).sum(axis=3)
    if divisor_override is not None:
        return (sums / divisor_override).astype(x4.dtype)
    dh = _avg_divisor(x4.shape[1], kernel[0], stride[0], padding[0], out_hw[0], count_include_pad)
    dw = _avg_divisor(x4.shape[2], kernel[1], stride[1], padding[1], out_hw[1], count_include_pad)
    divisor = np.outer(dh, dw).astype(np.float32)[None, :, :, None]
    return (sums / jnp.asarray(divisor, x4.dtype)).astype(x4.dtype)


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
    x4, batched = _as_nhwc(x)
    indices = jnp.asarray(indices)
    if tuple(indices.shape) != tuple(jnp.shape(x)):
        raise ValueError(
            f"max_unpool2d: indices shape {tuple(indices.shape)} does not match x shape {tuple(jnp.shape(x))}"
        )
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise TypeError(f"max_unpool2d: indices must be integers, got {indices.dtype}")
    kernel, stride, padding, _ = _window_args(kernel_size, stride, padding)
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
    return _restore(y.reshape(n, out_hw[0], out_hw[1], c), batched)


# --------------------------------------------------------------------------------------------------------------
# Padding
# --------------------------------------------------------------------------------------------------------------

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
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or not all(_is_int(p) for p in pad):
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


# --------------------------------------------------------------------------------------------------------------
# Adaptive pooling
# --------------------------------------------------------------------------------------------------------------


def _adaptive_size(output_size, hw, op) -> tuple[int, int]:
    """(oh, ow) from an int, a pair, or a pair with None (keep that input size); a bare None is PyTorch's TypeError."""
    if output_size is None:
        raise TypeError(
            f"{op}: output_size must be an int or a pair (None only for one dimension, as in PyTorch), got None"
        )
    if _is_int(output_size):
        sizes = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        sizes = tuple(output_size)
    else:
        raise TypeError(f"{op}: output_size must be an int, None or a pair of them, got {output_size!r}")
    out = []
    for size, n in zip(sizes, hw, strict=True):
        if size is None:
            size = n
        if not _is_int(size):
            raise TypeError(f"{op}: output_size must be an int, None or a pair of them, got {output_size!r}")
        if size < 0:
            raise ValueError(f"{op}: output_size must be >= 0, got {output_size!r}")
        out.append(int(size))
    return out[0], out[1]


def _adaptive_windows(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's windows along one axis: window i is [floor(i*size/out), ceil((i+1)*size/out)). Returns the
    (out, kmax) input positions (clipped) and whether each is inside its window."""
    start = (np.arange(out) * size) // out
    end = -((-(np.arange(out) + 1) * size) // out)
    kmax = int((end - start).max(initial=1))
    pos = start[:, None] + np.arange(kmax)[None, :]
    return np.minimum(pos, size - 1), pos < end[:, None]


def _adaptive_gather(x4, out_hw):
    """``(N, oh, ow, kh*kw, C)`` windows (row-major in each window) and their ``(oh, ow, kh*kw)`` validity, plus
    the flat input index h*W + w of every window element."""
    n, h, w, c = x4.shape
    ph, vh = _adaptive_windows(h, out_hw[0])
    pw, vw = _adaptive_windows(w, out_hw[1])
    win = x4[:, ph][:, :, :, pw]  # (N, oh, kh, ow, kw, C)
    kh, kw = ph.shape[1], pw.shape[1]
    win = win.transpose(0, 1, 3, 2, 4, 5).reshape(n, out_hw[0], out_hw[1], kh * kw, c)
    valid = (vh[:, None, :, None] & vw[None, :, None, :]).reshape(out_hw[0], out_hw[1], kh * kw)
    flat = (ph[:, None, :, None] * w + pw[None, :, None, :]).reshape(out_hw[0], out_hw[1], kh * kw)
    return win, valid, flat


def adaptive_avg_pool2d(x: jax.Array, output_size) -> jax.Array:
    """``torch.nn.functional.adaptive_avg_pool2d``: output ``(N, oh, ow, C)`` whose cell (i, j) averages the input
    window rows ``[floor(i*H/oh), ceil((i+1)*H/oh))`` and the same rule for columns. ``output_size`` is an int, a
    pair, or a pair with None (that axis keeps its size); it may exceed the input or be 0, as in PyTorch."""
    x4, batched = _as_nhwc(x)
    out_hw = _adaptive_size(output_size, x4.shape[1:3], "adaptive_avg_pool2d")
    if 0 in out_hw or 0 in x4.shape[1:3]:
        return _restore(jnp.zeros((x4.shape[0], *out_hw, x4.shape[3]), x4.dtype), batched)
    win, valid, _ = _adaptive_gather(x4, out_hw)
    mask = jnp.asarray(valid)[None, :, :, :, None]
    sums = jnp.where(mask, win, jnp.zeros_like(win)).sum(axis=3)
    return _restore(sums / jnp.asarray(valid.sum(axis=2), x4.dtype)[None, :, :, None], batched)


def adaptive_max_pool2d(x: jax.Array, output_size, return_indices: bool = False):
    """``torch.nn.functional.adaptive_max_pool2d``: the maximum of each of :func:`adaptive_avg_pool2d`'s windows,
    with ``return_indices`` also its flat position ``h * W + w`` (int32; the first maximum in row-major order, which
    also takes the gradient). ``output_size`` as in :func:`adaptive_avg_pool2d`; 0 gives an empty output."""
    x4, batched = _as_nhwc(x)
    out_hw = _adaptive_size(output_size, x4.shape[1:3], "adaptive_max_pool2d")
    if 0 in out_hw or 0 in x4.shape[1:3]:
        empty = jnp.zeros((x4.shape[0], *out_hw, x4.shape[3]), x4.dtype)
        return (
            (_restore(empty, batched), _restore(empty.astype(jnp.int32), batched))
            if return_indices
            else _restore(empty, batched)
        )
    win, valid, flat = _adaptive_gather(x4, out_hw)
    win = jnp.where(jnp.asarray(valid)[None, :, :, :, None], win, -jnp.inf)
    k = _torch_argmax(win, axis=3)
    values = jnp.take_along_axis(win, k[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    if not return_indices:
        return _restore(values, batched)
    idx = jnp.take_along_axis(jnp.asarray(flat)[None, :, :, :, None], k[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    return _restore(values, batched), _restore(idx.astype(jnp.int32), batched)


# --------------------------------------------------------------------------------------------------------------
# Transposed convolution
# --------------------------------------------------------------------------------------------------------------


def conv_transpose_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a transposed convolution along one axis, as PyTorch computes it:
    ``(size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1``."""
    _check_ints(
        size=size,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
    )
    return int((size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1)


def conv_transpose2d(
    x: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    groups: int = 1,
    dilation: IntPair = 1,
    *,
    output_size: Sequence[int] | None = None,
    precision: lax.PrecisionLike = None,
) -> jax.Array:
    """``torch.nn.functional.conv_transpose2d`` (the gradient of :func:`conv2d` with respect to its input).

    Args:
      x: ``(N, H, W, C)`` or ``(H, W, C)`` floating array.
      weight: ``(kh, kw, C, O // groups)``: PyTorch's ``(C, O // groups, kh, kw)`` moved to channels last
        (``jaxnn.layout.iohw_to_hwio``).
      bias: ``(O,)`` or None.
      stride, padding, dilation: as PyTorch's; ``padding`` trims that many rows/columns from each side of the full
        output, so ``Ho = conv_transpose_output_size(H, kh, sh, ph, oph, dh)``.
      output_padding: extra rows/columns at the bottom/right, each smaller than its stride or its dilation.
      output_size: ``(Ho, Wo)`` (or a full shape) instead of ``output_padding``, as ``ConvTranspose2d.forward``
        accepts it: it must lie within ``stride - 1`` above the smallest output.

    Returns:
      ``(N, Ho, Wo, O)`` (or unbatched).
    """
    x4, batched = _as_nhwc(x)
    weight = jnp.asarray(weight)
    op = "conv_transpose2d"
    check_real("conv_transpose2d", weight=weight, bias=bias)
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be (kh, kw, C, O // groups), got shape {tuple(weight.shape)}")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    kh, kw, cin, cout_g = weight.shape
    if cin != x4.shape[-1]:
        raise ValueError(
            f"{op}: input channels {x4.shape[-1]} (x shape {tuple(x4.shape)}) do not match weight "
            f"{tuple(weight.shape)}: expected weight.shape[2] == {x4.shape[-1]}"
        )
    if cin % groups:
        raise ValueError(f"{op}: groups={groups} does not divide the input channels {cin}")
    cout = cout_g * groups
    if bias is not None and tuple(jnp.shape(bias)) != (cout,):
        raise ValueError(f"{op}: bias must have shape ({cout},), got {tuple(jnp.shape(bias))}")
    kernel, stride, padding, dilation = _window_args((kh, kw), stride, padding, dilation)
    base = tuple(
        conv_transpose_output_size(x4.shape[1 + i], kernel[i], stride[i], padding[i], 0, dilation[i]) for i in range(2)
    )
    if output_size is not None:
        size = tuple(int(s) for s in output_size)[-3:-1] if len(output_size) > 2 else tuple(output_size)
        if len(size) != 2 or any(not base[i] <= size[i] < base[i] + stride[i] for i in range(2)):
            raise ValueError(
                f"{op}: output_size {tuple(output_size)} must lie in [{base}, "
                f"{tuple(base[i] + stride[i] - 1 for i in range(2))}] (x shape {tuple(x4.shape)})"
            )
        out_pad = tuple(size[i] - base[i] for i in range(2))
    else:
        out_pad = _pair(output_padding, "output_padding")
        _check_at_least(out_pad, 0, "output_padding")
        if any(out_pad[i] >= stride[i] and out_pad[i] >= dilation[i] for i in range(2)):
            raise ValueError(
                f"{op}: output_padding {out_pad} must be smaller than either stride {stride} or dilation {dilation}"
            )
    if min(base[i] + out_pad[i] for i in range(2)) < 1:
        raise ValueError(
            f"{op}: output size would be {tuple(base[i] + out_pad[i] for i in range(2))} (x shape "
            f"{tuple(x4.shape)}, kernel {kernel}, stride {stride}, padding {padding})"
        )
    # As a convolution: the input dilated by the stride, padded by dilation * (k - 1) - padding (plus the output
    # padding at the end), the kernel flipped and, per group, its in/out axes swapped.
    cin_g = cin // groups
    w = weight.reshape(kh, kw, groups, cin_g, cout_g).transpose(0, 1, 3, 2, 4).reshape(kh, kw, cin_g, cout)
    w = w[::-1, ::-1]
    pads = [
        (dilation[i] * (kernel[i] - 1) - padding[i], dilation[i] * (kernel[i] - 1) - padding[i] + out_pad[i])
        for i in range(2)
    ]
    dtype = compute_dtype(x4, w, None if bias is None else jnp.asarray(bias))
    # The stride dilates the input with zeros, written out (lax.pad's interior padding) rather than as lhs_dilation:
    # XLA's CPU compiler (jaxlib 0.10.2) aborts the process on the weight gradient of some such convolutions
    # (algebraic_simplifier: "Window dimensions do not match RHS shape"; found by the explore profile).
    x4 = lax.pad(
        x4.astype(dtype), jnp.zeros((), dtype), [(0, 0, 0), (0, 0, stride[0] - 1), (0, 0, stride[1] - 1), (0, 0, 0)]
    )
    y = lax.conv_general_dilated(
        x4,
        w.astype(dtype),
        window_strides=(1, 1),
        padding=pads,
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        precision=precision,
    )
    if bias is not None:
        y = y + jnp.asarray(bias).astype(y.dtype)
    return _restore(y, batched)


# --------------------------------------------------------------------------------------------------------------
# The 1-D family on (N, L, C): the 2-D ops on a height of 1
# --------------------------------------------------------------------------------------------------------------


def _as_2d(x, op):
    """(N, L, C) or (L, C) -> (N, 1, L, C), and whether x was batched."""
    x = jnp.asarray(x)
    if x.ndim not in (2, 3):
        raise ValueError(f"{op}: x must be (N, L, C) or (L, C), got shape {tuple(x.shape)}")
    return (x[:, None] if x.ndim == 3 else x[None, None]), x.ndim == 3


def _from_2d(y, batched):
    return y[:, 0] if batched else y[0, 0]


def _one(value, name, default=None):
    """A 1-D op's int argument (or PyTorch's one-element tuple) as an int."""
    if value is None:
        return default
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not _is_int(value):
        raise TypeError(f"{name} must be an int or a one-element tuple, got {value!r}")
    return int(value)


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
    pad = padding if isinstance(padding, str) else (0, _one(padding, "padding"))
    y = conv2d(
        x4,
        weight[None],
        bias,
        (1, _one(stride, "stride")),
        pad,
        (1, _one(dilation, "dilation")),
        groups,
        padding_mode=padding_mode,
        precision=precision,
    )
    return _from_2d(y, batched)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """``torch.nn.functional.max_pool1d`` on ``(N, L, C)``; indices are positions along L."""
    x4, batched = _as_2d(x, "max_pool1d")
    k = _one(kernel_size, "kernel_size")
    out = max_pool2d(
        x4,
        (1, k),
        (1, _one(stride, "stride", k)),
        (0, _one(padding, "padding")),
        (1, _one(dilation, "dilation")),
        ceil_mode,
        return_indices,
    )
    return tuple(_from_2d(o, batched) for o in out) if return_indices else _from_2d(out, batched)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """``torch.nn.functional.avg_pool1d`` on ``(N, L, C)``."""
    x4, batched = _as_2d(x, "avg_pool1d")
    k = _one(kernel_size, "kernel_size")
    y = avg_pool2d(
        x4, (1, k), (1, _one(stride, "stride", k)), (0, _one(padding, "padding")), ceil_mode, count_include_pad
    )
    return _from_2d(y, batched)


def adaptive_avg_pool1d(x, output_size) -> jax.Array:
    """``torch.nn.functional.adaptive_avg_pool1d`` on ``(N, L, C)``."""
    x4, batched = _as_2d(x, "adaptive_avg_pool1d")
    return _from_2d(adaptive_avg_pool2d(x4, (1, _one(output_size, "output_size"))), batched)
