"""The US macroeconomic series of ``data/macrodata/`` (public domain, from FRED via statsmodels), read offline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

PATH = Path(__file__).resolve().parents[2] / "data" / "macrodata" / "macrodata.csv"
SHA256 = "d93c0d3a7a77ef83c3af14e46032bb1d02ae3a512b22ab94159a8ca226fcf708"


def load_macrodata(
    path: str | Path = PATH, columns: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], np.ndarray]:
    """``(names, values)``: the columns (all by default, else those named, in that order) as float64
    ``(203, len(names))``, quarter by quarter from 1959Q1. The file's sha256 is checked first."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the macrodata CSV ships in data/macrodata/ of the repository")
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
