"""The training core shared by every lab: a train state, pure step functions that take the loss, and two loops.

A model is any Linen module called as ``model.apply(variables, *inputs, deterministic=..., rngs=...)``. A batch is
a dict with ``'inputs'`` (an array, or a tuple of the model's positional arguments) and whatever the loss reads
(``'labels'`` for :func:`cross_entropy` and :func:`mse`). A loss maps ``(outputs, batch)`` to the scalar to
minimise and the batch's other metrics. :func:`cross_entropy` is the mean over every label, exactly
``torch.nn.CrossEntropyLoss()(logits.view(-1, C), labels.view(-1))``.

``train_step(state, batch, rng, loss)``, ``eval_step(state, batch, loss)`` and ``predict(state, *inputs)`` are
pure, traceable functions: jit them where they are used, ``jax.jit(train.train_step)`` (with
``compiler_options=jaxnn.runtime.compiler_options()`` for the fast CPU convolutions). The rng of a step is
``fold_in(rng, state.step)``, so the same seed replays the same dropout masks. Both loops, :func:`train_epoch`
(one step per batch, from Python) and :func:`train_loop` (a compiled ``lax.scan``), stop with
:class:`NonFiniteLossError` naming the first step whose loss is NaN or infinite.

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
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from jaxnn import checks

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]

__all__ = [
    "Batch",
    "Metrics",
    "TrainState",
    "Loss",
    "cross_entropy",
    "mse",
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
    "scan_steps",
    "scan_epoch",
    "out_of_range",
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


def init_variables(model: nn.Module, rng: jax.Array, sample_inputs: Any) -> dict:
    """``model.init(rng, sample_inputs)``: ``params``, and ``batch_stats`` for a model with BatchNorm; compiled once
    per model and input shape (an RNN's eager init would trace and compile its scan anew on every call).

    A model whose parameters, with the gradients and two optimizer moments that training keeps beside them, could
    not fit in the device's memory is a ValueError saying so, before anything is compiled or allocated."""
    program = _init_program(jax.default_backend() == "cpu")
    _check_fits(model, program.eval_shape(model, rng, sample_inputs))  # traced once, for both
    return program(model, rng, sample_inputs)


def _memory_bytes() -> int | None:
    """This process's first device's memory: its allocator's limit, or the machine's physical memory for the CPU.
    (In a multi-process run ``jax.devices()[0]`` may be another process's, whose statistics cannot be read here.)"""
    stats = jax.local_devices()[0].memory_stats() or {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_fits(model: nn.Module, shapes: Any) -> None:
    leaves = jax.tree_util.tree_leaves(shapes)
    size = sum(math.prod(a.shape) * a.dtype.itemsize for a in leaves)
    memory = _memory_bytes()
    if memory is not None and 4 * size > memory:
        count = sum(math.prod(a.shape) for a in leaves)
        raise ValueError(
            f"{type(model).__name__} has {count:,} parameters ({size / 2**30:.1f} GiB); training keeps four times "
            f"that ({4 * size / 2**30:.1f} GiB), more than this device's {memory / 2**30:.1f} GiB: choose smaller sizes"
        )


# On the CPU the initialisers' threefry draws unroll into thousands of integer ops that LLVM's full optimisation
# takes seconds over, for a program that runs once (ResNet-18: 4.3 s, 1.7 s at level 1; benchmarks/RESULTS.md).
# Level 1 gives every lab model the same values bit for bit (tests/test_init.py); level 0 does not.
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@functools.cache
def _init_program(cpu: bool) -> Callable:
    def init(model, rng, sample_inputs):
        inputs = sample_inputs if isinstance(sample_inputs, tuple) else (sample_inputs,)
        return model.init(rng, *inputs, deterministic=True)

    return jax.jit(init, static_argnames="model", compiler_options=INIT_COMPILER_OPTIONS if cpu else None)


def init_params(model: nn.Module, rng: jax.Array, sample_inputs: Any) -> Any:
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


# A loss takes the model's outputs and the batch and returns the scalar to minimise and the batch's other metrics.
Loss = Callable[[Any, Batch], tuple[jax.Array, Metrics]]


def cross_entropy(logits: jax.Array, batch: Batch) -> tuple[jax.Array, Metrics]:
    """``torch.nn.CrossEntropyLoss()`` of ``logits`` against ``batch['labels']``, with accuracy and the count of
    labels out of range (which the loops turn into a ValueError naming the step)."""
    metrics = compute_metrics(logits, batch["labels"])
    return metrics.pop("loss"), metrics


def mse(outputs: jax.Array, batch: Batch) -> tuple[jax.Array, Metrics]:
    """``torch.nn.MSELoss()`` of ``outputs`` against ``batch['labels']`` (the regression targets)."""
    return jnp.mean((outputs - batch["labels"]) ** 2), {}


def _inputs(batch: Batch) -> tuple:
    """The model's positional arguments: ``batch['inputs']``, or each element of it when it is a tuple."""
    inputs = batch["inputs"]
    return inputs if isinstance(inputs, tuple) else (inputs,)


def _variables(state: TrainState, params: Any) -> dict:
    if state.batch_stats is None:
        return {"params": params}
    return {"params": params, "batch_stats": state.batch_stats}


def train_step(
    state: TrainState, batch: Batch, rng: jax.Array, loss: Loss = cross_entropy
) -> tuple[TrainState, Metrics]:
    """One optimizer step on ``batch``: the ``loss`` (default :func:`cross_entropy`) of the model's outputs, its
    gradient, the update, and for a model with BatchNorm the new running statistics. Returns the new state and the
    metrics of the forward pass before the update (``'loss'`` and what ``loss`` adds). A batch's
    ``'dropout_masks'`` (a pytree of the model's :class:`jaxnn.nn.Dropout` masks) replace JAX's draws.

    The loss is a static argument: ``jax.jit(functools.partial(train.train_step, loss=train.mse))``.
    """
    rngs = {"dropout": jax.random.fold_in(rng, state.step)}

    def loss_fn(params):
        variables = _variables(state, params)
        if "dropout_masks" in batch:  # PyTorch's masks, drawn on the host (jaxnn.random.run)
            variables["dropout_masks"] = batch["dropout_masks"]
        if state.batch_stats is None:
            outputs = state.apply_fn(variables, *_inputs(batch), deterministic=False, rngs=rngs)
            updates = None
        else:
            outputs, new = state.apply_fn(
                variables, *_inputs(batch), deterministic=False, rngs=rngs, mutable=["batch_stats"]
            )
            updates = new["batch_stats"]
        value, metrics = loss(outputs, batch)
        return value, (metrics, updates)

    (value, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    return state, {"loss": value, **metrics}


def eval_step(state: TrainState, batch: Batch, loss: Loss = cross_entropy) -> Metrics:
    """The ``loss`` and its metrics on ``batch`` under the current parameters, dropout off."""
    value, metrics = loss(predict(state, *_inputs(batch)), batch)
    return {"loss": value, **metrics}


def predict(state: TrainState, *inputs: jax.Array) -> jax.Array:
    """The model's outputs (logits) for ``inputs``, dropout off and BatchNorm on its running statistics."""
    return state.apply_fn(_variables(state, state.params), *inputs, deterministic=True)


@functools.partial(jax.jit, static_argnames=("num_steps", "loss"))
def _scan_steps(state, batch, rng, indices, num_steps, loss):
    def body(state, index):
        step_batch = batch if index is None else jax.tree_util.tree_map(lambda a: a[index], batch)
        return train_step(state, step_batch, rng, loss)

    return jax.lax.scan(body, state, indices, length=num_steps)


def train_loop(
    state: TrainState,
    batch: Batch,
    rng: jax.Array,
    num_steps: int,
    loss: Loss = cross_entropy,
    indices: jax.Array | None = None,
) -> tuple[TrainState, Metrics]:
    """``num_steps`` optimizer steps (:func:`train_step` with ``loss``) compiled as one ``lax.scan``: the small RNN
    labs, whose whole run is one program.

    Every step trains on ``batch``, or with ``indices`` (``(num_steps, k)`` ints) step ``i`` trains on the
    examples ``indices[i]`` of it (one random pair per step, say). Returns the state and each metric stacked per
    step, ``(num_steps, ...)``. Raises :class:`NonFiniteLossError` naming the first step whose loss is NaN or
    infinite, and ValueError for labels out of range, as :func:`train_epoch` does. Compiled with XLA's default
    options: the RNN labs' float32 training is chaotic (Adam at lr 0.1), and they keep the rounding that ends on
    PyTorch's sentence.
    """
    checks.positive_int(num_steps, "num_steps", checks.MAX_ITERATIONS)
    if indices is not None and (jnp.ndim(indices) < 1 or jnp.shape(indices)[0] != num_steps):
        raise ValueError(f"indices must have num_steps={num_steps} rows, got shape {jnp.shape(indices)}")
    first = int(state.step)
    state, metrics = _scan_steps(state, batch, rng, indices, num_steps, loss)
    _check_steps(first, metrics)
    return state, metrics


def scan_steps(
    train_step: Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]],
    state: TrainState,
    batch: Batch,
    rng: jax.Array,
    num_steps: int,
) -> tuple[TrainState, Metrics]:
    """``num_steps`` calls of ``train_step`` on the same ``batch`` as one ``lax.scan`` (jit it with ``num_steps``
    static): the state and each metric stacked per step. One epoch of the driver's full-batch recipes."""
    return jax.lax.scan(lambda s, _: train_step(s, batch, rng), state, None, length=num_steps)


def scan_epoch(
    scan_fn: Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]],
    state: TrainState,
    batch: Batch,
    rng: jax.Array,
) -> tuple[TrainState, dict[str, float], Metrics]:
    """One epoch of full-batch steps (``scan_fn``: a jitted :func:`scan_steps`); returns the state, the mean of
    every scalar metric over the epoch's steps, and everything the steps returned, stacked per step (the character
    labs' per-step predictions, say). Raises as :func:`train_epoch` does, naming the first bad step."""
    first = int(state.step)
    state, metrics = scan_fn(state, batch, rng)
    _check_steps(first, metrics)
    means = {k: float(jnp.mean(v)) for k, v in metrics.items() if k not in CHECKS and jnp.ndim(v) == 1}
    return state, means, metrics


