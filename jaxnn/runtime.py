"""Compilation and run settings: the XLA options for fast CPU convolutions, the persistent compilation cache, and
memory that each CPU step reuses.

jaxnn's functions are plain traceable functions; you jit them. On the CPU, pass :func:`compiler_options` to that
jit for ~2x faster lab CNN steps on 2 cores (MnistCNN ~34 -> ~19 ms)::

    step = jax.jit(jaxnn.train.train_step, compiler_options=jaxnn.runtime.compiler_options())

The lab recipes (:mod:`jaxnn.labs`) and ``benchmarks/run.py`` do exactly that. The lab scripts and the
benchmark also call :func:`reuse_step_memory` first thing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax

# XLA's CPU backend (jaxlib 0.10) hands convolutions to YNNPACK by default, which runs each one on a single thread;
# keeping YNNPACK for reductions only sends convolutions and matrix products to XLA's multi-threaded Eigen kernels.
# The results stay float32 convolutions and products that match PyTorch to the usual tolerances
# (tests/test_mnist.py, tests/test_runtime.py).
CPU_COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "jaxnn" / "xla"


def compiler_options(backend: str | None = None) -> dict[str, Any] | None:
    """:data:`CPU_COMPILER_OPTIONS` for the CPU backend, None (XLA's defaults) for any other.

    ``backend`` defaults to ``jax.default_backend()``. The result is for ``jax.jit(..., compiler_options=...)``,
    which takes None as "no options".
    """
    backend = jax.default_backend() if backend is None else backend
    return dict(CPU_COMPILER_OPTIONS) if backend == "cpu" else None


def _native_state():
    """A JAX configuration state for the switch, so that it is part of every jit cache key: a program traced on one
    path is never reused on the other. JAX defines such states through ``jax._src.config`` only; where that is
    gone, a plain flag (then a function traced before a switch keeps its path)."""
    try:
        from jax._src import config as jax_config

        return jax_config.bool_state(
            "jaxnn_native_kernels",
            False,
            "jaxnn.ops.conv2d and jaxnn.nn.RNN on jaxnn's native kernels (jaxnn.runtime.use_native_kernels)",
            include_in_jit_key=True,
            include_in_trace_context=True,
        )
    except (ImportError, AttributeError, TypeError):
        return None


_NATIVE_STATE = _native_state()
_NATIVE = {"enabled": False}  # where JAX has no configuration state for it


def use_native_kernels(enabled: bool = True) -> bool:
    """Send float32 :func:`jaxnn.ops.conv2d` on the CPU (forward, input and weight gradients) and the gradients of
    :class:`jaxnn.nn.Linear` to jaxnn's native oneDNN kernels (:mod:`jaxnn.native`, built by ``make``) when
    ``enabled``, else to XLA's, and the time loop of
    :class:`jaxnn.nn.RNN` without ``seq_lengths`` or ``proj_size`` to its native loop (:mod:`jaxnn.nn.rnn_native`)
    instead of a ``lax.scan``; returns whether they are on (False when they are not built, whatever ``enabled``
    says).

    The switch is part of every jit cache key (like ``jax_default_matmul_precision``): a jitted function traces
    again after it. The native convolution, Linear's product and the RNN loop have first-order reverse-mode
    derivatives (``jax.grad``, ``jax.vjp``); forward mode and second derivatives need the XLA path.

    In a process that also runs PyTorch on the CPU, the two share one OpenMP runtime (PyTorch's bundled libgomp,
    which oneDNN's wheel links by the same name), and once both have run, their thread pools slow each other down:
    time each in a process of its own (``benchmarks/run.py`` does)."""
    from jaxnn import native

    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {enabled!r}")
    value = enabled and native.available()
    if _NATIVE_STATE is not None:
        jax.config.update("jaxnn_native_kernels", value)
    _NATIVE["enabled"] = value
    return value


def native_kernels() -> bool:
    """Whether :func:`use_native_kernels` has them on."""
    return bool(_NATIVE_STATE.value) if _NATIVE_STATE is not None else _NATIVE["enabled"]


@contextlib.contextmanager
def native_kernels_used(enabled: bool = True) -> Iterator[bool]:
    """:func:`use_native_kernels` for the block, the switch as it was after it; yields whether they are on::

    with jaxnn.runtime.native_kernels_used():
        state, metrics = jax.jit(train.train_step)(state, batch, key)
    """
    previous = native_kernels()
    try:
        yield use_native_kernels(enabled)
    finally:
        use_native_kernels(previous)


def enable_compilation_cache(path: str | Path | None = None) -> Path:
    """Turn on JAX's persistent compilation cache under ``path``, so a second run of a script skips compilation.

    ``path`` defaults to the folder JAX is already configured with (``$JAX_COMPILATION_CACHE_DIR``, JAX's own
    setting), else :data:`DEFAULT_CACHE_DIR`. Every compiled function is cached, however quickly it compiled (the
    lab programs are small and many).
    """
    if path is None:
        path = jax.config.jax_compilation_cache_dir or DEFAULT_CACHE_DIR
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def reuse_step_memory() -> bool:
    """Let each compiled CPU step reuse the memory of the step before, instead of fresh pages from the kernel.

    XLA's CPU runtime allocates a step's scratch memory (ResNet-18 at batch 128: 517 MB; the BatchNorm CNN: 48 MB)
    at every call and frees it after. glibc's ``malloc`` maps blocks that large from the kernel and unmaps them when
    they are freed, so every step the kernel maps and zeroes them again: 0.2 s of system time in a 0.8 s ResNet-18
    step on 2 cores, 10 ms of a 46 ms BatchNorm CNN step (benchmarks/RESULTS.md). This function

    - tells glibc to serve every allocation from its heap and keep freed memory for the next one
      (``mallopt(M_MMAP_MAX, 0)`` and an unreachable ``M_TRIM_THRESHOLD``), and
    - turns JAX's asynchronous CPU dispatch off (``jax_cpu_enable_async_dispatch``), so that a step runs on the
      calling thread: glibc caps the heap of any other thread at 64 MB and maps larger blocks anyway.

    The process then keeps its peak memory until it exits, and the Python loop waits for each step (the labs' steps
    are long enough that this costs nothing). Results do not change. Call it once, before JAX's first computation:
    the dispatch setting is read when the CPU backend starts. Returns True when both took effect; False when the C
    library is not glibc (nothing is changed) or JAX has already started a backend (then only ``malloc`` is set).
    """
    libc_name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    try:
        libc = ctypes.CDLL(libc_name) if libc_name else None
        gnu = libc is not None and bool(libc.gnu_get_libc_version)
    except (OSError, AttributeError):  # musl and other C libraries have no gnu_get_libc_version
        gnu = False
    if not gnu:
        return False
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1))
    from jax._src import xla_bridge  # no public way to ask whether a backend has started

    started = xla_bridge.backends_are_initialized()
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return not started
