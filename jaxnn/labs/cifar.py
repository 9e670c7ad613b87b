"""Labs 10-5 and 10-6: VGG and ResNet trained with SGD + momentum and a step schedule, on CIFAR-10 or on MNIST.

``train_and_evaluate(Config(model='resnet'), workdir)`` trains, evaluates on the test split after every epoch
(BatchNorm's running statistics frozen), and writes ``metrics.jsonl``, TensorBoard event files (``logdir``),
``curves.png``, ``predictions.png`` (test images with predicted and true labels) and ``params.npz`` (parameters and
batch statistics) to ``workdir``. Progress goes to the ``jaxnn`` logger.

The labs' recipes are :data:`LAB`: VGG (10-5-2) with SGD 0.005, momentum 0.9, StepLR(5, 0.9), batch 512; ResNet
(10-6-2, the Bottleneck ResNet-50 with the CIFAR stem and ``zero_init_residual``) with SGD 0.1, momentum 0.9,
weight decay 5e-4, StepLR(10, 0.5), batch 256 and RandomCrop(32, padding=4). Both normalise by the training set's
per-channel mean and std (lab 10-6-2's way; lab 10-5-2 used 0.5 for both). ``dataset='mnist'`` trains on the
shipped MNIST instead, one channel zero-padded to 32x32: what runs here without CIFAR-10.

``torch_seed=N`` is the PyTorch run after ``torch.manual_seed(N)``: the lab model's weights (VGG's and ResNet's
re-initialisation, ``zero_init_residual``), the ``DataLoader(shuffle=True, drop_last=True)`` order, each sample's
``RandomCrop``/``RandomHorizontalFlip`` draws and the classifier's dropout masks (:mod:`jaxnn.random.run`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import checks, report, train
from jaxnn.data import augment, cifar10, mnist
from jaxnn.interop.state_dict import from_state_dict, load_state_dict_file, to_state_dict
from jaxnn.models import VGG, Bottleneck, ResNet
from jaxnn.models.resnet import LAYOUTS, STEMS
from jaxnn.models.vgg import CFGS
from jaxnn.random.run import torch_run
from jaxnn.train import driver

log = logging.getLogger(__name__)

# The labs' recipes; a Config field left None takes its model's value from here.
LAB = {
    "vgg": dict(batch_size=512, learning_rate=0.005, weight_decay=0.0, step_size=5, gamma=0.9, crop_padding=0),
    "resnet": dict(batch_size=256, learning_rate=0.1, weight_decay=5e-4, step_size=10, gamma=0.5, crop_padding=4),
}
ARCHS = {"lab": (Bottleneck, (3, 4, 6, 3)), **LAYOUTS}
DATASETS = ("cifar10", "mnist")
CLASSES = {"cifar10": list(cifar10.CLASSES), "mnist": [str(d) for d in range(10)]}


@dataclasses.dataclass(frozen=True)
class Config(driver.RunOptions):
    """One VGG or ResNet run. Every value is checked here, once; a bad one is a ValueError naming the field."""

    model: str = "resnet"  # 'vgg' (lab 10-5) or 'resnet' (lab 10-6)
    arch: str = "lab"  # resnet: 'lab' (Bottleneck [3, 4, 6, 3], the lab's), 'resnet18', 'resnet34', 'resnet50'
    cfg: str = "cifar"  # vgg: a key of jaxnn.models.vgg.CFGS ('cifar' is lab 10-5-2's) or channels and M, '8,M,16,M'
    batch_norm: bool = True  # vgg: BatchNorm after each convolution (VGG-BN)
    hidden_features: int = 4096  # vgg: width of the classifier's two hidden layers (the lab's 4096)
    zero_init_residual: bool = True  # resnet: each block's last BatchNorm starts at 0, as the lab builds it
    stem: str = "cifar"  # resnet: 'cifar' (the lab's 3x3 stem) or 'imagenet' (torchvision's 7x7 stem and max pool)
    width: int | None = None  # resnet: the stem's channels, the stages' in proportion (None: the lab's, 16 or 64)
    init_from: str | None = None  # resnet: a ported state_dict (.safetensors/.pth, PyTorch's names) to fine-tune
    rgb: bool = False  # repeat grey images to 3 channels (for weights ported from an RGB model)
    dataset: str = "mnist"  # 'cifar10' (needs the archive) or 'mnist' (shipped)
    epochs: int = 1  # training epochs (the labs run 50 and 150)
    batch_size: int | None = None  # the lab's: vgg 512, resnet 256
    learning_rate: float | None = None  # SGD's learning rate (the lab's: vgg 0.005, resnet 0.1)
    momentum: float = 0.9  # SGD's momentum
    weight_decay: float | None = None  # the lab's: vgg 0, resnet 5e-4
    step_size: int | None = None  # StepLR: epochs per decay
    gamma: float | None = None  # StepLR: decay factor
    crop_padding: int | None = None  # RandomCrop(32, padding=...) in training; 0: none
    flip: bool = False  # RandomHorizontalFlip in training (the labs have none)
    train_subset: int | None = None  # the first N training images only
    test_subset: int | None = None  # the first N test images only
    data_dir: str | None = None  # TFDS data_dir
    manual_dir: str | None = None  # the MNIST files or the CIFAR-10 archive

    def __post_init__(self):
        self.check_run_options()
        if self.model not in LAB:
            raise ValueError(f"model must be one of {sorted(LAB)}, got {self.model!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {self.arch!r}")
        self.vgg_layers()  # a bad cfg is refused here
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {sorted(STEMS)}, got {self.stem!r}")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        only = {
            "resnet": ("arch", "zero_init_residual", "stem", "width", "init_from"),
            "vgg": ("cfg", "batch_norm", "hidden_features"),
        }
        for model, names in only.items():  # a flag of the other model would be silently ignored: refuse it
            for name in names:
                if self.model != model and getattr(self, name) != defaults[name]:
                    raise ValueError(f"{name} is for model {model!r}, not model {self.model!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {list(DATASETS)}, got {self.dataset!r}")
        for name, value in LAB[self.model].items():  # the lab's value for every field left None
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        checks.fields(self, {"batch_size": 1, "step_size": 1})
        checks.integer(self.hidden_features, "hidden_features", 1, 65536)
        if self.width is not None:
            checks.integer(self.width, "width", 1, 4096)
        checks.integer(self.crop_padding, "crop_padding", 0, 32)  # pixels around a 32x32 image
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None:
                checks.fields(self, {name: 1})
        checks.fields(self, positive=("learning_rate", "gamma"))
        for name in ("momentum", "weight_decay"):
            checks.finite(getattr(self, name), name, strict=False)

    def vgg_layers(self) -> tuple[int | str, ...]:
        """``cfg`` as VGG's layer list: a named one of :data:`CFGS`, or written out (``'8,M,16,M'``)."""
        if self.cfg in CFGS:
            return tuple(CFGS[self.cfg])
        items = [v.strip() for v in self.cfg.split(",")]
        if not all(v == "M" or (v.isdigit() and 0 < int(v) <= 4096) for v in items) or items == ["M"] * len(items):
            raise ValueError(
                f"cfg must be one of {sorted(CFGS)} or a comma list of channel counts in [1, 4096] and M "
                f"(at least one count), got {self.cfg!r}"
            )
        return tuple(v if v == "M" else int(v) for v in items)

    def build_model(self, num_classes: int = 10):
        if self.model == "vgg":
            return VGG(
                self.vgg_layers(),
                batch_norm=self.batch_norm,
                num_classes=num_classes,
                hidden_features=self.hidden_features,
            )
        block, layers = ARCHS[self.arch]
        return ResNet(block, layers, num_classes, self.zero_init_residual, self.stem, width=self.width)


