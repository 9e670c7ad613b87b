"""Labs 10-1 and 10-2: the MNIST CNN and the deep CNN, trained with Adam on the real MNIST.

``train_and_evaluate(Config(), workdir)`` trains, evaluates on the test split after every epoch, and writes
``metrics.jsonl``, TensorBoard event files (``logdir``), ``curves.png`` and ``params.npz`` (and orbax checkpoints
under ``checkpoints/``) to ``workdir``. Progress goes to the ``jaxnn`` logger.

The recipe is the lab's but for two things: the learning rate decays to 0 along a cosine by default
(``schedule='constant'`` is the lab's), and the test images are normalised like the training images (the PyTorch
lab fed raw 0-255 pixels to its test).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import parallel, report, runtime, train
from jaxnn.checkpoint import Checkpointer, save_params
from jaxnn.data import mnist
from jaxnn.labs.config import check_ints, check_positive
from jaxnn.models import DeepCNN, MnistCNN
from jaxnn.workdir import claim

MODELS = {"cnn": MnistCNN, "deep": DeepCNN}
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Config:
    """One MNIST run. Every value is checked here, once; a bad one is a ValueError naming the field."""

    model: str = "cnn"  # 'cnn': lab 10-1's MnistCNN; 'deep': lab 10-2's DeepCNN
    epochs: int = 15
    batch_size: int = 100
    learning_rate: float = 1e-3
    schedule: str = "cosine"  # 'cosine' decay to 0 over the run, or 'constant' as in the lab
    seed: int = 0  # of initialisation, shuffling and dropout
    train_subset: int | None = None  # train on the first N training images only
    data_dir: str | None = None  # TFDS data_dir (None: $TFDS_DATA_DIR or ~/tensorflow_datasets)
    manual_dir: str | None = None  # the four MNIST .gz files (None: data/mnist)
    checkpoints: bool = True  # orbax checkpoints at every epoch end
    checkpoint_every: int = 0  # and every N steps (0: epoch ends only)
    keep: int = 3  # checkpoints kept
    resume: bool = False  # continue from the latest checkpoint in the workdir (its recorded config must match)
    overwrite: bool = False  # start over in a workdir that holds another run's checkpoints
    progress: bool = False  # a progress bar per epoch
    logdir: str | None = None  # TensorBoard event files (None: <workdir>/tensorboard)
    cpu_compiler_options: bool = True  # jaxnn.runtime.compiler_options() for the steps (faster CPU convolutions)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        check_ints(self, {"epochs": 1, "batch_size": 1, "checkpoint_every": 0, "keep": 1})
        if self.train_subset is not None:
            check_ints(self, {"train_subset": 1})
        check_positive(self, "learning_rate")
        if self.resume and not self.checkpoints:
            raise ValueError("resume needs checkpoints")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other")


# What identifies a run: a resume must match these (with the device count and library versions). The others only
# say where files are, or how often to save, and may change between the parts of a run.
NOT_IDENTITY = (
    "resume",
    "overwrite",
    "progress",
    "checkpoints",
    "checkpoint_every",
    "keep",
    "data_dir",
    "manual_dir",
    "logdir",
)


def run_identity(config: Config) -> dict[str, Any]:
    values = {k: v for k, v in dataclasses.asdict(config).items() if k not in NOT_IDENTITY}
    return {**values, "devices": jax.device_count()}


@dataclasses.dataclass(frozen=True)
class Result:
    test_accuracy: float
    test_loss: float
    records: list[dict[str, Any]]  # one per epoch run: epoch, train_loss, train_accuracy, test_loss, test_accuracy
    state: train.TrainState
    params_path: Path
    metrics_path: Path
    curves_path: Path | None  # None without matplotlib
    predictions_path: Path | None = None  # the first 16 test images with predicted and true labels (lab 10-3)


def train_and_evaluate(config: Config, workdir: str | Path) -> Result:
    """Train ``config.model`` on MNIST and evaluate it on the test split after every epoch.

    The workdir is claimed (:func:`jaxnn.workdir.claim`) once the data and the config have passed their checks:
    locked for this run, its configuration recorded or, on resume, compared with the recorded one.
    """
    workdir = Path(workdir)
    data = mnist.load_mnist(config.data_dir, config.manual_dir)
    images, labels = data["train"]
    if config.train_subset is not None:
        images, labels = images[: config.train_subset], labels[: config.train_subset]
    train_x, train_y = jnp.asarray(mnist.normalize(images)), jnp.asarray(labels)
    test_x, test_y = jnp.asarray(mnist.normalize(data["test"].images)), jnp.asarray(data["test"].labels)
    train.check_batch_size(config.batch_size, train_x.shape[0])
    mesh = None
    if jax.device_count() > 1:  # data parallel over every device: the batch split, everything else replicated
        mesh = parallel.make_mesh()
        parallel.check_divisible(config.batch_size, mesh)
    # In a multi-process run every process trains; process 0 alone owns the workdir and writes the files (the
    # checkpoints, which orbax writes from every process, aside).
    owner = claim(workdir, run_identity(config), config.resume, config.overwrite) if jax.process_index() == 0 else None
    with owner or contextlib.nullcontext():
        return _train(config, workdir, (train_x, train_y), (test_x, test_y), mesh)


def _train(config: Config, workdir: Path, train_data, test_data, mesh) -> Result:
    (train_x, train_y), (test_x, test_y) = train_data, test_data
    log.info("MNIST: %d train, %d test images; devices: %s", train_x.shape[0], test_x.shape[0], jax.devices())
    model = MODELS[config.model]()
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    shuffle_rng, step_rng = jax.random.split(train_rng)
    steps_per_epoch = train_x.shape[0] // config.batch_size
    params = train.init_params(model, init_rng, train_x[:1])
    decay_steps = config.epochs * steps_per_epoch if config.schedule == "cosine" else None
    state = train.create_train_state(model, params, train.adam(config.learning_rate, decay_steps))

    place = None
    if mesh is not None:  # before a restore, which then places the checkpoint's arrays as the state's
        state, train_x, train_y = parallel.replicate((state, train_x, train_y), mesh)
        place = functools.partial(parallel.shard_batch, mesh=mesh)

    primary = jax.process_index() == 0
    metrics_path = workdir / "metrics.jsonl"
    ckpt = Checkpointer(workdir / "checkpoints", config.keep) if config.checkpoints else None
    first_epoch, start, previous = 0, 0, None
    if config.resume:
        state, step = ckpt.restore_latest(state)
        if step is None:
            log.info("no checkpoint in %s: starting from scratch", ckpt.directory)
        else:
            first_epoch, start = divmod(step, steps_per_epoch)
            previous = (ckpt.extra(step) or {}).get("epoch_so_far") if start else None
            log.info("resumed from step %d (epoch %d, batch %d)", step, first_epoch + 1, start)
    # Keep the lines of the epochs the checkpoint covers; an epoch logged after it will run again.
    records = [r for r in report.read_metrics(metrics_path) if r["epoch"] <= first_epoch] if config.resume else []
    if primary:
        report.write_metrics(metrics_path, records)

    # The one place where jaxnn's CPU compiler options are chosen for this lab.
    options = runtime.compiler_options() if config.cpu_compiler_options else None
    train_step = jax.jit(train.train_step, compiler_options=options)
    eval_step = jax.jit(train.eval_step, compiler_options=options)
    eval_logits = jax.jit(train.predict, compiler_options=options)

    def after_step(s, so_far):
        if int(s.step) % config.checkpoint_every == 0 and int(s.step) % steps_per_epoch:
            so_far = {k: [float(v) for v in vs] for k, vs in so_far.items()}
            ckpt.save(s, {"epoch_so_far": so_far} if primary else None)

    logdir = Path(config.logdir) if config.logdir else workdir / "tensorboard"
    logger = report.MetricsLogger(metrics_path, logdir) if primary else None
    test = None
    for epoch in range(first_epoch, config.epochs):
        first = start if epoch == first_epoch else 0
        batches = train.epoch_batches(train_x, train_y, config.batch_size, shuffle_rng, epoch, first)
        if place is not None:
            batches = map(place, batches)
        batches = report.progress(batches, steps_per_epoch - first, f"epoch {epoch + 1}", config.progress)
        state, m = train.train_epoch(
            train_step,
            state,
            batches,
            step_rng,
            after_step if ckpt is not None and config.checkpoint_every else None,
            previous if epoch == first_epoch else None,
        )
        test = train.evaluate(eval_step, state, test_x, test_y)
        record = dict(
            epoch=epoch + 1,
            train_loss=m["loss"],
            train_accuracy=m["accuracy"],
            test_loss=test["loss"],
            test_accuracy=test["accuracy"],
        )
        log.info(
            "[Epoch: %4d] cost = %.9f  train acc = %.4f  test acc = %.4f",
            epoch + 1,
            m["loss"],
            m["accuracy"],
            test["accuracy"],
        )
        if logger is not None:  # before the epoch's checkpoint: a kill in between re-runs the epoch, losing nothing
            logger.write(**record)
        records.append(record)
        if ckpt is not None:
            ckpt.save(state)
    if ckpt is not None:
        ckpt.close()
    final = test if test is not None else train.evaluate(eval_step, state, test_x, test_y)  # the last epoch's
    shown = test_x[:16]
    predictions = np.asarray(jnp.argmax(eval_logits(state, shown), -1))  # in every process: a collective on a mesh
    params_path, curves, samples = workdir / "params.npz", None, None
    if primary:
        logger.close()
        save_params(params_path, state.params)
        title = f"{type(model).__name__}, seed {config.seed}"
        curves = report.plot_metrics(records, workdir / "curves.png", title)
        samples = report.plot_predictions(
            np.asarray(shown), np.asarray(test_y[:16]), predictions, workdir / "predictions.png", title=title
        )
    return Result(final["accuracy"], final["loss"], records, state, params_path, metrics_path, curves, samples)
