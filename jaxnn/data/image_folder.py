"""``torchvision.datasets.ImageFolder`` for ``root/<class>/<image>`` folders, batched and shuffled by grain.

:class:`ImageFolder` is a random-access source (``len``, ``[i]``): classes are the sub-folders in sorted order,
labels their index in that order, and images within a class (nested folders too) come in torchvision's order:
``sorted(os.walk(class_folder))``, then each folder's file names sorted. Each
image is decoded with PIL, converted to RGB (or ``mode``), resized with PIL's bilinear filter when ``size`` is given
(``transforms.Resize((h, w))``) and returned as float32 ``(H, W, C)`` in [0, 1] (``transforms.ToTensor()``, but
channels last). :meth:`ImageFolder.batches` hands the source to ``grain.MapDataset`` for the shuffle (a new order
every epoch, fixed by the seed) and the batching (the last batch may be smaller, as the lab's ``DataLoader``).

Example::

  folder = ImageFolder("custom_data/train_data", size=(64, 128))
  for batch in folder.batches(batch_size=8, seed=0, epoch=0):
      batch["inputs"].shape, batch["labels"]          # (8, 64, 128, 3) float32, (8,) int32
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jaxnn import checks

# torchvision's IMG_EXTENSIONS
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _walk(folder: Path) -> Iterator[Path]:
    """torchvision's ``make_dataset`` order: the folders of ``sorted(os.walk(folder, followlinks=True))`` (by path
    string), each folder's image files by sorted name. A name with an image's extension that is not a regular file
    (a FIFO would block the reader forever; a socket, a device, a broken link) is a ValueError naming it."""
    for root, _, names in sorted(os.walk(folder, followlinks=True)):
        for name in sorted(names):
            if name.lower().endswith(EXTENSIONS):
                path = Path(root) / name
                if not path.is_file():
                    raise ValueError(f"{path} is named like an image but is not a regular file; remove or rename it")
                yield path


class ImageFolder:
    """The images under ``root/<class>/``: ``folder[i]`` is ``(image, label)``, ``folder.classes`` the names."""

    def __init__(self, root: str | Path, size: tuple[int, int] | None = None, mode: str = "RGB"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist or is not a folder")
        if size is not None and (
            len(tuple(size)) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
        ):
            raise ValueError(f"size must be (height, width) of positive ints, got {size!r}")
        self.size, self.mode = (tuple(size) if size is not None else None), mode
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        if len(self.classes) < 2:
            raise ValueError(
                f"image folder {self.root} has {len(self.classes)} class folder(s) {self.classes}; a classifier "
                f"needs at least 2 (root/<class>/<image>)"
            )
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = []
        empty = []
        for name in self.classes:
            files = list(_walk(self.root / name))
            if not files:
                empty.append(name)
            self.samples += [(p, self.class_to_idx[name]) for p in files]
        if empty:
            raise FileNotFoundError(
                f"image folder {self.root}: no images ({', '.join(EXTENSIONS)}) in class folder(s) {empty}"
            )
        self.targets = np.asarray([label for _, label in self.samples], np.int32)

    def __len__(self) -> int:
        return len(self.samples)

    def fingerprint(self) -> str:
        """A digest of every image's path under ``root``, size in bytes and label: it changes when an image is
        added, removed, renamed, moved to another class or rewritten with another size."""
        import hashlib

        listing = [(str(p.relative_to(self.root)), p.stat().st_size, label) for p, label in self.samples]
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.int32]:
        import PIL.Image

        path, label = self.samples[index]
        try:
            with PIL.Image.open(path) as image:
                image = image.convert(self.mode)
                if self.size is not None and image.size != (self.size[1], self.size[0]):
                    image = image.resize((self.size[1], self.size[0]), PIL.Image.BILINEAR)
                pixels = np.asarray(image, np.float32) / 255.0
        # PIL's UnidentifiedImageError is an OSError; an image over PIL's pixel limit is a DecompressionBombError
        except (OSError, ValueError, PIL.Image.DecompressionBombError) as e:
            raise ValueError(f"cannot read image {path}: {e}") from e
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        return pixels, np.int32(label)

    def batches(
        self,
        batch_size: int,
        seed: int = 0,
        epoch: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        start: int = 0,
        order: np.ndarray | None = None,
    ) -> Iterator[dict[str, np.ndarray]]:
        """The batches of epoch ``epoch``: ``{'inputs': (B, H, W, C) float32, 'labels': (B,) int32}``, in an order
        fixed by ``(seed, epoch)`` (grain's shuffle), in folder order without ``shuffle``, or in the given ``order``
        (the sample indices, e.g. PyTorch's from :mod:`jaxnn.random.run`); from batch ``start`` on (a resumed
        epoch), without reading the images of the batches before it."""
        import grain

        checks.positive_int(batch_size, "batch_size")
        checks.integer(epoch, "epoch", 0)
        n = len(self)
        if order is not None:
            order = np.asarray(order)
            if sorted(order.tolist()) != list(range(n)):
                raise ValueError(f"order must be a permutation of the {n} samples, got {len(order)} indices")
            ds = grain.MapDataset.source(_Ordered(self, order))
        else:
            ds = grain.MapDataset.source(self)
        if shuffle and order is None:  # grain reshuffles every pass over the source: epoch e is the e-th pass
            ds = ds.shuffle(seed=seed).repeat(epoch + 1).slice(slice(epoch * n, (epoch + 1) * n))
        ds = ds.batch(batch_size, drop_remainder=drop_last, batch_fn=_stack)
        if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start <= len(ds):
            raise ValueError(f"start must be an int in [0, {len(ds)}], got {start!r}")
        return iter(ds.slice(slice(start, None)))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every image and label, in folder order: ``(N, H, W, C)`` float32 and ``(N,)`` int32 (one size needed)."""
        images = [self[i][0] for i in range(len(self))]
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise ValueError(f"images of {self.root} differ in shape {sorted(shapes)}; pass size=(height, width)")
        return np.stack(images), self.targets.copy()


def _stack(items):
    images, labels = zip(*items, strict=True)
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f"a batch holds images of different shapes {sorted(shapes)}; pass size=(height, width)")
    return {"inputs": np.stack(images), "labels": np.asarray(labels, np.int32)}


def write_mnist_folder(
    root: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    digits: tuple[int, ...] = (0, 1),
    per_class: int = 200,
    size: tuple[int, int] = (64, 128),
) -> Path:
    """An image folder made from MNIST: ``root/<digit>/<index>.png``, the first ``per_class`` images of each digit
    in ``digits``, resized to ``size`` (height, width) and written as RGB PNGs. Returns ``root``."""
    import PIL.Image

    root = Path(root)
    for digit in digits:
        chosen = np.flatnonzero(np.asarray(labels) == digit)[:per_class]
        if len(chosen) < per_class:
            raise ValueError(f"only {len(chosen)} images of digit {digit}, asked for {per_class}")
        folder = root / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for index in chosen:
            image = PIL.Image.fromarray(np.asarray(images[index])[..., 0]).convert("RGB")
            image.resize((size[1], size[0]), PIL.Image.BILINEAR).save(folder / f"{index:05d}.png")
    return root


class _Ordered:
    """A folder's samples in a given order (a grain source)."""

    def __init__(self, folder: ImageFolder, order: np.ndarray):
        self.folder, self.order = folder, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int):
        return self.folder[int(self.order[index])]
