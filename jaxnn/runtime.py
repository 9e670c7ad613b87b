"""Compilation settings: the XLA options jaxnn compiles with, and the persistent compilation cache for scripts."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

import jax

# XLA's CPU backend (jaxlib 0.10) hands convolutions to YNNPACK by default, which runs each one on a single thread;
# keeping YNNPACK for reductions only sends convolutions and matrix products to XLA's multi-threaded Eigen kernels:
# on 2 cores the lab CNNs' convolutions run ~2x faster (MnistCNN training step ~34 -> ~19 ms). Results stay fp32
# convolutions and products: the lab models' compiled forward pass and float32 gradients, and a full Adam step in
# float64, match PyTorch to the usual tolerances under these options (tests/test_mnist.py, tests/test_runtime.py).
CPU_COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}


@functools.cache
def compiler_options() -> dict[str, Any] | None:
    """The options jaxnn's compiled functions use: :data:`CPU_COMPILER_OPTIONS` on the CPU backend, else None.

    None also where this jaxlib rejects them (checked once, by compiling a trivial function), where ``XLA_FLAGS``
    already sets the YNN fusion types (the user's choice wins), or where ``JAXNN_XLA_OPTIONS=0``. Pass them to your
    own ``jax.jit(..., compiler_options=jaxnn.runtime.compiler_options())`` around jaxnn layers for the same speed.
    """
    user_flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("JAXNN_XLA_OPTIONS", "1") == "0" or any(name in user_flags for name in CPU_COMPILER_OPTIONS):
        return None
    if jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(1.0).compile()
    except Exception:  # an XLA without this option or enum value: compile as XLA's defaults say
        return None
    return dict(CPU_COMPILER_OPTIONS)


def jit(fun: Callable | None = None, **jit_kwargs):
    """``jax.jit`` with :func:`compiler_options`, usable as ``@jit`` or ``@jit(static_argnums=...)``.

    The options are looked up at the first call (or ``.lower``), not at import, so importing jaxnn starts no backend.
    The result forwards ``.lower``, ``.trace``, ``.eval_shape`` and the rest to the underlying jitted function.
    """
    if fun is None:
        return functools.partial(jit, **jit_kwargs)
    return _Jitted(fun, jit_kwargs)


class _Jitted:
    def __init__(self, fun: Callable, jit_kwargs: dict):
        self._fun, self._jit_kwargs, self._jitted, self._nested = fun, jit_kwargs, None, None
        functools.update_wrapper(self, fun)

    def _get(self):
        if self._jitted is None:
            self._jitted = jax.jit(self._fun, compiler_options=compiler_options(), **self._jit_kwargs)
        return self._jitted

    def __call__(self, *args, **kwargs):
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves((args, kwargs))):
            # Called inside another transformation (a user's jit, vmap or grad): compiler options belong to the
            # outermost jit only, so trace as a plain nested jit.
            if self._nested is None:
                self._nested = jax.jit(self._fun, **self._jit_kwargs)
            return self._nested(*args, **kwargs)
        return self._get()(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._get(), name)


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Turn on JAX's persistent compilation cache, so a second run of a script skips XLA compilation.

    ``path`` defaults to ``$JAXNN_CACHE_DIR`` or ``~/.cache/jaxnn/xla``. Every compiled function is cached, however
    quickly it compiled (the lab programs are small and many).
    """
    path = Path(path or os.environ.get("JAXNN_CACHE_DIR") or Path.home() / ".cache" / "jaxnn" / "xla")
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
