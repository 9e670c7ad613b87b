"""Every dataset the labs train on, by name: what it is, where it comes from, its license and the function that
reads it. ``jaxnn.labs.registry`` names each lab's dataset by its key here.

This module imports nothing heavy: ``python -m jaxnn`` reads it before JAX starts.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["Dataset", "DATASETS", "get"]


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    summary: str
    reader: str  # 'module:function' that reads it
    license: str
    shipped: bool = False  # its files ship with jaxnn (jaxnn.data.shipped(name), with a README: source, sha256)

    def load(self) -> Callable[..., Any]:
        """The reader function (imported on first use)."""
        module, function = self.reader.split(":")
        return getattr(importlib.import_module(module), function)


# fmt: off
DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("mnist", "MNIST: 60000 + 10000 handwritten digits, 28x28 grey", "jaxnn.data.mnist:load_mnist",
            "CC BY-SA 3.0 (Yann LeCun, Corinna Cortes, Christopher J.C. Burges)", shipped=True),
    Dataset("cifar10", "CIFAR-10: 50000 + 10000 colour images of 10 classes, 32x32 (bring the archive)",
            "jaxnn.data.cifar10:load_cifar10", "not redistributed (cite Krizhevsky 2009)"),
    Dataset("macrodata", "US macroeconomic series, 203 quarters 1959Q1-2009Q3 (FRED via statsmodels)",
            "jaxnn.data.macro:load_macrodata", "public domain", shipped=True),
    Dataset("image_folder", "your images in root/<class>/ folders (default: MNIST digits written as PNGs)",
            "jaxnn.data.image_folder:ImageFolder", "yours"),
    Dataset("text", "the labs' strings, sentence and sentence pairs, in their recipes", "jaxnn.data.text:Vocab",
            "the labs' own text (Apache-2.0, deeplearningzerotoall/PyTorch)"),
)}
# fmt: on


def get(name: str) -> Dataset:
    """The dataset called ``name``; a ValueError listing the names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"no dataset named {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]
