"""Lab 11-4: time series. An LSTM(5, 10) + Linear(10, 1) on the last step predicts the next value of a series from
windows of 7 steps of 5 features; MSE, Adam 0.01, 500 full-batch iterations, a 70/30 split in time order.

Data: the lab's stock prices carry no license, so this lab uses the US quarterly macroeconomic series shipped in
``data/macrodata/`` (public domain): features real consumption, investment, government spending, disposable income
and real GDP, predicting next quarter's real GDP (the lab's five columns Open, High, Low, Volume, Close predict the
next Close). That is 203 quarters instead of the lab's 732 days.

Scaling: the lab min-max scales the test split with the test split's own minimum and maximum, which uses the future
and moves the test targets onto another scale. Here the scaler is fitted on the training split only and applied to
both; test values beyond the training range then scale past 1, as they should.

The run goes through the epoch driver (:func:`jaxnn.train.driver.fit`): the lab's 500 full-batch iterations are cut
into ``epochs`` epochs, each one compiled ``lax.scan`` of steps, with a test evaluation, a ``metrics.jsonl`` record,
TensorBoard and a checkpoint at each epoch's end (``resume`` continues a killed run exactly), then ``curves.png``,
``params.npz`` and ``predictions.png``. Nothing is random but the initial weights: ``torch_seed`` starts from the
lab's PyTorch model's after ``torch.manual_seed``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import checks, report, train
from jaxnn.data.macro import load_macrodata
from jaxnn.data.series import MinMaxScaler, windows
from jaxnn.models import RNNRegressor
from jaxnn.train import driver

FEATURES = ("realcons", "realinv", "realgovt", "realdpi", "realgdp")  # the last one is the target


@dataclasses.dataclass(frozen=True)
class Config(driver.RunOptions):
    seq_length: int = 7  # quarters of history per prediction (the lab's 7)
    hidden_size: int = 10  # LSTM hidden size (the lab's 10)
    learning_rate: float = 0.01  # Adam's learning rate (the lab's)
    iterations: int = 500  # Adam steps over the whole training split (the lab's 500), epochs x iterations per epoch
    epochs: int = 5  # the iterations cut into epochs: a record, a test evaluation and a checkpoint after each
    train_fraction: float = 0.7  # the first part of the series that trains, in time order (the lab's 0.7)
    cpu_compiler_options: bool = False  # XLA's default options: this LSTM has no convolution to speed up

    def __post_init__(self):
        self.check_run_options()
        checks.fields(self, {"seq_length": 1, "hidden_size": 1})
        checks.integer(self.iterations, "iterations", 1, checks.MAX_ITERATIONS)
        checks.fields(self, positive=("learning_rate",))
        self.check_full_batch_epochs(self.iterations)
        if not 0 < self.train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction!r}")


@dataclasses.dataclass(frozen=True)
class Result(driver.Result):
    """Every recipe's fields (:class:`jaxnn.train.driver.Result`; records: train_loss, the epoch's mean MSE on the
    scaled data, and test_loss) and the predictions in the target's units."""

    train_rmse: float  # in the target's units (billions of chained 2005 dollars)
    test_rmse: float
    test_predictions: np.ndarray  # (N_test,) in the target's units
    test_targets: np.ndarray
    plot_path: Path | None  # predictions.png; None without matplotlib


def split(values: np.ndarray, config: Config):
    """The lab's split in time order: the first 70% for training, the rest (with the 7 steps before it) for
    testing; both scaled with the training split's min and max. Returns the scaler and the four window arrays."""
    train_size = int(len(values) * config.train_fraction)
    train_set, test_set = values[:train_size], values[train_size - config.seq_length :]
    scaler = MinMaxScaler(train_set)
    return scaler, *windows(scaler(train_set), config.seq_length), *windows(scaler(test_set), config.seq_length)


@driver.recipe
def train_and_evaluate(config: Config, workdir: str | Path, model: nn.Module | None = None) -> Result:
    """Train ``model`` (default: the lab's ``RNNRegressor(config.hidden_size)``, an LSTM) on the training windows
    with :func:`driver.fit`, evaluating the test windows after every epoch; then predict both splits in the target's
    units and save ``predictions.png`` in ``workdir``. A model maps ``(B, seq_length, 5)`` windows to ``(B, 1)``."""
    workdir = Path(workdir)
    _, values = load_macrodata(columns=FEATURES)
    scaler, train_x, train_y, test_x, test_y = split(values.astype(np.float32), config)
    model = RNNRegressor(config.hidden_size) if model is None else model
    rng = jax.random.key(config.seed)  # the initialisation's; training draws nothing (no dropout, full batches)
    params = driver.init_variables(config, model, rng, jnp.asarray(train_x[:1]))["params"]
    state = train.create_train_state(model, params, train.adam(config.learning_rate))
    data = driver.Data(
        jnp.asarray(train_x),
        jnp.asarray(train_y),
        jnp.asarray(test_x),
        jnp.asarray(test_y),
        full_batch_steps=config.iterations // config.epochs,
    )
    target = len(FEATURES) - 1
    in_units = functools.partial(scaler.inverse, column=target)
    name = f"LSTM({len(FEATURES)}, {config.hidden_size})" if type(model) is RNNRegressor else type(model).__name__
    title = f"{name}, {config.seed_name}"
    predict = jax.jit(train.predict)

    def finish(state, workdir, write):
        test_pred = in_units(np.asarray(predict(state, data.test_x))[:, 0])
        if not write:
            return {"test_pred": test_pred, "plot_path": None}
        path = report.plot_series(
            {"true": in_units(test_y[:, 0]), "predicted": test_pred},
            workdir / "predictions.png",
            f"next-quarter real GDP, test split ({title})",
            xlabel="test window",
            ylabel="billions of chained 2005 dollars",
        )
        return {"test_pred": test_pred, "plot_path": path}

    fit = driver.fit(
        config,
        workdir,
        state=state,
        data=data,
        rng=rng,
        train_step=functools.partial(train.train_step, loss=train.mse),
        eval_step=functools.partial(train.eval_step, loss=train.mse),
        title=title,
        finish=finish,
    )
    train_pred = in_units(np.asarray(predict(fit.state, data.train_x))[:, 0])
    test_pred, test_true = fit.extra["test_pred"], in_units(test_y[:, 0])
    plot = fit.extra["plot_path"]
    if plot is None and (workdir / "predictions.png").is_file():  # a resume of a run that was complete already
        plot = workdir / "predictions.png"
    return Result(
        float(np.sqrt(np.mean((train_pred - in_units(train_y[:, 0])) ** 2))),
        float(np.sqrt(np.mean((test_pred - test_true) ** 2))),
        test_pred,
        test_true,
        plot,
        **fit.run_fields(),
    )
