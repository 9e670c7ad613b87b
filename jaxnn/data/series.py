"""Time-series utilities of lab 11-4: min-max scaling fitted on the training split, and the sliding windows that
turn a series into (inputs, next target) pairs."""

from __future__ import annotations

import numpy as np

__all__ = ["MinMaxScaler", "windows"]


class MinMaxScaler:
    """``(x - min) / (max - min + 1e-7)`` per column, min and max of the data it is fitted on (the lab's formula)."""

    def __init__(self, fitted_on: np.ndarray):
        self.lo, self.hi = fitted_on.min(axis=0), fitted_on.max(axis=0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.lo) / (self.hi - self.lo + 1e-7)

    def inverse(self, y: np.ndarray, column: int) -> np.ndarray:
        return y * (self.hi[column] - self.lo[column] + 1e-7) + self.lo[column]


def windows(series: np.ndarray, seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """The lab's ``build_dataset``: x = series[i:i+L], y = the last column of series[i+L], for every i."""
    if len(series) <= seq_length:
        raise ValueError(f"a series of {len(series)} steps has no window of {seq_length} steps plus a target")
    starts = np.arange(len(series) - seq_length)
    x = series[starts[:, None] + np.arange(seq_length)[None, :]]
    return x, series[starts + seq_length, -1:]
