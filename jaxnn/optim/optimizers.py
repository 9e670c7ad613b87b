"""``torch.optim``'s optimizers as optax transformations, each update in PyTorch's order (its single-tensor CPU
path): ``sgd``, ``adam``, ``adamw``, ``rmsprop``, ``adagrad``, ``adadelta``, ``nadam``, ``radam``.

Each takes PyTorch's arguments and defaults, without ``params`` (an optax transformation is built without them) and
without PyTorch's implementation switches (``foreach``, ``fused``, ``capturable``, ``differentiable``). ``lr`` may
be a number or a schedule of the step count (:mod:`jaxnn.optim.lr_scheduler`); so may ``momentum`` and the first of
``betas``, which is how ``OneCycleLR`` cycles them.

The state is PyTorch's: ``step`` (steps taken) and ``state``, PyTorch's per-parameter tensors under their names in
``optimizer.state_dict()`` (``exp_avg``, ``exp_avg_sq``, ``momentum_buffer``, ...), each a tree like the params.
``update`` needs ``params``: PyTorch's update reads them (weight decay, and the new value is computed from the old).
The update returned is ``new_params - params``; adding it back (``optax.apply_updates``) gives PyTorch's new value.

There is no ``zero_grad``: the gradients passed to ``update`` are this step's, not accumulated ones.

Example::

    tx = optim.adamw(optim.lr_scheduler.cosine_annealing_lr(1e-3, T_max=100), weight_decay=0.05)
    opt_state = tx.init(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnn import checks

__all__ = ["TorchOptState", "set_lr", "sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "nadam", "radam"]

Hyper = float | Callable[[jax.Array], Any]  # a number, or a schedule of the number of steps taken


class TorchOptState(NamedTuple):
    """``step``: steps taken (PyTorch's ``state["step"]``); ``lr``: the rate of the last step (PyTorch's
    ``param_group["lr"]``; for a number, that of the next step too); ``state``: PyTorch's per-parameter tensors
    by their names."""

    step: jax.Array
    lr: jax.Array
    state: dict[str, Any]


def _at(value: Hyper, count: jax.Array):
    return value(count) if callable(value) else value


def _check(value, name: str, maximum: float | None = None, below: float | None = None, schedule: bool = False):
    """A hyperparameter: a finite number >= 0 (``<= maximum``, ``< below``), or a schedule where ``schedule``."""
    if schedule and callable(value):
        return
    checks.finite(value, name, 0.0, strict=False, maximum=maximum)
    if below is not None and not value < below:
        raise ValueError(f"{name} must be a finite number < {below:g}, got {value!r}")


def _check_betas(betas) -> None:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    _check(betas[0], "betas[0]", below=1.0, schedule=True)
    _check(betas[1], "betas[1]", below=1.0)


def _one_minus_power(beta, step):
    """``1 - beta ** step`` without float32's cancellation: ``-expm1(step * log(beta))`` (``log`` in double where
    ``beta`` is a number, as PyTorch computes it)."""
    log_beta = math.log(beta) if isinstance(beta, (int, float)) else jnp.log(beta)
    return -jnp.expm1(step * log_beta)


def _lerp(start, end, weight):
    """``torch.lerp``: ``start + weight * (end - start)`` for weight < 0.5, ``end - (end - start) * (1 - weight)``
    from there on (so that the result is exact at both ends)."""
    if isinstance(weight, (int, float)):
        return start + weight * (end - start) if weight < 0.5 else end - (end - start) * (1 - weight)
    return jnp.where(weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight))


def _transformation(name: str, lr: Hyper, slots: dict[str, Callable], rule: Callable) -> optax.GradientTransformation:
    """An optax transformation from PyTorch's per-parameter ``rule(lr, step, count, p, g, **slots) -> (new_p,
    slots)``, where ``step`` is PyTorch's step (1 on the first update, as ``p.dtype``) and ``count`` the steps taken
    before it. The rate is ``lr(count)`` for a schedule, else the state's ``lr`` (which :func:`set_lr` changes)."""

    def init(params):
        state = {key: jax.tree.map(make, params) for key, make in slots.items()}
        rate = lr(jnp.zeros([], jnp.int32)) if callable(lr) else lr
        return TorchOptState(jnp.zeros([], jnp.int32), jnp.asarray(rate, float), state)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(
                f"{name}: update needs params (PyTorch's update reads them): tx.update(grads, state, params)"
            )
        leaves, treedef = jax.tree.flatten(params)
        grads = treedef.flatten_up_to(updates)
        old = {key: treedef.flatten_up_to(tree) for key, tree in state.state.items()}
        count = state.step
        rate = jnp.asarray(lr(count) if callable(lr) else state.lr, state.lr.dtype)
        out, new = [], {key: [] for key in slots}
        for i, (p, g) in enumerate(zip(leaves, grads, strict=True)):
            step = (count + 1).astype(p.dtype)
            slot_values = {key: old[key][i] for key in slots}
            new_p, new_slots = rule(rate.astype(p.dtype), step, count, p, g.astype(p.dtype), **slot_values)
            out.append((new_p - p).astype(p.dtype))
            for key in slots:
                new[key].append(new_slots[key].astype(slot_values[key].dtype))
        new_state = {key: treedef.unflatten(values) for key, values in new.items()}
        return treedef.unflatten(out), TorchOptState(count + 1, rate, new_state)

    return optax.GradientTransformation(init, update)


