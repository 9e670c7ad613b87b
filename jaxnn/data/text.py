"""Text for the RNN labs: a deterministic character vocabulary, encoding, sliding windows, and the seq2seq lab's
word vocabulary.

The labs build their vocabulary with ``list(set(text))``, whose order changes with Python's hash seed from run to
run; :class:`Vocab` sorts the characters, so the same text always gives the same indices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from jaxnn import checks


def check_indices(indices, size: int) -> np.ndarray:
    """``indices`` flattened, after checking they are integers (a TypeError) in ``[0, size)`` (a ValueError)."""
    flat = np.asarray(indices).reshape(-1)
    if flat.size and flat.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got dtype {flat.dtype}")
    if flat.size and (flat.min() < 0 or flat.max() >= size):
        raise ValueError(f"indices must lie in [0, {size}), got values in [{flat.min()}, {flat.max()}]")
    return flat


@dataclass(frozen=True)
class Vocab:
    """Characters in sorted order; ``index[c]`` is the position of ``c``."""

    chars: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str | Iterable[str]) -> Vocab:
        chars = tuple(sorted(set("".join(text) if not isinstance(text, str) else text)))
        if not chars:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls(chars)

    @property
    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """``text`` -> int32 indices ``(len(text),)``; a character outside the vocabulary is a ValueError."""
        index = self.index
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(
                f"characters {unknown!r} of text {text[:40]!r} are not in the vocabulary {''.join(self.chars)!r}"
            )
        return np.fromiter((index[c] for c in text), np.int32, len(text))

    def decode(self, indices) -> str:
        """Indices (any int array, flattened) -> string; an index out of range is a ValueError, a float a TypeError."""
        flat = check_indices(indices, len(self.chars))
        return "".join(self.chars[int(i)] for i in flat)


def next_char_pair(text: str, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """One sequence predicting each next character: ``x = text[:-1]``, ``y = text[1:]``, each (1, T) int32."""
    if len(text) < 2:
        raise ValueError(f"text must have at least 2 characters, got {text!r}")
    idx = vocab.encode(text)
    return idx[None, :-1], idx[None, 1:]


def sliding_windows(text: str, vocab: Vocab, sequence_length: int) -> tuple[np.ndarray, np.ndarray]:
    """The longseq lab's data: for i in range(len(text) - L), x = text[i:i+L], y = text[i+1:i+L+1] (step 1).

    Returns int32 ``x, y`` of shape ``(len(text) - L, L)``.
    """
    checks.positive_int(sequence_length, "sequence_length")
    if sequence_length >= len(text):
        raise ValueError(f"sequence_length {sequence_length} must be shorter than the text ({len(text)} characters)")
    idx = vocab.encode(text)
    n = len(text) - sequence_length
    starts = np.arange(n)[:, None] + np.arange(sequence_length)[None, :]
    return idx[starts], idx[starts + 1]


def windows_to_text(predictions, vocab: Vocab) -> str:
    """Rebuild the text from step-1 windows, as the longseq lab prints it: the whole first window, then the last
    character of each following one. predictions: (num_windows, L) ints."""
    predictions = np.asarray(predictions)
    if predictions.ndim != 2 or predictions.shape[0] == 0:
        raise ValueError(f"predictions must be (num_windows, L), got shape {predictions.shape}")
    return vocab.decode(predictions[0]) + vocab.decode(predictions[1:, -1])


SOS, EOS = 0, 1  # WordVocab's start- and end-of-sentence indices


@dataclass(frozen=True)
class WordVocab:
    """``<SOS>``, ``<EOS>``, then the words of the sentences (split on spaces) in order of first appearance."""

    words: tuple[str, ...]

    @classmethod
    def from_sentences(cls, sentences) -> WordVocab:
        words = ["<SOS>", "<EOS>"]
        for sentence in sentences:
            words += [w for w in sentence.split(" ") if w not in words]
        return cls(tuple(words))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: str) -> list[int]:
        """The sentence's word indices followed by ``<EOS>``; an unknown word is a ValueError naming it."""
        index = {w: i for i, w in enumerate(self.words)}
        unknown = [w for w in sentence.split(" ") if w not in index]
        if unknown:
            raise ValueError(f"words {unknown} of {sentence!r} are not in the vocabulary")
        return [index[w] for w in sentence.split(" ")] + [EOS]

    def decode(self, indices) -> list[str]:
        """Words up to and including the first ``<EOS>``; a float is a TypeError, an index out of range a
        ValueError."""
        words = []
        for i in check_indices(indices, len(self.words)).tolist():
            words.append(self.words[i])
            if i == EOS:
                break
        return words
