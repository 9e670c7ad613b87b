"""PyTorch's losses (``torch.nn.functional``), with their options and reductions, as pure functions.

Values and gradients equal PyTorch's: the same formulas, the same weighting of the mean (a class-weighted mean
divides by the targets' weights, not by the count), the same clamping. One deliberate difference, as everywhere in
jaxnn: the class axis of ``cross_entropy`` and ``nll_loss`` is the last one (``(N, C)``, or ``(N, d1, ..., C)``
for PyTorch's ``(N, C, d1, ...)``), the channels-last layout of jaxnn's models.

    logits = model.apply(variables, images)                  # (N, C)
    loss = ops.cross_entropy(logits, labels, label_smoothing=0.1)

``reduction`` is ``'mean'`` (the default), ``'sum'`` or ``'none'`` (the per-element losses); ``kl_div`` also takes
``'batchmean'``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

REDUCTIONS = ("none", "mean", "sum")

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
]


def _reduction(reduction: str, name: str, choices=REDUCTIONS) -> str:
    if reduction not in choices:
        raise ValueError(f"{name}: reduction must be one of {list(choices)}, got {reduction!r}")
    return reduction


def _reduce(loss: jax.Array, reduction: str) -> jax.Array:
    return loss if reduction == "none" else jnp.sum(loss) if reduction == "sum" else jnp.mean(loss)


def _same_shape(input, target, name: str):
    input, target = jnp.asarray(input), jnp.asarray(target)
    if input.shape != target.shape:
        raise ValueError(f"{name}: input and target must have the same shape, got {input.shape} and {target.shape}")
    if not jnp.issubdtype(input.dtype, jnp.floating):
        raise TypeError(f"{name}: input must be floating point, got {input.dtype}")
    return input, target.astype(input.dtype)


def _weight(weight, classes: int, dtype, name: str):
    if weight is None:
        return jnp.ones((classes,), dtype)
    weight = jnp.asarray(weight, dtype)
    if weight.shape != (classes,):
        raise ValueError(f"{name}: weight must have shape ({classes},), one per class, got {weight.shape}")
    return weight


def _class_targets(input, target, ignore_index: int, name: str):
    """``(input, target)`` checked: input ``(*batch, C)`` floating, target ``(*batch)`` integers in ``[0, C)`` or
    ``ignore_index`` (checked where the target is concrete, as PyTorch checks it)."""
    input, target = jnp.asarray(input), jnp.asarray(target)
    if input.ndim < 1 or not jnp.issubdtype(input.dtype, jnp.floating):
        raise TypeError(f"{name}: input must be floating point (*batch, C), got {input.dtype} {input.shape}")
    if target.shape != input.shape[:-1]:
        raise ValueError(
            f"{name}: target must have the input's shape without its class axis, {input.shape[:-1]}, got "
            f"{target.shape} (the class axis is the last one: (N, C), or (N, d1, ..., C))"
        )
    if not isinstance(target, jax.core.Tracer):
        t = np.asarray(target)
        bad = (t != ignore_index) & ((t < 0) | (t >= input.shape[-1]))
        if bad.any():
            raise ValueError(
                f"{name}: target must hold class indices in [0, {input.shape[-1]}) or ignore_index {ignore_index}, "
                f"got {t[bad].ravel()[0]}"
            )
    return input, target


def _picked(log_p, target, weight, ignore_index: int):
    """``-weight[y] * log_p[..., y]`` per element (0 where ``y`` is ``ignore_index``), those weights and the counted
    elements: what nll_loss and cross_entropy share."""
    counted = target != ignore_index
    y = jnp.where(counted, target, 0)
    wy = jnp.where(counted, weight[y], 0)
    return -jnp.take_along_axis(log_p, y[..., None], axis=-1)[..., 0] * wy, wy, counted


def _reduce_by_weights(loss, wy, reduction: str):
    """PyTorch's reduction of a class-weighted loss: the mean divides by the counted targets' weights."""
    return jnp.sum(loss) / jnp.sum(wy) if reduction == "mean" else _reduce(loss, reduction)


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> jax.Array:
    """``F.nll_loss``: ``-weight[y] * input[..., y]`` for log-probabilities ``input`` ``(*batch, C)`` and class
    indices ``target`` ``(*batch)``; targets equal to ``ignore_index`` count for nothing. The mean divides by the
    sum of the counted targets' weights."""
    _reduction(reduction, "nll_loss")
    input, target = _class_targets(input, target, ignore_index, "nll_loss")
    w = _weight(weight, input.shape[-1], input.dtype, "nll_loss")
    loss, wy, _ = _picked(input, target, w, ignore_index)
    return _reduce_by_weights(loss, wy, reduction)


