"""The one epoch driver every epoch recipe runs (MNIST, VGG/ResNet, image folders), for any loss.

A recipe loads and checks its data, builds its model and first train state, and hands them to :func:`fit` with its
:class:`RunOptions` (and, for a loss other than cross-entropy, its train and eval steps:
``functools.partial(train.train_step, loss=train.mse)``). ``fit`` owns everything a run guarantees, for every recipe
alike:

- the epoch records: the mean of every metric the loss returns, ``train_<metric>`` and ``test_<metric>``
  (``loss``, and ``accuracy`` for cross-entropy);
- the workdir (:func:`jaxnn.workdir.claim`): one run at a time, its identity (the config and the data's content)
  recorded in ``run.json`` and compared on resume, a previous run's files replaced only by a run that passed its
  checks;
- orbax checkpoints (every ``checkpoint_every`` steps and at each epoch end; parameters, optimizer state and
  BatchNorm statistics) and ``resume``, bit-identical to the uninterrupted run after a SIGKILL at any step;
- the non-finite guard (a NaN or infinite loss stops the run naming the step, nothing non-finite is saved);
- ``metrics.jsonl``, TensorBoard event files and a progress bar; the compiler options of the steps;
- several processes (the batch split over every device; process 0 writes the files);
- the final files: ``params.npz`` (parameters and batch statistics) and ``curves.png``, plus what the recipe's
  ``finish`` writes (sample predictions, say).

Example (the shape of every epoch recipe)::

    state = train.create_train_state(model, params, train.adam(1e-3))
    data = driver.Data(train_x, train_y, test_x, test_y, batch_size=100)
    fit = driver.fit(config, workdir, state=state, data=data, rng=rng)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np

from jaxnn import checks, parallel, precision, report, runtime
from jaxnn.checkpoint import Checkpointer, save_params
from jaxnn.train import core
from jaxnn.workdir import claim, differences, event_suffix

log = logging.getLogger("jaxnn.train")
R = TypeVar("R")

__all__ = ["RunOptions", "Data", "Fit", "Result", "fit", "recipe", "init_variables", "NOT_IDENTITY"]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run is run, as opposed to what it trains: the fields every epoch recipe's config shares."""

    epochs: int = 1  # training epochs
    seed: int = 0  # of initialisation, shuffling, augmentation and dropout
    torch_seed: int | None = None  # PyTorch's run after torch.manual_seed(N): its weights, batches, crops, dropout
    checkpoints: bool = True  # orbax checkpoints at every epoch end
    checkpoint_every: int = 0  # and every N steps (0: epoch ends only)
    keep: int = 3  # checkpoints kept
    resume: bool = False  # continue from the latest checkpoint in the workdir (its recorded config must match)
    overwrite: bool = False  # start over in a workdir that holds another run's checkpoints
    progress: bool = True  # a progress bar per epoch (the scripts show it only on a terminal)
    logdir: str | None = None  # TensorBoard event files (None: <workdir>/tensorboard)
    cpu_compiler_options: bool = True  # jaxnn.runtime.compiler_options() for the steps (faster CPU convolutions)
    matmul_precision: str = "highest"  # float32 products and convolutions (jaxnn.precision): highest, high or medium
    native_kernels: bool = False  # jaxnn's native CPU kernels (built by make): convolutions, Linear, the RNN loop

    def check_run_options(self) -> None:
        """ValueError naming the field for a bad value (call from the config's ``__post_init__``)."""
        checks.fields(self, {"epochs": 1, "checkpoint_every": 0, "keep": 1})
        checks.seed(self.seed)
        if self.torch_seed is not None:
            checks.integer(self.torch_seed, "torch_seed", 0, 2**64 - 1)
        precision.check(self.matmul_precision, "matmul_precision")
        if not isinstance(self.native_kernels, bool):
            raise TypeError(f"native_kernels must be a bool, got {self.native_kernels!r}")
        if self.native_kernels:
            from jaxnn import native

            if not native.available():
                raise ValueError(f"native_kernels: jaxnn's native kernels are not available ({native.why_not()})")
        for field in dataclasses.fields(self):  # an empty path would be the current folder: never what was meant
            value = getattr(self, field.name)
            if (
                isinstance(value, str)
                and not value.strip()
                and (field.name.endswith(("dir", "root")) or field.name in ("logdir", "init_from"))
            ):
                raise ValueError(f"{field.name} must be a path (None for the default), got {value!r}")
        if self.resume and not self.checkpoints:
            raise ValueError("resume needs checkpoints")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other")

    @property
    def seed_name(self) -> str:
        """``'seed N'``, or ``'torch_seed N'`` for a run from PyTorch's streams (for titles and logs)."""
        return f"seed {self.seed}" if self.torch_seed is None else f"torch_seed {self.torch_seed}"

    def check_full_batch_epochs(self, iterations: int) -> None:
        """For a recipe of full-batch epochs (:attr:`Data.full_batch_steps`): ``iterations`` must cut into ``epochs``
        equal epochs, and there is no checkpoint inside an epoch, which is one compiled program."""
        if iterations % self.epochs:
            raise ValueError(f"iterations must be a multiple of epochs {self.epochs}, got {iterations}")
        if self.checkpoint_every:
            raise ValueError(
                f"checkpoint_every must be 0 (checkpoints come at epoch ends), got {self.checkpoint_every}"
            )