def _check_steps(first: int, metrics: Metrics) -> None:
    """:func:`_check_step` for metrics stacked per step (steps ``first``, ``first + 1``, ...): the first step whose
    labels lie out of range or whose loss is not finite."""
    losses = np.asarray(metrics["loss"])
    bad = np.flatnonzero(np.asarray(metrics.get("labels_out_of_range", np.zeros(losses.shape[0]))) != 0)
    if bad.size:
        _check_step(first + int(bad[0]), jax.tree_util.tree_map(lambda m: m[bad[0]], metrics))
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise NonFiniteLossError(first + int(bad[0]), float(losses[bad[0]]))


def check_batch_size(batch_size: int, num_examples: int, split: str = "train") -> None:
    checks.positive_int(batch_size, "batch_size")
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


# Metrics that are checks, not means: the loops raise on them instead of averaging them.
CHECKS = ("labels_out_of_range",)


def train_epoch(
    step_fn: Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]],
    state: TrainState,
    batches: Iterable[Batch],
    rng: jax.Array,
    after_step: Callable[[TrainState, dict[str, list]], None] | None = None,
    previous: dict[str, list[float]] | None = None,
) -> tuple[TrainState, dict[str, float]]:
    """Run ``step_fn`` (a jitted :func:`train_step`) over ``batches``; returns the state and the mean of every
    metric the steps return (``'loss'`` and what the loss adds: ``'accuracy'`` for :func:`cross_entropy`, nothing
    for :func:`mse`), NaN when there were no steps.

    Place the batches where the step needs them before they come in (``map(place, batches)``).
    ``after_step(state, so_far)`` runs after every step (saving checkpoints, say), only on states from steps with a
    finite loss; ``so_far`` holds the epoch's per-step values of each metric up to that step. A run resumed in the
    middle of an epoch passes the values of the steps before as ``previous`` (what ``so_far`` held at the
    checkpoint), and the epoch's means are then those of the uninterrupted run, bit for bit. Raises
    :class:`NonFiniteLossError` naming the step when a loss is NaN or infinite, and ValueError naming the step when
    a batch's labels lie outside the model's classes.
    """
    values = {k: [jnp.float32(v) for v in vs] for k, vs in (previous or {}).items()}
    step = int(state.step)  # read once: reading state.step after every step would wait for each step to finish
    pending = None  # (step, metrics) of the previous step, checked one step behind to keep the device busy
    for batch in batches:
        state, metrics = step_fn(state, batch, rng)
        if pending is not None:
            _check_step(*pending)
        pending = (step, metrics)
        step += 1
        for k, v in metrics.items():
            if k not in CHECKS:
                values.setdefault(k, []).append(v)
        if after_step is not None:  # the state handed on must come from a finite step
            _check_step(*pending)
            pending = None
            after_step(state, values)
    if pending is not None:
        _check_step(*pending)
    if not values.get("loss"):
        return state, {"loss": float("nan"), **{k: float("nan") for k in values if k != "loss"}}
    return state, {k: float(jnp.mean(jnp.stack(vs))) for k, vs in values.items()}


def evaluate(
    eval_fn: Callable[[TrainState, Batch], Metrics],
    state: TrainState,
    inputs: jax.Array,
    labels: jax.Array,
    batch_size: int = 1000,
) -> dict[str, float]:
    """The mean of every metric ``eval_fn`` (a jitted :func:`eval_step`) returns over a whole split, in batches of
    ``batch_size`` (the last one may be smaller), each batch weighted by its size."""
    n = inputs.shape[0]
    if n == 0:
        raise ValueError(f"evaluate: the split is empty (inputs shape {tuple(inputs.shape)}): no metrics")
    totals: dict[str, float] = {}
    for start in range(0, n, batch_size):
        x, y = inputs[start : start + batch_size], labels[start : start + batch_size]
        m = eval_fn(state, {"inputs": x, "labels": y})
        if int(m.get("labels_out_of_range", 0)):
            raise ValueError(
                f"evaluate: {int(m['labels_out_of_range'])} labels of examples {start}-{start + x.shape[0] - 1} "
                f"lie outside [0, number of classes): check the labels"
            )
        for k, v in m.items():
            if k not in CHECKS:
                totals[k] = totals.get(k, 0.0) + float(v) * x.shape[0]
    return {k: total / n for k, total in totals.items()}
