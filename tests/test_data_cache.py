"""The MNIST cache heals itself: a truncated, bit-flipped or wrong cache and a missing or truncated prepared shard are
reported in one line and rebuilt; a read-only data_dir works; two first preparations at once both succeed."""

import gzip
import hashlib
import json
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from jaxnn.data import mnist, tfds_cache

SHARD = "mnist-train.array_record-00000-of-00001"


SMALL = {"train": 600, "test": 100}


def _write_small_mnist(folder):
    """The first images of each shipped MNIST file, written in the original gzipped IDX format: ``(FILES, SPLITS)``
    for :mod:`jaxnn.data.mnist` to read them as it reads MNIST."""
    folder.mkdir(parents=True)
    files, splits = {}, {}
    for split, (images, labels, n) in mnist.SPLITS.items():
        k = SMALL[split]
        for name, magic, header, shape in ((images, 2051, 16, (n, 28, 28, 1)), (labels, 2049, 8, (n,))):
            payload = mnist.read_idx(mnist.default_manual_dir() / name, header, shape)[:k].tobytes()
            dims = (k, 28, 28) if magic == 2051 else (k,)
            raw = struct.pack(f">{1 + len(dims)}i", magic, *dims) + payload
            (folder / name).write_bytes(gzip.compress(raw, mtime=0))
            files[name] = ((folder / name).stat().st_size, hashlib.sha256((folder / name).read_bytes()).hexdigest())
        splits[split] = (images, labels, k)
    return files, splits


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory):
    """A 600 + 100 image MNIST, prepared once, and the digests of its arrays: ``(files, data_dir, patch)``, where
    ``patch(monkeypatch)`` makes :mod:`jaxnn.data.mnist` take it for MNIST (file sizes and sha256, split sizes,
    array digests). The healing properties (a damaged cache or shard found, reported in one line, rebuilt to the
    same arrays) do not depend on the dataset's size, and each preparation of the real MNIST takes 25 s here; the
    real one's cache is checked by the first test below and by every test that loads MNIST."""
    root = tmp_path_factory.mktemp("small-mnist")
    files, splits = _write_small_mnist(root / "files")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mnist, "FILES", files)
        mp.setattr(mnist, "SPLITS", splits)
        mp.setattr(mnist, "ARRAYS_SHA256", None)
        digests = tfds_cache._digests(mnist.load_mnist(root / "tfds", root / "files", verbose=False))

    def patch(monkeypatch):
        monkeypatch.setattr(mnist, "FILES", files)
        monkeypatch.setattr(mnist, "SPLITS", splits)
        monkeypatch.setattr(mnist, "ARRAYS_SHA256", digests)
        monkeypatch.setenv("JAXNN_MNIST_DIR", str(root / "files"))

    return root / "files", root / "tfds", patch


@pytest.fixture
def data_dir(small_mnist, tmp_path, monkeypatch):
    """A private copy of the small prepared MNIST, cache included, which jaxnn.data.mnist takes for MNIST."""
    _, prepared, patch = small_mnist
    patch(monkeypatch)
    target = tmp_path / "tfds"
    shutil.copytree(prepared, target)
    return target


def _folder(data_dir):
    return data_dir / "mnist" / mnist.VERSION


def _load_and_check(data_dir, capsys, expect_message):
    data = mnist.load_mnist(data_dir)
    assert tfds_cache._digests(data) == mnist.ARRAYS_SHA256  # MNIST itself, whatever happened to the files
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(("the mnist", "the prepared mnist", "not caching"))]
    if expect_message:
        assert len(lines) == 1 and expect_message in lines[0], err
    else:
        assert not lines, err
    return data


def test_the_prepared_dataset_is_read_as_tfds_decodes_it(small_mnist):
    """jaxnn decodes the prepared records itself (three times faster): every image and label is TFDS's."""
    import tensorflow_datasets as tfds

    _, prepared, _ = small_mnist
    ours = tfds_cache._read_source("mnist", prepared, ("train", "test"))
    sources = tfds.data_source("mnist", data_dir=str(prepared), download=False)
    for split, source in sources.items():
        theirs = source.__getitems__(list(range(len(source))))
        np.testing.assert_array_equal(ours[split].images, np.stack([r["image"] for r in theirs]))
        np.testing.assert_array_equal(ours[split].labels, np.array([r["label"] for r in theirs]))
        assert ours[split].images.dtype == np.uint8 and ours[split].labels.dtype == np.int32
        assert len(np.unique(ours[split].labels)) == 10 and ours[split].images.std() > 0


def test_a_valid_cache_is_used_silently(mnist_data_dir, data_dir, capsys, monkeypatch):
    _load_and_check(data_dir, capsys, None)
    monkeypatch.undo()  # and the session's real MNIST, its cache checked against MNIST's own digests
    _load_and_check(mnist_data_dir, capsys, None)


