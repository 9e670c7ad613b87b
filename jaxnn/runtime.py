"""Process-level settings the experiment scripts share."""

from __future__ import annotations

import os
from pathlib import Path

import jax


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
