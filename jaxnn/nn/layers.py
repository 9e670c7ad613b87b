"""Flax Linen layers over :mod:`jaxnn.ops`, initialised as PyTorch initialises its layers.

PyTorch's default for ``Conv2d`` and ``Linear`` is ``kaiming_uniform_(a=sqrt(5))`` on the weight, which is
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, and the same bound on the bias.

Arguments carry PyTorch's names and defaults (``out_channels``, ``out_features``, ``bias=True``), with one deliberate
difference: there is no ``in_channels``/``in_features``, since Flax infers them from the first input. Parameters
are named ``kernel`` (HWIO, or (in, out)) and ``bias``: the kernel's layout is not PyTorch's ``weight``, and
:mod:`jaxnn.interop.torch` converts between the two.

``precision`` is that of the layer's products (``lax.Precision`` or ``'highest'``/``'high'``/``'default'``), as
Flax's layers take it: None (the default) follows :mod:`jaxnn.precision`, the one switch for every model.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.lax import PrecisionLike

from jaxnn import native, ops
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


def _conv_params(module: nn.Module, window: tuple[int, ...], x) -> tuple[jax.Array, jax.Array | None]:
    """A convolution layer's kernel ``(*window, C // groups, out_channels)`` and bias, with PyTorch's default
    initialisation ``U(+-1/sqrt(fan_in))``, ``fan_in = C // groups * prod(window)``."""
    channels = jnp.shape(x)[-1]
    if channels % module.groups:
        raise ValueError(
            f"{type(module).__name__}: groups={module.groups} does not divide the input channels "
            f"{channels} (x shape {tuple(jnp.shape(x))})"
        )
    fan_in = channels // module.groups * math.prod(window)
    init = torch_uniform(fan_in)
    kernel = module.param(
        "kernel", module.kernel_init or init, (*window, channels // module.groups, module.out_channels)
    )
    bias = module.param("bias", module.bias_init or init, (module.out_channels,)) if module.bias else None
    return kernel, bias


class Conv2d(nn.Module):
    """``torch.nn.Conv2d`` on NHWC input: kernel ``(kh, kw, C // groups, out_channels)``, bias ``(out_channels,)``.

    Example::

      conv = Conv2d(32, 3, padding=1)                       # torch.nn.Conv2d(1, 32, 3, padding=1)
      params = conv.init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))
    """

    out_channels: int
    kernel_size: IntPair
    stride: IntPair = 1
    padding: Padding = 0
    dilation: IntPair = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"
    precision: PrecisionLike = None
    kernel_init: Initializer | None = None
    bias_init: Initializer | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: (N, H, W, C) or (H, W, C) float -> (N, Ho, Wo, out_channels)."""
        (kh, kw), _, _, _ = ops.window.window_args(self.kernel_size, 1, 0)
        kernel, bias = _conv_params(self, (kh, kw), x)
        return ops.conv2d(
            x,
            kernel,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            padding_mode=self.padding_mode,
            precision=self.precision,
        )


class Linear(nn.Module):
    """``torch.nn.Linear``: kernel ``(in, out_features)``, bias ``(out_features,)``, PyTorch's initialisation.

    Example::

      fc = Linear(10)                                       # torch.nn.Linear(3136, 10)
      params = fc.init(jax.random.key(0), jnp.ones((1, 3136)))
    """

    out_features: int
    bias: bool = True
    precision: PrecisionLike = None
    kernel_init: Initializer | None = None
    bias_init: Initializer | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: (..., in) float -> (..., out_features)."""
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"Linear: x must be floating, got {jnp.result_type(x)} (shape {tuple(jnp.shape(x))})")
        fan_in = jnp.shape(x)[-1]
        kernel = self.param("kernel", self.kernel_init or torch_uniform(fan_in), (fan_in, self.out_features))
        bias = self.param("bias", self.bias_init or torch_uniform(fan_in), (self.out_features,)) if self.bias else None
        ops.check_real("Linear", kernel=kernel, bias=bias)
        dtype = ops.compute_dtype(x, kernel)
        x, kernel = x.astype(dtype), kernel.astype(dtype)
        if native.takes(x, kernel):
            y = _native_dense(x.reshape(-1, fan_in), kernel).reshape(*x.shape[:-1], self.out_features)
        else:
            y = jnp.dot(x, kernel, precision=self.precision)
        if bias is not None:
            y = y + bias.astype(y.dtype)
        return y


