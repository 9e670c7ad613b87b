"""``torch.nn.BatchNorm1d`` / ``BatchNorm2d`` with PyTorch's running statistics, on channel-last input.

In training (``deterministic=False``) a batch is normalised with its biased variance, and the running statistics
are updated as PyTorch updates them: ``running = (1 - momentum) * running + momentum * batch_statistic``, with the
*unbiased* batch variance for ``running_var``, and ``num_batches_tracked`` counted; ``momentum=None`` makes the
update a cumulative average (factor ``1 / num_batches_tracked``). In evaluation (``deterministic=True``, the
default) the running statistics normalise. Flax's ``nn.BatchNorm`` differs on purpose: momentum 0.99 in the decay
form and the biased variance in its running average.

Parameters ``weight`` (ones) and ``bias`` (zeros, unless ``bias=False``) when ``affine``; the statistics
``running_mean``, ``running_var`` and ``num_batches_tracked`` live in the ``batch_stats`` collection (when
``track_running_stats``): the names of PyTorch's state_dict. Apply in training with ``mutable=['batch_stats']``;
:func:`jaxnn.train.train_step` does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnn import ops


class _BatchNorm(nn.Module):
    num_features: int
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True
    bias: bool = True  # with affine: a learned shift too (PyTorch 2.13's keyword-only argument)
    weight_init: Callable | None = None  # of ``weight`` (default ones); zeros for ResNet's zero_init_residual

    ranks = ()  # the input ranks a subclass accepts (a class attribute, not an argument)

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        name = type(self).__name__
        x = jnp.asarray(x)
        if x.ndim not in self.ranks:
            raise ValueError(f"{name}: x must be {self._shapes()}, got shape {tuple(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{name}: x must be floating, got {x.dtype}")
        if x.shape[-1] != self.num_features:
            raise ValueError(
                f"{name}: x has {x.shape[-1]} channels (last axis, shape {tuple(x.shape)}), but "
                f"num_features is {self.num_features}"
            )
        if self.momentum is not None and not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {self.momentum!r}")
        c = self.num_features
        axes = tuple(range(x.ndim - 1))
        stats_dtype = jnp.promote_types(x.dtype, jnp.float32)  # float32 buffers, as PyTorch's (float64 under x64)
        if self.track_running_stats:
            mean_var = self.variable("batch_stats", "running_mean", jnp.zeros, (c,), stats_dtype)
            var_var = self.variable("batch_stats", "running_var", jnp.ones, (c,), stats_dtype)
            count = self.variable("batch_stats", "num_batches_tracked", lambda: jnp.zeros((), jnp.int32))
        weight = bias = None
        if self.affine:
            weight = self.param("weight", self.weight_init or nn.initializers.ones, (c,))
            if self.bias:
                bias = self.param("bias", nn.initializers.zeros, (c,))
        x = x.astype(ops.compute_dtype(x, weight, bias))
        use_batch = not deterministic or not self.track_running_stats
        if use_batch:
            n = math.prod(x.shape[:-1])
            if n == 1:  # batch statistics of one value: PyTorch's rule, also in eval without running statistics
                raise ValueError(
                    f"{name}: expected more than 1 value per channel when using batch statistics (training, or "
                    f"track_running_stats=False), got input shape {tuple(x.shape)} (PyTorch refuses it too)"
                )
            if n == 0:  # an empty batch, as PyTorch takes it: nothing to normalise, the statistics stay, one more batch
                if not deterministic and self.track_running_stats and not self.is_initializing():
                    count.value = count.value + 1
                return x
            if not deterministic and self.track_running_stats and not self.is_initializing():
                mean, var = _moments(jax.lax.stop_gradient(x), axes)
                factor = 1.0 / (count.value + 1) if self.momentum is None else self.momentum
                unbiased = _unbiased(var, n)
                mean_var.value = (1 - factor) * mean_var.value + factor * mean.astype(stats_dtype)
                var_var.value = (1 - factor) * var_var.value + factor * unbiased.astype(stats_dtype)
                count.value = count.value + 1
            ones, zeros = jnp.ones((c,), x.dtype), jnp.zeros((c,), x.dtype)
            weight = ones if weight is None else weight.astype(x.dtype)
            return _batch_normalize(x, weight, zeros if bias is None else bias.astype(x.dtype), self.eps, axes)
        mean, var = mean_var.value.astype(x.dtype), var_var.value.astype(x.dtype)
        return _normalize(x, mean, var, weight, bias, self.eps)

    def _shapes(self) -> str:
        return " or ".join({2: "(N, C)", 3: "(N, L, C)", 4: "(N, H, W, C)"}[r] for r in self.ranks)


def _moments(x, axes):
    mean = jnp.mean(x, axis=axes)
    return mean, jnp.mean(jnp.square(x - mean), axis=axes)  # biased, to normalise


def _normalize(x, mean, var, weight, bias, eps):
    """One multiply-add per element, as PyTorch's CPU kernel computes it: ``y = x * alpha + beta`` with
    ``alpha = weight / sqrt(var + eps)`` and ``beta = bias - mean * alpha``."""
    alpha = jax.lax.rsqrt(var + eps)
    if weight is not None:
        alpha = alpha * weight.astype(x.dtype)
    shift = -mean * alpha if bias is None else bias.astype(x.dtype) - mean * alpha
    return x * alpha + shift


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _batch_normalize(x, weight, bias, eps, axes):
    """Training-mode BatchNorm, ``x`` normalised by its own statistics over ``axes``, with its derivative written
    out: ``w * invstd * (dx - mean(dx) - xhat * mean(xhat * dx)) + dw * xhat + db``. JAX transposes it into
    PyTorch's closed-form backward, ``(dy - mean(dy) - xhat * mean(xhat * dy)) * invstd * w``. Autodiff through the
    mean and variance instead adds terms that cancel: with 2 values per channel, 48 of 240 draws of
    tests/test_batchnorm.py's float32 comparison failed the tolerance model with autodiff, none with this rule. A
    JVP rule, so forward mode and higher derivatives still work."""
    mean, var = _moments(x, axes)
    return _normalize(x, mean, var, weight, bias, eps)


@_batch_normalize.defjvp
def _batch_normalize_jvp(eps, axes, primals, tangents):
    x, weight, bias = primals
    dx, dweight, dbias = tangents
    mean, var = _moments(x, axes)
    invstd = jax.lax.rsqrt(var + eps)
    xhat = (x - mean) * invstd
    # scaled first, so that the transpose scales last, as PyTorch's backward does
    v = dx * (invstd * weight)
    dy = v - jnp.mean(v, axis=axes) - xhat * jnp.mean(xhat * v, axis=axes) + xhat * dweight + dbias
    return _normalize(x, mean, var, weight, bias, eps), dy


def _unbiased(var, n):
    """The running variance averages the *unbiased* batch variance (PyTorch's rule); the batch is normalised with
    the biased one."""
    return var * (n / (n - 1))


class BatchNorm1d(_BatchNorm):
    """``torch.nn.BatchNorm1d`` on ``(N, C)`` or ``(N, L, C)`` (channels last; PyTorch's ``(N, C, L)``).

    Example::

      bn = BatchNorm1d(16)
      variables = bn.init(jax.random.key(0), jnp.ones((8, 16)))
      y, updates = bn.apply(variables, x, deterministic=False, mutable=["batch_stats"])
    """

    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """``torch.nn.BatchNorm2d`` on ``(N, H, W, C)`` (channels last; PyTorch's ``(N, C, H, W)``)."""

    ranks = (4,)


__all__ = ["BatchNorm1d", "BatchNorm2d"]
