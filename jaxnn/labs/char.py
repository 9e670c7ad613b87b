"""Labs 11-2 to 11-4, the character tasks (hihello, charseq, longseq): their data, model and a compiled training run.

Each lab trains one small model on one fixed batch with Adam for a number of iterations. Every iteration's loss and
prediction (from that iteration's forward pass, before the update, as the labs print them) come back as arrays.
Nothing is random but the initial weights: ``torch_seed`` starts from the lab's PyTorch model's after
``torch.manual_seed``.

- :func:`train_and_evaluate` ``(config, workdir)``: the recipe, through the epoch driver
  (:func:`jaxnn.train.driver.fit`): the iterations as ``epochs`` compiled ``lax.scan`` programs, with
  ``metrics.jsonl``, TensorBoard, ``curves.png``, ``params.npz`` and a checkpoint after each (``resume``
  continues a killed run exactly);
- :func:`run_lab`: the same training as one compiled loop (:func:`jaxnn.train.train_loop`), nothing written: for
  seed sweeps and for starting from given parameters (PyTorch's, say).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import checks, parallel, train
from jaxnn.data.text import Vocab, next_char_pair, sliding_windows, windows_to_text
from jaxnn.models.rnn import CharRNN
from jaxnn.train import driver

LABS = ("hihello", "charseq", "longseq")
ITERATIONS = {"hihello": 100, "charseq": 50, "longseq": 100}  # each lab's Adam steps
CELLS = ("rnn", "lstm", "gru")
HIHELLO = "hihello"
CHARSEQ = " if you want you"
LONGSEQ = (
    "if you want to build a ship, don't drum up people together to "
    "collect wood and don't assign them tasks and work, but rather "
    "teach them to long for the endless immensity of the sea."
)


@dataclass(frozen=True)
class CharLab:
    name: str
    vocab: Vocab
    x: np.ndarray  # (B, T) int32 character indices
    y: np.ndarray  # (B, T) int32 next-character targets
    model: CharRNN
    learning_rate: float
    iterations: int
    target: str  # what a perfectly trained model predicts
    to_text: Callable[[np.ndarray], str]  # (B, T) predictions -> the string the lab prints
    # Leading characters that no model can get right by construction. longseq's first prediction sees only the
    # character 'i' from a zero state, and six windows start with 'i', each followed by a different character
    # ('if', 'build', 'ship', 'assign', 'immensity' twice); the lab's printed sentence starts with that coin toss.
    undetermined: int = 0

    def on_target(self, text: str) -> bool:
        """Whether ``text`` is the target in every character a model can determine."""
        return len(text) == len(self.target) and text[self.undetermined :] == self.target[self.undetermined :]


@dataclass(frozen=True)
class Config(driver.RunOptions):
    """One run of a character lab. Every value is checked here, once; a bad one is a ValueError naming the field."""

    lab: str = "hihello"  # 'hihello' (11-2), 'charseq' (11-3) or 'longseq' (11-4)
    cell: str = "rnn"  # recurrent cell: 'rnn' (the labs'), 'lstm' or 'gru'
    iterations: int | None = None  # Adam steps (None: the lab's 100, or 50 for charseq)
    learning_rate: float | None = None  # Adam's learning rate (None: the lab's 0.1)
    epochs: int = 1  # the iterations cut into epochs, a record and a checkpoint after each (1: one program, as the lab)
    # XLA's default options: the labs' float32 training is chaotic (Adam at lr 0.1), and they keep the rounding that
    # ends on PyTorch's sentence
    cpu_compiler_options: bool = False  # jaxnn's CPU compiler options (made for convolutions)

    def __post_init__(self):
        self.check_run_options()
        if self.lab not in LABS:
            raise ValueError(f"lab must be one of {list(LABS)}, got {self.lab!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {list(CELLS)}, got {self.cell!r}")
        if self.iterations is not None:
            checks.integer(self.iterations, "iterations", 1, checks.MAX_ITERATIONS)
        if self.learning_rate is not None:
            checks.fields(self, positive=("learning_rate",))
        self.check_full_batch_epochs(self.total_iterations)

    @property
    def total_iterations(self) -> int:
        return ITERATIONS.get(self.lab, 1) if self.iterations is None else self.iterations


@dataclass(frozen=True)
class LabRun:
    state: train.TrainState
    losses: np.ndarray  # (iterations,)
    predictions: list[str]  # one string per iteration

    @property
    def final(self) -> str:
        return self.predictions[-1]


def make_lab(name: str, cell: str = "rnn", sequence_length: int = 10) -> CharLab:
    """The lab's configuration: 'hihello' (Adam 0.1, 100 iterations), 'charseq' (0.1, 50), 'longseq' (a 2-layer
    RNN plus a Dense head, windows of ``sequence_length``, 0.1, 100)."""
    if name == "hihello" or name == "charseq":
        text = HIHELLO if name == "hihello" else CHARSEQ
        vocab = Vocab.from_text(text)
        x, y = next_char_pair(text, vocab)
        model = CharRNN(len(vocab), len(vocab), cell=cell, head=False)
        return CharLab(
            name, vocab, x, y, model, 0.1, 100 if name == "hihello" else 50, text[1:], lambda p: vocab.decode(p[0])
        )
    if name == "longseq":
        vocab = Vocab.from_text(LONGSEQ)
        x, y = sliding_windows(LONGSEQ, vocab, sequence_length)
        model = CharRNN(len(vocab), len(vocab), num_layers=2, cell=cell, head=True)
        return CharLab(
            name, vocab, x, y, model, 0.1, 100, LONGSEQ[1:], lambda p: windows_to_text(p, vocab), undetermined=1
        )
    raise ValueError(f"unknown lab {name!r}; choose 'hihello', 'charseq' or 'longseq'")


def cross_entropy_and_predictions(logits, batch):
    """:func:`jaxnn.train.cross_entropy`, and each character's prediction (the argmax), which the labs print."""
    loss, metrics = train.cross_entropy(logits, batch)
    return loss, {**metrics, "predictions": jnp.argmax(logits, -1)}


