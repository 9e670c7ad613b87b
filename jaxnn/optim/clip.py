"""``torch.nn.utils.clip_grad_norm_`` and ``clip_grad_value_``: as functions of the gradients (PyTorch's clip them
in place), and as optax transformations to chain before an optimizer (where PyTorch's training loop calls them,
between ``backward()`` and ``step()``).

Example::

    grads, total_norm = optim.clip_grad_norm(grads, max_norm=1.0)
    tx = optax.chain(optim.clip_by_norm(1.0), optim.adam(1e-3))   # the same, inside the optimizer
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from jaxnn import checks

__all__ = ["total_norm", "clip_grad_norm", "clip_grad_value", "clip_by_norm", "clip_by_value"]


def _check_norm_type(norm_type) -> float:
    ok = isinstance(norm_type, (int, float)) and not isinstance(norm_type, bool)
    if not ok or math.isnan(norm_type):
        raise ValueError(f"norm_type must be a number (the p of a p-norm, inf allowed), got {norm_type!r}")
    return float(norm_type)


def total_norm(grads, norm_type: float = 2.0) -> jax.Array:
    """The norm of the per-tensor norms, PyTorch's ``total_norm`` (the largest ``|g|`` for ``inf``)."""
    leaves = jax.tree.leaves(grads)
    if not leaves:
        return jnp.zeros([])
    norms = jnp.stack([jnp.linalg.norm(g.ravel(), ord=norm_type) for g in leaves])
    return jnp.linalg.norm(norms, ord=norm_type)


def _raise_nonfinite(norm, norm_type):
    if not math.isfinite(float(norm)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )


def clip_grad_norm(grads, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False):
    """``torch.nn.utils.clip_grad_norm_``: ``(grads * min(max_norm / (total_norm + 1e-6), 1), total_norm)``.

    Every gradient is multiplied, by 1 where the norm is within ``max_norm`` (as PyTorch does). With
    ``error_if_nonfinite`` a NaN or infinite total norm raises PyTorch's RuntimeError: at once where the gradients are
    concrete, and when the jitted program runs where they are traced (through ``jax.debug.callback``).

    Args:
      grads: a tree of gradient arrays.
      max_norm: the largest total norm left unscaled.
      norm_type: the ``p`` of the p-norm, ``inf`` for the largest element.
    Returns:
      ``(clipped grads, total_norm)``, the norm before clipping.
    """
    checks.finite(max_norm, "max_norm", strict=False)
    norm_type = _check_norm_type(norm_type)
    norm = total_norm(grads, norm_type)
    if error_if_nonfinite:
        if isinstance(norm, jax.core.Tracer):
            jax.debug.callback(_raise_nonfinite, norm, norm_type)
        else:
            _raise_nonfinite(norm, norm_type)
    coef = jnp.minimum(max_norm / (norm + 1e-6), 1.0)
    return jax.tree.map(lambda g: g * coef.astype(g.dtype), grads), norm


def clip_grad_value(grads, clip_value: float):
    """``torch.nn.utils.clip_grad_value_``: every gradient element clamped to ``[-clip_value, clip_value]``."""
    checks.finite(clip_value, "clip_value", strict=False)
    return jax.tree.map(lambda g: jnp.clip(g, -clip_value, clip_value), grads)


def clip_by_norm(max_norm: float, norm_type: float = 2.0) -> optax.GradientTransformation:
    """:func:`clip_grad_norm` as a stateless optax transformation (optax's ``clip_by_global_norm`` divides by the
    norm without PyTorch's ``1e-6`` and only where it exceeds ``max_norm``)."""
    checks.finite(max_norm, "max_norm", strict=False)
    norm_type = _check_norm_type(norm_type)

    def update(updates, state, params=None):
        del params
        return clip_grad_norm(updates, max_norm, norm_type)[0], state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def clip_by_value(clip_value: float) -> optax.GradientTransformation:
    """:func:`clip_grad_value` as a stateless optax transformation."""
    checks.finite(clip_value, "clip_value", strict=False)

    def update(updates, state, params=None):
        del params
        return clip_grad_value(updates, clip_value), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
