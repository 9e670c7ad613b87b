"""Converters between PyTorch's layouts (NCHW activations, OIHW kernels) and JAX's (NHWC, HWIO).

They work on NumPy or JAX arrays (anything with ``.transpose``) and never import torch: pass ``tensor.numpy()``.
"""

from __future__ import annotations


def _check(a, ndims: tuple[int, ...], name: str, layout: str):
    if a.ndim not in ndims:
        raise ValueError(f"{name} must be {layout}, got shape {tuple(a.shape)}")


def nchw_to_nhwc(x):
    """(N, C, H, W) -> (N, H, W, C); an unbatched (C, H, W) -> (H, W, C)."""
    _check(x, (3, 4), "x", "(N, C, H, W) or (C, H, W)")
    return x.transpose(0, 2, 3, 1) if x.ndim == 4 else x.transpose(1, 2, 0)


def nhwc_to_nchw(x):
    """(N, H, W, C) -> (N, C, H, W); an unbatched (H, W, C) -> (C, H, W)."""
    _check(x, (3, 4), "x", "(N, H, W, C) or (H, W, C)")
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x.transpose(2, 0, 1)


def oihw_to_hwio(w):
    """PyTorch conv weight (O, I, kh, kw) -> JAX kernel (kh, kw, I, O)."""
    _check(w, (4,), "weight", "(O, I, kh, kw)")
    return w.transpose(2, 3, 1, 0)


def hwio_to_oihw(w):
    """JAX kernel (kh, kw, I, O) -> PyTorch conv weight (O, I, kh, kw)."""
    _check(w, (4,), "kernel", "(kh, kw, I, O)")
    return w.transpose(3, 2, 0, 1)


def iohw_to_hwio(w):
    """PyTorch transposed-conv weight (I, O // groups, kh, kw) -> jaxnn's kernel (kh, kw, I, O // groups)."""
    _check(w, (4,), "weight", "(I, O // groups, kh, kw)")
    return w.transpose(2, 3, 0, 1)


def hwio_to_iohw(w):
    """jaxnn's conv_transpose2d kernel (kh, kw, I, O // groups) -> PyTorch's transposed-conv weight."""
    _check(w, (4,), "kernel", "(kh, kw, I, O // groups)")
    return w.transpose(2, 3, 0, 1)


def oik_to_kio(w):
    """PyTorch conv1d weight (O, I, k) -> jaxnn's conv1d kernel (k, I, O)."""
    _check(w, (3,), "weight", "(O, I, k)")
    return w.transpose(2, 1, 0)


def kio_to_oik(w):
    """jaxnn's conv1d kernel (k, I, O) -> PyTorch's conv1d weight (O, I, k)."""
    _check(w, (3,), "kernel", "(k, I, O)")
    return w.transpose(2, 1, 0)


def linear_to_dense(w):
    """PyTorch Linear weight (out, in) -> Flax Dense kernel (in, out)."""
    _check(w, (2,), "weight", "(out, in)")
    return w.transpose(1, 0)


def dense_to_linear(k):
    """Flax Dense kernel (in, out) -> PyTorch Linear weight (out, in)."""
    _check(k, (2,), "kernel", "(in, out)")
    return k.transpose(1, 0)


def chw_flatten_to_hwc(w, c: int, h: int, wd: int):
    """Reorder the input rows of a Dense kernel that follows a flatten, from PyTorch's (C, H, W) order to NHWC's.

    ``w``: Dense kernel (C*H*W, out) whose rows index a flattened NCHW feature map. Returns (H*W*C, out) whose rows
    index the flattened NHWC map, so ``flatten_nhwc(x) @ result == flatten_nchw(x) @ w``.
    """
    out = w.shape[-1]
    if w.shape[0] != c * h * wd:
        raise ValueError(f"kernel rows {w.shape[0]} != C*H*W = {c}*{h}*{wd}")
    return w.reshape(c, h, wd, out).transpose(1, 2, 0, 3).reshape(h * wd * c, out)


def hwc_flatten_to_chw(w, c: int, h: int, wd: int):
    """Inverse of :func:`chw_flatten_to_hwc`: rows in NHWC flatten order -> rows in NCHW flatten order."""
    out = w.shape[-1]
    if w.shape[0] != c * h * wd:
        raise ValueError(f"kernel rows {w.shape[0]} != C*H*W = {c}*{h}*{wd}")
    return w.reshape(h, wd, c, out).transpose(2, 0, 1, 3).reshape(c * h * wd, out)


__all__ = [
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "oihw_to_hwio",
    "hwio_to_oihw",
    "linear_to_dense",
    "dense_to_linear",
    "chw_flatten_to_hwc",
    "hwc_flatten_to_chw",
]
