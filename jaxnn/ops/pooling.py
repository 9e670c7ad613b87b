"""Max and average pooling, plain and adaptive (``torch.nn.functional.max_pool2d``, ``avg_pool2d``,
``adaptive_avg_pool2d``, ``adaptive_max_pool2d``): values, indices and gradients as PyTorch's."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.ops.window import (
    IntPair,
    as_nhwc,
    is_int,
    output_hw,
    restore,
    taps,
    window_args,
)


def _pool_geometry(x4, kernel_size, stride, padding, dilation, ceil_mode, op):
    kernel, stride, padding, dilation = window_args(kernel_size, stride, padding, dilation)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{op}: padding {padding} must be at most half of kernel_size {kernel} "
            f"(PyTorch's rule: padding <= kernel_size // 2)"
        )
    out = output_hw(op, x4.shape[1:3], kernel, stride, padding, dilation, ceil_mode)
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
    return jnp.stack(taps(xp, kernel, stride, dilation, out_hw), axis=3)


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
    x4, batched = as_nhwc(x)
    kernel, stride, padding, dilation, (oh, ow) = _pool_geometry(
        x4, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d"
    )
    if stride == kernel and dilation == (1, 1) and not return_indices:
        return restore(_max_pool_tiles(x4, kernel, padding, (oh, ow)), batched)
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
        return restore(values, batched)
    return restore(values, batched), restore(indices, batched)


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
    for k, tap in enumerate(taps(xt, kernel, kernel, (1, 1), out_hw)):
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
    x4, batched = as_nhwc(x)
    kernel, stride, padding, _, (oh, ow) = _pool_geometry(x4, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    if divisor_override is not None and (not is_int(divisor_override) or divisor_override == 0):
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
    return restore(y, batched)


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


def _adaptive_size(output_size, hw, op) -> tuple[int, int]:
    """(oh, ow) from an int, a pair, or a pair with None (keep that input size); a bare None is PyTorch's TypeError."""
    if output_size is None:
        raise TypeError(
            f"{op}: output_size must be an int or a pair (None only for one dimension, as in PyTorch), got None"
        )
    if is_int(output_size):
        sizes = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        sizes = tuple(output_size)
    else:
        raise TypeError(f"{op}: output_size must be an int, None or a pair of them, got {output_size!r}")
    out = []
    for size, n in zip(sizes, hw, strict=True):
        if size is None:
            size = n
        if not is_int(size):
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
    with jax.named_scope("adaptive_avg_pool2d"):  # one step of its module in jaxnn.testing's comparisons
        return _adaptive_avg_pool2d(x, output_size)


def _adaptive_avg_pool2d(x: jax.Array, output_size) -> jax.Array:
    x4, batched = as_nhwc(x)
    out_hw = _adaptive_size(output_size, x4.shape[1:3], "adaptive_avg_pool2d")
    if 0 in out_hw or 0 in x4.shape[1:3]:
        return restore(jnp.zeros((x4.shape[0], *out_hw, x4.shape[3]), x4.dtype), batched)
    win, valid, _ = _adaptive_gather(x4, out_hw)
    mask = jnp.asarray(valid)[None, :, :, :, None]
    sums = jnp.where(mask, win, jnp.zeros_like(win)).sum(axis=3)
    return restore(sums / jnp.asarray(valid.sum(axis=2), x4.dtype)[None, :, :, None], batched)


def adaptive_max_pool2d(x: jax.Array, output_size, return_indices: bool = False):
    """``torch.nn.functional.adaptive_max_pool2d``: the maximum of each of :func:`adaptive_avg_pool2d`'s windows,
    with ``return_indices`` also its flat position ``h * W + w`` (int32; the first maximum in row-major order, which
    also takes the gradient). ``output_size`` as in :func:`adaptive_avg_pool2d`; 0 gives an empty output."""
    x4, batched = as_nhwc(x)
    out_hw = _adaptive_size(output_size, x4.shape[1:3], "adaptive_max_pool2d")
    if 0 in out_hw or 0 in x4.shape[1:3]:
        empty = jnp.zeros((x4.shape[0], *out_hw, x4.shape[3]), x4.dtype)
        return (
            (restore(empty, batched), restore(empty.astype(jnp.int32), batched))
            if return_indices
            else restore(empty, batched)
        )
    win, valid, flat = _adaptive_gather(x4, out_hw)
    win = jnp.where(jnp.asarray(valid)[None, :, :, :, None], win, -jnp.inf)
    k = _torch_argmax(win, axis=3)
    values = jnp.take_along_axis(win, k[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    if not return_indices:
        return restore(values, batched)
    idx = jnp.take_along_axis(jnp.asarray(flat)[None, :, :, :, None], k[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    return restore(values, batched), restore(idx.astype(jnp.int32), batched)
