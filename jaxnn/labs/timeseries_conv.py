"""A recipe of our own on lab 11-4's data, added as README's "Adding a lab" describes: the same series, windows,
scaling, split and training as :mod:`jaxnn.labs.timeseries`, another model. A 1-D convolution reads patterns over
neighbouring quarters of each window, a GRU reads the convolution's outputs in time order, and a Linear head predicts
next quarter's real GDP from the GRU's last step.

    python -m jaxnn timeseries_conv --channels 16 --kernel_size 3
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import flax.linen as nn
import jax

from jaxnn import checks
from jaxnn.labs import timeseries
from jaxnn.nn import RNN, Conv1d, Linear


class ConvGRURegressor(nn.Module):
    """``(B, T, features)`` -> ``(B, 1)``: Conv1d (``'same'`` length) and ReLU, a GRU, Linear on the last step."""

    channels: int = 16
    kernel_size: int = 3
    hidden_size: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        h = jax.nn.relu(Conv1d(self.channels, self.kernel_size, padding=self.kernel_size // 2, name="conv")(x))
        out, _ = RNN(self.hidden_size, batch_first=True, cell="gru", name="rnn")(h, deterministic=deterministic)
        return Linear(1, name="fc")(out[:, -1])


@dataclasses.dataclass(frozen=True)
class Config(timeseries.Config):
    """The time-series lab's config (windows, split, Adam, epochs, run options) and the convolution's shape."""

    channels: int = 16  # output channels of the 1-D convolution
    kernel_size: int = 3  # quarters each convolution output reads (odd: the window keeps its length)

    def __post_init__(self):
        super().__post_init__()
        checks.fields(self, {"channels": 1, "kernel_size": 1})
        if self.kernel_size % 2 == 0 or self.kernel_size > self.seq_length:
            raise ValueError(f"kernel_size must be odd and <= seq_length {self.seq_length}, got {self.kernel_size}")


def train_and_evaluate(config: Config, workdir: str | Path) -> timeseries.Result:
    """:func:`jaxnn.labs.timeseries.train_and_evaluate` with a :class:`ConvGRURegressor`."""
    model = ConvGRURegressor(config.channels, config.kernel_size, config.hidden_size)
    return timeseries.train_and_evaluate(config, workdir, model=model)