@dataclasses.dataclass(frozen=True)
class Result(driver.Result):
    """Every recipe's fields (:class:`jaxnn.train.driver.Result`; records have the epoch's learning_rate too) and
    the test metrics."""

    test_accuracy: float
    test_loss: float
    predictions_path: Path | None  # test images with predicted and true labels


def load_data(config: Config) -> tuple[dict[str, mnist.Split], list[str]]:
    """The dataset as uint8 NHWC splits of 32x32 images (MNIST zero-padded from 28x28), subsets applied."""
    if config.dataset == "cifar10":
        data = cifar10.load_cifar10(config.data_dir, config.manual_dir)
    else:
        data = mnist.load_mnist(config.data_dir, config.manual_dir)
        data = {s: mnist.Split(np.pad(v.images, ((0, 0), (2, 2), (2, 2), (0, 0))), v.labels) for s, v in data.items()}
    subsets = {"train": config.train_subset, "test": config.test_subset}
    data = {s: mnist.Split(v.images[: subsets[s]], v.labels[: subsets[s]]) for s, v in data.items()}
    if config.rgb and next(iter(data.values())).images.shape[-1] == 1:  # torchvision's Grayscale(3)
        data = {s: mnist.Split(np.repeat(v.images, 3, axis=-1), v.labels) for s, v in data.items()}
    return data, CLASSES[config.dataset]


def ported_variables(model: ResNet, variables: dict, path: str | Path, sample: jax.Array) -> dict:
    """``model``'s variables from the state_dict file at ``path`` (PyTorch's names: a torchvision ResNet's load as
    they are). A classifier ``fc`` of another class count keeps its fresh initialisation from ``variables``:
    fine-tuning on a new task starts from the ported features and a new head."""
    state_dict = load_state_dict_file(path)
    fresh = to_state_dict(model, variables, sample)
    head = [k for k in ("fc.weight", "fc.bias") if k in state_dict and state_dict[k].shape != fresh[k].shape]
    if head:
        log.info(
            "%s: a new head (%s of shape %s, the file's %s)",
            path,
            "fc",
            fresh["fc.weight"].shape,
            state_dict["fc.weight"].shape,
        )
        state_dict = {**state_dict, **{k: fresh[k] for k in head}}
    return from_state_dict(model, state_dict, sample)


