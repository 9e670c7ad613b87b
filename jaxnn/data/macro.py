"""The US macroeconomic series that ships with jaxnn (``data/macrodata/`` of a checkout; public domain, from FRED via
statsmodels), read offline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from jaxnn.data import shipped

SHA256 = "d93c0d3a7a77ef83c3af14e46032bb1d02ae3a512b22ab94159a8ca226fcf708"


def load_macrodata(
    path: str | Path | None = None, columns: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], np.ndarray]:
    """``(names, values)``: the columns (all by default, else those named, in that order) as float64
    ``(203, len(names))``, quarter by quarter from 1959Q1, from ``path`` (default: the shipped CSV). The file's
    sha256 is checked first."""
    path = shipped("macrodata") / "macrodata.csv" if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the macrodata CSV ships with jaxnn (jaxnn/data/shipped/macrodata)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{path} is damaged: sha256 {digest}, expected {SHA256}")
    with path.open() as f:
        header = tuple(name.strip('"') for name in f.readline().strip().split(","))
    values = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    if columns is None:
        return header, values
    unknown = [c for c in columns if c not in header]
    if unknown:
        raise ValueError(f"columns {unknown} are not in {path.name}; it has {list(header)}")
    return tuple(columns), values[:, [header.index(c) for c in columns]]
