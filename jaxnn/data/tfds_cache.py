"""A TFDS dataset as NumPy arrays, prepared once and cached, healing what is damaged on the way: the ``.npz``
cache beside a prepared dataset, the lock that serialises preparations, and the choice of a data_dir that can be
read without TensorFlow. The MNIST and CIFAR-10 loaders (:mod:`jaxnn.data.mnist`, :mod:`jaxnn.data.cifar10`) are
this plus their builders.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

OWN_COPY = "jaxnn_array_record"  # the subfolder of a data_dir where jaxnn prepares what TensorFlow prepared there


class Split(NamedTuple):
    """One split of an image dataset as arrays."""

    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int32


def usable_data_dir(name: str, version: str, data_dir: Path, log=None) -> Path:
    """``data_dir``, or ``<data_dir>/jaxnn_array_record`` when ``name`` there was prepared by TensorFlow as tfrecord
    (which ``tfds.data_source`` cannot read without TensorFlow, and TFDS will not prepare again as array_record in
    the same folder): jaxnn then prepares its own copy beside it and says so in one line (``log``, default stderr).
    """
    info = data_dir / name / version / "dataset_info.json"
    try:
        file_format = json.loads(info.read_text()).get("fileFormat", "tfrecord")
    except (OSError, ValueError, AttributeError):
        return data_dir  # absent (prepared below) or damaged (healed by read_prepared)
    if file_format == "array_record":
        return data_dir
    own = data_dir / OWN_COPY
    message = (
        f"the {name} in {data_dir} was prepared by TensorFlow ({file_format}), which jaxnn cannot read without "
        f"TensorFlow: using its own copy in {own}"
    )
    (log or (lambda m: print(m, file=sys.stderr, flush=True)))(message)
    return own


def _digests(splits: dict[str, Split]) -> dict[str, str]:
    return {
        f"{s}_{k}": hashlib.sha256(np.ascontiguousarray(getattr(v, k)).tobytes()).hexdigest()
        for s, v in splits.items()
        for k in ("images", "labels")
    }


def _read_cache(cache: Path, splits) -> dict[str, Split]:
    """The cached arrays, after checking them against the checksums stored with them (ValueError if they differ)."""
    with np.load(cache, allow_pickle=False) as z:
        out = {s: Split(z[f"{s}_images"], z[f"{s}_labels"]) for s in splits}
        stored = dict(item.split(":", 1) for item in z["sha256"].tolist())
    if _digests(out) != stored:
        raise ValueError("its arrays do not match the checksums stored with them")
    return out


def _write_cache(cache: Path, splits: dict[str, Split], log) -> None:
    """The arrays and their checksums as ``.npz``, atomically; skipped (one line) where the folder is read-only."""
    arrays = {f"{s}_{k}": getattr(v, k) for s, v in splits.items() for k in ("images", "labels")}
    sha = np.asarray([f"{k}:{v}" for k, v in _digests(splits).items()])
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, sha256=sha, **arrays)
        os.replace(tmp, cache)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        log(f"not caching the arrays in {cache.parent} ({e.strerror or e}); the prepared dataset is read each time")


@contextlib.contextmanager
def _preparation_lock(data_dir: Path, name: str):
    """One preparation of ``name`` in ``data_dir`` at a time (a second process waits, then finds it prepared);
    no lock where data_dir cannot be written (nothing can be prepared there anyway)."""
    import fcntl

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(data_dir / f".jaxnn-{name}.lock", "a")  # noqa: SIM115 - held for the preparation
    except OSError:
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


def read_prepared(
    name: str,
    version: str,
    data_dir: Path,
    splits,
    prepare,
    expected: dict[str, str] | None = None,
    log=print,
) -> dict[str, Split]:
    """The splits of TFDS dataset ``name`` as arrays, healing what is damaged on the way.

    From the ``.npz`` cache next to the prepared dataset when it is there and its arrays match the checksums stored
    with it (and ``expected``, when given); else through ``tfds.data_source`` after ``prepare()`` (which prepares
    the dataset unless it is), writing the cache for the next call. A damaged or wrong cache is reported in one line
    (``log``) and rebuilt from the prepared dataset; a prepared dataset that cannot be read, or reads wrong, is
    removed and prepared again from the source files. Preparations are serialised by a lock in ``data_dir``.
    """
    folder = data_dir / name / version
    cache = folder / "jaxnn-arrays.npz"
    if cache.is_file():
        try:
            out = _read_cache(cache, splits)
            if expected is None or _digests(out) == expected:
                return out
            raise ValueError("its arrays are not the expected ones")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            log(f"the {name} cache {cache} is damaged or of an older jaxnn ({type(e).__name__}: {e}); rebuilding it")
            try:
                cache.unlink()
            except OSError:
                pass  # read-only: rebuilt in memory below, and not cached

    with _preparation_lock(data_dir, name):
        if cache.is_file():  # another process prepared it while this one waited
            try:
                return _read_cache(cache, splits)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                pass
        for attempt in (1, 2):
            _prepare_or_say_why(prepare, name, data_dir)
            try:
                out = _read_source(name, data_dir, splits)
                if expected is not None and _digests(out) != expected:
                    raise ValueError("it does not hold the expected arrays")
                break
            except Exception as e:  # noqa: BLE001 - TFDS and array_record raise many kinds for a damaged shard
                if attempt == 2:
                    raise ValueError(
                        f"the prepared {name} in {folder} cannot be read even after preparing it again: {e}"
                    ) from e
                reason = f"{type(e).__name__}: {str(e)[:200]}"
                log(f"the prepared {name} in {folder} is damaged ({reason}); preparing it again")
                shutil.rmtree(folder, ignore_errors=True)
        _write_cache(cache, out, log)
    return out


def prepare_from_files(
    builder_class, name: str, version: str, data_dir: Path, folder: Path, verify, title: str, verbose: bool
) -> None:
    """Prepare TFDS's ``name`` in ``data_dir`` with ``builder_class()`` (a subclass of TFDS's own builder that reads
    local files) from the files in ``folder``, unless it is prepared: MNIST's and CIFAR-10's ``prepare`` for
    :func:`read_prepared`. ``verify(folder)`` checks the files first (and again before repairing a damaged
    preparation, whose files were not checked when it was found)."""
    import tensorflow_datasets as tfds

    has_info = (data_dir / name / version / "dataset_info.json").is_file()
    if not has_info:  # checked before TFDS, which would first log a warning about the empty folder
        verify(folder)
    builder = builder_class()(data_dir=str(data_dir), file_format="array_record")
    if not builder.is_prepared():
        if has_info:  # a damaged preparation: the source was not checked above
            verify(folder)
        if verbose:
            print(f"Preparing {title} from {folder} into {data_dir} (once)...", flush=True)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(folder), try_download_gcs=False)
        )


def _prepare_or_say_why(prepare, name: str, data_dir: Path) -> None:
    """``prepare()``; a full disk (array_record's writer reports it as a RuntimeError) becomes one OSError line."""
    try:
        prepare()
    except Exception as e:
        full = isinstance(e, OSError) and e.errno == errno.ENOSPC
        if not (full or "No space left on device" in str(e)):
            raise
        raise OSError(
            errno.ENOSPC,
            f"no space left on the device of {data_dir} to prepare {name} (MNIST needs about 80 MB, CIFAR-10 about "
            f"200 MB); free some or choose another data_dir",
        ) from e


def _read_source(name: str, data_dir: Path, splits) -> dict[str, Split]:
    """Every example of ``splits`` of the prepared dataset (an ``image`` PNG and an int ``label`` per example).

    The records come through TFDS's data source; each is decoded here (its ``tf.train.Example``, then the PNG
    with PIL, as TFDS decodes it without OpenCV): TFDS's own per-example decoding took three times as long, 14 s of
    every MNIST preparation. ``test_data_cache.py`` compares the two."""
    import io

    import tensorflow_datasets as tfds
    from PIL import Image
    from tensorflow_datasets.proto import tf_example_pb2

    sources = tfds.data_source(name, data_dir=str(data_dir), download=False)
    out = {}
    for split in splits:
        source = sources[split]
        shape = tuple(source.dataset_info.features["image"].shape)
        records = source.data_source.__getitems__(list(range(len(source))))
        if len(records) != len(source):
            raise IndexError(f"{name} {split}: read {len(records)} of {len(source)} records")
        images, labels = np.empty((len(records), *shape), np.uint8), np.empty(len(records), np.int32)
        for i, record in enumerate(records):
            feature = tf_example_pb2.Example.FromString(record).features.feature
            with Image.open(io.BytesIO(feature["image"].bytes_list.value[0])) as image:
                images[i] = np.asarray(image).reshape(shape)
            (labels[i],) = feature["label"].int64_list.value
        out[split] = Split(images, labels)
    return out
