"""A PyTorch training loop's draws from its default generator, after the model is built, for a jaxnn run that takes
the same batches in the same order with the same dropout masks.

A lab's PyTorch loop (``for X, Y in DataLoader(ds, batch_size, shuffle=True, drop_last=True)``, ``num_workers=0``)
draws, every epoch: two int64 values when the iterator starts (its base seed, then the ``RandomSampler``'s seed,
whose own generator's ``randperm`` is the epoch's order); then every step: the per-sample transforms' draws as the
batch is loaded (``RandomCrop``: two ``randint``, ``RandomHorizontalFlip``: one ``rand``, each one 32-bit word),
then each dropout call's mask in the forward (two words per value). Every count is fixed, so where any epoch and
step start in the stream is known, and a resumed run finds its place by skipping words, not by replaying a model.

Example::

    g = Generator().manual_seed(777)
    variables = torch_init(model, x[:1], generator=g)           # the model, as torch.manual_seed(777); Net()
    stream = TorchEpochs(g.get_state(), len(x), 100, dropout_sites(model, x[:100]))
    order = stream.order(epoch)                                  # the epoch's sample indices, batch after batch
    masks = stream.dropout_masks(epoch, step)                    # the step's {'dropout_masks': ...} pytree
    data = Data(x, y, batches=stream.batches(x, y), steps_per_epoch=stream.steps)   # for jaxnn.train.driver.fit
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from jaxnn import checks
from jaxnn.random.generator import Generator

__all__ = ["TorchEpochs", "torch_run", "dropout_sites", "crop_and_flip"]


def dropout_sites(model, *sample_args, **sample_kwargs) -> tuple:
    """Each :class:`jaxnn.nn.Dropout`/``Dropout2d`` call of a training forward on the sample inputs (a batch of the
    training batch size), in call order: ``(module path, mask shape, p, dtype name)``. Traced, not run."""
    import flax.linen as nn
    import jax

    from jaxnn.nn import Dropout, Dropout2d

    sites = []

    def record(next_fun, args, kwargs, context):
        module = context.module
        if isinstance(module, (Dropout, Dropout2d)) and context.method_name == "__call__":
            shape = tuple(args[0].shape)
            if not kwargs.get("deterministic", True) and 0 < module.p < 1:
                mask = shape if isinstance(module, Dropout) else (shape[0], shape[-1])
                sites.append((tuple(module.path), mask, float(module.p), args[0].dtype.name))
        return next_fun(*args, **kwargs)

    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(0)}
    with nn.intercept_methods(record):
        jax.eval_shape(lambda: model.init(rngs, *sample_args, deterministic=False, **sample_kwargs))
    return tuple(sites)


@dataclasses.dataclass(frozen=True)
class TorchEpochs:
    """The draws of a PyTorch training loop from ``start`` (a :meth:`Generator.get_state`, taken after the model
    was built) on: ``num_samples`` per epoch in batches of ``batch_size`` (the last, partial one dropped with
    ``drop_last``, PyTorch's ``DataLoader(drop_last=True)`` as the labs but 10-4 have it), each sample loaded
    through ``RandomCrop`` (offsets in ``[0, crop_range)``; 0: none) and ``RandomHorizontalFlip`` (``flip``), and
    the masks of ``dropout`` (:func:`dropout_sites`) in each forward."""

    start: dict[str, Any]
    num_samples: int
    batch_size: int
    dropout: tuple = ()
    crop_range: int = 0
    flip: bool = False
    drop_last: bool = True

    def __post_init__(self):
        object.__setattr__(self, "_states", {0: self.start})  # stream position (words) -> generator state
        checks.positive_int(self.num_samples, "num_samples")
        checks.positive_int(self.batch_size, "batch_size")
        if self.batch_size > self.num_samples:
            raise ValueError(f"batch_size {self.batch_size} is larger than num_samples {self.num_samples}")
        checks.integer(self.crop_range, "crop_range")
        if not self.drop_last and self._step_words and self.num_samples % self.batch_size:
            raise ValueError("drop_last=False with per-sample or dropout draws: the last batch would draw fewer")

    @property
    def steps(self) -> int:
        return self.num_samples // self.batch_size if self.drop_last else -(-self.num_samples // self.batch_size)

    @property
    def _step_words(self) -> int:
        augment = 2 * (self.crop_range > 0) + int(self.flip)  # 32-bit words per sample
        return augment * self.batch_size + sum(2 * math.prod(site[1]) for site in self.dropout)

    def _generator(self, epoch: int, step: int | None) -> Generator:
        """The generator at the start of ``epoch`` (``step`` None), or at ``step``'s first draw: from the nearest
        position found before (every epoch start is kept), skipping the words between (lab 10-2 draws 75 million
        an epoch)."""
        words = epoch * (4 + self.steps * self._step_words)
        if step is not None:
            words += 4 + step * self._step_words
        known = max(w for w in self._states if w <= words)
        g = Generator().set_state(self._states[known]).skip(words - known)
        if step is None:
            self._states[words] = g.get_state()
        return g

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices of ``epoch``'s batches, one after the other (``steps * batch_size`` of them)."""
        order = self._generator(epoch, None).dataloader_order(self.num_samples)
        return order[: self.steps * self.batch_size] if self.drop_last else order

    def batches(self, inputs, labels):
        """``batches(epoch, start, rng)`` for :class:`jaxnn.train.driver.Data`: the epoch's batches in PyTorch's
        order from batch ``start`` on, each with its step's ``'crop'`` offsets and ``'flip'`` flags (where the loop
        draws them; the step applies them) and ``'dropout_masks'``. The rng is not used: PyTorch's stream decides."""

        def epoch_batches(epoch, start, rng=None):
            del rng
            order = self.order(epoch)
            g = self._generator(epoch, start)  # then each step draws exactly its words, in PyTorch's order
            for step in range(start, self.steps):
                index = order[step * self.batch_size : (step + 1) * self.batch_size]
                batch = {"inputs": inputs[index], "labels": labels[index]}
                offsets, flips = crop_and_flip(g, self.batch_size, self.crop_range, self.flip)
                if self.crop_range:
                    batch["crop"] = offsets
                if self.flip:
                    batch["flip"] = flips
                if self.dropout:
                    batch["dropout_masks"] = self.dropout_masks(epoch, step, generator=g)
                yield batch

        return epoch_batches

    def data_fields(self, inputs, labels) -> dict:
        """``batches`` and ``steps_per_epoch`` for :class:`jaxnn.train.driver.Data`."""
        return {"batches": self.batches(inputs, labels), "steps_per_epoch": self.steps}

    def dropout_masks(self, epoch: int, step: int, generator: Generator | None = None) -> dict:
        """The step's masks as the ``'dropout_masks'`` collection (:class:`jaxnn.nn.Dropout`), drawn from
        ``generator`` if given (the step's, after its :func:`crop_and_flip`)."""
        g = generator
        if g is None:
            g = self._generator(epoch, step)
            crop_and_flip(g, self.batch_size, self.crop_range, self.flip)
        tree: dict = {}
        for path, shape, p, dtype in self.dropout:
            node = tree
            for name in path:
                node = node.setdefault(name, {})
            node["mask"] = g.dropout_mask(shape, p, dtype)
        return tree


def torch_run(
    model, torch_seed: int, train_x, batch_size: int, crop_range: int = 0, flip: bool = False
) -> tuple[dict, TorchEpochs]:
    """The variables of the lab's PyTorch model after ``torch.manual_seed(torch_seed)`` and its construction
    (:func:`jaxnn.random.torch_init`), and the stream of its training loop over ``train_x`` from there, with the
    model's dropout sites at ``batch_size``."""
    from jaxnn.random.models import torch_init

    g = Generator().manual_seed(torch_seed)
    sample = np.asarray(train_x[:1])
    variables = torch_init(model, sample, generator=g)
    checks.positive_int(batch_size, "batch_size")
    sites = dropout_sites(model, np.zeros((batch_size, *sample.shape[1:]), sample.dtype))
    return variables, TorchEpochs(g.get_state(), int(train_x.shape[0]), batch_size, sites, crop_range, flip)


def crop_and_flip(g: Generator, n: int, crop_range: int = 0, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The draws of ``n`` samples loaded through ``RandomCrop`` (offsets in ``[0, crop_range)`` on the padded image,
    top then left) and ``RandomHorizontalFlip(0.5)``, sample after sample: ``(offsets (n, 2) int, flips (n,) bool)``.
    ``crop_range`` 0: no crop."""
    offsets, flips = np.zeros((n, 2), np.int64), np.zeros(n, bool)
    for i in range(n):
        if crop_range:
            offsets[i] = g.randint(0, crop_range, (2,))
        if flip:
            flips[i] = g.rand((1,))[0] < 0.5
    return offsets, flips
