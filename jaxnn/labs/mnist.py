"""Labs 10-1 and 10-2: the MNIST CNN and the deep CNN, trained with Adam on the real MNIST.

``train_and_evaluate(Config(), workdir)`` trains, evaluates on the test split after every epoch, and writes
``metrics.jsonl``, TensorBoard event files (``logdir``), ``curves.png`` and ``params.npz`` (and orbax checkpoints
under ``checkpoints/``) to ``workdir``. Progress goes to the ``jaxnn`` logger.

The recipe is the lab's but for two things: the learning rate decays to 0 along a cosine by default
(``schedule='constant'`` is the lab's), and the test images are normalised like the training images (the PyTorch
lab fed raw 0-255 pixels to its test).

``torch_seed=N`` is the lab's PyTorch run after ``torch.manual_seed(N)``: its initial weights, its batches in its
order and (lab 10-2) its dropout masks (:mod:`jaxnn.random`), the lab's constant learning rate and its
``ToTensor()`` pixels (x / 255) for training and test; the printed costs are then the lab script's.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import checks, report, runtime, train
from jaxnn.data import mnist
from jaxnn.models import DeepCNN, MnistCNN
from jaxnn.random.run import torch_run
from jaxnn.train import driver

MODELS = {"cnn": MnistCNN, "deep": DeepCNN}
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Config(driver.RunOptions):
    """One MNIST run. Every value is checked here, once; a bad one is a ValueError naming the field."""

    model: str = "cnn"  # 'cnn': lab 10-1's MnistCNN; 'deep': lab 10-2's DeepCNN
    epochs: int = 15  # training epochs (the lab's 15)
    batch_size: int = 100  # batch size (the lab's)
    learning_rate: float = 1e-3  # Adam's learning rate (the lab's)
    schedule: str | None = None  # 'cosine' (to 0) or 'constant' (the lab's); None: cosine, or constant with torch_seed
    train_subset: int | None = None  # train on the first N training images only
    test_subset: int | None = None  # evaluate on the first N test images only
    data_dir: str | None = None  # TFDS data_dir (None: $TFDS_DATA_DIR or ~/tensorflow_datasets)
    manual_dir: str | None = None  # the four MNIST .gz files (None: data/mnist)

    def __post_init__(self):
        self.check_run_options()
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        if self.schedule not in (None, "cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        checks.fields(self, {"batch_size": 1})
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None:
                checks.fields(self, {name: 1})
        checks.fields(self, positive=("learning_rate",))


@dataclasses.dataclass(frozen=True)
class Result(driver.Result):
    """Every recipe's fields (:class:`jaxnn.train.driver.Result`: records, state, files) and the test metrics."""

    test_accuracy: float
    test_loss: float
    predictions_path: Path | None = None  # the first 16 test images with predicted and true labels (lab 10-3)


@driver.recipe
def train_and_evaluate(config: Config, workdir: str | Path) -> Result:
    """Train ``config.model`` on MNIST and evaluate it on the test split after every epoch (:func:`driver.fit`)."""
    workdir = Path(workdir)
    data = mnist.load_mnist(config.data_dir, config.manual_dir)
    images, labels = data["train"]
    if config.train_subset is not None:
        images, labels = images[: config.train_subset], labels[: config.train_subset]
    # PyTorch's run: the lab's ToTensor() pixels; else normalised by the training set's mean and std
    pixels = (lambda a: np.asarray(a, np.float32) / 255) if config.torch_seed is not None else mnist.normalize
    train_x, train_y = jnp.asarray(pixels(images)), jnp.asarray(labels)
    test_images, test_labels = data["test"]
    if config.test_subset is not None:
        test_images, test_labels = test_images[: config.test_subset], test_labels[: config.test_subset]
    test_x, test_y = jnp.asarray(pixels(test_images)), jnp.asarray(test_labels)
    log.info("MNIST: %d train, %d test images; devices: %s", train_x.shape[0], test_x.shape[0], jax.devices())

    model = MODELS[config.model]()
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    if config.torch_seed is None:
        params = train.init_params(model, init_rng, train_x[:1])
        batches = driver.Data(train_x, train_y, test_x, test_y, config.batch_size)
    else:
        variables, stream = torch_run(model, config.torch_seed, train_x, config.batch_size)
        params = variables["params"]
        fields = stream.data_fields(train_x, train_y)
        batches = driver.Data(train_x, train_y, test_x, test_y, config.batch_size, **fields)
    schedule = config.schedule or ("cosine" if config.torch_seed is None else "constant")
    decay_steps = config.epochs * batches.steps_per_epoch if schedule == "cosine" else None
    state = train.create_train_state(model, params, train.adam(config.learning_rate, decay_steps))
    options = runtime.compiler_options() if config.cpu_compiler_options else None
    eval_logits = jax.jit(train.predict, compiler_options=options)
    title = f"{type(model).__name__}, {config.seed_name}"

    def finish(state, workdir, primary):
        shown = test_x[:16]
        predictions = np.asarray(jnp.argmax(eval_logits(state, shown), -1))  # every process: a collective on a mesh
        if not primary:
            return {}
        path = report.plot_predictions(
            np.asarray(shown), np.asarray(test_y[:16]), predictions, workdir / "predictions.png", title=title
        )
        return {"predictions_path": path}

    fit = driver.fit(
        config,
        workdir,
        state=state,
        data=batches,
        rng=train_rng,
        title=title,
        finish=finish,
    )
    return Result(fit.test["accuracy"], fit.test["loss"], fit.extra.get("predictions_path"), **fit.run_fields())
