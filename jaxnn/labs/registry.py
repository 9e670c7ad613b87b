"""Every lab jaxnn runs, by name: what it is, its recipe, model and dataset, and the command that runs it.

``python -m jaxnn`` lists them and ``python -m jaxnn NAME --flag value`` runs one (``experiments/NAME.py`` is the
same command). A recipe is a :mod:`jaxnn.labs` module with a ``Config`` and a ``train_and_evaluate``; a demo prints
one lesson of a lab (shapes, layouts, a comparison) and trains nothing worth keeping; a guide walks through a task
of one's own (porting weights).

This module imports nothing heavy: the command line reads it before JAX starts.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Lab", "LABS", "get"]

KINDS = ("recipe", "demo", "guide")


@dataclasses.dataclass(frozen=True)
class Lab:
    name: str  # the command's name: python -m jaxnn NAME, experiments/NAME.py
    lab: str  # its number in Deep Learning Zero To All, PyTorch season 2
    summary: str
    kind: str = "recipe"  # 'recipe', 'demo' or 'guide'
    recipe: str | None = None  # the recipe's module
    model: str | None = None  # the model, as jaxnn.models names it
    dataset: str | None = None  # what it trains on: a key of jaxnn.data.registry.DATASETS

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if self.kind == "recipe" and not self.recipe:
            raise ValueError(f"a recipe names its module (recipe=...), {self.name!r} does not")
        if self.dataset is not None:
            from jaxnn.data.registry import get

            get(self.dataset)

    @property
    def command(self) -> str | None:
        """The module of its own command line (``main(argv)``), or None: a recipe without one runs through the
        generic command (:mod:`jaxnn.cli.commands._recipe`: its config's flags, its result's numbers)."""
        import importlib.util

        module = f"jaxnn.cli.commands.{self.name}"
        return module if importlib.util.find_spec(module) is not None else None


# fmt: off
LABS: dict[str, Lab] = {lab.name: lab for lab in (
    Lab("conv_basics", "10-0", "convolution: output size, stride, padding, cross-correlation", "demo"),
    Lab("pooling", "10-0", "max and average pooling, ceil_mode, indices and unpooling", "demo"),
    Lab("mnist_cnn", "10-1, 10-2", "the MNIST CNN (--model deep: lab 10-2's)", "recipe",
        "jaxnn.labs.mnist", "MnistCNN, DeepCNN", "mnist"),
    Lab("image_folder", "10-4", "a CNN on a folder of images, saved and loaded back", "recipe",
        "jaxnn.labs.image_folder", "FolderCNN", "image_folder"),
    Lab("cifar", "10-5, 10-6", "VGG and ResNet with SGD and StepLR (on MNIST padded to 32x32 by default)", "recipe",
        "jaxnn.labs.cifar", "VGG, ResNet", "cifar10"),
    Lab("rnn_basics", "11-1", "RNN(hidden_size=2) on one-hot 'hello': batch_first against time-major", "demo"),
    Lab("hihello", "11-2", "an RNN learns 'hihell' -> 'ihello'", "recipe",
        "jaxnn.labs.char", "CharRNN", "text"),
    Lab("charseq", "11-3", "an RNN learns ' if you want you'", "recipe",
        "jaxnn.labs.char", "CharRNN", "text"),
    Lab("longseq", "11-4", "a 2-layer RNN learns a sentence from windows, then generates text", "recipe",
        "jaxnn.labs.char", "CharRNN", "text"),
    Lab("timeseries", "11-4", "an LSTM predicts next quarter's US real GDP", "recipe",
        "jaxnn.labs.timeseries", "RNNRegressor", "macrodata"),
    Lab("timeseries_conv", "11-4", "a 1-D convolution and a GRU on the time series (a recipe of our own)", "recipe",
        "jaxnn.labs.timeseries_conv", "ConvGRURegressor", "macrodata"),
    Lab("seq2seq", "11-5", "a GRU encoder-decoder translates English to Korean", "recipe",
        "jaxnn.labs.seq2seq", "Seq2Seq", "text"),
    Lab("packed_sequence", "11-6", "pad, pack and unpack as torch.nn.utils.rnn; RNN with and without lengths", "demo",
        "jaxnn.labs.packed"),
    Lab("port_resnet", "", "port a PyTorch ResNet-18, compare it layer by layer, fine-tune it", "guide",
        "jaxnn.labs.cifar", "resnet18", "mnist"),
)}
# fmt: on


def get(name: str) -> Lab:
    """The lab called ``name``; a ValueError listing the names otherwise."""
    if name not in LABS:
        raise ValueError(f"no lab named {name!r}; choose one of: {', '.join(LABS)}")
    return LABS[name]
