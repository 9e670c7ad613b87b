"""Lab 11-6: packed sequences. Five words of different lengths, padded, packed and unpacked as
``torch.nn.utils.rnn`` does it, then ``RNN(19, 30)`` on the padded batch with and without ``seq_lengths``.

The character set is sorted (the lab's ``list(set(...))`` changes order from run to run) with ``<pad>`` at index 0,
so the padding value 0 is a character of its own.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn.data import sequence
from jaxnn.models import RNN

WORDS = ("hello world", "midnight", "calculation", "path", "short circuit")
PAD = "<pad>"


@dataclasses.dataclass(frozen=True)
class PackedLab:
    chars: tuple[str, ...]  # <pad> first, then the sorted characters
    indices: list[np.ndarray]  # each word as character indices
    lengths: np.ndarray  # (5,)
    padded: np.ndarray  # (5, T) pad_sequence(batch_first=True), padding 0 = <pad>
    packed_sorted: sequence.PackedSequence  # pack_sequence of the words sorted longest first (the lab's way)
    packed: sequence.PackedSequence  # pack_padded_sequence(padded, lengths, enforce_sorted=False)
    unpacked: np.ndarray  # pad_packed_sequence(packed, batch_first=True): the padded batch again
    unpacked_lengths: np.ndarray
    output_padded: np.ndarray  # RNN on the one-hot padded batch, no lengths: (5, T, 30)
    h_padded: np.ndarray  # (1, 5, 30)
    output_packed: np.ndarray  # the same RNN with seq_lengths: PyTorch's packed result
    h_packed: np.ndarray
    params: dict  # the RNN's parameters, with torch.nn.RNN's names


def run(seed: int = 0, hidden_size: int = 30) -> PackedLab:
    chars = (PAD, *sorted(set("".join(WORDS))))
    index = {c: i for i, c in enumerate(chars)}
    indices = [np.array([index[c] for c in w], np.int64) for w in WORDS]
    lengths = np.array([len(w) for w in WORDS], np.int64)
    padded = sequence.pad_sequence(indices, batch_first=True, padding_value=index[PAD])
    by_length = sorted(indices, key=len, reverse=True)
    packed_sorted = sequence.pack_sequence(by_length)
    packed = sequence.pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    unpacked, unpacked_lengths = sequence.pad_packed_sequence(packed, batch_first=True)

    x = jax.nn.one_hot(jnp.asarray(padded), len(chars))  # (5, T, 19)
    rnn = RNN(hidden_size, batch_first=True)
    params = rnn.init(jax.random.key(seed), x)
    output_padded, h_padded = rnn.apply(params, x)
    output_packed, h_packed = rnn.apply(params, x, seq_lengths=lengths)
    return PackedLab(
        chars,
        indices,
        lengths,
        padded,
        packed_sorted,
        packed,
        unpacked,
        unpacked_lengths,
        *map(np.asarray, (output_padded, h_padded, output_packed, h_packed)),
        jax.tree.map(np.asarray, params["params"]),
    )
