"""The lab 11 character tasks (hihello, charseq, longseq): their data, model and a compiled training run.

Each lab trains one small model on one fixed batch with Adam for a number of iterations; the whole run is a single
``lax.scan`` (:func:`jaxnn.train.train_loop`). Every iteration's loss and prediction (from that iteration's forward
pass, before the update, as the labs print them) come back as arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import train
from jaxnn.data.text import Vocab, next_char_pair, sliding_windows, windows_to_text
from jaxnn.models.rnn import CharRNN

HIHELLO = "hihello"
CHARSEQ = " if you want you"
LONGSEQ = ("if you want to build a ship, don't drum up people together to "
           "collect wood and don't assign them tasks and work, but rather "
           "teach them to long for the endless immensity of the sea.")


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
        return len(text) == len(self.target) and text[self.undetermined:] == self.target[self.undetermined:]


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
        return CharLab(name, vocab, x, y, model, 0.1, 100 if name == "hihello" else 50, text[1:],
                       lambda p: vocab.decode(p[0]))
    if name == "longseq":
        vocab = Vocab.from_text(LONGSEQ)
        x, y = sliding_windows(LONGSEQ, vocab, sequence_length)
        model = CharRNN(len(vocab), len(vocab), num_layers=2, cell=cell, head=True)
        return CharLab(name, vocab, x, y, model, 0.1, 100, LONGSEQ[1:], lambda p: windows_to_text(p, vocab),
                       undetermined=1)
    raise ValueError(f"unknown lab {name!r}; choose 'hihello', 'charseq' or 'longseq'")


def run_lab(lab: CharLab, seed: int = 0, iterations: int | None = None, learning_rate: float | None = None,
            params: Any = None) -> LabRun:
    """Train ``lab.model`` from ``seed`` (or from the given ``params``, e.g. converted from PyTorch)."""
    iterations = lab.iterations if iterations is None else iterations
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    lr = lab.learning_rate if learning_rate is None else learning_rate
    init_rng, train_rng = jax.random.split(jax.random.key(seed))
    x, y = jnp.asarray(lab.x), jnp.asarray(lab.y)
    state = train.create_train_state(lab.model, init_rng, x, lr, params=params)
    batch = {"inputs": x, "labels": y}
    if jax.device_count() > 1 and x.shape[0] % jax.device_count() == 0:
        # Data parallel when the batch splits evenly over the devices (hihello's and charseq's batch of 1 cannot).
        from jaxnn import parallel

        mesh = parallel.make_mesh()
        state, batch = parallel.replicate(state, mesh), parallel.shard_batch(batch, mesh)
    state, metrics, preds = train.train_loop(state, batch, train_rng, iterations)
    preds = np.asarray(preds)
    return LabRun(state, np.asarray(metrics["loss"]), [lab.to_text(p) for p in preds])


def lab_arguments(description: str, argv=None, add_more=None):
    """The command line every lab 11 script shares: --cell, --seed, --iterations, --lr (plus ``add_more(parser)``).

    Returns ``(parser, args)``; bad values end the program with argparse's message and exit code 2."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="rnn", help="recurrent cell (rnn)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation (0)")
    parser.add_argument("--iterations", type=int, default=None, help="Adam steps (the lab's count by default)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (the lab's 0.1 by default)")
    if add_more is not None:
        add_more(parser)
    args = parser.parse_args(argv)
    if args.iterations is not None and args.iterations < 1:
        parser.error(f"--iterations must be >= 1, got {args.iterations}")
    if args.lr is not None and not args.lr > 0:
        parser.error(f"--lr must be > 0, got {args.lr}")
    return parser, args


def print_run(lab: CharLab, run: LabRun) -> None:
    """Each iteration's loss and predicted string, as the labs print them."""
    for i, (loss, text) in enumerate(zip(run.losses, run.predictions)):
        print(f"{i:3d} loss: {loss:.6f} prediction: {text!r}")
    verdict = "reached" if lab.on_target(run.final) else "did not reach"
    note = f" (its first {lab.undetermined} character is undetermined by construction)" if lab.undetermined else ""
    print(f"final prediction {run.final!r} {verdict} the target {lab.target!r}{note}")


def main(name: str, description: str, argv=None) -> tuple[CharLab, LabRun]:
    """A lab 11 script: parse the shared flags, train, print every iteration as the lab does."""
    from jaxnn.runtime import enable_compilation_cache

    _, args = lab_arguments(description, argv)
    enable_compilation_cache()
    lab = make_lab(name, args.cell)
    run = run_lab(lab, args.seed, args.iterations, args.lr)
    print_run(lab, run)
    return lab, run
