"""The training core shared by the CNN and RNN labs: a train state, pure jitted steps, an epoch loop, and logging.

A model is any Linen module called as ``model.apply({'params': p}, inputs, deterministic=..., rngs=...)`` that
returns logits ``(..., num_classes)``; labels are integers of the logits' leading shape. Cross-entropy is the mean
over every label, exactly ``torch.nn.CrossEntropyLoss()(logits.view(-1, C), labels.view(-1))``.

``train_step(state, batch, rng)`` and ``eval_step(state, batch)`` are pure and compiled; ``batch`` is a dict with
``'inputs'`` and ``'labels'``. The rng of a step is ``fold_in(rng, state.step)``, so the same seed replays the same
dropout masks.
"""

from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from jaxnn.runtime import jit

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


class TrainState(train_state.TrainState):
    """Flax's TrainState (step, apply_fn, params, tx, opt_state)."""


def create_train_state(
    model: nn.Module,
    rng: jax.Array,
    sample_inputs: jax.Array,
    learning_rate: float = 1e-3,
    tx: optax.GradientTransformation | None = None,
    params: Any = None,
) -> TrainState:
    """Initialise ``model`` on ``sample_inputs`` (or take the given ``params``) with Adam(learning_rate) by default.

    ``optax.adam`` with its defaults (b1 0.9, b2 0.999, eps 1e-8) is ``torch.optim.Adam``'s update.
    """
    if params is None:
        params = model.init(rng, sample_inputs, deterministic=True)["params"]
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx or optax.adam(learning_rate))


def cross_entropy_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy. logits (..., C) float, labels (...) int -> scalar."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Fraction of labels that are the argmax of their logits."""
    return jnp.mean(jnp.argmax(logits, -1) == labels)


def compute_metrics(logits: jax.Array, labels: jax.Array) -> Metrics:
    """Mean loss and accuracy of a batch."""
    return {"loss": cross_entropy_loss(logits, labels), "accuracy": accuracy(logits, labels)}


def _loss_and_logits(params, state: TrainState, batch: Batch, dropout_rng: jax.Array):
    logits = state.apply_fn({"params": params}, batch["inputs"], deterministic=False, rngs={"dropout": dropout_rng})
    return cross_entropy_loss(logits, batch["labels"]), logits


def train_step_with_logits(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics, jax.Array]:
    """One Adam step (not jitted): returns the new state, the batch's metrics and the logits of this forward pass."""
    dropout_rng = jax.random.fold_in(rng, state.step)
    grad_fn = jax.value_and_grad(_loss_and_logits, has_aux=True)
    (loss, logits), grads = grad_fn(state.params, state, batch, dropout_rng)
    state = state.apply_gradients(grads=grads)
    metrics = {"loss": loss, "accuracy": accuracy(logits, batch["labels"])}
    return state, metrics, logits


@jit
def train_step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
    """One compiled Adam step on ``batch``; metrics (loss, accuracy) are those of the forward pass before the update."""
    state, metrics, _ = train_step_with_logits(state, batch, rng)
    return state, metrics


@jit
def eval_step(state: TrainState, batch: Batch) -> Metrics:
    """Metrics of ``batch`` under the current parameters, dropout off."""
    logits = state.apply_fn({"params": state.params}, batch["inputs"], deterministic=True)
    return compute_metrics(logits, batch["labels"])


@jit
def predict(state: TrainState, inputs: jax.Array) -> jax.Array:
    """Logits of ``inputs``, dropout off."""
    return state.apply_fn({"params": state.params}, inputs, deterministic=True)


def train_loop(state: TrainState, batch: Batch, rng: jax.Array, num_steps: int):
    """``num_steps`` Adam steps on one fixed batch, compiled as a single ``lax.scan`` (for the small RNN labs).

    Returns ``(state, metrics, predictions)``: metrics stacked per step (``(num_steps,)`` each) and the argmax
    predictions of every step's forward pass, ``(num_steps, *labels.shape)``.
    """
    return _train_loop(state, batch, rng, num_steps)


# XLA's default options here, not jaxnn.runtime's: with them longseq runs ~18% faster, but its float32 training is
# chaotic (Adam at lr 0.1; any change of rounding moves the losses by 10% within 10 steps), and with the other
# matrix-multiply kernel the lab no longer ends on PyTorch's sentence. The labs keep PyTorch's output.
@functools.partial(jax.jit, static_argnums=(3,))
def _train_loop(state, batch, rng, num_steps):
    def body(state, _):
        state, metrics, logits = train_step_with_logits(state, batch, rng)
        return state, (metrics, jnp.argmax(logits, -1))

    state, (metrics, predictions) = jax.lax.scan(body, state, None, length=num_steps)
    return state, metrics, predictions


@jit
def _take(inputs: jax.Array, labels: jax.Array, idx: jax.Array) -> Batch:
    return {"inputs": inputs[idx], "labels": labels[idx]}


def epoch_permutation(rng: jax.Array, epoch: int, num_examples: int) -> jax.Array:
    """The example order of ``epoch``: a function of (rng, epoch) alone, so a resumed run sees the same batches."""
    return jax.random.permutation(jax.random.fold_in(rng, epoch), num_examples)