@pytest.mark.parametrize("damage", ["truncate", "flip", "wrong"])
def test_a_damaged_cache_is_reported_and_rebuilt(damage, data_dir, capsys):
    cache = _folder(data_dir) / "jaxnn-arrays.npz"
    raw = bytearray(cache.read_bytes())
    if damage == "truncate":
        cache.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        raw[len(raw) // 3] ^= 0xFF
        cache.write_bytes(raw)
    else:  # well formed, self-consistent, but not MNIST
        data = mnist.load_mnist(data_dir)
        data["train"].images[0] = 255 - data["train"].images[0]
        tfds_cache._write_cache(cache, data, print)
    _load_and_check(data_dir, capsys, "cache")
    _load_and_check(data_dir, capsys, None)  # healed: the next load is silent


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_damaged_prepared_shard_is_prepared_again(damage, data_dir, capsys):
    (_folder(data_dir) / "jaxnn-arrays.npz").unlink()
    shard = _folder(data_dir) / SHARD
    if damage == "missing":
        shard.unlink()
    else:
        shard.write_bytes(shard.read_bytes()[:1000])
    _load_and_check(data_dir, capsys, "preparing it again")
    assert (_folder(data_dir) / "jaxnn-arrays.npz").is_file()


def test_a_read_only_data_dir_is_read_without_a_cache(data_dir, capsys, monkeypatch):
    (_folder(data_dir) / "jaxnn-arrays.npz").unlink()

    def read_only(*args, **kwargs):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(tfds_cache.np, "savez", read_only)
    _load_and_check(data_dir, capsys, "not caching the arrays")
    assert not list(_folder(data_dir).glob("*.npz"))


def test_two_first_preparations_at_once_both_succeed(small_mnist, tmp_path, monkeypatch):
    small_mnist[2](monkeypatch)
    spec = json.dumps({"FILES": mnist.FILES, "SPLITS": mnist.SPLITS, "ARRAYS_SHA256": mnist.ARRAYS_SHA256})
    code = (  # each process takes the small MNIST for MNIST, as the fixture's patch does in this one
        "import json, sys; from jaxnn.data import mnist, tfds_cache; "
        "[setattr(mnist, k, v) for k, v in json.loads(sys.argv[2]).items()]; "
        "d = mnist.load_mnist(sys.argv[1], verbose=False); "
        "assert tfds_cache._digests(d) == mnist.ARRAYS_SHA256; print('ok')"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "tfds"), spec], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    assert [p.communicate(timeout=600)[0].strip().splitlines()[-1] for p in procs] == ["ok", "ok"]
    assert all(p.returncode == 0 for p in procs)
    assert tfds_cache._digests(mnist.load_mnist(tmp_path / "tfds")) == mnist.ARRAYS_SHA256


def test_an_mnist_prepared_by_tensorflow_is_left_alone_and_prepared_beside_it(data_dir, capsys):
    # What TensorFlow's TFDS leaves: tfrecord shards, and a dataset_info.json that says so. TFDS refuses to prepare
    # array_record into that folder, and tfrecord cannot be read without TensorFlow.
    folder = _folder(data_dir)
    (folder / "jaxnn-arrays.npz").unlink()
    info = folder / "dataset_info.json"
    info.write_text(info.read_text().replace('"fileFormat": "array_record"', '"fileFormat": "tfrecord"'))
    for shard in folder.glob("*.array_record-*"):
        shard.rename(shard.with_name(shard.name.replace("array_record", "tfrecord")))
    theirs = {p.name: p.read_bytes() for p in folder.iterdir()}
    data = mnist.load_mnist(data_dir)
    assert tfds_cache._digests(data) == mnist.ARRAYS_SHA256
    own = data_dir / tfds_cache.OWN_COPY
    notes = [line for line in capsys.readouterr().err.splitlines() if "prepared by TensorFlow" in line]
    assert notes == [
        f"the mnist in {data_dir} was prepared by TensorFlow (tfrecord), which jaxnn cannot read without "
        f"TensorFlow: using its own copy in {own}"
    ]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == theirs  # TensorFlow's copy untouched
    assert (own / "mnist" / mnist.VERSION / "jaxnn-arrays.npz").is_file()


def test_a_full_disk_during_the_first_preparation_is_one_line(tmp_path, monkeypatch):
    # What array_record's writer raises when the disk fills (seen on a 2 MB tmpfs), without filling a disk here.
    class Full(mnist._builder_class(), skip_registration=True):
        def download_and_prepare(self, *args, **kwargs):
            raise RuntimeError('Failed to finalize writing of split "train": write() failed: No space left on device')

    monkeypatch.setattr(mnist, "_builder_class", lambda: Full)
    with pytest.raises(OSError, match=r"no space left on the device of .* to prepare mnist") as error:
        mnist.load_mnist(tmp_path / "tfds", verbose=False)
    assert "\n" not in str(error.value)
