"""jaxnn's optional native CPU kernels (``native/``, built by ``make``): oneDNN's convolutions and matrix product
and a recurrent time loop as ``jax.ffi`` targets. jaxnn runs without them; :func:`jaxnn.runtime.use_native_kernels`
turns them on for :func:`jaxnn.ops.conv2d`, the gradients of :class:`jaxnn.nn.Linear` and :class:`jaxnn.nn.RNN`.

``available()`` says whether the library was built and loads (it registers the targets the first time).
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

LIBRARY = Path(__file__).parent / "_native" / "libjaxnn_native.so"
TARGETS = (
    "JaxnnConvForward",
    "JaxnnConvBackwardData",
    "JaxnnConvBackwardWeights",
    "JaxnnMatmul",
    "JaxnnRnnLoopForward",
    "JaxnnRnnLoopBackward",
)


@functools.cache
def _load() -> str | None:
    """None once the targets are registered, else why they are not."""
    if not LIBRARY.exists():
        return f"{LIBRARY} is not built (make builds it)"
    try:
        library = ctypes.cdll.LoadLibrary(str(LIBRARY))
    except OSError as e:
        return f"{LIBRARY} does not load: {e}"
    missing = [name for name in TARGETS if not hasattr(library, name)]
    if missing:
        return f"{LIBRARY} lacks {missing}: an older build (make builds it again)"
    for name in TARGETS:
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, name)), platform="cpu")
    return None


def available() -> bool:
    """Whether the native kernels are built and loaded."""
    return _load() is None


def why_not() -> str | None:
    """Why :func:`available` is False (None when it is True)."""
    return _load()


def takes(*arrays) -> bool:
    """Whether these operands go to the native kernels now: :func:`jaxnn.runtime.use_native_kernels` has them on,
    the backend is the CPU, and every array is float32 and not empty."""
    from jaxnn import runtime

    return (
        runtime.native_kernels()
        and jax.default_backend() == "cpu"
        and all(a.dtype == jnp.float32 and a.size > 0 for a in arrays)
    )


def call(target: str, outputs, *operands, **attributes) -> list[jax.Array]:
    """One native kernel in a traced program: ``target``'s float32 results, one per shape of ``outputs``, from
    ``operands`` and integer ``attributes`` (the handler's ``Attr<int64_t>``). The callers check :func:`takes`."""
    if not available():  # (which registers the targets the first time)
        raise RuntimeError(f"jaxnn's native kernels are not available: {why_not()}")
    results = [jax.ShapeDtypeStruct(shape, jnp.float32) for shape in outputs]
    kernel = jax.ffi.ffi_call(target, results, vmap_method="sequential")
    return kernel(*operands, **{name: np.int64(value) for name, value in attributes.items()})


def matmul(a: jax.Array, b: jax.Array, *, transpose_a: bool = False, transpose_b: bool = False) -> jax.Array:
    """``op(a) @ op(b)`` for float32 matrices on the native kernels (oneDNN's sgemm), ``op`` transposing where
    asked: ``a`` (M, K) or, with ``transpose_a``, (K, M); ``b`` (K, N) or, with ``transpose_b``, (N, K); the
    result (M, N). The caller checks :func:`takes`; no derivative of its own (it is a gradient's product)."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul: a and b must be matrices, got shapes {a.shape} and {b.shape}")
    m, k = a.shape[::-1] if transpose_a else a.shape
    kb, n = b.shape[::-1] if transpose_b else b.shape
    if k != kb:
        raise ValueError(
            f"matmul: a {a.shape} and b {b.shape} do not chain (transpose_a={transpose_a}, transpose_b={transpose_b})"
        )
    (c,) = call("JaxnnMatmul", [(m, n)], a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    return c
