"""Lab 11-5: seq2seq, English -> Korean on the lab's four sentence pairs, with an Embedding + GRU encoder/decoder.

Word vocabularies as the lab builds them (``<SOS>`` 0, ``<EOS>`` 1, then words in order of first appearance, after
lower-casing), hidden size 16, LogSoftmax + NLL summed over each target sentence, SGD 0.01, 5000 iterations with
teacher forcing, then greedy decoding of every source sentence (at most 12 words).

By default every iteration trains on the four pairs at once, padded, the encoder run with ``seq_lengths``; with
``one_pair_per_step`` each iteration trains on one pair drawn at random, as the lab does. The run goes through the
epoch driver (:func:`jaxnn.train.driver.fit`): the iterations as ``epochs`` compiled ``lax.scan`` programs, with
``metrics.jsonl``, TensorBoard, ``curves.png``, ``params.npz`` and a checkpoint after each (``resume`` continues a
killed run exactly). ``torch_seed`` starts from the weights the lab's PyTorch model has after
``torch.manual_seed``; with ``one_pair_per_step`` the pairs are still drawn by JAX.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnn import checks, train
from jaxnn.data import sequence
from jaxnn.data.text import SOS, WordVocab
from jaxnn.models.seq2seq import Seq2Seq
from jaxnn.train import driver

RAW = (
    ("I feel hungry.", "나는 배가 고프다."),
    ("Pytorch is very easy.", "파이토치는 매우 쉽다."),
    ("Pytorch is a framework for deep learning.", "파이토치는 딥러닝을 위한 프레임워크이다."),
    ("Pytorch is very clear to use.", "파이토치는 사용하기 매우 직관적이다."),
)
SOURCE_MAX_LENGTH, TARGET_MAX_LENGTH = 10, 12


@dataclasses.dataclass(frozen=True)
class Config(driver.RunOptions):
    iterations: int = 5000  # SGD steps (the lab's 5000), epochs x iterations per epoch
    epochs: int = 5  # the iterations cut into epochs: a record and a checkpoint after each
    learning_rate: float = 0.01  # SGD learning rate (the lab's)
    hidden_size: int = 16  # GRU hidden size of the encoder and the decoder (the lab's 16)
    one_pair_per_step: bool = False  # the lab's recipe: one random pair per iteration
    cpu_compiler_options: bool = False  # XLA's default options: a GRU has no convolution to speed up

    def __post_init__(self):
        self.check_run_options()
        checks.fields(self, {"hidden_size": 1})
        checks.integer(self.iterations, "iterations", 1, checks.MAX_ITERATIONS)
        checks.fields(self, positive=("learning_rate",))
        self.check_full_batch_epochs(self.iterations)


@dataclasses.dataclass(frozen=True)
class Result(driver.Result):
    """Every recipe's fields (:class:`jaxnn.train.driver.Result`; records: train_loss and train_nll_per_word, means
    over the epoch) and the translations."""

    pairs: tuple[tuple[str, str], ...]  # (source, target), lower-cased as the lab reads them
    translations: list[list[str]]  # greedy decoding of each source, up to and including <EOS>
    losses: np.ndarray  # (iterations run,) mean NLL per target word of each iteration (a resume's from its checkpoint)

    @property
    def exact(self) -> list[bool]:
        """Whether each translation is its target sentence followed by <EOS>."""
        return [
            t == target.split(" ") + ["<EOS>"] for t, (_, target) in zip(self.translations, self.pairs, strict=True)
        ]


def _pad(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Word indices of different lengths as one zero-padded ``(B, longest)`` int32 batch, and the lengths."""
    padded = sequence.pad_sequence([np.asarray(r, np.int32) for r in rows], batch_first=True)
    return padded, np.array([len(r) for r in rows], np.int32)


