"""``conv2d``, ``convolve2d`` and ``conv_transpose2d`` (``torch.nn.functional.conv2d`` and
``conv_transpose2d``) on NHWC activations and HWIO kernels."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxnn import native
from jaxnn.ops.padding import pad
from jaxnn.ops.window import (
    IntPair,
    Padding,
    as_nhwc,
    check_at_least,
    check_ints,
    check_real,
    compute_dtype,
    is_int,
    output_hw,
    pair,
    restore,
    window_args,
)


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
    ph, pw = pair(padding, "padding")
    check_at_least((ph, pw), 0, "padding")
    return (ph, ph), (pw, pw)


def _check_conv_args(x4, weight, bias, stride, padding, dilation, groups, op):
    check_real(op, weight=weight, bias=bias)
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be (kh, kw, C // groups, O), got shape {tuple(weight.shape)}")
    if not is_int(groups) or groups < 1:
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
    _, stride, _, dilation = window_args((kh, kw), stride, 0, dilation)
    pad_h, pad_w = _conv_padding(padding, (kh, kw), dilation, stride)
    # Output size from the padded extent; 'same' may pad asymmetrically, so use the sum of both sides.
    padded = (x4.shape[1] + pad_h[0] + pad_h[1], x4.shape[2] + pad_w[0] + pad_w[1])
    output_hw(op, padded, (kh, kw), stride, (0, 0), dilation, shown=(x4.shape[1:3], (pad_h, pad_w)))
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
    x4, batched = as_nhwc(x, no_channels=True)
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
        x4, pads = _pad_hw(x4, pads), ((0, 0), (0, 0))
    # Padding beyond dilation * (k - 1) is written out: the input gradient of a convolution padded by p has padding
    # dilation * (k - 1) - p, negative past that, and XLA's CPU convolution with a negative low padding reads out of
    # bounds (openxla/xla#48713).
    reach = [d * (k - 1) for k, d in zip(weight.shape[:2], dilation, strict=True)]
    if any(lo > r for (lo, _), r in zip(pads, reach, strict=True)):
        excess = [(max(lo - r, 0), max(hi - r, 0)) for (lo, hi), r in zip(pads, reach, strict=True)]
        x4 = _pad_hw(x4, excess)
        pads = tuple((lo - e_lo, hi - e_hi) for (lo, hi), (e_lo, e_hi) in zip(pads, excess, strict=True))
    y = _convolve(x4, weight, (stride, pads, dilation, groups, precision))
    if bias is not None:
        y = y + bias.astype(y.dtype)
    return restore(y, batched)


def _pad_hw(x4, widths):
    """Zeros around an NHWC array's H and W axes, ``widths`` a (low, high) pair per axis."""
    return lax.pad(x4, jnp.zeros((), x4.dtype), ((0, 0, 0), *((lo, hi, 0) for lo, hi in widths), (0, 0, 0)))


# XLA's CPU convolution computes a weight gradient at lab 10's shapes on one thread: the same time on one core as on
# two (32x32x32 to 32 channels, batch 128: 15 ms either way). Written as the sum over four slices of the batch, the
# four independent convolutions run side by side: a ResNet-18 step 15% faster on 2 cores (benchmarks/RESULTS.md).
WEIGHT_GRAD_PARTS = 4
WEIGHT_GRAD_MIN_BATCH = 64  # slices of at least 16 images; smaller batches keep one convolution


def weight_grad_parts(batch: int) -> int:
    """How many slices of the batch :func:`conv2d`'s weight gradient sums over: :data:`WEIGHT_GRAD_PARTS` on the
    CPU backend for a batch of at least :data:`WEIGHT_GRAD_MIN_BATCH`, else 1 (one convolution). The slices differ
    only in the order of the sum's terms: the gradient agrees with one convolution's to float32 rounding."""
    cpu = jax.default_backend() == "cpu"
    return WEIGHT_GRAD_PARTS if cpu and batch >= WEIGHT_GRAD_MIN_BATCH else 1


def _lax_conv(x, weight, config):
    stride, pads, dilation, groups, precision = config
    return lax.conv_general_dilated(
        x,
        weight,
        window_strides=stride,
        padding=pads,
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        precision=precision,
    )


def _convolve(x, weight, config):
    """The convolution: jaxnn's native oneDNN kernels where :func:`jaxnn.runtime.use_native_kernels` has them on
    (float32 on the CPU), else XLA's (:func:`_xla_convolve`)."""
    if native.takes(x, weight):
        return _native_convolve(x, weight, config)
    return _xla_convolve(x, weight, config)


