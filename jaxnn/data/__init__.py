"""Data: MNIST and CIFAR-10 through tensorflow-datasets (offline), image folders, the macro series of lab 11-4,
character and word vocabularies (``text``), padding and packing of sequences (``sequence``), scaling and windows of
time series (``series``), augmentation (``augment``).

The data that ships with jaxnn (MNIST's four files, the macro series, each with its README: source, license,
sha256) is package data, in ``jaxnn/data/shipped/`` (``data/`` of a checkout points there): an installed wheel
finds it wherever it runs from.
"""

import importlib.resources
from pathlib import Path

__all__ = ["shipped"]


def shipped(name: str) -> Path:
    """The folder of the shipped dataset ``name`` (``'mnist'``, ``'macrodata'``; ``'cifar10'`` holds only the README
    that says where its archive goes), found through the package's resources."""
    folder = importlib.resources.files(__name__) / "shipped" / name
    if not folder.is_dir():
        raise FileNotFoundError(f"jaxnn ships no dataset {name!r} (looked in {folder})")
    return Path(str(folder))
