"""What a training run reports: JSON-lines metric files and TensorBoard event files, PNGs of the curves and of
sample predictions, and a progress bar.

Nothing here touches the training itself (:mod:`jaxnn.train`); the lab recipes wire the two together.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


class MetricsLogger:
    """Appends one JSON object per line to ``path`` (created with its folder), flushed at once; with ``logdir``,
    also every number of the record as a TensorBoard scalar at step ``record[step_key]``
    (``tensorboard --logdir <logdir>`` shows the curves live).

    Each record gets ``time_s``, the seconds since the logger was made, unless it has one. Arrays become lists and
    non-finite floats the strings ``'nan'``, ``'inf'``, so every line is strict JSON.
    """

    def __init__(
        self, path: str | Path, logdir: str | Path | None = None, step_key: str = "epoch", filename_suffix: str = ""
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()
        self.step_key = step_key
        self.tensorboard = TensorBoard(logdir, filename_suffix) if logdir is not None else None

    def write(self, **record: Any) -> None:
        record = {k: _jsonable(v) for k, v in record.items()}
        record.setdefault("time_s", round(time.time() - self._t0, 3))
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.scalars(record[self.step_key], {k: v for k, v in record.items() if k != self.step_key})

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _summary_writer_class():
    """tensorboardX's ``SummaryWriter``, imported without torch: tensorboardX imports torch whenever it is installed
    (1.2 s), only to accept its tensors, and jaxnn writes NumPy values. A torch already imported is left as it is."""
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None  # `import torch` raises ImportError, which tensorboardX catches
    try:
        from tensorboardX import SummaryWriter
    finally:
        if blocked:
            del sys.modules["torch"]
    return SummaryWriter


class TensorBoard:
    """TensorBoard event files in ``logdir``, written with tensorboardX (no TensorFlow needed); their names end in
    ``filename_suffix``."""

    def __init__(self, logdir: str | Path, filename_suffix: str = ""):
        SummaryWriter = _summary_writer_class()
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._writer = SummaryWriter(str(self.logdir), filename_suffix=filename_suffix)

    def scalars(self, step: int, values: dict[str, Any]) -> None:
        """Each finite number of ``values`` under its name (``train_loss`` -> ``train/loss``, so TensorBoard groups
        the splits), then a flush, so a live TensorBoard sees it at once."""
        for name, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                tag = name.replace("_", "/", 1) if name.startswith(("train_", "test_")) else name
                self._writer.add_scalar(tag, value, int(step))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars of every event file in ``logdir``: ``{tag: [(step, value), ...]}`` in the order written. Reads
    the TFRecord framing and tensorboardX's Event protos, without TensorFlow or TensorBoard."""
    import struct

    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4  # length, its crc, the record, its crc
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def _jsonable(v):
    if hasattr(v, "__array__") or isinstance(v, np.generic):
        v = np.asarray(v).tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records :class:`MetricsLogger` wrote, in order ([] when the file does not exist). A last line cut short
    by a kill is dropped; any other damaged line is a ValueError naming the file and the line."""
    return [record for record, _ in _metrics_lines(Path(path))]


def _metrics_lines(path: Path) -> list[tuple[dict[str, Any], int]]:
    """Each intact record with the byte offset just after its line."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines, offset = [], 0
    for number, line in enumerate(data.splitlines(keepends=True), 1):
        offset += len(line)
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if offset == len(data) and not line.endswith(b"\n"):
                break  # a last line cut short by a kill: nothing after it was written
            raise ValueError(f"{path} line {number} is damaged ({e}); repair or remove that line") from None
        lines.append((record, offset))
    return lines


def keep_metrics(path: str | Path, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The leading records of ``path`` for which ``keep`` holds; the file is cut just after them (a resumed run
    drops the lines it will write again). The kept lines stay byte for byte; a damaged line is a ValueError."""
    path = Path(path)
    kept, end = [], 0
    for record, offset in _metrics_lines(path):
        if not keep(record):
            break
        kept.append(record)
        end = offset
    if path.is_file() and path.stat().st_size != end:
        with path.open("r+b") as f:
            f.truncate(end)
    return kept


def plot_metrics(records: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """Every metric per epoch (``train_*`` and ``test_*`` keys: the loss first, then accuracy or whatever the loss
    returned), one panel each, as a PNG. Returns the path, or None when matplotlib is not installed."""
    plt = _pyplot()
    if plt is None:
        return None
    epochs = [r["epoch"] for r in records]
    names = {k.split("_", 1)[1] for r in records for k in r if k.startswith(("train_", "test_"))} - {"loss"}
    metrics = ["loss", *sorted(names)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for split, marker in (("train", "o-"), ("test", "s-")):
            if all(f"{split}_{metric}" in r for r in records):
                ax.plot(epochs, [r[f"{split}_{metric}"] for r in records], marker, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
    fig.suptitle(title)
    return _save(plt, fig, path)


def plot_predictions(
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    path: str | Path,
    class_names: list[str] | None = None,
    title: str = "",
    columns: int = 8,
) -> Path | None:
    """A grid of images (``(N, H, W, C)``, any range: each is scaled to [0, 1] for display) titled with their
    predicted and true labels (wrong ones in red) as a PNG. Returns the path, or None without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or len(images) == 0 or len(labels) != len(images) or len(predictions) != len(images):
        raise ValueError(
            f"images must be (N, H, W, C) with N labels and N predictions, got {images.shape}, "
            f"{len(labels)} labels, {len(predictions)} predictions"
        )
    names = class_names or [str(i) for i in range(int(max(np.max(labels), np.max(predictions))) + 1)]
    # One mosaic image with a title row above each tile: one Axes, not one per image, whose layout was most of the
    # plot's time (benchmarks/RESULTS.md, issue 33).
    rows, (h, w) = -(-len(images) // columns), images.shape[1:3]
    gap, head = max(1, w // 8), max(2, h // 3)
    mosaic = np.ones((rows * (head + h), columns * (w + gap) - gap, 3), np.float32)
    fig = plt.figure(figsize=(1.6 * columns, 2.1 * rows + 0.5))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.9 if rows > 1 else 0.8))
    ax.axis("off")
    for i, (image, label, pred) in enumerate(zip(images, labels, predictions, strict=True)):
        low, high = image.min(), image.max()
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
        top, left = (i // columns) * (head + h) + head, (i % columns) * (w + gap)
        shown = image[..., :3] if image.shape[-1] >= 3 else image[..., :1]  # RGB, or the first channel in grey
        mosaic[top : top + h, left : left + w] = np.broadcast_to(shown, (h, w, 3))
        color = "black" if pred == label else "red"
        ax.text(
            left + w / 2,
            top - head / 2,
            f"{names[int(pred)]} ({names[int(label)]})",
            ha="center",
            va="center",
            fontsize=8,
            color=color,
        )
    ax.imshow(mosaic, interpolation="nearest")
    fig.suptitle(f"{title}: predicted (true)" if title else "predicted (true)")
    return _save(plt, fig, path, tight=False)


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt, fig, path: str | Path, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    plt = _pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, values in series.items():
        ax.plot(np.asarray(values), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _save(plt, fig, path)