def _ffi(target, shape, config, *operands):
    stride, pads, dilation, groups, _ = config
    (top, bottom), (left, right) = pads
    attributes = dict(sh=stride[0], sw=stride[1], pt=top, pb=bottom, pl=left, pr=right)
    attributes.update(dh=dilation[0], dw=dilation[1], groups=groups)
    (y,) = native.call(target, [shape], *operands, **attributes)
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _native_convolve(x, weight, config):
    shape = jax.eval_shape(functools.partial(_lax_conv, config=config), x, weight).shape
    return _ffi("JaxnnConvForward", shape, config, x, weight)


def _native_forward(x, weight, config):
    return _native_convolve(x, weight, config), (x, weight)


def _native_backward(config, residuals, dy):
    x, weight = residuals
    dx = _ffi("JaxnnConvBackwardData", x.shape, config, dy, weight)
    return dx, _ffi("JaxnnConvBackwardWeights", weight.shape, config, x, dy)


_native_convolve.defvjp(_native_forward, _native_backward)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _xla_convolve(x, weight, config):
    """XLA's convolution, with its weight tangent taken slice by slice of the batch (:func:`weight_grad_parts`
    slices): the transpose of that tangent, the weight gradient, is then a sum of independent convolutions. Forward
    mode and higher derivatives work as for ``lax.conv_general_dilated``."""
    return _lax_conv(x, weight, config)


def _convolve_jvp(config, primals, tangents):
    x, weight = primals
    dx, dweight = tangents
    parts = []
    if not isinstance(dx, jax.custom_derivatives.SymbolicZero):
        parts.append(_lax_conv(dx, weight, config))
    if not isinstance(dweight, jax.custom_derivatives.SymbolicZero):
        ys = [_lax_conv(xs, dweight, config) for xs in jnp.array_split(x, weight_grad_parts(x.shape[0]))]
        parts.append(ys[0] if len(ys) == 1 else jnp.concatenate(ys, axis=0))
    y = _lax_conv(x, weight, config)
    if not parts:
        return y, jnp.zeros_like(y)
    return y, parts[0] if len(parts) == 1 else parts[0] + parts[1]


_xla_convolve.defjvp(_convolve_jvp, symbolic_zeros=True)


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


def conv_transpose_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, output_padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a transposed convolution along one axis, as PyTorch computes it:
    ``(size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1``."""
    check_ints(
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
    x4, batched = as_nhwc(x)
    weight = jnp.asarray(weight)
    op = "conv_transpose2d"
    check_real("conv_transpose2d", weight=weight, bias=bias)
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be (kh, kw, C, O // groups), got shape {tuple(weight.shape)}")
    if not is_int(groups) or groups < 1:
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
    kernel, stride, padding, dilation = window_args((kh, kw), stride, padding, dilation)
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
        out_pad = pair(output_padding, "output_padding")
        check_at_least(out_pad, 0, "output_padding")
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
    # A negative padding (padding > dilation * (k - 1)) crops: with a stride-1 convolution, cropping its output's
    # first rows is cropping its input's. The crop goes to lax.pad, never to the convolution: XLA's CPU float32
    # convolution is wrong with a negative low padding (openxla/xla#48713), and so was this op's weight gradient.
    # The stride dilates the input with zeros, written out (lax.pad's interior padding) rather than as lhs_dilation:
    # XLA's CPU compiler (jaxlib 0.10.2) aborts the process on the weight gradient of some such convolutions
    # (algebraic_simplifier: "Window dimensions do not match RHS shape"; found by the explore profile).
    crop = [(min(lo, 0), min(hi, 0)) for lo, hi in pads]
    x4 = lax.pad(
        x4.astype(dtype),
        jnp.zeros((), dtype),
        [(0, 0, 0), (*crop[0], stride[0] - 1), (*crop[1], stride[1] - 1), (0, 0, 0)],
    )
    y = lax.conv_general_dilated(
        x4,
        w.astype(dtype),
        window_strides=(1, 1),
        padding=[(max(lo, 0), max(hi, 0)) for lo, hi in pads],
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
        precision=precision,
    )
    if bias is not None:
        y = y + jnp.asarray(bias).astype(y.dtype)
    return restore(y, batched)
