"""Lab 10-4: a small CNN trained on a folder of your own images (``root/<class>/<image>``), saved and re-loaded.

``train_and_evaluate(Config(), workdir)`` reads the training and test folders with
:class:`jaxnn.data.image_folder.ImageFolder` (resized to 64x128 RGB, as the lab's pictures), trains the lab's
:class:`jaxnn.models.FolderCNN` with Adam 5e-5 in batches of 8 for 7 epochs (the lab's recipe, shuffled by grain),
saves the parameters, loads them back into a fresh state and checks that the re-loaded model gives the same test
outputs, then reports the test accuracy. The lab's own photos carry no license, so without ``root`` the recipe
writes an image folder from the shipped MNIST instead: two digits, the first ``per_class`` training images of each
for training and of the test split for testing, as 64x128 RGB PNGs under ``<workdir>/images``. ``torch_seed=N``
starts from the lab's PyTorch model after ``torch.manual_seed(N)`` and takes its ``DataLoader(shuffle=True)``'s
order, the last partial batch included.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import checks, train
from jaxnn import random as torch_random
from jaxnn.checkpoint import load_params
from jaxnn.data import mnist
from jaxnn.data.image_folder import ImageFolder, write_mnist_folder
from jaxnn.models import FolderCNN
from jaxnn.models.cnn import FOLDER_SHAPE
from jaxnn.random.run import TorchEpochs
from jaxnn.train import driver
from jaxnn.workdir import locked

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Config(driver.RunOptions):
    """One lab 10-4 run. Every value is checked here, once; a bad one is a ValueError naming the field."""

    root: str | None = None  # the training folder (None: MNIST digits written under the workdir)
    test_root: str | None = None  # the test folder (None: MNIST test digits, or no test with a root of your own)
    digits: tuple[int, int] = (0, 1)  # the two MNIST digits of the default folders
    per_class: int = 200  # MNIST images per digit in the default training folder (and half as many for testing)
    epochs: int = 7  # training epochs (the lab's)
    batch_size: int = 8  # batch size (the lab's)
    learning_rate: float = 5e-5  # Adam's learning rate (the lab's)
    data_dir: str | None = None  # TFDS data_dir of MNIST
    manual_dir: str | None = None  # the four MNIST .gz files (None: data/mnist)

    def __post_init__(self):
        self.check_run_options()
        checks.fields(self, {"per_class": 1, "batch_size": 1})
        if self.test_root is not None and self.root is None:
            raise ValueError("test_root needs root (without root, both folders are made from MNIST)")
        checks.fields(self, positive=("learning_rate",))
        if len(self.digits) != 2 or len(set(self.digits)) != 2 or not all(d in range(10) for d in self.digits):
            raise ValueError(f"digits must be two different digits 0-9, got {self.digits!r}")


@dataclasses.dataclass(frozen=True)
class Result(driver.Result):
    """Every recipe's fields (:class:`jaxnn.train.driver.Result`) and the lab's own."""

    classes: list[str]
    test_accuracy: float | None  # None without a test folder
    reloaded_max_diff: float  # |outputs of the re-loaded parameters - outputs of the trained ones|, max: 0.0


def default_folders(config: Config, workdir: Path) -> tuple[Path, Path]:
    """The MNIST-made training and test folders under ``workdir/images`` (written once), written under the
    workdir's lock: a second run started at once writes nothing and says the workdir is in use."""
    base = workdir / "images"
    data = None
    folders = {}
    with locked(workdir):
        for split, count in (("train", config.per_class), ("test", max(config.per_class // 2, 1))):
            folder = base / f"{split}_{config.digits[0]}{config.digits[1]}_{count}"
            if not folder.is_dir():
                data = data or mnist.load_mnist(config.data_dir, config.manual_dir, verbose=False)
                # Written aside, then renamed: complete or absent. Under the lock a folder already there under the
                # temporary name is what a killed run left.
                tmp = folder.with_name(folder.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                write_mnist_folder(tmp, data[split].images, data[split].labels, config.digits, count, FOLDER_SHAPE[:2])
                tmp.rename(folder)
            folders[split] = folder
    return folders["train"], folders["test"]


@driver.recipe
def train_and_evaluate(config: Config, workdir: str | Path) -> Result:
    """Train FolderCNN on the image folder, save and re-load it, evaluate it on the test folder."""
    workdir = Path(workdir)
    if config.root is None:
        root, test_root = default_folders(config, workdir)
    else:
        root, test_root = Path(config.root), Path(config.test_root) if config.test_root else None
    folder = ImageFolder(root, size=FOLDER_SHAPE[:2])
    test = ImageFolder(test_root, size=FOLDER_SHAPE[:2]) if test_root is not None else None
    if test is not None and test.classes != folder.classes:
        raise ValueError(f"test folder classes {test.classes} differ from the training folder's {folder.classes}")
    log.info("%s: %d images of classes %s", root, len(folder), folder.classes)

    model = FolderCNN(num_classes=len(folder.classes))
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    if config.torch_seed is None:
        params = train.init_params(model, init_rng, jnp.zeros((1, *FOLDER_SHAPE)))
        order = lambda epoch: None  # noqa: E731  (grain's shuffle from the seed)
    else:  # the lab's PyTorch model after torch.manual_seed, then its DataLoader's order
        g = torch_random.Generator().manual_seed(config.torch_seed)
        params = torch_random.torch_init(model, np.zeros((1, *FOLDER_SHAPE), np.float32), generator=g)["params"]
        stream = TorchEpochs(g.get_state(), len(folder), config.batch_size, drop_last=False)
        order = stream.order
    state = train.create_train_state(model, params, train.adam(config.learning_rate))
    test_x, test_y = test.arrays() if test is not None else (None, None)
    steps = -(-len(folder) // config.batch_size)  # the last, partial batch too, as the lab's DataLoader
    data = driver.Data(
        None,
        None,
        test_x,
        test_y,
        config.batch_size,
        eval_batch_size=100,
        batches=lambda epoch, start, rng: folder.batches(
            config.batch_size, config.seed, epoch, start=start, order=order(epoch)
        ),
        steps_per_epoch=steps,
        fingerprint=folder.fingerprint(),
    )
    fit = driver.fit(
        config,
        workdir,
        state=state,
        data=data,
        rng=train_rng,
        title=f"FolderCNN on {root.name}, {config.seed_name}",
    )
    # The lab saves the state_dict, builds a new net and loads it: the same here, through params.npz.
    reloaded = train.create_train_state(model, load_params(fit.params_path)["params"], train.adam(config.learning_rate))
    probe = test_x if test_x is not None else folder.arrays()[0][: config.batch_size]
    diff = np.max(np.abs(np.asarray(train.predict(reloaded, probe)) - np.asarray(train.predict(fit.state, probe))))
    accuracy = fit.records[-1].get("test_accuracy") if fit.records else (fit.test or {}).get("accuracy")
    return Result(folder.classes, accuracy, float(diff), **fit.run_fields())
