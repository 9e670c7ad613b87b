"""A workdir belongs to one run: its configuration is recorded, a resume must match it, and one run at a time.

:func:`claim` is called by a recipe once its own checks have passed (so a run that fails them changes nothing). It

- takes an exclusive lock on ``<workdir>/.lock`` (``fcntl.flock``; the kernel drops it when the process dies, so
  a killed run never leaves a stale lock), and refuses with a one-line error naming the holder's pid while another
  run holds it;
- with ``resume``, compares the configuration with the recorded ``run.json`` and refuses, naming every differing
  key, when they differ (another batch size maps the saved step onto the wrong epoch, another seed onto other
  batches);
- without ``resume``, refuses a workdir that holds checkpoints unless ``overwrite`` (a new run would otherwise mix
  its checkpoints with the old ones), then removes the previous run's files: checkpoints, metrics, event files and
  final parameters;
- records the configuration (and the versions of jax, jaxlib, flax and optax, whose rounding the run depends on).

Example::

  with workdir.claim(path, {"model": "cnn", "seed": 0, ...}, resume=False, overwrite=False):
      ...  # train
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
RUN_FILES = ("checkpoints", "metrics.jsonl", "tensorboard", "params.npz", "curves.png", "predictions.png", RUN_FILE)


def versions() -> dict[str, str]:
    """The versions a run's numbers depend on."""
    from importlib.metadata import version

    return {name: version(name) for name in ("jax", "jaxlib", "flax", "optax")}


def _differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(recorded) | set(current))
    return [f"{k}: {recorded.get(k)!r} -> {current.get(k)!r}" for k in keys if recorded.get(k) != current.get(k)]


def _lock(path: Path):
    import fcntl

    handle = open(path / LOCK_FILE, "a+")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ValueError(
            f"workdir {path} is in use by another run (pid {holder}); wait for it to end or choose another workdir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


@contextlib.contextmanager
def claim(path: str | Path, config: Mapping[str, Any], resume: bool = False, overwrite: bool = False) -> Iterator[Path]:
    """Lock ``path`` for this run, check or record its configuration, and yield the path (see the module doc)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    handle = _lock(path)
    try:
        current = {"config": dict(config), "versions": versions()}
        run_file = path / RUN_FILE
        recorded = json.loads(run_file.read_text()) if run_file.is_file() else None
        checkpoints = path / "checkpoints"
        has_checkpoints = checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())
        if resume:
            if recorded is None and has_checkpoints:
                raise ValueError(
                    f"workdir {path} holds checkpoints but no {RUN_FILE} saying which run they belong to; "
                    f"resume refused (start over with overwrite)"
                )
            if recorded is not None:
                diff = _differences(recorded["config"], current["config"]) + _differences(
                    recorded.get("versions", {}), current["versions"]
                )
                if diff:
                    raise ValueError(f"resume refused: workdir {path} holds a run with another {'; '.join(diff)}")
        else:
            if has_checkpoints and not overwrite:
                steps = sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
                raise ValueError(
                    f"workdir {path} holds the checkpoints of a run (steps {steps}); resume it, overwrite it, or "
                    f"choose another workdir"
                )
            for name in RUN_FILES:  # the checks have passed: only now is the previous run removed
                target = path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        tmp = run_file.with_name(RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, run_file)
        yield path
    finally:
        handle.close()  # releases the lock
