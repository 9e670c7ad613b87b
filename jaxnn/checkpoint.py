"""Parameters to and from ``.npz`` files (no pickle): nested dicts flattened to '/'-joined keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from flax import traverse_util


def save_params(path: str | Path, params: Any) -> Path:
    """Write a nested dict of arrays to ``path`` (an ``.npz``) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(dict(params)).items()}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **flat)
    os.replace(tmp, path)
    return path


def load_params(path: str | Path) -> dict:
    """Read what :func:`save_params` wrote, as a nested dict of NumPy arrays."""
    with np.load(Path(path), allow_pickle=False) as z:
        flat = {tuple(k.split("/")): z[k] for k in z.files}
    return traverse_util.unflatten_dict(flat)