def prepare(pairs=RAW):
    """The lab's preprocessing: lower-case, keep pairs shorter than the maximum lengths, build both vocabularies.

    Returns ``(pairs, source_vocab, target_vocab, arrays)``; arrays holds the padded source, its lengths, the
    decoder inputs (``<SOS>`` + target), the targets (target + ``<EOS>``) and their lengths."""
    pairs = tuple((s.strip().lower(), t.strip().lower()) for s, t in pairs)
    pairs = tuple(
        p for p in pairs if len(p[0].split(" ")) < SOURCE_MAX_LENGTH and len(p[1].split(" ")) < TARGET_MAX_LENGTH
    )
    source_vocab = WordVocab.from_sentences(s for s, _ in pairs)
    target_vocab = WordVocab.from_sentences(t for _, t in pairs)
    source, source_lengths = _pad([source_vocab.encode(s) for s, _ in pairs])
    targets, target_lengths = _pad([target_vocab.encode(t) for _, t in pairs])
    decoder_inputs = np.concatenate([np.full((len(pairs), 1), SOS, np.int32), targets[:, :-1]], axis=1)
    arrays = dict(
        source=source,
        source_lengths=source_lengths,
        decoder_inputs=decoder_inputs,
        targets=targets,
        target_lengths=target_lengths,
    )
    return pairs, source_vocab, target_vocab, arrays


def sentence_nll(log_probs, batch):
    """NLL summed over each target sentence's words (the lab's ``loss += criterion(...)`` per word), averaged over
    the sentences of the batch; and, as the lab prints it, the NLL per target word."""
    targets, lengths = batch["labels"]
    nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    mask = jnp.arange(nll.shape[1])[None, :] < lengths[:, None]
    per_sentence = jnp.where(mask, nll, 0.0).sum(axis=1)
    return per_sentence.mean(), {"nll_per_word": per_sentence.sum() / mask.sum()}


def one_pair_step(state: train.TrainState, batch, rng: jax.Array):
    """:func:`jaxnn.train.train_step` on one pair of ``batch``, drawn from ``(rng, step)``: the lab's iteration (a
    resumed run draws the same pairs)."""
    n = jax.tree_util.tree_leaves(batch)[0].shape[0]
    pick = jax.random.randint(jax.random.fold_in(rng, state.step), (1,), 0, n)
    pair = jax.tree_util.tree_map(lambda a: a[pick], batch)
    return train.train_step(state, pair, rng, loss=sentence_nll)


@driver.recipe
def train_and_evaluate(config: Config, workdir: str | Path) -> Result:
    """Train the lab's translator with :func:`driver.fit` and decode every source sentence greedily."""
    pairs, source_vocab, target_vocab, arrays = prepare()
    model = Seq2Seq(len(source_vocab), len(target_vocab), config.hidden_size)
    init_rng, pair_rng = jax.random.split(jax.random.key(config.seed))
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
    inputs = (arrays["source"], arrays["source_lengths"], arrays["decoder_inputs"])
    params = driver.init_variables(config, model, init_rng, inputs)["params"]
    state = train.create_train_state(model, params, optax.sgd(config.learning_rate))
    labels = (arrays["targets"], arrays["target_lengths"])
    step = one_pair_step if config.one_pair_per_step else functools.partial(train.train_step, loss=sentence_nll)
    fit = driver.fit(
        config,
        workdir,
        state=state,
        data=driver.Data(inputs, labels, full_batch_steps=config.iterations // config.epochs),
        rng=pair_rng,
        train_step=step,
        title=f"seq2seq, hidden {config.hidden_size}, {config.seed_name}",
    )
    words = jax.jit(functools.partial(model.apply, method=Seq2Seq.translate), static_argnums=(3, 4))(
        {"params": fit.state.params}, arrays["source"], arrays["source_lengths"], SOS, TARGET_MAX_LENGTH
    )
    translations = [target_vocab.decode(w) for w in np.asarray(words)]
    losses = np.asarray((fit.steps or {}).get("nll_per_word", np.zeros(0, np.float32)))
    return Result(pairs, translations, losses, **fit.run_fields())
