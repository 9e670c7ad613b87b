"""Compilation settings: the XLA options for fast CPU convolutions, and the persistent compilation cache.

jaxnn's functions are plain traceable functions; you jit them. On the CPU, pass :func:`compiler_options` to that
jit for ~2x faster lab CNN steps on 2 cores (MnistCNN ~34 -> ~19 ms)::

    step = jax.jit(jaxnn.train.train_step, compiler_options=jaxnn.runtime.compiler_options())

The lab recipes (:mod:`jaxnn.labs`) and ``benchmarks/run.py`` do exactly that.
"""

from __future__ import annotations

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


def enable_compilation_cache(path: str | Path = DEFAULT_CACHE_DIR) -> Path:
    """Turn on JAX's persistent compilation cache under ``path``, so a second run of a script skips compilation.

    Every compiled function is cached, however quickly it compiled (the lab programs are small and many).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
