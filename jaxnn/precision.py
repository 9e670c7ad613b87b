"""The precision of float32 matrix products and convolutions, for every jaxnn model at once.

PyTorch's switch, with PyTorch's names: ``'highest'`` is full float32 (PyTorch's results: what every parity test and
every recipe uses), ``'high'`` lets the backend use TensorFloat-32 and ``'medium'`` bfloat16 products. jaxnn's models
give no precision to their layers, so the setting reaches every product and convolution a model traces, gradients
included; a layer or op given its own ``precision=`` keeps it. On the CPU every setting computes in full float32;
on recent NVIDIA GPUs XLA's own default may be TF32, so PyTorch's numbers there need ``'highest'``.

    from jaxnn import precision

    with precision.float32_matmul_precision("highest"):   # traced inside: full float32
        loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)
    precision.set_float32_matmul_precision("highest")     # or for the whole process

It is JAX's ``jax_default_matmul_precision`` under PyTorch's names: part of every jit cache key, so a program traced
under one setting is never reused under another. The recipes run under ``RunOptions.matmul_precision``
(``--matmul_precision``, default ``'highest'``).
"""

import contextlib
from collections.abc import Iterator

import jax

# PyTorch's names -> JAX's (jax_default_matmul_precision)
PRECISIONS = {"highest": "float32", "high": "tensorfloat32", "medium": "bfloat16"}
# JAX's names read back as PyTorch's ('high' is bfloat16_3x on a TPU: like PyTorch's 'high' where TF32 is missing)
_NAMES = {"float32": "highest", "highest": "highest", "tensorfloat32": "high", "high": "high", "bfloat16": "medium"}

__all__ = [
    "PRECISIONS",
    "check",
    "float32_matmul_precision",
    "get_float32_matmul_precision",
    "set_float32_matmul_precision",
]


def check(precision: str, what: str = "precision") -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError naming ``what``."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"{what} must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return precision


def set_float32_matmul_precision(precision: str) -> None:
    """Set the precision of every float32 product and convolution traced from now on, in this process
    (``torch.set_float32_matmul_precision``): ``'highest'``, ``'high'`` or ``'medium'``."""
    jax.config.update("jax_default_matmul_precision", PRECISIONS[check(precision)])


def get_float32_matmul_precision() -> str | None:
    """The current setting by PyTorch's name, or None where none is set (the backend's default: full float32 on the
    CPU). JAX's own names set elsewhere read as their PyTorch name (``'float32'`` and ``'highest'`` as
    ``'highest'``); any other JAX value (``'default'``, an algorithm preset) is returned as JAX writes it."""
    value = jax.config.jax_default_matmul_precision
    if value is None:
        return None
    return _NAMES.get(value, value)


@contextlib.contextmanager
def float32_matmul_precision(precision: str) -> Iterator[None]:
    """:func:`set_float32_matmul_precision` for what is traced inside the ``with`` block only."""
    with jax.default_matmul_precision(PRECISIONS[check(precision)]):
        yield