def set_lr(opt_state, lr: float):
    """``param_group["lr"] = lr`` for every jaxnn optimizer in ``opt_state`` (inside ``optax.chain`` or
    ``optim.param_groups`` too): the rate of the next steps, for an optimizer built with a number as ``lr`` (a
    schedule sets its own each step). This is how :class:`~jaxnn.optim.lr_scheduler.ReduceLROnPlateau` reaches
    the optimizer; the jitted step does not compile again."""
    checks.finite(lr, "lr", strict=False)

    def replace(node):
        if isinstance(node, TorchOptState):
            return node._replace(lr=jnp.asarray(lr, node.lr.dtype))
        return node

    return jax.tree.map(replace, opt_state, is_leaf=lambda node: isinstance(node, TorchOptState))


def _decay(p, g, lr, weight_decay: float, decoupled: bool):
    """PyTorch's weight decay: L2 added to the gradient, or (decoupled) the parameter shrunk by ``lr * wd`` first."""
    if not weight_decay:
        return p, g
    if decoupled:
        return p * (1 - lr * weight_decay), g
    return p, g + weight_decay * p


def sgd(
    lr: Hyper = 1e-3,
    momentum: Hyper = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.SGD``: ``g + weight_decay * p``, then the momentum buffer ``b = momentum * b + (1 - dampening)
    * g`` (the first step's buffer is ``g`` itself), then ``p -= lr * b`` (``lr * (g + momentum * b)`` with
    ``nesterov``). State: ``momentum_buffer`` (zeros before the first step)."""
    _check(lr, "lr", schedule=True)
    _check(momentum, "momentum", schedule=True)
    _check(dampening, "dampening")
    _check(weight_decay, "weight_decay")
    if nesterov and (dampening != 0 or (not callable(momentum) and momentum <= 0)):
        raise ValueError("nesterov needs momentum > 0 and dampening 0 (as in PyTorch)")
    use_momentum = callable(momentum) or momentum != 0

    def rule(rate, step, count, p, g, momentum_buffer):
        mu = _at(momentum, count)
        g = -g if maximize else g
        p, g = _decay(p, g, rate, weight_decay, False)
        if use_momentum:
            momentum_buffer = jnp.where(step == 1, g, momentum_buffer * mu + (1 - dampening) * g)
            g = g + mu * momentum_buffer if nesterov else momentum_buffer
        return p - rate * g, {"momentum_buffer": momentum_buffer}

    return _transformation("sgd", lr, {"momentum_buffer": jnp.zeros_like}, rule)


def _adam(name, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay):
    _check(lr, "lr", schedule=True)
    _check_betas(betas)
    _check(eps, "eps")
    _check(weight_decay, "weight_decay")
    beta1, beta2 = betas
    slots = {"exp_avg": jnp.zeros_like, "exp_avg_sq": jnp.zeros_like}
    if amsgrad:
        slots["max_exp_avg_sq"] = jnp.zeros_like

    def rule(rate, step, count, p, g, exp_avg, exp_avg_sq, max_exp_avg_sq=None):
        b1 = _at(beta1, count)
        g = -g if maximize else g
        p, g = _decay(p, g, rate, weight_decay, decoupled_weight_decay)
        exp_avg = _lerp(exp_avg, g, 1 - b1)
        exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * (g * g)
        step_size = rate / _one_minus_power(b1, step)
        correction2_sqrt = jnp.sqrt(_one_minus_power(beta2, step))
        new = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        second = exp_avg_sq
        if amsgrad:
            second = new["max_exp_avg_sq"] = jnp.maximum(max_exp_avg_sq, exp_avg_sq)
        denom = jnp.sqrt(second) / correction2_sqrt + eps
        return p - step_size * exp_avg / denom, new

    return _transformation(name, lr, slots, rule)


def adam(
    lr: Hyper = 1e-3,
    betas: tuple[Hyper, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.Adam``: the weight decay is added to the gradient (L2; ``decoupled_weight_decay`` is AdamW's),
    ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 * v + (1 - beta2) * g * g``, and
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)`` (``v``'s running maximum with
    ``amsgrad``). State: ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``).

    optax's ``adam`` adds ``eps`` after the bias correction of ``sqrt(v)`` too, but has no L2 decay, ``amsgrad``
    in the same order or ``maximize``."""
    return _adam("adam", lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay)


def adamw(
    lr: Hyper = 1e-3,
    betas: tuple[Hyper, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.AdamW``: :func:`adam` with the parameter shrunk by ``1 - lr * weight_decay`` before the step
    (optax's ``adamw`` subtracts ``lr * weight_decay * p`` after it, from the old ``p``: not PyTorch's order)."""
    return _adam("adamw", lr, betas, eps, weight_decay, amsgrad, maximize, True)


def rmsprop(
    lr: Hyper = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: Hyper = 0.0,
    centered: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.RMSprop``: ``v = alpha * v + (1 - alpha) * g * g``; with ``centered``, ``v - mean(g)**2``;
    ``eps`` is added after the square root (optax's ``rmsprop`` adds it under the root); with ``momentum``, the
    buffer ``b = momentum * b + g / (sqrt(v) + eps)`` is what the step takes. State: ``square_avg`` (and
    ``grad_avg``, ``momentum_buffer``)."""
    _check(lr, "lr", schedule=True)
    _check(alpha, "alpha")
    _check(eps, "eps")
    _check(weight_decay, "weight_decay")
    _check(momentum, "momentum", schedule=True)
    use_momentum = callable(momentum) or momentum > 0
    slots = {"square_avg": jnp.zeros_like}
    if centered:
        slots["grad_avg"] = jnp.zeros_like
    if use_momentum:
        slots["momentum_buffer"] = jnp.zeros_like

    def rule(rate, step, count, p, g, square_avg, grad_avg=None, momentum_buffer=None):
        g = -g if maximize else g
        p, g = _decay(p, g, rate, weight_decay, False)
        square_avg = square_avg * alpha + (1 - alpha) * (g * g)
        new = {"square_avg": square_avg}
        if centered:
            grad_avg = new["grad_avg"] = _lerp(grad_avg, g, 1 - alpha)
            avg = jnp.sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            avg = jnp.sqrt(square_avg) + eps
        if use_momentum:
            momentum_buffer = new["momentum_buffer"] = momentum_buffer * _at(momentum, count) + g / avg
            return p - rate * momentum_buffer, new
        return p - rate * g / avg, new

    return _transformation("rmsprop", lr, slots, rule)


def adagrad(
    lr: Hyper = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.Adagrad``: ``s += g * g`` from ``initial_accumulator_value``, and
    ``p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)`` (optax's ``adagrad`` starts at 0.1 and adds ``eps``
    under the root). State: ``sum``."""
    _check(lr, "lr", schedule=True)
    _check(lr_decay, "lr_decay")
    _check(weight_decay, "weight_decay")
    _check(initial_accumulator_value, "initial_accumulator_value")
    _check(eps, "eps")

    def rule(rate, step, count, p, g, sum):  # noqa: A002 (PyTorch's name for the accumulator)
        g = -g if maximize else g
        p, g = _decay(p, g, rate, weight_decay, False)
        clr = rate / (1 + (step - 1) * lr_decay)
        sum = sum + g * g  # noqa: A001
        return p - clr * g / (jnp.sqrt(sum) + eps), {"sum": sum}

    return _transformation("adagrad", lr, {"sum": lambda p: jnp.full_like(p, initial_accumulator_value)}, rule)


def adadelta(
    lr: Hyper = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.Adadelta``: ``v = rho * v + (1 - rho) * g * g``,
    ``d = sqrt(u + eps) / sqrt(v + eps) * g``, ``u = rho * u + (1 - rho) * d * d``, ``p -= lr * d``.
    State: ``square_avg``, ``acc_delta``."""
    _check(lr, "lr", schedule=True)
    _check(rho, "rho", maximum=1.0)
    _check(eps, "eps")
    _check(weight_decay, "weight_decay")

    def rule(rate, step, count, p, g, square_avg, acc_delta):
        g = -g if maximize else g
        p, g = _decay(p, g, rate, weight_decay, False)
        square_avg = square_avg * rho + (1 - rho) * (g * g)
        delta = jnp.sqrt(acc_delta + eps) / jnp.sqrt(square_avg + eps) * g
        acc_delta = acc_delta * rho + (1 - rho) * (delta * delta)
        return p - rate * delta, {"square_avg": square_avg, "acc_delta": acc_delta}

    return _transformation("adadelta", lr, {"square_avg": jnp.zeros_like, "acc_delta": jnp.zeros_like}, rule)


def nadam(
    lr: Hyper = 2e-3,
    betas: tuple[Hyper, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.NAdam``: Adam with Dozat's momentum schedule ``mu_t = beta1 * (1 - 0.5 * 0.96 **
    (t * momentum_decay))`` and its running product (optax's ``nadam`` has no schedule). State: ``exp_avg``,
    ``exp_avg_sq``, ``mu_product``."""
    _check(lr, "lr", schedule=True)
    _check_betas(betas)
    _check(eps, "eps")
    _check(weight_decay, "weight_decay")
    _check(momentum_decay, "momentum_decay")
    beta1, beta2 = betas

    def rule(rate, step, count, p, g, exp_avg, exp_avg_sq, mu_product):
        b1 = _at(beta1, count)
        g = -g if maximize else g
        p, g = _decay(p, g, rate, weight_decay, decoupled_weight_decay)
        mu = b1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
        mu_product = mu_product * mu.astype(mu_product.dtype)  # float32, PyTorch's scalar dtype
        mu_prod = mu_product.astype(p.dtype)
        exp_avg = _lerp(exp_avg, g, 1 - b1)
        exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * (g * g)
        denom = jnp.sqrt(exp_avg_sq / _one_minus_power(beta2, step)) + eps
        p = p + (-rate * (1.0 - mu) / (1.0 - mu_prod)) * g / denom
        p = p + (-rate * mu_next / (1.0 - mu_prod * mu_next)) * exp_avg / denom
        return p, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "mu_product": mu_product}

    # PyTorch keeps mu_product as one float32 number per parameter (its default scalar dtype), float64 params too.
    slots = {"exp_avg": jnp.zeros_like, "exp_avg_sq": jnp.zeros_like, "mu_product": lambda p: jnp.ones([], jnp.float32)}
    return _transformation("nadam", lr, slots, rule)


def _rho(step, rho_inf: float, log_beta2: float):
    """RAdam's ``rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)``, which cancels to a few units from about 2000:
    as ``K + (2 / L) * (1 - a / expm1(a))`` with ``L = -log(beta2)``, ``a = t L`` and ``K = rho_inf - 2 / L``
    (in double), the bracket from its series where ``a`` is small."""
    if log_beta2 == 0.0 or math.isinf(log_beta2):  # beta2 = 1 never corrects; beta2 = 0 has rho_t = rho_inf
        return rho_inf - 2 * step * jnp.exp(step * log_beta2) / -jnp.expm1(step * log_beta2)
    big_l = -log_beta2
    a = step * big_l
    series = a / 2 - a**2 / 12 + a**4 / 720 - a**6 / 30240 + a**8 / 1209600
    safe = jnp.where(a < 0.5, 1.0, a)
    bracket = jnp.where(a < 0.5, series, 1 - safe / jnp.expm1(safe))
    return (rho_inf - 2 / big_l) + (2 / big_l) * bracket


def radam(
    lr: Hyper = 1e-3,
    betas: tuple[Hyper, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.RAdam``: Adam whose adaptive step is rectified by ``r_t`` once the variance estimate's
    ``rho_t`` exceeds 5, and plain momentum SGD before (``p -= lr * m / (1 - beta1**t)``). State: ``exp_avg``,
    ``exp_avg_sq``."""
    _check(lr, "lr", schedule=True)
    _check_betas(betas)
    _check(eps, "eps")
    _check(weight_decay, "weight_decay")
    beta1, beta2 = betas
    rho_inf = 2 / (1 - beta2) - 1
    log_beta2 = math.log(beta2) if beta2 > 0 else -math.inf

    def rule(rate, step, count, p, g, exp_avg, exp_avg_sq):
        b1 = _at(beta1, count)
        g = -g if maximize else g
        p, g = _decay(p, g, rate, weight_decay, decoupled_weight_decay)
        exp_avg = _lerp(exp_avg, g, 1 - b1)
        exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * (g * g)
        correction2 = _one_minus_power(beta2, step)
        corrected = exp_avg / _one_minus_power(b1, step)
        rho_t = _rho(step, rho_inf, log_beta2)
        # The rectifier's radicand is negative while rho_t <= 4; where() would still differentiate through NaN.
        safe_rho = jnp.where(rho_t > 5.0, rho_t, 6.0)
        rect = jnp.sqrt((safe_rho - 4) * (safe_rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * safe_rho))
        adaptive = jnp.sqrt(correction2) / (jnp.sqrt(exp_avg_sq) + eps)
        step_value = jnp.where(rho_t > 5.0, corrected * rate * adaptive * rect, corrected * rate)
        return p - step_value, {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}

    return _transformation("radam", lr, {"exp_avg": jnp.zeros_like, "exp_avg_sq": jnp.zeros_like}, rule)
