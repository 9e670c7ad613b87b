"""``torch.nn.utils.rnn`` on arrays: padding, packing and unpacking batches of variable-length sequences.

The functions take and return NumPy or JAX arrays (``pad_packed_sequence`` returns NumPy lengths, like PyTorch's CPU
int64 tensor), with the same ``data``, ``batch_sizes``, ``sorted_indices`` and ``unsorted_indices`` that
``torch.nn.utils.rnn`` gives, so packed batches move between the two frameworks element for element.

jaxnn's :class:`jaxnn.models.RNN` runs on the padded form with ``seq_lengths``; ``pad_packed_sequence`` turns a
packed batch into exactly that ``(padded, lengths)`` pair. Packing is host-side work (its shapes depend on the
lengths), so these functions are not for use under ``jit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class PackedSequence(NamedTuple):
    """``torch.nn.utils.rnn.PackedSequence``: the valid steps of a batch, time step by time step.

    data: ``(sum(lengths), *features)``, the sequences' step t for every sequence longer than t, longest first.
    batch_sizes: ``(T_max,)`` int64, how many sequences are longer than each t.
    sorted_indices, unsorted_indices: the permutation into longest-first order and its inverse (None when the
    input was already sorted and ``enforce_sorted=True``).
    """

    data: np.ndarray
    batch_sizes: np.ndarray
    sorted_indices: np.ndarray | None = None
    unsorted_indices: np.ndarray | None = None


def _lengths(lengths, batch: int) -> np.ndarray:
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape ({batch},) (one per sequence), got {lengths.shape}")
    if not np.issubdtype(lengths.dtype, np.integer):
        raise TypeError(f"lengths must be integers, got {lengths.dtype}")
    if batch and lengths.min() < 1:
        raise ValueError(f"lengths must be >= 1 (PyTorch rejects empty sequences), got {lengths.tolist()}")
    return lengths.astype(np.int64)


def pad_sequence(
    sequences: Sequence, batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right"
) -> np.ndarray:
    """Stack ``(L_i, *features)`` sequences into ``(T_max, B, *features)`` (``(B, T_max, ...)`` with
    ``batch_first``), filled with ``padding_value`` after each sequence (before it with ``padding_side='left'``)."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    arrays = [np.asarray(s) for s in sequences]
    if not arrays:
        raise ValueError("pad_sequence needs at least one sequence")
    trailing = arrays[0].shape[1:]
    for i, a in enumerate(arrays):
        if a.ndim < 1 or a.shape[1:] != trailing:
            raise ValueError(f"sequence {i} has shape {a.shape}; every sequence must be (L, *{trailing})")
    longest = max(a.shape[0] for a in arrays)
    dtype = np.result_type(*arrays)
    out = np.full((len(arrays), longest, *trailing), padding_value, dtype)
    for i, a in enumerate(arrays):
        if padding_side == "right":
            out[i, : a.shape[0]] = a
        else:
            out[i, longest - a.shape[0] :] = a
    return out if batch_first else np.swapaxes(out, 0, 1)


def pack_padded_sequence(input, lengths, batch_first: bool = False, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded ``(T, B, *features)`` batch (``(B, T, ...)`` with ``batch_first``) of the given lengths.

    With ``enforce_sorted`` the lengths must be in decreasing order; otherwise the batch is sorted longest first
    (a stable sort, as PyTorch's) and the permutation kept in ``sorted_indices``."""
    padded = np.asarray(input)
    if padded.ndim < 2:
        raise ValueError(f"input must be (T, B, *features) or (B, T, *features), got shape {padded.shape}")
    if batch_first:
        padded = np.swapaxes(padded, 0, 1)
    steps, batch = padded.shape[:2]
    lengths = _lengths(lengths, batch)
    if lengths.max(initial=0) > steps:
        raise ValueError(f"lengths must be <= the padded length {steps}, got {lengths.tolist()}")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise ValueError(
                f"lengths must be sorted in decreasing order with enforce_sorted=True, got "
                f"{lengths.tolist()}; pass enforce_sorted=False to sort them here"
            )
        sorted_indices = None
        order = np.arange(batch)
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = order.astype(np.int64)
    sorted_lengths = lengths[order]
    batch_sizes = np.array([(sorted_lengths > t).sum() for t in range(sorted_lengths[0])], np.int64)
    data = np.concatenate([padded[t, order[:n]] for t, n in enumerate(batch_sizes)], axis=0)
    unsorted = None if sorted_indices is None else np.argsort(sorted_indices).astype(np.int64)
    return PackedSequence(data, batch_sizes, sorted_indices, unsorted)


def pack_sequence(sequences: Sequence, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of ``(L_i, *features)`` sequences: ``pack_padded_sequence(pad_sequence(sequences), lengths)``."""
    lengths = np.array([np.shape(s)[0] for s in sequences], np.int64)
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def pad_packed_sequence(
    sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0, total_length: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Undo :func:`pack_padded_sequence`: ``(padded, lengths)``, the batch in its original order, padded with
    ``padding_value`` to ``total_length`` steps (default: the longest length). ``(padded, lengths)`` is what
    :class:`jaxnn.models.RNN` takes as ``(x, seq_lengths=lengths)``."""
    data, batch_sizes = np.asarray(sequence.data), np.asarray(sequence.batch_sizes)
    steps, batch = len(batch_sizes), int(batch_sizes[0])
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"total_length ({total_length}) must be at least the longest sequence ({steps})")
        steps = total_length
    padded = np.full((steps, batch, *data.shape[1:]), padding_value, data.dtype)
    offset = 0
    for t, n in enumerate(batch_sizes):
        padded[t, :n] = data[offset : offset + n]
        offset += n
    lengths = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1).astype(np.int64)
    if sequence.unsorted_indices is not None:
        padded = padded[:, np.asarray(sequence.unsorted_indices)]
        lengths = lengths[np.asarray(sequence.unsorted_indices)]
    return (np.swapaxes(padded, 0, 1) if batch_first else padded), lengths


__all__ = ["PackedSequence", "pad_sequence", "pack_padded_sequence", "pack_sequence", "pad_packed_sequence"]
