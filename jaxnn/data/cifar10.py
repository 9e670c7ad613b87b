"""CIFAR-10, offline, through tensorflow-datasets' ``cifar10`` builder, without TensorFlow and without a network.

The official binary archive ``cifar-10-binary.tar.gz`` (https://www.cs.toronto.edu/~kriz/cifar.html) is the
builder's ``manual_dir``: put it in ``data/cifar10/`` of a checkout, ``$JAXNN_CIFAR10_DIR``, or pass
``manual_dir``. :class:`Cifar10FromArchive` subclasses TFDS's stock ``cifar10`` builder (same name, version and
features). It reads the batch files straight from the archive with Python's ``tarfile`` (TFDS's extractor and the
stock reader go through TensorFlow's ``tf.io.gfile``) and hands TFDS PIL images, which it encodes without
TensorFlow, losslessly, into ``array_record`` shards that ``tfds.data_source`` reads. The arrays are then cached as
a ``.npz`` next to the prepared dataset, as for MNIST. CIFAR-10 is not shipped here: its terms ask for the citation
of the tech report but give no license to redistribute it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tarfile
from pathlib import Path

import numpy as np

from jaxnn.data import shipped
from jaxnn.data.mnist import default_data_dir
from jaxnn.data.tfds_cache import Split, prepare_from_files, read_prepared, usable_data_dir

ARCHIVE = "cifar-10-binary.tar.gz"
ARCHIVE_SIZE, ARCHIVE_SHA256 = 170052171, "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
PREFIX = "cifar-10-batches-bin"
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILES = ["test_batch.bin"]
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
VERSION = "3.0.2"  # the stock TFDS cifar10 version
RECORD = 1 + 32 * 32 * 3  # a label byte, then the image as 3 planes of 32x32


def default_manual_dir() -> Path:
    """``$JAXNN_CIFAR10_DIR`` if set, else the package's ``shipped/cifar10`` (``data/cifar10`` of a checkout), which
    holds no archive until you put one there."""
    return Path(os.environ["JAXNN_CIFAR10_DIR"]) if "JAXNN_CIFAR10_DIR" in os.environ else shipped("cifar10")


def verify_archive(manual_dir: str | Path, official: bool = True) -> Path:
    """The archive's path; a one-line FileNotFoundError saying where to put it when absent, and (``official``) a
    ValueError when its size or sha256 is not the official file's."""
    path = Path(manual_dir) / ARCHIVE
    if not path.is_file():
        raise FileNotFoundError(
            f"CIFAR-10 not found: put the official {ARCHIVE} (from https://www.cs.toronto.edu/~kriz/cifar.html, "
            f"{ARCHIVE_SIZE} bytes) in {Path(manual_dir).resolve()}, or name its folder with --manual_dir or "
            f"$JAXNN_CIFAR10_DIR; nothing is downloaded"
        )
    if official:
        size = path.stat().st_size
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if size == ARCHIVE_SIZE else "(not computed)"
        if size != ARCHIVE_SIZE or digest != ARCHIVE_SHA256:
            raise ValueError(
                f"{path} is not the official CIFAR-10 archive: {size} bytes, sha256 {digest}; expected "
                f"{ARCHIVE_SIZE} bytes, sha256 {ARCHIVE_SHA256}"
            )
    return path


def read_member(archive: str | Path, name: str) -> bytes:
    """The bytes of ``cifar-10-batches-bin/<name>`` in the archive; a clear error naming both if it is absent."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(f"{PREFIX}/{name}")
            return member.read()
    except (KeyError, AttributeError, tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"{archive}: cannot read {PREFIX}/{name} ({e}); is it the official binary archive?") from e


def read_batch(data: bytes, name: str = "batch") -> tuple[np.ndarray, np.ndarray]:
    """One binary batch file's bytes as images ``(N, 32, 32, 3)`` uint8 and labels ``(N,)``; a clear error if
    its size is not a whole number of records."""
    if len(data) % RECORD or not data:
        raise ValueError(f"{name}: {len(data)} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD)
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, 0].astype(np.int64)


def _builder_class():
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import cifar as tfds_cifar

    class Cifar10FromArchive(tfds_cifar.Cifar10, skip_registration=True):
        """TFDS's ``cifar10`` (same name, version, features) prepared from the archive in manual_dir."""

        name = "cifar10"
        MANUAL_DOWNLOAD_INSTRUCTIONS = f"Put the official {ARCHIVE} in manual_dir."

        def _split_generators(self, dl_manager):
            archive = Path(dl_manager.manual_dir) / ARCHIVE
            names = read_member(archive, "batches.meta.txt").decode().split("\n")
            self.info.features["label"].names = [n for n in names if n]
            return {
                tfds.Split.TRAIN: self._generate_examples("train_", [(archive, f) for f in TRAIN_FILES]),
                tfds.Split.TEST: self._generate_examples("test_", [(archive, f) for f in TEST_FILES]),
            }

        def _generate_examples(self, split_prefix, filepaths):
            # The stock generator's records and keys, read without tf.io.gfile.
            import PIL.Image

            index = 0
            for archive, name in filepaths:
                images, labels = read_batch(read_member(archive, name), name)
                for image, label in zip(images, labels, strict=True):
                    yield (
                        index,
                        {"id": f"{split_prefix}{index:05d}", "image": PIL.Image.fromarray(image), "label": label},
                    )
                    index += 1

    return Cifar10FromArchive


def load_cifar10(
    data_dir: str | Path | None = None,
    manual_dir: str | Path | None = None,
    official: bool = True,
    verbose: bool = True,
) -> dict[str, Split]:
    """Both CIFAR-10 splits as NumPy arrays in TFDS's example order: images ``(N, 32, 32, 3)`` uint8 (50000 train,
    10000 test), labels ``(N,)`` int32.

    Args:
      data_dir: the TFDS data_dir (default: TFDS's own). A prepared ``cifar10`` there is used as it is.
      manual_dir: the folder holding ``cifar-10-binary.tar.gz`` (default: :func:`default_manual_dir`).
      official: check the archive's size and sha256 against the official file's (the tests turn this off for
        their tiny archive in the same format).
    """
    data_dir = usable_data_dir("cifar10", VERSION, Path(data_dir) if data_dir is not None else default_data_dir())

    folder = Path(manual_dir) if manual_dir is not None else default_manual_dir()
    verify = functools.partial(verify_archive, official=official)
    prepare = functools.partial(
        prepare_from_files, _builder_class, "cifar10", VERSION, data_dir, folder, verify, "CIFAR-10", verbose
    )
    return read_prepared("cifar10", VERSION, data_dir, ("train", "test"), prepare)