@jax.custom_vjp
def _native_dense(x, kernel):
    """``x @ kernel`` (XLA's product) whose gradients, ``dy @ kernel.T`` and ``x.T @ dy``, are oneDNN's sgemm
    (:func:`jaxnn.native.matmul`): VGG-BN's training step, 64 rows through a 4096-wide classifier, is 8% faster
    (benchmarks/RESULTS.md). First-order reverse mode only, as every native kernel."""
    return jnp.dot(x, kernel)


def _native_dense_forward(x, kernel):
    return jnp.dot(x, kernel), (x, kernel)


def _native_dense_backward(residuals, dy):
    x, kernel = residuals
    return native.matmul(dy, kernel, transpose_b=True), native.matmul(x, dy, transpose_a=True)


_native_dense.defvjp(_native_dense_forward, _native_dense_backward)


class MaxPool2d(nn.Module):
    """``torch.nn.MaxPool2d`` on NHWC input (see :func:`jaxnn.ops.max_pool2d`)."""

    kernel_size: IntPair
    stride: IntPair | None = None
    padding: IntPair = 0
    dilation: IntPair = 1
    return_indices: bool = False
    ceil_mode: bool = False

    def __call__(self, x: jax.Array):
        return ops.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, self.return_indices
        )


class AvgPool2d(nn.Module):
    """``torch.nn.AvgPool2d`` on NHWC input (see :func:`jaxnn.ops.avg_pool2d`)."""

    kernel_size: IntPair
    stride: IntPair | None = None
    padding: IntPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    def __call__(self, x: jax.Array) -> jax.Array:
        return ops.avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class ConvTranspose2d(nn.Module):
    """``torch.nn.ConvTranspose2d`` on NHWC input: kernel ``(kh, kw, C, out_channels // groups)`` (PyTorch's
    ``(C, out_channels // groups, kh, kw)`` channels last), bias ``(out_channels,)``, PyTorch's initialisation
    (its fan-in of a transposed kernel is ``out_channels // groups * kh * kw``). ``__call__(x, output_size=None)``."""

    out_channels: int
    kernel_size: IntPair
    stride: IntPair = 1
    padding: IntPair = 0
    output_padding: IntPair = 0
    groups: int = 1
    bias: bool = True
    dilation: IntPair = 1
    padding_mode: str = "zeros"
    precision: PrecisionLike = None
    kernel_init: Initializer | None = None
    bias_init: Initializer | None = None

    @nn.compact
    def __call__(self, x: jax.Array, output_size=None) -> jax.Array:
        if self.padding_mode != "zeros":
            raise ValueError(
                f"ConvTranspose2d: only padding_mode='zeros' is supported (as in PyTorch), got {self.padding_mode!r}"
            )
        (kh, kw), _, _, _ = ops.window.window_args(self.kernel_size, 1, 0)
        if not isinstance(self.groups, int) or self.groups < 1 or self.out_channels % self.groups:
            raise ValueError(f"ConvTranspose2d: groups={self.groups} must divide out_channels {self.out_channels}")
        channels = jnp.shape(x)[-1]
        fan_in = self.out_channels // self.groups * kh * kw
        kernel = self.param(
            "kernel", self.kernel_init or torch_uniform(fan_in), (kh, kw, channels, self.out_channels // self.groups)
        )
        bias = self.param("bias", self.bias_init or torch_uniform(fan_in), (self.out_channels,)) if self.bias else None
        return ops.conv_transpose2d(
            x,
            kernel,
            bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
            output_size=output_size,
            precision=self.precision,
        )


class Conv1d(nn.Module):
    """``torch.nn.Conv1d`` on ``(N, L, C)``: kernel ``(k, C // groups, out_channels)``, bias ``(out_channels,)``."""

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int | str = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"
    precision: PrecisionLike = None
    kernel_init: Initializer | None = None
    bias_init: Initializer | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = ops.window.single(self.kernel_size, "kernel_size")
        kernel, bias = _conv_params(self, (k,), x)
        return ops.conv1d(
            x,
            kernel,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            padding_mode=self.padding_mode,
            precision=self.precision,
        )


class AdaptiveAvgPool2d(nn.Module):
    """``torch.nn.AdaptiveAvgPool2d`` on NHWC input (see :func:`jaxnn.ops.adaptive_avg_pool2d`)."""

    output_size: int | None | tuple

    def __call__(self, x: jax.Array) -> jax.Array:
        return ops.adaptive_avg_pool2d(x, self.output_size)


class AdaptiveMaxPool2d(nn.Module):
    """``torch.nn.AdaptiveMaxPool2d`` on NHWC input (see :func:`jaxnn.ops.adaptive_max_pool2d`)."""

    output_size: int | None | tuple
    return_indices: bool = False

    def __call__(self, x: jax.Array):
        return ops.adaptive_max_pool2d(x, self.output_size, self.return_indices)


def _given_mask(module: nn.Module, shape: tuple[int, ...]) -> jax.Array | None:
    """A dropout module's factor from the ``'dropout_masks'`` collection (PyTorch's mask, drawn on the host by
    :mod:`jaxnn.random.run`), checked against the shape it multiplies; None when the collection has none."""
    if not module.has_variable("dropout_masks", "mask"):
        return None
    mask = module.get_variable("dropout_masks", "mask")
    if jnp.shape(mask) != shape:
        raise ValueError(
            f"{type(module).__name__} {'/'.join(module.path)}: the given mask has shape {tuple(jnp.shape(mask))}, "
            f"the input needs {shape}"
        )
    return mask


class Dropout(nn.Module):
    """``torch.nn.Dropout``: zeroes each value with probability ``p`` when ``deterministic`` is False, scaling the
    rest by ``1 / (1 - p)``.

    The masks are JAX's (rng ``'dropout'``, as ``flax.linen.Dropout`` draws them), or PyTorch's: when the variables
    hold a ``'dropout_masks'`` collection with this module's ``mask`` (``jaxnn.random.dropout_mask``, the factor
    ``F.dropout`` multiplies by), the output is ``x * mask``, as PyTorch computes it."""

    p: float = 0.5
    inplace: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {self.p!r}")
        if deterministic or self.p == 0.0:
            return x
        mask = _given_mask(self, jnp.shape(x))
        if mask is not None:
            return x * mask.astype(x.dtype)
        if self.p == 1.0:
            return jnp.zeros_like(x)
        keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.p, jnp.shape(x))
        return jax.lax.select(keep, x / (1.0 - self.p), jnp.zeros_like(x))