# The fields that only say where files are or how often to save: a resume may change them.
NOT_IDENTITY = (
    "resume",
    "overwrite",
    "progress",
    "checkpoints",
    "checkpoint_every",
    "keep",
    "logdir",
    "data_dir",
    "manual_dir",
)


@dataclasses.dataclass(frozen=True)
class Data:
    """A recipe's data for :func:`fit`: the training split (device arrays, or ``batches``) and the test split.

    ``batches(epoch, start, rng)`` yields the batches of one epoch from batch ``start`` on, in an order that depends
    on ``(rng, epoch)`` alone (default: :func:`jaxnn.train.epoch_batches` over ``train_x``/``train_y``);
    ``steps_per_epoch`` is how many it yields from ``start=0``, and ``fingerprint`` a string that changes whenever
    what it yields does (an image folder's file names and sizes, say): with the arrays' digests it is part of the
    run's identity, so a resume after the data changed is refused.

    ``full_batch_steps=k``: every step trains on the whole training split (``batch_size`` is its size) and an epoch
    is ``k`` such steps compiled as one ``lax.scan`` (:func:`jaxnn.train.scan_steps`), the small RNN labs' speed;
    checkpoints then come at epoch ends only.
    """

    train_x: Any
    train_y: Any
    test_x: Any = None
    test_y: Any = None
    batch_size: int = 100
    eval_batch_size: int = 1000
    batches: Callable[[int, int, jax.Array], Iterator[core.Batch]] | None = None
    steps_per_epoch: int | None = None
    fingerprint: str | None = None
    full_batch_steps: int | None = None

    def __post_init__(self):
        if self.full_batch_steps is not None:
            if self.batches is not None:
                raise ValueError("Data: full_batch_steps trains on train_x/train_y, not on batches")
            checks.positive_int(self.full_batch_steps, "full_batch_steps", checks.MAX_STEPS)
            object.__setattr__(self, "batch_size", int(jax.tree_util.tree_leaves(self.train_x)[0].shape[0]))
            object.__setattr__(self, "steps_per_epoch", self.full_batch_steps)
        elif self.batches is None:
            core.check_batch_size(self.batch_size, int(self.train_x.shape[0]))
            object.__setattr__(self, "steps_per_epoch", int(self.train_x.shape[0]) // self.batch_size)
        else:
            checks.positive_int(self.steps_per_epoch, "steps_per_epoch")


@dataclasses.dataclass(frozen=True)
class Fit:
    """What :func:`fit` gives back: the trained state, one record per epoch run (``epoch``, ``train_<metric>`` and,
    with a test split, ``test_<metric>`` for each metric of the loss; ``learning_rate`` with a schedule), the last
    test metrics and the files written."""

    state: core.TrainState
    records: list[dict[str, Any]]
    test: dict[str, float] | None
    params_path: Path
    metrics_path: Path
    logdir: Path
    curves_path: Path | None
    extra: dict[str, Any]
    # full_batch_steps: what every step of the epochs run here returned, stacked (a resumed run's from its checkpoint)
    steps: dict[str, np.ndarray] | None = None

    def run_fields(self) -> dict[str, Any]:
        """The fields of :class:`Result`, from this fit."""
        names = [f.name for f in dataclasses.fields(Result)]
        return {name: getattr(self, name) for name in names}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Result:
    """The fields every recipe's result has: a lab's ``Result`` derives from this and adds its own (its test
    accuracy, its predictions, ...). Build it with ``Result(own fields..., **fit.run_fields())``."""

    records: list[dict[str, Any]]  # one per epoch run: epoch, train_<metric> and test_<metric> of the loss's metrics
    state: core.TrainState  # the trained state
    params_path: Path  # params.npz: parameters and BatchNorm statistics
    metrics_path: Path  # metrics.jsonl: the records, one JSON line each
    logdir: Path  # TensorBoard event files
    curves_path: Path | None  # curves.png (None for one epoch, or without matplotlib)


def init_variables(options: RunOptions, model, rng: jax.Array, sample_inputs) -> dict:
    """A recipe's first variables: JAX's from ``rng``, or with ``options.torch_seed`` those of the lab's PyTorch
    model after ``torch.manual_seed(torch_seed)`` (:func:`jaxnn.random.torch_init`; a model that is no lab's gets
    PyTorch's default initialisation of its layers)."""
    if options.torch_seed is None:
        return core.init_variables(model, rng, sample_inputs)
    from jaxnn import random as torch_random

    generator = torch_random.Generator().manual_seed(options.torch_seed)
    sample = sample_inputs if isinstance(sample_inputs, tuple) else (sample_inputs,)
    return torch_random.torch_init(model, *(np.asarray(a) for a in sample), generator=generator)


def recipe(train_and_evaluate: Callable[..., R]) -> Callable[..., R]:
    """Decorate a recipe's ``train_and_evaluate(config, workdir, ...)``: all of it (the training, the evaluation and
    whatever it computes after :func:`fit`) is traced under ``config.matmul_precision`` (:mod:`jaxnn.precision`)
    and, with ``config.native_kernels``, on jaxnn's native kernels (:func:`jaxnn.runtime.native_kernels_used`), so
    that no model or step needs a setting of its own."""

    @functools.wraps(train_and_evaluate)
    def run(config: RunOptions, *args, **kwargs) -> R:
        native = runtime.native_kernels_used(True) if config.native_kernels else contextlib.nullcontext()
        with precision.float32_matmul_precision(config.matmul_precision), native:
            return train_and_evaluate(config, *args, **kwargs)

    return run


def fit(
    options: RunOptions,
    workdir: str | Path,
    *,
    state: core.TrainState,
    data: Data,
    rng: jax.Array,
    train_step: Callable = core.train_step,
    eval_step: Callable = core.eval_step,
    schedule: Callable[[int], Any] | None = None,
    title: str = "",
    finish: Callable[[core.TrainState, Path, bool], dict[str, Any]] | None = None,
    identity: dict[str, Any] | None = None,
) -> Fit:
    """Train ``state`` for ``options.epochs`` epochs over ``data`` and evaluate after each (see the module doc).

    ``train_step(state, batch, rng)`` and ``eval_step(state, batch)`` are pure (jitted here, with jaxnn's CPU
    compiler options unless ``options.cpu_compiler_options`` is off). ``identity`` is what the run is (default: the
    fields of ``options``, the recipe's config; always without :data:`NOT_IDENTITY`, and with the device count and
    the data's fingerprint added by ``fit``): recorded in ``run.json`` and compared on resume. ``schedule(step)``
    adds the epoch's ``learning_rate`` to its record. ``finish(state, workdir, write)`` runs after the last epoch in
    every process (it may run collectives) and returns extra results for :attr:`Fit.extra`; it writes files only
    when ``write`` (process 0, and not a resume of a run that was complete already).
    ``rng`` draws the shuffling and the steps' randomness (``split(rng)``: the shuffle key, the step key).
    """
    workdir = Path(workdir)
    if options.epochs * data.steps_per_epoch > checks.MAX_STEPS:  # the int32 step counter
        raise ValueError(
            f"epochs {options.epochs} x {data.steps_per_epoch} steps per epoch must be <= {checks.MAX_STEPS} steps"
        )
    if data.full_batch_steps is not None and options.checkpoint_every:
        raise ValueError(
            f"checkpoint_every must be 0 for a recipe whose epoch is one compiled program of {data.steps_per_epoch} "
            f"full-batch steps (checkpoints come at its epoch ends), got {options.checkpoint_every}"
        )
    identity = dataclasses.asdict(options) if identity is None else identity
    identity = {k: v for k, v in identity.items() if k not in NOT_IDENTITY}
    identity["devices"] = jax.device_count()
    identity["data"] = _fingerprint(data)  # what was trained on, not only where it was read from
    identity = json.loads(json.dumps(identity))  # as run.json holds it (a tuple reads back as a list)
    mesh = None
    if jax.device_count() > 1:  # data parallel over every device: the batch split, everything else replicated
        mesh = parallel.make_mesh()
        parallel.check_divisible(data.batch_size, mesh)
    primary = jax.process_index() == 0
    _check_processes_agree(identity, workdir, data)
    # In a multi-process run every process trains; process 0 alone owns the workdir and writes the files (the
    # checkpoints, which orbax writes from every process, aside).
    logdir = Path(options.logdir) if options.logdir else workdir / "tensorboard"
    owner = claim(workdir, identity, options.resume, options.overwrite, logdir) if primary else None
    with owner or contextlib.nullcontext(), precision.float32_matmul_precision(options.matmul_precision):
        return _fit(
            options, workdir, logdir, state, data, rng, train_step, eval_step, schedule, title, finish, mesh, primary
        )


def _fingerprint(data: Data) -> dict[str, Any]:
    """What identifies a run's data: a digest of the arrays (or the batch count of a ``batches`` source)."""
    out = {"batch_size": data.batch_size, "steps_per_epoch": data.steps_per_epoch}
    if data.fingerprint is not None:
        out["batches"] = data.fingerprint
    for name in ("train_x", "train_y", "test_x", "test_y"):
        value = getattr(data, name)
        if value is not None and (data.batches is None or name.startswith("test")):
            leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(value)]  # an array, or a tuple of them
            digest = hashlib.sha256(b"".join(leaf.tobytes() for leaf in leaves)).hexdigest()[:16]
            out[name] = "".join(f"{leaf.dtype}{list(leaf.shape)}" for leaf in leaves) + f":{digest}"
    return out