def check_batch_size(batch_size: int, num_examples: int, split: str = "train") -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if batch_size > num_examples:
        raise ValueError(f"batch_size {batch_size} is larger than the {split} split ({num_examples} examples)")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss; ``step`` is the step whose forward pass produced it."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"non-finite loss {loss} at step {step}: training stopped (the last checkpoint, if any, "
                         f"holds the last good state)")
        self.step, self.loss = step, loss


def train_epoch(
    state: TrainState,
    inputs: jax.Array,
    labels: jax.Array,
    batch_size: int,
    rng: jax.Array,
    epoch: int,
    progress: bool = True,
    start: int = 0,
    after_step: Callable[[TrainState], None] | None = None,
    mesh: Any = None,
) -> tuple[TrainState, dict[str, float]]:
    """One shuffled pass over device-resident ``inputs``/``labels`` (the last partial batch is dropped, like the
    labs' ``DataLoader(drop_last=True)``). Returns the state and the mean loss and accuracy of the steps run.

    ``rng`` is the run's training key: the epoch's order comes from ``(rng, epoch)`` and each step's dropout from
    ``(rng, state.step)``, so the same seed replays the same run, and a run resumed at batch ``start`` of an epoch
    sees exactly the batches the interrupted one would have. ``after_step(state)`` runs after every step (saving
    checkpoints, say). With a ``mesh`` (:mod:`jaxnn.parallel`) each batch is split over its devices.

    Raises :class:`NonFiniteLossError` naming the step when a loss is NaN or infinite.
    """
    n = inputs.shape[0]
    check_batch_size(batch_size, n)
    steps = n // batch_size
    if not 0 <= start <= steps:
        raise ValueError(f"start must be in [0, {steps}], got {start}")
    if mesh is not None:
        from jaxnn import parallel

        parallel.check_divisible(batch_size, mesh)
    shuffle_rng, step_rng = jax.random.split(rng)
    perm = epoch_permutation(shuffle_rng, epoch, n)
    losses, accs = [], []
    first_step = int(state.step)  # read once: reading it every step would wait for each step to finish
    pending = None  # (step, loss) of the previous step, checked one step behind to keep the device busy
    bar = _progress(range(start, steps), f"epoch {epoch + 1}", progress)
    for i in bar:
        batch = _take(inputs, labels, perm[i * batch_size:(i + 1) * batch_size])
        if mesh is not None:
            batch = parallel.shard_batch(batch, mesh)
        state, metrics = train_step(state, batch, step_rng)
        if pending is not None:
            _check_finite(*pending)
        pending = (first_step + i - start, metrics["loss"])
        losses.append(metrics["loss"])
        accs.append(metrics["accuracy"])
        if after_step is not None:  # the state handed on must come from a finite step
            _check_finite(*pending)
            pending = None
            after_step(state)
        if progress and (i % 50 == 0 or i == steps - 1):
            bar.set_postfix(loss=f"{float(metrics['loss']):.4f}", acc=f"{float(metrics['accuracy']):.4f}")
    if pending is not None:
        _check_finite(*pending)
    if not losses:
        return state, {"loss": float("nan"), "accuracy": float("nan")}
    return state, {"loss": float(jnp.mean(jnp.stack(losses))), "accuracy": float(jnp.mean(jnp.stack(accs)))}


def _check_finite(step: int, loss: jax.Array) -> None:
    value = float(loss)
    if not math.isfinite(value):
        raise NonFiniteLossError(step, value)


def evaluate(state: TrainState, inputs: jax.Array, labels: jax.Array, batch_size: int = 1000) -> dict[str, float]:
    """Mean loss and accuracy over a whole split, in batches (the last one may be smaller)."""
    n = inputs.shape[0]
    total_loss, total_correct = 0.0, 0.0
    for start in range(0, n, batch_size):
        x, y = inputs[start:start + batch_size], labels[start:start + batch_size]
        m = eval_step(state, {"inputs": x, "labels": y})
        total_loss += float(m["loss"]) * x.shape[0]
        total_correct += float(m["accuracy"]) * x.shape[0]
    return {"loss": total_loss / n, "accuracy": total_correct / n}


def _progress(it: Iterable, desc: str, enabled: bool):
    if not enabled:
        return _NoBar(it)
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False, dynamic_ncols=True)


class _NoBar:
    def __init__(self, it):
        self._it = it

    def __iter__(self):
        return iter(self._it)

    def set_postfix(self, **_):
        pass


class MetricsLogger:
    """Appends one JSON object per line to ``path`` (created with its folder), flushed at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()

    def write(self, **record: Any) -> None:
        record = {k: _jsonable(v) for k, v in record.items()}
        record.setdefault("time_s", round(time.time() - self._t0, 3))
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def _jsonable(v):
    if isinstance(v, (jax.Array, np.ndarray, np.generic)):
        v = np.asarray(v).tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_metrics(records: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Loss and accuracy per epoch as a PNG. Returns the path, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in zip(axes, ("loss", "accuracy"), ("cross-entropy", "accuracy")):
        for split, marker in (("train", "o-"), ("test", "s-")):
            if all(f"{split}_{metric}" in r for r in records):
                ax.plot(epochs, [r[f"{split}_{metric}"] for r in records], marker, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
