"""Lab 11-4: time series. An LSTM(5, 10) + Linear(10, 1) on the last step predicts the next value of a series from
windows of 7 steps of 5 features; MSE, Adam 0.01, 500 full-batch iterations, a 70/30 split in time order.

Data: the lab's stock prices carry no license, so this lab uses the US quarterly macroeconomic series shipped in
``data/macrodata/`` (public domain): features real consumption, investment, government spending, disposable income
and real GDP, predicting next quarter's real GDP (the lab's five columns Open, High, Low, Volume, Close predict the
next Close). That is 203 quarters instead of the lab's 732 days.

Scaling: the lab min-max scales the test split with the test split's own minimum and maximum, which uses the future
and moves the test targets onto another scale. Here the scaler is fitted on the training split only and applied to
both; test values beyond the training range then scale past 1, as they should.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import checks, report, train
from jaxnn.data.macro import load_macrodata
from jaxnn.models import RNNRegressor

FEATURES = ("realcons", "realinv", "realgovt", "realdpi", "realgdp")  # the last one is the target


@dataclasses.dataclass(frozen=True)
class Config:
    seq_length: int = 7  # quarters of history per prediction (the lab's 7)
    hidden_size: int = 10  # LSTM hidden size (the lab's 10)
    learning_rate: float = 0.01  # Adam's learning rate (the lab's)
    iterations: int = 500  # Adam steps over the whole training split (the lab's 500)
    train_fraction: float = 0.7  # the first part of the series that trains, in time order (the lab's 0.7)
    seed: int = 0  # of the initialisation

    def __post_init__(self):
        checks.fields(self, {"seq_length": 1, "hidden_size": 1})
        checks.integer(self.iterations, "iterations", 1, checks.MAX_ITERATIONS)
        checks.seed(self.seed)
        checks.fields(self, positive=("learning_rate",))
        if not 0 < self.train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction!r}")


@dataclasses.dataclass(frozen=True)
class Result:
    train_rmse: float  # in the target's units (billions of chained 2005 dollars)
    test_rmse: float
    test_predictions: np.ndarray  # (N_test,) in the target's units
    test_targets: np.ndarray
    losses: np.ndarray  # (iterations,) training MSE on the scaled data, before each update
    params: dict
    plot_path: Path | None  # None without matplotlib


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


def split(values: np.ndarray, config: Config):
    """The lab's split in time order: the first 70% for training, the rest (with the 7 steps before it) for
    testing; both scaled with the training split's min and max. Returns the scaler and the four window arrays."""
    train_size = int(len(values) * config.train_fraction)
    train_set, test_set = values[:train_size], values[train_size - config.seq_length :]
    scaler = MinMaxScaler(train_set)
    return scaler, *windows(scaler(train_set), config.seq_length), *windows(scaler(test_set), config.seq_length)


def train_and_evaluate(config: Config, workdir: str | Path | None = None) -> Result:
    """Train on the training windows, predict the test windows; with ``workdir``, save ``predictions.png`` there."""
    _, values = load_macrodata(columns=FEATURES)
    scaler, train_x, train_y, test_x, test_y = split(values.astype(np.float32), config)
    model = RNNRegressor(config.hidden_size)
    params = train.init_params(model, jax.random.key(config.seed), jnp.asarray(train_x[:1]))
    state = train.create_train_state(model, params, train.adam(config.learning_rate))
    batch = {"inputs": jnp.asarray(train_x), "labels": jnp.asarray(train_y)}
    state, metrics = train.train_loop(state, batch, jax.random.key(config.seed), config.iterations, loss=train.mse)
    losses = metrics["loss"]
    predict = jax.jit(train.predict)
    target = len(FEATURES) - 1
    in_units = functools.partial(scaler.inverse, column=target)
    train_pred = in_units(np.asarray(predict(state, jnp.asarray(train_x)))[:, 0])
    test_pred = in_units(np.asarray(predict(state, jnp.asarray(test_x)))[:, 0])
    train_true, test_true = in_units(train_y[:, 0]), in_units(test_y[:, 0])
    plot = None
    if workdir is not None:
        plot = report.plot_series(
            {"true": test_true, "predicted": test_pred},
            Path(workdir) / "predictions.png",
            f"next-quarter real GDP, test split (LSTM({len(FEATURES)}, {config.hidden_size}), seed {config.seed})",
            xlabel="test window",
            ylabel="billions of chained 2005 dollars",
        )
    return Result(
        float(np.sqrt(np.mean((train_pred - train_true) ** 2))),
        float(np.sqrt(np.mean((test_pred - test_true) ** 2))),
        test_pred,
        test_true,
        np.asarray(losses),
        state.params,
        plot,
    )