def run_lab(
    lab: CharLab, seed: int = 0, iterations: int | None = None, learning_rate: float | None = None, params: Any = None
) -> LabRun:
    """Train ``lab.model`` from ``seed`` (or from the given ``params``, e.g. converted from PyTorch) with Adam for
    ``iterations`` steps (the lab's count by default) at ``learning_rate`` (the lab's by default).

    The whole run is one compiled program (:func:`jaxnn.train.train_loop`); calling again with another seed reuses
    it.
    """
    iterations = lab.iterations if iterations is None else iterations
    checks.positive_int(iterations, "iterations", checks.MAX_ITERATIONS)
    checks.seed(seed)
    init_rng, train_rng = jax.random.split(jax.random.key(seed))
    x, y = jnp.asarray(lab.x), jnp.asarray(lab.y)
    if params is None:
        params = train.init_params(lab.model, init_rng, x)
    lr = lab.learning_rate if learning_rate is None else learning_rate
    state = train.create_train_state(lab.model, params, train.adam(lr))
    batch = {"inputs": x, "labels": y}
    if jax.device_count() > 1 and x.shape[0] % jax.device_count() == 0:
        # Data parallel when the batch splits evenly over the devices (hihello's and charseq's batch of 1 cannot).
        mesh = parallel.make_mesh()
        state, batch = parallel.replicate(state, mesh), parallel.shard_batch(batch, mesh)
    state, metrics = train.train_loop(state, batch, train_rng, iterations, loss=cross_entropy_and_predictions)
    preds = np.asarray(metrics["predictions"])
    return LabRun(state, np.asarray(metrics["loss"]), [lab.to_text(p) for p in preds])


@dataclass(frozen=True)
class Result(driver.Result):
    """Every recipe's fields (:class:`jaxnn.train.driver.Result`; records: train_loss and train_accuracy, means
    over the epoch's iterations) and every iteration's loss and predicted string (of the iterations run in this
    call: a resumed run's from ``first_iteration`` on)."""

    lab: CharLab
    losses: np.ndarray  # (iterations run,) each iteration's loss, before its update
    predictions: list[str]  # each iteration's predicted string
    first_iteration: int  # 0, or the iteration a resumed run continued from

    @property
    def final(self) -> str | None:
        """The last iteration's prediction (None when nothing was left to train)."""
        return self.predictions[-1] if self.predictions else None


@driver.recipe
def train_and_evaluate(config: Config, workdir: str | Path) -> Result:
    """The lab ``config.lab`` (:func:`make_lab`) trained as ``config`` says through :func:`driver.fit`: the same
    steps as :func:`run_lab` from the same seed."""
    lab = make_lab(config.lab, config.cell)
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))  # as run_lab
    x, y = jnp.asarray(lab.x), jnp.asarray(lab.y)
    params = driver.init_variables(config, lab.model, init_rng, x)["params"]
    lr = lab.learning_rate if config.learning_rate is None else config.learning_rate
    state = train.create_train_state(lab.model, params, train.adam(lr))
    fit = driver.fit(
        config,
        workdir,
        state=state,
        data=driver.Data(x, y, full_batch_steps=config.total_iterations // config.epochs),
        rng=train_rng,
        train_step=functools.partial(train.train_step, loss=cross_entropy_and_predictions),
        title=f"{config.lab} ({config.cell}), {config.seed_name}",
    )
    steps = fit.steps or {}
    losses = np.asarray(steps.get("loss", np.zeros(0, np.float32)))
    predictions = [lab.to_text(p) for p in steps.get("predictions", [])]
    return Result(lab, losses, predictions, int(fit.state.step) - len(losses), **fit.run_fields())