def cross_entropy(
    input,
    target,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> jax.Array:
    """``F.cross_entropy`` on logits ``input`` ``(*batch, C)`` (the class axis last).

    ``target`` is either class indices ``(*batch)`` (``ignore_index`` ones count for nothing; the mean divides by
    the counted targets' weights) or class probabilities ``(*batch, C)`` (floating; the mean divides by the number
    of rows). ``label_smoothing`` mixes the target with the uniform distribution over the ``C`` classes, as PyTorch
    does (for indices: ``(1 - e) * nll + e / C * sum_c -weight[c] * log p_c``).
    """
    _reduction(reduction, "cross_entropy")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    input = jnp.asarray(input)
    target = jnp.asarray(target)
    classes = input.shape[-1] if input.ndim else 0
    if jnp.issubdtype(target.dtype, jnp.floating):  # class probabilities
        input, target = _same_shape(input, target, "cross_entropy")
        w = _weight(weight, classes, input.dtype, "cross_entropy")
        target = target * (1.0 - label_smoothing) + label_smoothing / classes
        loss = -jnp.sum(jax.nn.log_softmax(input, axis=-1) * w * target, axis=-1)
        return _reduce(loss, reduction)
    input, target = _class_targets(input, target, ignore_index, "cross_entropy")
    w = _weight(weight, classes, input.dtype, "cross_entropy")
    log_p = jax.nn.log_softmax(input, axis=-1)
    loss, wy, counted = _picked(log_p, target, w, ignore_index)
    if label_smoothing:
        smooth = jnp.where(counted, -jnp.sum(log_p * w, axis=-1), 0)
        loss = (1.0 - label_smoothing) * loss + label_smoothing / classes * smooth
    return _reduce_by_weights(loss, wy, reduction)


def _weighted(loss, weight, reduction: str, name: str, weighted_mean: bool = True):
    """``loss * weight`` (``weight`` of the input's shape), reduced as PyTorch reduces it: the mse and l1 losses'
    mean is weighted (``sum(w * l) / sum(w)``), the Huber loss's is the plain mean (``weighted_mean=False``)."""
    if weight is None:
        return _reduce(loss, reduction)
    weight = jnp.asarray(weight, loss.dtype)
    if weight.shape != loss.shape:
        raise ValueError(f"{name}: weight must have the input's shape {loss.shape}, got {weight.shape}")
    if reduction == "mean" and weighted_mean:
        return jnp.sum(loss * weight) / jnp.sum(weight)
    return _reduce(loss * weight, reduction)


def mse_loss(input, target, reduction: str = "mean", weight=None) -> jax.Array:
    """``F.mse_loss``: ``(input - target) ** 2``; with ``weight`` (the input's shape) the mean is weighted."""
    _reduction(reduction, "mse_loss")
    input, target = _same_shape(input, target, "mse_loss")
    return _weighted(jnp.square(input - target), weight, reduction, "mse_loss")


def l1_loss(input, target, reduction: str = "mean", weight=None) -> jax.Array:
    """``F.l1_loss``: ``|input - target|``; with ``weight`` (the input's shape) the mean is weighted."""
    _reduction(reduction, "l1_loss")
    input, target = _same_shape(input, target, "l1_loss")
    return _weighted(jnp.abs(input - target), weight, reduction, "l1_loss")


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0) -> jax.Array:
    """``F.smooth_l1_loss``: ``0.5 * d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 * beta`` (``beta=0``:
    the L1 loss)."""
    _reduction(reduction, "smooth_l1_loss")
    if float(beta) < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta!r}")
    input, target = _same_shape(input, target, "smooth_l1_loss")
    d = jnp.abs(input - target)
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(jnp.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None) -> jax.Array:
    """``F.huber_loss``: ``0.5 * d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 * delta)``; ``weight``
    (the input's shape) multiplies each element's loss, and the mean stays the plain mean, as PyTorch's."""
    _reduction(reduction, "huber_loss")
    if float(delta) <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta!r}")
    input, target = _same_shape(input, target, "huber_loss")
    d = jnp.abs(input - target)
    loss = jnp.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    return _weighted(loss, weight, reduction, "huber_loss", weighted_mean=False)