class Dropout2d(nn.Module):
    """``torch.nn.Dropout2d``: zeroes whole channels with probability ``p`` when ``deterministic`` is False (rng
    ``'dropout'``), scaling the rest by ``1 / (1 - p)``; one draw per (sample, channel) of an ``(N, H, W, C)``
    input. A 3-D input is ``(N, L, C)``, dropped per (sample, channel): PyTorch 2.13 reads its 3-D input as
    ``(N, C, L)`` the same way (and warns that a later version may read it as an unbatched image); jaxnn follows
    2.13, channels last. The masks are JAX's, or PyTorch's as for :class:`Dropout` (there one value per sample
    and channel, ``(N, C)``)."""

    p: float = 0.5
    inplace: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"Dropout2d: p must be in [0, 1], got {self.p!r}")
        x = jnp.asarray(x)
        if x.ndim not in (3, 4):
            raise ValueError(f"Dropout2d: x must be (N, H, W, C) or (N, L, C), got shape {tuple(x.shape)}")
        if deterministic or self.p == 0.0:
            return x
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        mask = _given_mask(self, (x.shape[0], x.shape[-1]))
        if mask is not None:
            return x * mask.astype(x.dtype).reshape(shape)
        if self.p == 1.0:
            return jnp.zeros_like(x)
        keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.p, shape)
        return jnp.where(keep, x / (1.0 - self.p), jnp.zeros_like(x))


__all__ = [
    "Conv2d",
    "ConvTranspose2d",
    "Conv1d",
    "Linear",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "Dropout",
    "Dropout2d",
    "torch_uniform",
    "xavier_uniform",
]
