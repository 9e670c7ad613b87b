"""CIFAR-10 through the real TFDS path on a tiny archive in the official binary format, the missing-archive error,
and the augmentation and normalisation of the CIFAR labs."""

import io
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxnn.data import augment, cifar10


def write_tiny_archive(folder, per_file=3, seed=0):
    """``cifar-10-binary.tar.gz`` with the official layout: 5 train batches and a test batch of ``per_file``
    records each (label byte + 3 x 32 x 32 planes) and ``batches.meta.txt``. Returns the arrays written."""
    r = np.random.default_rng(seed)
    written = {"train": ([], []), "test": ([], [])}
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / cifar10.ARCHIVE, "w:gz") as tar:

        def add(name, data):
            info = tarfile.TarInfo(f"{cifar10.PREFIX}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for split, files in (("train", cifar10.TRAIN_FILES), ("test", cifar10.TEST_FILES)):
            for name in files:
                labels = r.integers(0, 10, per_file).astype(np.uint8)
                planes = r.integers(0, 256, (per_file, 3, 32, 32)).astype(np.uint8)
                records = np.concatenate([labels[:, None], planes.reshape(per_file, -1)], axis=1)
                add(name, records.tobytes())
                written[split][0].append(planes.transpose(0, 2, 3, 1))
                written[split][1].append(labels)
        add("batches.meta.txt", ("\n".join(cifar10.CLASSES) + "\n\n").encode())
    return {s: (np.concatenate(x), np.concatenate(y)) for s, (x, y) in written.items()}


def test_a_tiny_official_format_archive_goes_through_tfds(tmp_path):
    written = write_tiny_archive(tmp_path / "manual")
    data = cifar10.load_cifar10(tmp_path / "tfds", tmp_path / "manual", official=False, verbose=False)
    assert (tmp_path / "tfds" / "cifar10" / cifar10.VERSION).is_dir()  # prepared by the TFDS builder
    assert list((tmp_path / "tfds" / "cifar10" / cifar10.VERSION).glob("*.array_record*"))
    for split, (images, labels) in written.items():
        assert data[split].images.dtype == np.uint8 and data[split].images.shape == (len(labels), 32, 32, 3)
        # TFDS stores the examples in the order of its key hashes: the same (image, label) pairs, reordered
        assert _pairs(data[split].images, data[split].labels) == _pairs(images, labels)
    again = cifar10.load_cifar10(tmp_path / "tfds", tmp_path / "nowhere", verbose=False)  # from the cache
    np.testing.assert_array_equal(again["train"].images, data["train"].images)


def _pairs(images, labels):
    return sorted((image.tobytes(), int(label)) for image, label in zip(images, labels, strict=True))


def test_a_missing_archive_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        cifar10.load_cifar10(tmp_path / "tfds", tmp_path / "empty", verbose=False)
    message = str(e.value)
    assert "\n" not in message and cifar10.ARCHIVE in message and str(tmp_path / "empty") in message


def test_an_archive_that_is_not_the_official_file_is_refused(tmp_path):
    write_tiny_archive(tmp_path / "manual")
    with pytest.raises(ValueError, match="not the official CIFAR-10 archive"):
        cifar10.load_cifar10(tmp_path / "tfds", tmp_path / "manual", verbose=False)


def test_a_truncated_batch_or_a_missing_member_is_named(tmp_path):
    with pytest.raises(ValueError, match="data_batch_1.bin.*not a whole number"):
        cifar10.read_batch(b"\0" * (cifar10.RECORD + 5), "data_batch_1.bin")
    with tarfile.open(tmp_path / cifar10.ARCHIVE, "w:gz"):
        pass
    with pytest.raises(ValueError, match="cannot read cifar-10-batches-bin/test_batch.bin"):
        cifar10.read_member(tmp_path / cifar10.ARCHIVE, "test_batch.bin")


@given(n=st.integers(1, 4), size=st.integers(2, 6), padding=st.integers(0, 3), seed=st.integers(0, 2**31 - 1))
def test_random_crop_is_a_window_of_the_zero_padded_image(n, size, padding, seed):
    images = jnp.asarray(np.random.default_rng(seed).integers(1, 255, (n, size, size + 1, 2)), jnp.float32)
    key = jax.random.key(seed)
    out = augment.random_crop(key, images, (size, size + 1), padding)
    np.testing.assert_array_equal(out, augment.random_crop(key, images, (size, size + 1), padding))  # same key
    padded = np.pad(np.asarray(images), ((0, 0), (padding,) * 2, (padding,) * 2, (0, 0)))
    for i in range(n):  # each crop is one of the windows of its padded image
        windows = [
            padded[i, t : t + size, s : s + size + 1] for t in range(2 * padding + 1) for s in range(2 * padding + 1)
        ]
        assert any(np.array_equal(out[i], w) for w in windows)


def test_random_crop_uses_every_offset_and_flip_mirrors_half():
    images = jnp.broadcast_to(jnp.arange(8.0)[None, None, :, None], (2000, 8, 8, 1))
    out = augment.random_crop(jax.random.key(0), images, 8, padding=4)
    shifts = {int(np.asarray(o)[4, 4, 0]) - 4 for o in out[:400]}
    assert shifts == set(range(-4, 5)) - {s for s in range(-4, 5) if not 0 <= 4 + s < 8}  # every offset drawn
    flipped = augment.random_horizontal_flip(jax.random.key(1), images)
    mirrored = np.all(np.asarray(flipped) == np.asarray(images)[:, :, ::-1], axis=(1, 2, 3))
    kept = np.all(np.asarray(flipped) == np.asarray(images), axis=(1, 2, 3))
    assert np.all(mirrored ^ kept) and 0.45 < mirrored.mean() < 0.55


def test_channel_stats_and_normalize_are_the_labs():
    images = np.random.default_rng(0).integers(0, 256, (50, 4, 4, 3)).astype(np.uint8)
    mean, std = augment.channel_stats(images)
    np.testing.assert_allclose(mean, images.mean(axis=(0, 1, 2)) / 255, rtol=1e-6)
    np.testing.assert_allclose(std, images.std(axis=(0, 1, 2)) / 255, rtol=1e-5)
    x = augment.normalize(images, mean, std)
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1, atol=1e-4)
    with pytest.raises(ValueError, match="std"):
        augment.normalize(images, mean, np.zeros(3))
    padded = augment.random_crop(jax.random.key(0), jnp.ones((50, 2, 2, 2)), 2, padding=1, fill=(-1.0, -2.0))
    border = ~np.isin(np.asarray(padded), [1.0])  # every value that is not the image's is its channel's fill
    np.testing.assert_array_equal(np.asarray(padded)[border], np.where(np.nonzero(border)[3] == 0, -1.0, -2.0))
    assert border.any()
    with pytest.raises(ValueError, match=r"size \(40, 40\) does not fit"):
        augment.random_crop(jax.random.key(0), jnp.ones((1, 32, 32, 3)), 40, padding=2)