def augment_batch(
    batch: train.Batch, rng: jax.Array, step: jax.Array, crop_padding: int, flip: bool, fill=0.0
) -> train.Batch:
    """The training batch's random crop (padded with ``fill``, the normalised black) and flip, drawn from
    ``fold_in(rng, step)`` (so a rerun repeats them), or PyTorch's from the batch's ``'crop'`` offsets and
    ``'flip'`` flags (a ``torch_seed`` run)."""
    crop_key, flip_key = jax.random.split(jax.random.fold_in(rng, step))
    x = batch["inputs"]
    if crop_padding and "crop" in batch:
        x = augment.crop(x, batch["crop"][:, 0], batch["crop"][:, 1], x.shape[1:3], crop_padding, fill)
    elif crop_padding:
        x = augment.random_crop(crop_key, x, x.shape[1:3], crop_padding, fill)
    if flip and "flip" in batch:
        x = augment.flip(x, batch["flip"])
    elif flip:
        x = augment.random_horizontal_flip(flip_key, x)
    return {**batch, "inputs": x}


def _augmented_train_step(state, batch, rng, crop_padding, flip, fill):
    aug_rng, step_rng = jax.random.split(rng)
    return train.train_step(state, augment_batch(batch, aug_rng, state.step, crop_padding, flip, fill), step_rng)


@driver.recipe
def train_and_evaluate(config: Config, workdir: str | Path) -> Result:
    """Train ``config.model`` and evaluate it on the test split after every epoch (:func:`driver.fit`)."""
    workdir = Path(workdir)
    data, class_names = load_data(config)
    mean, std = augment.channel_stats(data["train"].images)
    train_x = jnp.asarray(augment.normalize(data["train"].images, mean, std))
    train_y = jnp.asarray(data["train"].labels)
    test_x = jnp.asarray(augment.normalize(data["test"].images, mean, std))
    test_y = jnp.asarray(data["test"].labels)
    batches = driver.Data(train_x, train_y, test_x, test_y, config.batch_size, eval_batch_size=500)
    log.info(
        "%s: %d train, %d test images of %s; channel mean %s, std %s",
        config.dataset,
        train_x.shape[0],
        test_x.shape[0],
        train_x.shape[1:],
        np.round(mean, 4),
        np.round(std, 4),
    )

    model = config.build_model(len(class_names))
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    if config.torch_seed is None:
        variables = train.init_variables(model, init_rng, train_x[:1])
    else:  # PyTorch's weights, then its batches, crops, flips and dropout masks
        crop_range = 2 * config.crop_padding + 1 if config.crop_padding else 0  # RandomCrop's offsets
        variables, stream = torch_run(model, config.torch_seed, train_x, config.batch_size, crop_range, config.flip)
        fields = stream.data_fields(train_x, train_y)
        batches = driver.Data(train_x, train_y, test_x, test_y, config.batch_size, eval_batch_size=500, **fields)
    if config.init_from is not None:  # a missing or mismatched file fails here, before the workdir is touched
        variables = ported_variables(model, variables, config.init_from, train_x[:1])
    schedule = train.step_lr(config.learning_rate, config.step_size, batches.steps_per_epoch, config.gamma)
    tx = train.sgd(schedule, config.momentum, weight_decay=config.weight_decay)
    state = train.create_train_state(model, variables["params"], tx, variables.get("batch_stats"))
    black = tuple(float(v) for v in -mean / std)  # RandomCrop pads the raw image with 0 before Normalize
    step = functools.partial(_augmented_train_step, crop_padding=config.crop_padding, flip=config.flip, fill=black)

    def finish(state, workdir, primary):
        shown = 16
        predictions = np.asarray(jnp.argmax(jax.jit(train.predict)(state, test_x[:shown]), -1))
        if not primary:
            return {}
        path = report.plot_predictions(
            data["test"].images[:shown],
            data["test"].labels[:shown],
            predictions,
            workdir / "predictions.png",
            class_names,
        )
        return {"predictions_path": path}

    fit = driver.fit(
        config,
        workdir,
        state=state,
        data=batches,
        rng=train_rng,
        train_step=step,
        schedule=schedule,
        title=f"{type(model).__name__} on {config.dataset}, {config.seed_name}",
        finish=finish,
    )
    return Result(fit.test["accuracy"], fit.test["loss"], fit.extra.get("predictions_path"), **fit.run_fields())
