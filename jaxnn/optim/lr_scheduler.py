"""``torch.optim.lr_scheduler`` as optax schedules: each function returns ``schedule(k)``, the rate after ``k`` calls
of PyTorch's ``scheduler.step()`` (its ``last_epoch``), the closed form of PyTorch's recursion. Give one to an
optimizer as its ``lr``: the optimizer evaluates it at its step count, so by default the scheduler steps once per
optimizer step (per batch). :func:`per_epoch` makes it step once per epoch.

``ReduceLROnPlateau`` depends on a metric, not on the step: it is a small host-side object whose ``step(metric)``
returns the next rate, which :func:`jaxnn.optim.set_lr` hands to the optimizer state.

Example (``StepLR(opt, 30, 0.1)`` stepped after each epoch)::

    tx = optim.sgd(lr_scheduler.per_epoch(lr_scheduler.step_lr(0.1, step_size=30), steps_per_epoch), momentum=0.9)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnn import checks

__all__ = [
    "per_epoch",
    "step_lr",
    "multi_step_lr",
    "exponential_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "linear_lr",
    "OneCycle",
    "one_cycle_lr",
    "sequential_lr",
    "ReduceLROnPlateau",
]

Schedule = Callable[[Any], jax.Array]


def _float(k):
    return jnp.asarray(k).astype(float)


def per_epoch(schedule: Schedule, steps_per_epoch: int) -> Schedule:
    """``schedule`` stepped once per epoch of ``steps_per_epoch`` optimizer steps (``scheduler.step()`` after each
    epoch): optimizer step ``n`` trains at ``schedule(n // steps_per_epoch)``."""
    checks.positive_int(steps_per_epoch, "steps_per_epoch")
    return lambda count: schedule(jnp.asarray(count) // steps_per_epoch)


def step_lr(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """``StepLR``: ``lr * gamma ** (k // step_size)``."""
    checks.finite(lr, "lr", strict=False)
    checks.positive_int(step_size, "step_size")
    checks.finite(gamma, "gamma", strict=False)
    return lambda k: lr * gamma ** _float(jnp.asarray(k) // step_size)


def multi_step_lr(lr: float, milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
    """``MultiStepLR``: ``lr * gamma ** (number of milestones <= k)``; a milestone given twice counts twice, as in
    PyTorch's ``Counter``."""
    checks.finite(lr, "lr", strict=False)
    checks.finite(gamma, "gamma", strict=False)
    points = sorted(checks.integer(m, "milestones[i]") for m in milestones)
    if not points:
        return lambda k: jnp.full([], lr, float)
    table = jnp.asarray(points)
    return lambda k: lr * gamma ** _float(jnp.searchsorted(table, jnp.asarray(k), side="right"))


def exponential_lr(lr: float, gamma: float) -> Schedule:
    """``ExponentialLR``: ``lr * gamma ** k``."""
    checks.finite(lr, "lr", strict=False)
    checks.finite(gamma, "gamma", strict=False)
    return lambda k: lr * gamma ** _float(k)


def cosine_annealing_lr(lr: float, T_max: int, eta_min: float = 0.0) -> Schedule:  # noqa: N803 (PyTorch's name)
    """``CosineAnnealingLR``: ``eta_min + (lr - eta_min) * (1 + cos(pi * k / T_max)) / 2``; past ``T_max`` it
    rises again, as PyTorch's does (it is not clamped)."""
    checks.finite(lr, "lr", strict=False)
    checks.positive_int(T_max, "T_max")
    checks.finite(eta_min, "eta_min", strict=False)
    return lambda k: eta_min + (lr - eta_min) * (1 + jnp.cos(math.pi * _float(k) / T_max)) / 2


def cosine_annealing_warm_restarts(lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0) -> Schedule:  # noqa: N803
    """``CosineAnnealingWarmRestarts``: a cosine from ``lr`` to ``eta_min`` over ``T_i`` steps, restarted with
    ``T_i`` multiplied by ``T_mult`` after each cycle (``T_0`` first)."""
    checks.finite(lr, "lr", strict=False)
    checks.positive_int(T_0, "T_0")
    checks.positive_int(T_mult, "T_mult")
    checks.finite(eta_min, "eta_min", strict=False)
    ceiling = 2**30  # a cycle longer than any int32 step count

    def cycle(k):
        k = jnp.asarray(k)
        if T_mult == 1:
            return k % T_0, jnp.asarray(T_0)

        def longer(carry):
            start, length = carry
            grown = jnp.where(length > ceiling // T_mult, ceiling, length * T_mult)
            return start + length, grown

        start, length = jax.lax.while_loop(
            lambda c: c[0] + c[1] <= k, longer, (jnp.zeros_like(k), jnp.full_like(k, T_0))
        )
        return k - start, length

    def schedule(k):
        t_cur, t_i = cycle(k)
        return eta_min + (lr - eta_min) * (1 + jnp.cos(math.pi * _float(t_cur) / _float(t_i))) / 2

    return schedule


def linear_lr(lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5) -> Schedule:
    """``LinearLR``: the factor goes linearly from ``start_factor`` to ``end_factor`` over ``total_iters`` steps,
    then stays."""
    checks.finite(lr, "lr", strict=False)
    checks.finite(start_factor, "start_factor", maximum=1.0)
    checks.finite(end_factor, "end_factor", strict=False, maximum=1.0)
    checks.positive_int(total_iters, "total_iters")
    slope = end_factor - start_factor
    return lambda k: lr * (start_factor + slope * _float(jnp.minimum(total_iters, jnp.asarray(k))) / total_iters)


class OneCycle(NamedTuple):
    """:func:`one_cycle_lr`'s schedules: ``lr`` for the optimizer's ``lr``, ``momentum`` (None without
    ``cycle_momentum``) for SGD's and RMSprop's ``momentum`` or the first of Adam's ``betas``."""

    lr: Schedule
    momentum: Schedule | None


def one_cycle_lr(
    max_lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> OneCycle:
    """``OneCycleLR`` (stepped per batch): the rate rises from ``max_lr / div_factor`` to ``max_lr`` over
    ``pct_start`` of ``total_steps`` (or ``epochs * steps_per_epoch``) and anneals to ``initial / final_div_factor``,
    while the momentum moves the other way between ``max_momentum`` and ``base_momentum``.

    PyTorch sets the momentum (or ``beta1``) of the optimizer itself; here the returned ``momentum`` schedule is
    given to the optimizer::

        cycle = lr_scheduler.one_cycle_lr(0.1, total_steps=1000)
        tx = optim.adam(cycle.lr, betas=(cycle.momentum, 0.999))

    PyTorch raises after ``total_steps`` steps; this schedule goes on along its last phase's curve."""
    checks.finite(max_lr, "max_lr", strict=False)
    if total_steps is not None:
        total = checks.positive_int(total_steps, "total_steps")
    elif epochs is not None and steps_per_epoch is not None:
        total = checks.positive_int(epochs, "epochs") * checks.positive_int(steps_per_epoch, "steps_per_epoch")
    else:
        raise ValueError("one_cycle_lr needs total_steps, or epochs and steps_per_epoch")
    checks.finite(pct_start, "pct_start", strict=False, maximum=1.0)
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    for name, value in (("base_momentum", base_momentum), ("max_momentum", max_momentum)):
        checks.finite(value, name, strict=False)
    checks.finite(div_factor, "div_factor")
    checks.finite(final_div_factor, "final_div_factor")
    initial = max_lr / div_factor
    levels = {"initial": initial, "max": max_lr, "min": initial / final_div_factor}
    moms = {"initial": max_momentum, "max": base_momentum, "min": max_momentum}
    if three_phase:
        phases = [
            (float(pct_start * total) - 1, "initial", "max"),
            (float(2 * pct_start * total) - 2, "max", "initial"),
            (total - 1, "initial", "min"),
        ]
    else:
        phases = [(float(pct_start * total) - 1, "initial", "max"), (total - 1, "max", "min")]

    def anneal(start, end, pct):
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (jnp.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    # PyTorch takes the first phase with k <= its end (else the last), starting where the one before ended.
    spans = list(zip(phases, [0.0] + [p[0] for p in phases[:-1]], strict=True))

    def curve(values):
        def schedule(k):
            k = _float(k)
            out = None
            for (end_step, start, end), start_step in reversed(spans):
                value = anneal(values[start], values[end], (k - start_step) / (end_step - start_step))
                out = value if out is None else jnp.where(k <= end_step, value, out)
            return out

        return schedule

    return OneCycle(curve(levels), curve(moms) if cycle_momentum else None)


def sequential_lr(schedulers: Sequence[Schedule], milestones: Sequence[int]) -> Schedule:
    """``SequentialLR``: ``schedulers[i]`` (schedules) from ``milestones[i - 1]`` on, counted from 0 at its
    milestone (build each from the same base ``lr``, as PyTorch's share the optimizer's)."""
    if len(schedulers) < 1:
        raise ValueError("sequential_lr needs at least one schedule")
    if len(milestones) != len(schedulers) - 1:
        raise ValueError(
            f"sequential_lr needs one milestone fewer than schedules, got {len(schedulers)} schedules and "
            f"{len(milestones)} milestones"
        )
    bounds = [checks.integer(m, "milestones[i]") for m in milestones]
    return optax.join_schedules(list(schedulers), bounds)


class ReduceLROnPlateau:
    """``ReduceLROnPlateau`` on the host: ``step(metric)`` after each evaluation returns the rate, cut by
    ``factor`` once the metric has not improved for more than ``patience`` evaluations (then ``cooldown`` ones are
    ignored), never below ``min_lr``, and only by more than ``eps``. Hand the rate to the optimizer::

        plateau = lr_scheduler.ReduceLROnPlateau(0.1, patience=2)
        ...
        opt_state = optim.set_lr(opt_state, plateau.step(val_loss))

    Its state is a dict of numbers (``state_dict``/``load_state_dict``), for a checkpoint. For several parameter
    groups, use one per group.
    """

    def __init__(
        self,
        lr: float,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ):
        checks.finite(lr, "lr", strict=False)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        checks.finite(factor, "factor", strict=False)
        if factor >= 1.0:
            raise ValueError(f"factor must be < 1, got {factor!r}")
        self.mode, self.factor, self.threshold, self.threshold_mode = mode, factor, threshold, threshold_mode
        self.patience = checks.integer(patience, "patience")
        self.cooldown = checks.integer(cooldown, "cooldown")
        self.min_lr = checks.finite(min_lr, "min_lr", strict=False)
        self.eps = checks.finite(eps, "eps", strict=False)
        self.lr = float(lr)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _is_better(self, current: float) -> bool:
        if self.mode == "min":
            bound = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return current < bound
        bound = self.best * (self.threshold + 1) if self.threshold_mode == "rel" else self.best + self.threshold
        return current > bound

    def step(self, metrics) -> float:
        """One evaluation's metric; returns the rate for the next steps."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(self.lr * self.factor, self.min_lr)
            if self.lr - new_lr > self.eps:
                self.lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.lr

    def state_dict(self) -> dict[str, float | int]:
        keys = ("lr", "best", "num_bad_epochs", "cooldown_counter", "last_epoch")
        return {key: getattr(self, key) for key in keys}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
