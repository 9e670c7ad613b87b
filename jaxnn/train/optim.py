"""Optimizers and schedules with PyTorch's semantics, as optax transformations.

``adam`` is ``torch.optim.Adam``; ``sgd`` is ``torch.optim.SGD`` (PyTorch's momentum buffer and weight decay);
``step_lr`` is ``torch.optim.lr_scheduler.StepLR`` stepped once per epoch. The same arguments return the same
object (``functools.cache``), so a step jitted for one train state serves the next one without compiling again.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnn import checks

__all__ = ["adam", "sgd", "step_lr"]


@functools.cache
def adam(learning_rate: float = 1e-3, decay_steps: int | None = None) -> optax.GradientTransformation:
    """``torch.optim.Adam(lr=learning_rate)``: optax's defaults (b1 0.9, b2 0.999, eps 1e-8) are PyTorch's.

    With ``decay_steps`` the rate decays from ``learning_rate`` to 0 along a cosine over that many steps (optax's
    ``cosine_decay_schedule``). The same arguments return the same transformation object, so a jitted step compiled
    for one train state serves the next one built with it (another seed, say) without compiling again.

    The rate is a constant of the compiled program, not a value in the optimizer state
    (``optax.inject_hyperparams``), because that changes the float32 rounding of the step: the longseq lab's
    chaotic run (Adam at 0.1) then no longer ends on PyTorch's sentence. Another rate compiles a new program.
    """
    checks.finite(learning_rate, "learning_rate")
    if decay_steps is None:
        return optax.adam(learning_rate)
    if not isinstance(decay_steps, int) or decay_steps < 1:
        raise ValueError(f"decay_steps must be a positive int or None, got {decay_steps!r}")
    return optax.adam(optax.cosine_decay_schedule(learning_rate, decay_steps))


def _check_rate(learning_rate) -> None:
    if callable(learning_rate):
        return
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0 or an optax schedule, got {learning_rate!r}")


@functools.cache
def step_lr(learning_rate: float, step_size: int, steps_per_epoch: int, gamma: float = 0.1) -> optax.Schedule:
    """``torch.optim.lr_scheduler.StepLR(step_size, gamma)`` stepped once per epoch, as a per-step optax schedule:
    epoch ``e`` trains at ``learning_rate * gamma ** (e // step_size)``.

    (The labs call ``lr_sche.step()`` at the start of each epoch, which since PyTorch 1.1 shifts the schedule one
    epoch earlier and warns; this is the documented order, ``scheduler.step()`` after the epoch.)
    """
    _check_rate(learning_rate)
    checks.positive_int(step_size, "step_size")
    checks.positive_int(steps_per_epoch, "steps_per_epoch")
    checks.finite(gamma, "gamma")
    return optax.exponential_decay(learning_rate, step_size * steps_per_epoch, gamma, staircase=True)


@functools.cache
def sgd(
    learning_rate: float | optax.Schedule = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.SGD``: the decay is added to the gradient (``g + weight_decay * p``) before the momentum
    buffer ``b = momentum * b + (1 - dampening) * g`` (the first step's buffer is ``g`` itself), and ``p -= lr * b``
    (``p -= lr * (g + momentum * b)`` with ``nesterov``). ``learning_rate`` may be a schedule (:func:`step_lr`).

    Example::

      tx = train.sgd(train.step_lr(0.1, 10, steps_per_epoch, gamma=0.5), momentum=0.9, weight_decay=5e-4)
    """
    _check_rate(learning_rate)
    for name, value in (("momentum", momentum), ("dampening", dampening), ("weight_decay", weight_decay)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("nesterov needs momentum > 0 and dampening 0 (as in PyTorch)")
    parts = []
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay))
    if momentum:
        parts.append(_torch_momentum(momentum, dampening, nesterov))
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*parts)


class _MomentumState(NamedTuple):
    buffer: Any
    started: jax.Array


def _torch_momentum(momentum: float, dampening: float, nesterov: bool) -> optax.GradientTransformation:
    """PyTorch's momentum buffer: ``b = g`` on the first step, ``momentum * b + (1 - dampening) * g`` after."""

    def init(params):
        return _MomentumState(jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.bool_))

    def update(updates, state, params=None):
        del params
        buffer = jax.tree.map(
            lambda b, g: jnp.where(state.started, momentum * b + (1 - dampening) * g, g), state.buffer, updates
        )
        out = jax.tree.map(lambda g, b: g + momentum * b, updates, buffer) if nesterov else buffer
        return out, _MomentumState(buffer, jnp.ones((), jnp.bool_))

    return optax.GradientTransformation(init, update)
