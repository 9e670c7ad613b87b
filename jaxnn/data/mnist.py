"""The real MNIST, offline, through tensorflow-datasets, without TensorFlow and without a network.

The four original IDX files (``data/mnist/`` in this repository, byte-identical to the files tensorflow-datasets
checksums) are the builder's ``manual_dir``. :class:`MnistFromFiles` subclasses TFDS's stock ``mnist`` builder (same
name, version and features), reads those files instead of downloading, and writes ``array_record`` shards, which
``tfds.data_source`` reads without TensorFlow. After the first preparation the arrays are cached as a ``.npz`` next
to the prepared dataset, so later loads take a fraction of a second. A TFDS ``data_dir`` that already holds a
prepared ``mnist`` (array_record) is read as it is, files or not.

Nothing here ever starts a download: missing or damaged files fail at once with a message saying where they are
expected.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from jaxnn.data import shipped
from jaxnn.data.tfds_cache import Split, prepare_from_files, read_prepared, usable_data_dir

FILES = {  # name -> (bytes, sha256), as tensorflow_datasets/url_checksums/mnist.txt registers them
    "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
MEAN, STD = 0.1307, 0.3081  # of the training pixels on the 0-1 scale
VERSION = "3.0.1"  # the stock TFDS mnist version


def default_manual_dir() -> Path:
    """``$JAXNN_MNIST_DIR`` if set, else the files that ship with jaxnn (:func:`jaxnn.data.shipped`)."""
    return Path(os.environ["JAXNN_MNIST_DIR"]) if "JAXNN_MNIST_DIR" in os.environ else shipped("mnist")


def default_data_dir() -> Path:
    """TFDS's data_dir (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``)."""
    return Path(os.environ.get("TFDS_DATA_DIR", Path.home() / "tensorflow_datasets"))


def verify_files(manual_dir: str | Path) -> None:
    """Check that the four files exist with their registered size and sha256; raise at once otherwise."""
    manual_dir = Path(manual_dir)
    missing = [name for name in FILES if not (manual_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"MNIST files missing from {manual_dir}: {', '.join(missing)}. Expected the four original files "
            f"({', '.join(FILES)}) there; set manual_dir= or $JAXNN_MNIST_DIR to their folder. "
            f"No download is attempted."
        )
    for name, (size, sha) in FILES.items():
        path = manual_dir / name
        actual_size = path.stat().st_size
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual_size != size or digest != sha:
            raise ValueError(
                f"MNIST file {path} is corrupt or truncated: {actual_size} bytes with sha256 {digest}, "
                f"expected {size} bytes with sha256 {sha}."
            )


def read_idx(path: str | Path, header: int, shape: tuple[int, ...]) -> np.ndarray:
    """A gzipped IDX file's payload as uint8 of ``shape`` (images (N, 28, 28, 1), labels (N,))."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes after gunzip, expected {expected} for shape {shape}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _builder_class():
    """The TFDS builder, defined on first use (importing tensorflow_datasets takes a second or two)."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import mnist as tfds_mnist

    class MnistFromFiles(tfds_mnist.MNIST, skip_registration=True):
        """TFDS's ``mnist`` (same name, version, features) prepared from the local original files."""

        name = "mnist"
        MANUAL_DOWNLOAD_INSTRUCTIONS = (
            "Put the four original MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in manual_dir."
        )

        def _split_generators(self, dl_manager):
            folder = Path(dl_manager.manual_dir)
            return [
                tfds.core.SplitGenerator(
                    name=split, gen_kwargs=dict(num_examples=n, data_path=folder / images, label_path=folder / labels)
                )
                for split, (images, labels, n) in SPLITS.items()
            ]

        def _generate_examples(self, num_examples, data_path, label_path):
            # The stock builder reads with tf.io.gfile and encodes PNGs with TensorFlow; PIL images are encoded by
            # TFDS without TensorFlow, losslessly.
            import PIL.Image

            images = read_idx(data_path, 16, (num_examples, 28, 28, 1))
            labels = read_idx(label_path, 8, (num_examples,)).astype(np.int64)
            for index in range(num_examples):
                yield index, {"image": PIL.Image.fromarray(images[index, :, :, 0], mode="L"), "label": labels[index]}

    return MnistFromFiles


# sha256 of the arrays load_mnist returns (TFDS's example order): any cache or prepared dataset that gives others
# is damaged or not MNIST, and is rebuilt.
ARRAYS_SHA256 = {
    "train_images": "59edd5ea35c0062957306cacba8ae47e71e2c56261f4ca10230aacc14943dd3b",
    "train_labels": "062bf4d1a71dfc825d91f86658f9e3f8d6f35b8805a2457550c5000b0b1ff96c",
    "test_images": "a85d8dffc6063fb89dcbc2122651701e7bbc18837f940fc9d76df48c224558ca",
    "test_labels": "58b236bac2b9f39e838e65b8a6942832a40044c1da3df14e20f2f8291c6af177",
}


def load_mnist(
    data_dir: str | Path | None = None, manual_dir: str | Path | None = None, verbose: bool = True
) -> dict[str, Split]:
    """Both MNIST splits as NumPy arrays, in TFDS's example order: ``{'train': Split, 'test': Split}``.

    Images ``(N, 28, 28, 1)`` uint8 (60000 train, 10000 test), labels ``(N,)`` int32.

    Args:
      data_dir: the TFDS data_dir (default: TFDS's own). A prepared ``mnist`` there is used as it is (one that
        TensorFlow prepared, as tfrecord, cannot be read without TensorFlow: then jaxnn prepares its own copy
        beside it, see :func:`jaxnn.data.tfds_cache.usable_data_dir`).
      manual_dir: where the four original files are (default: :func:`default_manual_dir`); their sha256 is checked
        before preparing.
    """
    data_dir = usable_data_dir("mnist", VERSION, Path(data_dir) if data_dir is not None else default_data_dir())

    folder = Path(manual_dir) if manual_dir is not None else default_manual_dir()
    prepare = functools.partial(
        prepare_from_files, _builder_class, "mnist", VERSION, data_dir, folder, verify_files, "MNIST", verbose
    )
    return read_prepared("mnist", VERSION, data_dir, tuple(SPLITS), prepare, ARRAYS_SHA256, _logger(verbose))


def _logger(verbose: bool):
    """One-line reports of what was healed: printed to stderr (or dropped, not ``verbose``)."""

    def log(message: str) -> None:
        if verbose:
            print(message, file=sys.stderr, flush=True)

    return log


def normalize(images: np.ndarray):
    """uint8 pixels -> float32 ``(x / 255 - MEAN) / STD``, the same for training and test images."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 pixels, got {images.dtype}")
    return ((images.astype(np.float32) / 255.0) - MEAN) / STD
