"""The training core shared by the CNN and RNN labs: a train state, pure step functions and two loops.

A model is any Linen module called as ``model.apply({'params': p}, inputs, deterministic=..., rngs=...)`` that
returns logits ``(..., num_classes)``; labels are integers of the logits' leading shape. Cross-entropy is the mean
over every label, exactly ``torch.nn.CrossEntropyLoss()(logits.view(-1, C), labels.view(-1))``.

``train_step(state, batch, rng)``, ``eval_step(state, batch)`` and ``predict(state, inputs)`` are pure, traceable
functions: jit them where they are used, ``jax.jit(train.train_step)`` (with
``compiler_options=jaxnn.runtime.compiler_options()`` for the fast CPU convolutions). ``batch`` is a dict with
``'inputs'`` and ``'labels'``. The rng of a step is ``fold_in(rng, state.step)``, so the same seed replays the same
dropout masks.

A jitted step compiles once per model, optimizer and shapes; :func:`adam` returns the same optimizer for the same
arguments, so a second run with another seed compiles nothing::

    params = train.init_params(model, jax.random.key(0), x[:1])
    state = train.create_train_state(model, params, train.adam(1e-3))
    step = jax.jit(train.train_step)
    state, metrics = step(state, {"inputs": x, "labels": y}, jax.random.key(1))
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]

__all__ = [
    "TrainState",
    "adam",
    "sgd",
    "step_lr",
    "init_variables",
    "init_params",
    "create_train_state",
    "cross_entropy_loss",
    "accuracy",
    "compute_metrics",
    "train_step",
    "eval_step",
    "predict",
    "train_loop",
    "epoch_batches",
    "train_epoch",
    "evaluate",
    "check_batch_size",
    "NonFiniteLossError",
]


class TrainState(train_state.TrainState):
    """Flax's ``TrainState`` (step, apply_fn, params, tx, opt_state) plus ``batch_stats``: the running statistics
    of a model with BatchNorm layers, None for a model without (which then trains exactly as before)."""

    batch_stats: Any = None


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
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
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
    for name, value in (("step_size", step_size), ("steps_per_epoch", steps_per_epoch)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
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


@functools.partial(jax.jit, static_argnames="model")
def init_variables(model: nn.Module, rng: jax.Array, sample_inputs: jax.Array) -> dict:
    """``model.init(rng, sample_inputs)``: ``params``, and ``batch_stats`` for a model with BatchNorm; compiled once
    per model and input shape (an RNN's eager init would trace and compile its scan anew on every call)."""
    return model.init(rng, sample_inputs, deterministic=True)


def init_params(model: nn.Module, rng: jax.Array, sample_inputs: jax.Array) -> Any:
    """The ``params`` of :func:`init_variables`."""
    return init_variables(model, rng, sample_inputs)["params"]


def create_train_state(
    model: nn.Module, params: Any, tx: optax.GradientTransformation, batch_stats: Any = None
) -> TrainState:
    """The :class:`TrainState` of ``model`` with ``params`` (from :func:`init_params`, a checkpoint or PyTorch), the
    optimizer ``tx`` (:func:`adam`, or any optax transformation) and, for a model with BatchNorm layers, its
    ``batch_stats`` (``init_variables(...)['batch_stats']``)."""
    return TrainState.create(apply_fn=_Apply(model), params=params, tx=tx, batch_stats=batch_stats)


@dataclasses.dataclass(frozen=True)
class _Apply:
    """``model.apply`` that compares equal for equal models (bound methods compare by identity), so jit reuses a
    step compiled for one train state with the next one of an equal model."""

    model: nn.Module

    def __call__(self, *args, **kwargs):
        return self.model.apply(*args, **kwargs)


def cross_entropy_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy. logits (..., C) float, labels (...) int -> scalar."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of labels that are the argmax of their logits."""
    return jnp.mean(jnp.argmax(logits, -1) == labels)


def out_of_range(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """How many labels lie outside ``[0, C)`` for ``C = logits.shape[-1]``: the loss would quietly be NaN (too
    large) or another class's (negative indices wrap), so the loops check it and raise."""
    return jnp.sum((labels < 0) | (labels >= logits.shape[-1]))


def compute_metrics(logits: jax.Array, labels: jax.Array) -> Metrics:
    """Mean loss and accuracy of a batch, and ``'labels_out_of_range'`` (:func:`out_of_range`)."""
    return {
        "loss": cross_entropy_loss(logits, labels),
        "accuracy": accuracy(logits, labels),
        "labels_out_of_range": out_of_range(logits, labels),
    }


def _train_step_with_logits(state: TrainState, batch: Batch, rng: jax.Array):
    rngs = {"dropout": jax.random.fold_in(rng, state.step)}

    def loss_fn(params):
        if state.batch_stats is None:
            logits = state.apply_fn({"params": params}, batch["inputs"], deterministic=False, rngs=rngs)
            return cross_entropy_loss(logits, batch["labels"]), (logits, None)
        variables = {"params": params, "batch_stats": state.batch_stats}
        logits, updates = state.apply_fn(
            variables, batch["inputs"], deterministic=False, rngs=rngs, mutable=["batch_stats"]
        )
        return cross_entropy_loss(logits, batch["labels"]), (logits, updates["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    metrics = {"loss": loss, "accuracy": accuracy(logits, batch["labels"])}
    return state, {**metrics, "labels_out_of_range": out_of_range(logits, batch["labels"])}, logits


def train_step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
    """One optimizer step on ``batch``; metrics (loss, accuracy) are those of the forward pass before the update."""
    state, metrics, _ = _train_step_with_logits(state, batch, rng)
    return state, metrics


def eval_step(state: TrainState, batch: Batch) -> Metrics:
    """Metrics of ``batch`` under the current parameters, dropout off."""
    return compute_metrics(predict(state, batch["inputs"]), batch["labels"])


def predict(state: TrainState, inputs: jax.Array) -> jax.Array:
    """Logits of ``inputs``, dropout off."""
    variables = {"params": state.params}
    if state.batch_stats is not None:
        variables["batch_stats"] = state.batch_stats
    return state.apply_fn(variables, inputs, deterministic=True)


@functools.partial(jax.jit, static_argnames="num_steps")
def train_loop(state: TrainState, batch: Batch, rng: jax.Array, num_steps: int):
    """``num_steps`` optimizer steps on one fixed batch, compiled as a single ``lax.scan`` (the small RNN labs).

    Returns ``(state, metrics, predictions)``: metrics stacked per step (``(num_steps,)`` each) and the argmax
    predictions of every step's forward pass, ``(num_steps, *labels.shape)``. Compiled with XLA's default options:
    the RNN labs' float32 training is chaotic (Adam at lr 0.1), and they keep the rounding that ends on PyTorch's
    sentence.
    """

    def body(state, _):
        state, metrics, logits = _train_step_with_logits(state, batch, rng)
        return state, (metrics, jnp.argmax(logits, -1))

    state, (metrics, predictions) = jax.lax.scan(body, state, None, length=num_steps)
    return state, metrics, predictions


def check_batch_size(batch_size: int, num_examples: int, split: str = "train") -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if batch_size > num_examples:
        raise ValueError(f"batch_size {batch_size} is larger than the {split} split ({num_examples} examples)")


@jax.jit
def _take(inputs: jax.Array, labels: jax.Array, idx: jax.Array) -> Batch:
    return {"inputs": inputs[idx], "labels": labels[idx]}


def epoch_batches(
    inputs: jax.Array, labels: jax.Array, batch_size: int, rng: jax.Array, epoch: int, start: int = 0
) -> Iterator[Batch]:
    """The batches of one shuffled pass over device-resident ``inputs``/``labels``, from batch ``start`` on; the
    last partial batch is dropped, like the labs' ``DataLoader(drop_last=True)``.

    The order is a function of ``(rng, epoch)`` alone, so a run resumed at batch ``start`` sees exactly the batches
    the interrupted one would have. ``len(inputs) // batch_size`` batches per epoch.
    """
    n = inputs.shape[0]
    check_batch_size(batch_size, n)
    steps = n // batch_size
    if not 0 <= start <= steps:
        raise ValueError(f"start must be in [0, {steps}], got {start}")
    # On the host: the same indices in every process of a multi-process run, usable with its global arrays.
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(rng, epoch), n))
    for i in range(start, steps):
        yield _take(inputs, labels, perm[i * batch_size : (i + 1) * batch_size])


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; ``step`` is the step whose forward pass produced it."""

    def __init__(self, step: int, loss: float):
        super().__init__(
            f"non-finite loss {loss} at step {step}: training stopped (the last checkpoint, if any, "
            f"holds the last good state)"
        )
        self.step, self.loss = step, loss


def _check_step(step: int, metrics: Metrics) -> None:
    """Raise for a step whose labels were out of range (a ValueError, the data's fault) or whose loss is NaN or
    infinite (:class:`NonFiniteLossError`)."""
    bad = int(metrics.get("labels_out_of_range", 0))
    if bad:
        raise ValueError(
            f"{bad} labels of the batch at step {step} lie outside [0, number of classes): check the labels"
        )
    value = float(metrics["loss"])
    if not math.isfinite(value):
        raise NonFiniteLossError(step, value)


def train_epoch(
    step_fn: Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]],
    state: TrainState,
    batches: Iterable[Batch],
    rng: jax.Array,
    after_step: Callable[[TrainState, dict[str, list]], None] | None = None,
    previous: dict[str, list[float]] | None = None,
) -> tuple[TrainState, dict[str, float]]:
    """Run ``step_fn`` (a jitted :func:`train_step`) over ``batches``; returns the state and the mean loss and
    accuracy of the epoch's steps (NaN when there were none).

    Place the batches where the step needs them before they come in (``map(place, batches)``).
    ``after_step(state, so_far)`` runs after every step (saving checkpoints, say), only on states from steps with a
    finite loss; ``so_far`` holds the epoch's per-step ``'loss'`` and ``'accuracy'`` values up to that step. A run
    resumed in the middle of an epoch passes the values of the steps before as ``previous`` (what ``so_far`` held
    at the checkpoint), and the epoch's means are then those of the uninterrupted run, bit for bit. Raises
    :class:`NonFiniteLossError` naming the step when a loss is NaN or infinite, and ValueError naming the step when
    a batch's labels lie outside the model's classes.
    """
    previous = previous or {"loss": [], "accuracy": []}
    losses = [jnp.float32(v) for v in previous["loss"]]
    accs = [jnp.float32(v) for v in previous["accuracy"]]
    step = int(state.step)  # read once: reading state.step after every step would wait for each step to finish
    pending = None  # (step, metrics) of the previous step, checked one step behind to keep the device busy
    for batch in batches:
        state, metrics = step_fn(state, batch, rng)
        if pending is not None:
            _check_step(*pending)
        pending = (step, metrics)
        step += 1
        losses.append(metrics["loss"])
        accs.append(metrics["accuracy"])
        if after_step is not None:  # the state handed on must come from a finite step
            _check_step(*pending)
            pending = None
            after_step(state, {"loss": losses, "accuracy": accs})
    if pending is not None:
        _check_step(*pending)
    if not losses:
        return state, {"loss": float("nan"), "accuracy": float("nan")}
    return state, {"loss": float(jnp.mean(jnp.stack(losses))), "accuracy": float(jnp.mean(jnp.stack(accs)))}


def evaluate(
    eval_fn: Callable[[TrainState, Batch], Metrics],
    state: TrainState,
    inputs: jax.Array,
    labels: jax.Array,
    batch_size: int = 1000,
) -> dict[str, float]:
    """Mean loss and accuracy over a whole split with ``eval_fn`` (a jitted :func:`eval_step`), in batches of
    ``batch_size`` (the last one may be smaller)."""
    n = inputs.shape[0]
    if n == 0:
        raise ValueError(f"evaluate: the split is empty (inputs shape {tuple(inputs.shape)}): no loss or accuracy")
    total_loss, total_correct = 0.0, 0.0
    for start in range(0, n, batch_size):
        x, y = inputs[start : start + batch_size], labels[start : start + batch_size]
        m = eval_fn(state, {"inputs": x, "labels": y})
        if int(m.get("labels_out_of_range", 0)):
            raise ValueError(
                f"evaluate: {int(m['labels_out_of_range'])} labels of examples {start}-{start + x.shape[0] - 1} "
                f"lie outside [0, number of classes): check the labels"
            )
        total_loss += float(m["loss"]) * x.shape[0]
        total_correct += float(m["accuracy"]) * x.shape[0]
    return {"loss": total_loss / n, "accuracy": total_correct / n}
