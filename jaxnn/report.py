"""What a training run reports: JSON-lines metric files, a PNG of the curves, and a progress bar.

Nothing here touches the training itself (:mod:`jaxnn.train`); the lab recipes wire the two together.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


class MetricsLogger:
    """Appends one JSON object per line to ``path`` (created with its folder), flushed at once.

    Each record gets ``time_s``, the seconds since the logger was made, unless it has one. Arrays become lists and
    non-finite floats the strings ``'nan'``, ``'inf'``, so every line is strict JSON.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()

    def write(self, **record: Any) -> None:
        record = {k: _jsonable(v) for k, v in record.items()}
        record.setdefault("time_s", round(time.time() - self._t0, 3))
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def _jsonable(v):
    if hasattr(v, "__array__") or isinstance(v, np.generic):
        v = np.asarray(v).tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records :class:`MetricsLogger` wrote, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_metrics(records: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Loss and accuracy per epoch (``train_*`` and ``test_*`` keys) as a PNG. Returns the path, or None when
    matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in zip(axes, ("loss", "accuracy"), ("cross-entropy", "accuracy"), strict=True):
        for split, marker in (("train", "o-"), ("test", "s-")):
            if all(f"{split}_{metric}" in r for r in records):
                ax.plot(epochs, [r[f"{split}_{metric}"] for r in records], marker, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def progress(items: Iterable[T], total: int, desc: str, enabled: bool = True) -> Iterator[T]:
    """``items`` behind a tqdm progress bar of ``total`` steps that disappears when done (or bare, not
    ``enabled``)."""
    if not enabled:
        return iter(items)
    from tqdm.auto import tqdm

    return iter(tqdm(items, total=total, desc=desc, leave=False, dynamic_ncols=True))


def plot_series(
    series: dict[str, np.ndarray], path: str | Path, title: str = "", xlabel: str = "", ylabel: str = ""
) -> Path | None:
    """Curves by name (e.g. true against predicted values) as a PNG. Returns the path, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, values in series.items():
        ax.plot(np.asarray(values), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