_EPSILON = float(np.float32(1e-12))  # PyTorch's, a float32 constant also in float64 arithmetic


@jax.custom_jvp
def _bce(x, t):
    """``-(t log x + (1 - t) log(1 - x))`` with each log clamped at -100, as PyTorch computes it."""
    return -(t * jnp.maximum(jnp.log(x), -100.0) + (1 - t) * jnp.maximum(jnp.log1p(-x), -100.0))


@_bce.defjvp
def _bce_jvp(primals, tangents):
    # PyTorch's backward: (x - t) / max(x (1 - x), 1e-12) for the input (finite, and large, at x = 0 or 1, where
    # the clamped logs are flat), and the difference of the clamped logs for the target.
    x, t = primals
    dx, dt = tangents
    log_x, log_1mx = jnp.maximum(jnp.log(x), -100.0), jnp.maximum(jnp.log1p(-x), -100.0)
    grad_x = (x - t) / jnp.maximum(x * (1 - x), _EPSILON)
    return _bce(x, t), grad_x * dx + (log_1mx - log_x) * dt


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean") -> jax.Array:
    """``F.binary_cross_entropy`` on probabilities ``input``: ``-weight * (t log x + (1 - t) log(1 - x))``, each
    log clamped at -100 as PyTorch clamps it (so a probability of exactly 0 or 1 gives a finite loss), and
    PyTorch's gradient there too."""
    _reduction(reduction, "binary_cross_entropy")
    input, target = _same_shape(input, target, "binary_cross_entropy")
    loss = _bce(input, target)
    if weight is not None:
        loss = loss * jnp.asarray(weight, input.dtype)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean", pos_weight=None) -> jax.Array:
    """``F.binary_cross_entropy_with_logits``: ``-weight * (pos_weight * t log s(x) + (1 - t) log(1 - s(x)))``
    with ``s`` the sigmoid, computed from ``log_sigmoid`` so that large logits stay finite. ``pos_weight``
    broadcasts against the last axis (one per class), ``weight`` against the input."""
    _reduction(reduction, "binary_cross_entropy_with_logits")
    input, target = _same_shape(input, target, "binary_cross_entropy_with_logits")
    positive = jax.nn.log_sigmoid(input) * target
    if pos_weight is not None:
        positive = positive * jnp.asarray(pos_weight, input.dtype)
    loss = -(positive + (1 - target) * jax.nn.log_sigmoid(-input))
    if weight is not None:
        loss = loss * jnp.asarray(weight, input.dtype)
    return _reduce(loss, reduction)


def kl_div(input, target, reduction: str = "mean", log_target: bool = False) -> jax.Array:
    """``F.kl_div``: ``target * (log target - input)`` for log-probabilities ``input`` (0 where the target is 0);
    with ``log_target`` the target is a log-probability too: ``exp(target) * (target - input)``. ``'batchmean'``
    divides the sum by the batch size (the first axis), which is the KL divergence PyTorch recommends; ``'mean'``
    is the mean over every element, as in PyTorch."""
    _reduction(reduction, "kl_div", (*REDUCTIONS, "batchmean"))
    input, target = _same_shape(input, target, "kl_div")
    if log_target:
        loss = jnp.exp(target) * (target - input)
    else:
        loss = jax.scipy.special.xlogy(target, target) - target * input
    if reduction == "batchmean":
        return jnp.sum(loss) / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)