def _check_processes_agree(identity: dict[str, Any], workdir: Path, data: Data) -> None:
    """In a multi-process run, a ValueError in every process when the processes differ in config, data or workdir
    (before anything is written): each would otherwise train its own run and average gradients with the other's."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    mine = {"config": identity, "workdir": str(workdir)}  # the identity holds the data's fingerprint
    text = json.dumps(mine, sort_keys=True).encode()
    digest = np.frombuffer(hashlib.sha256(text).digest(), np.uint8)
    digests = np.asarray(multihost_utils.process_allgather(digest))  # (processes, 32) in every process
    differ = [i for i in range(len(digests)) if (digests[i] != digests[0]).any()]
    if not differ:
        return
    size = int(multihost_utils.broadcast_one_to_all(np.int32(len(text))))
    first = np.frombuffer(text, np.uint8) if jax.process_index() == 0 else np.zeros(size, np.uint8)
    first = json.loads(bytes(np.asarray(multihost_utils.broadcast_one_to_all(first))))

    diff = differences(_flatten(first), _flatten(mine))
    raise ValueError(
        f"the processes of this run differ: process(es) {differ} run another config, data or workdir than "
        f"process 0{' (' + '; '.join(diff) + ')' if diff else ''}; start every process with the same flags and data"
    )


def _flatten(run: dict[str, Any]) -> dict[str, Any]:
    flat = {}
    for part, value in run.items():
        if isinstance(value, dict):
            flat.update({f"{part}.{k}" if part != "config" else k: v for k, v in value.items()})
        else:
            flat[part] = value
    return flat


def _epoch_line(epoch: int, train: dict[str, float], test: dict[str, float] | None) -> str:
    """The labs' line, ``[Epoch:    1] cost = 0.123456789``, then the other metrics: ``train acc`` and ``test acc``
    for accuracy, ``test loss`` for a loss without one."""
    line = f"[Epoch: {epoch:4d}] cost = {train['loss']:.9f}"
    line += "".join(f"  train {_short(k)} = {v:.4f}" for k, v in train.items() if k != "loss")
    if test is not None:
        shown = {k: v for k, v in test.items() if k != "loss"} or {"loss": test["loss"]}
        line += "".join(f"  test {_short(k)} = {v:.{9 if k == 'loss' else 4}f}" for k, v in shown.items())
    return line


def _short(metric: str) -> str:
    return {"accuracy": "acc"}.get(metric, metric)


def _check_records(path: Path) -> None:
    """Before a resume cuts ``metrics.jsonl`` back to its checkpoint: every line must be this driver's record of
    epoch 1, 2, ... in turn (else a ValueError naming the line; the file is left as it is)."""
    for number, record in enumerate(report.read_metrics(path), 1):
        if not (type(record.get("epoch")) is int and record["epoch"] == number and "train_loss" in record):
            raise ValueError(
                f"{path} line {number} is not the record of epoch {number} of this run ({json.dumps(record)[:80]}); "
                f"repair or remove that line"
            )


def _record(epoch: int, train: dict[str, float], schedule, steps: int) -> dict[str, Any]:
    record = {"epoch": epoch + 1}
    if schedule is not None:
        record["learning_rate"] = float(schedule(epoch * steps))
    record.update({f"train_{k}": v for k, v in train.items()})
    return record


def _end_epoch(record, train, state, test_x, test_y, eval_fn, data, logger, records, ckpt) -> dict[str, float] | None:
    """The test metrics after an epoch, its log line, its record (file and list) and its checkpoint."""
    test = None
    if test_x is not None:
        test = core.evaluate(eval_fn, state, test_x, test_y, data.eval_batch_size)
        record.update({f"test_{k}": v for k, v in test.items()})
    log.info("%s", _epoch_line(record["epoch"], train, test))
    if logger is not None:  # before the epoch's checkpoint: a kill in between re-runs the epoch, losing nothing
        logger.write(**record)
    records.append(record)
    if ckpt is not None:
        ckpt.save(state)
    return test


def _fit(
    options, workdir, logdir, state, data, rng, train_step, eval_step, schedule, title, finish, mesh, primary
) -> Fit:
    shuffle_rng, step_rng = jax.random.split(rng)
    steps = data.steps_per_epoch
    place = None
    train_x, train_y, test_x, test_y = data.train_x, data.train_y, data.test_x, data.test_y
    if mesh is not None:  # before a restore, which then places the checkpoint's arrays as the state's
        state = parallel.replicate(state, mesh)
        if data.batches is None:
            train_x, train_y = parallel.replicate((train_x, train_y), mesh)
        place = functools.partial(parallel.shard_batch, mesh=mesh)

    def epoch_batches(epoch, first):
        if data.batches is not None:
            return data.batches(epoch, first, shuffle_rng)
        return core.epoch_batches(train_x, train_y, data.batch_size, shuffle_rng, epoch, first)

    metrics_path = workdir / "metrics.jsonl"
    ckpt = Checkpointer(workdir / "checkpoints", options.keep) if options.checkpoints else None
    first_epoch, start, previous, complete = 0, 0, None, False
    if options.resume:
        state, step = ckpt.restore_latest(state)
        if step is None:
            log.info("no checkpoint in %s: starting from scratch", ckpt.directory)
        else:
            first_epoch, start = divmod(step, steps)
            complete = first_epoch >= options.epochs
            previous = (ckpt.extra(step) or {}).get("epoch_so_far") if start else None
            log.info("resumed from step %d (epoch %d, batch %d)", step, first_epoch + 1, start)
    # Keep the lines of the epochs the checkpoint covers (byte for byte); an epoch logged after it will run again.
    records = []
    if options.resume:
        _check_records(metrics_path)
        keep = lambda r: r["epoch"] <= first_epoch  # noqa: E731
        records = report.keep_metrics(metrics_path, keep) if primary else report.read_metrics(metrics_path)
        records = [r for r in records if keep(r)]

    compiler_options = runtime.compiler_options() if options.cpu_compiler_options else None
    eval_fn = jax.jit(eval_step, compiler_options=compiler_options)
    if data.full_batch_steps is None:
        step_fn = jax.jit(train_step, compiler_options=compiler_options)
    else:  # an epoch is one program: the scan of its steps
        step_fn = jax.jit(
            functools.partial(core.scan_steps, train_step, num_steps=steps), compiler_options=compiler_options
        )
        full_batch = {"inputs": train_x, "labels": train_y}
        if place is not None:
            full_batch = place(full_batch)

    def after_step(s, so_far):
        if int(s.step) % options.checkpoint_every == 0 and int(s.step) % steps:
            so_far = {k: [float(v) for v in vs] for k, vs in so_far.items()}
            ckpt.save(s, {"epoch_so_far": so_far} if primary else None)

    logger = None
    if primary and not complete:
        logger = report.MetricsLogger(metrics_path, logdir, filename_suffix=event_suffix(workdir))
    test, per_steps = None, []
    try:
        for epoch in range(first_epoch, options.epochs):
            if data.full_batch_steps is not None:
                state, m, per_step = core.scan_epoch(step_fn, state, full_batch, step_rng)
                per_steps.append(jax.tree_util.tree_map(np.asarray, per_step))
                record = _record(epoch, m, schedule, steps)
                test = _end_epoch(record, m, state, test_x, test_y, eval_fn, data, logger, records, ckpt)
                continue
            first = start if epoch == first_epoch else 0
            batches = epoch_batches(epoch, first)
            if place is not None:
                batches = map(place, batches)
            batches = report.progress(batches, steps - first, f"epoch {epoch + 1}", options.progress)
            state, m = core.train_epoch(
                step_fn,
                state,
                batches,
                step_rng,
                after_step if ckpt is not None and options.checkpoint_every else None,
                previous if epoch == first_epoch else None,
            )
            record = _record(epoch, m, schedule, steps)
            test = _end_epoch(record, m, state, test_x, test_y, eval_fn, data, logger, records, ckpt)
    finally:
        if ckpt is not None:
            ckpt.close()
        if logger is not None:
            logger.close()
    if test is None and test_x is not None:  # resumed after the last epoch: evaluate what the checkpoint holds
        test = core.evaluate(eval_fn, state, test_x, test_y, data.eval_batch_size)
    # A resumed run that was complete already leaves its files alone (unless the kill came before they were written).
    params_path, curves = workdir / "params.npz", None
    write = primary and not (complete and params_path.is_file())
    extra = finish(state, workdir, write) if finish is not None else {}
    if write:
        variables = {"params": state.params}
        if state.batch_stats is not None:
            variables["batch_stats"] = state.batch_stats
        save_params(params_path, jax.tree_util.tree_map(np.asarray, variables))
        if len(records) >= 2:  # a curve needs two epochs: one is a point, not worth matplotlib's start-up
            curves = report.plot_metrics(records, workdir / "curves.png", title)
    elif primary and (workdir / "curves.png").is_file():
        curves = workdir / "curves.png"
    steps = None
    if data.full_batch_steps is not None:
        steps = {k: np.concatenate([s[k] for s in per_steps]) for k in per_steps[0]} if per_steps else {}
    return Fit(state, records, test, params_path, metrics_path, logdir, curves, extra, steps)
