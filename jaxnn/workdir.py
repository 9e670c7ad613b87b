"""A workdir belongs to one run: its configuration is recorded, a resume must match it, one run at a time, and a
previous run's result is never lost to a run that fails.

:func:`claim` is called by a recipe once its own checks have passed. It

- takes an exclusive lock on ``<workdir>/.lock`` (``fcntl.flock``; the kernel drops it when the process dies, so
  a killed run never leaves a stale lock), and refuses with a one-line error naming the holder's pid while another
  run holds it;
- with ``resume``, compares the configuration with the recorded ``run.json`` and refuses, naming every differing
  key, when they differ (another batch size maps the saved step onto the wrong epoch, another seed onto other
  batches);
- without ``resume``, refuses a workdir that holds checkpoints unless ``overwrite`` (a new run would otherwise mix
  its checkpoints with the old ones), then moves the previous run's files aside into ``<workdir>/.previous-run``:
  they are deleted when the new run finishes, and put back when it fails (an exception: divergence, a bad image, an
  unwritable logdir, Ctrl-C). A run killed outright leaves them there, and the next run keeps them aside in its turn;
- records the configuration (and the versions of jax, jaxlib, flax and optax, whose rounding the run depends on).

Only the files jaxnn writes are moved or deleted (:func:`run_files`): ``run.json``, ``metrics.jsonl``,
``params.npz``, ``curves.png``, ``predictions.png``, orbax's numbered step folders under ``checkpoints/`` with their
``checkpoints/extra/<step>.json`` records, and the event files this workdir's runs wrote to the logdir (their names
end in :func:`event_suffix`). A file of your own anywhere in the workdir stays where it is.

Example::

  with workdir.claim(path, {"model": "cnn", "seed": 0, ...}, resume=False, overwrite=False):
      ...  # train
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
PREVIOUS = ".previous-run"
RUN_FILES = (RUN_FILE, "metrics.jsonl", "params.npz", "curves.png", "predictions.png")
log = logging.getLogger("jaxnn.workdir")


def versions() -> dict[str, str]:
    """The versions a run's numbers depend on."""
    from importlib.metadata import version

    return {name: version(name) for name in ("jax", "jaxlib", "flax", "optax")}


def event_suffix(path: str | Path) -> str:
    """The ending of the TensorBoard event files a run in workdir ``path`` writes: how jaxnn tells its own event
    files from anything else in a logdir (one logdir may serve several workdirs)."""
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:10]
    return f".jaxnn-{digest}"


def run_files(path: str | Path, logdir: str | Path | None = None) -> list[Path]:
    """The files and folders of the run in workdir ``path`` that jaxnn wrote (see the module doc); ``logdir``
    defaults to ``<path>/tensorboard``."""
    path = Path(path)
    logdir = Path(logdir) if logdir is not None else path / "tensorboard"
    found = [path / name for name in RUN_FILES if (path / name).exists()]
    checkpoints = path / "checkpoints"
    if checkpoints.is_dir():  # orbax's step folders (and their temporary names while being written) only
        found += sorted(p for p in checkpoints.iterdir() if p.name[:1].isdigit())
    extras = checkpoints / "extra"  # jaxnn.checkpoint's record of each step (an epoch's metrics so far)
    if extras.is_dir():
        found += sorted(p for p in extras.iterdir() if p.name.split(".")[0].isdigit() and ".json" in p.name)
    if logdir.is_dir():
        suffix = event_suffix(path)
        found += sorted(p for p in logdir.iterdir() if p.name.startswith("events.out.") and p.name.endswith(suffix))
    return found


def _remove(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def _set_aside(path: Path, files: list[Path]) -> None:
    """Move ``files`` into ``<path>/.previous-run``. The manifest of where each came from is written first, with
    paths relative to the workdir (a copied workdir puts its files back into the copy; only an external logdir's
    event files are recorded by absolute path). A move that fails (a full disk under a logdir on another
    filesystem) moves back what was moved and raises: the previous result is never left half aside."""
    aside = path / PREVIOUS
    aside.mkdir()
    resolved = path.resolve()
    manifest = {}
    for i, f in enumerate(files):
        original = f.resolve().parent / f.name
        inside = original.is_relative_to(resolved)
        manifest[f"{i}-{f.name}"] = str(original.relative_to(resolved)) if inside else str(original)
    tmp = aside / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, aside / "manifest.json")
    try:
        for name, f in zip(manifest, files, strict=True):
            shutil.move(f, aside / name)  # a rename, or a copy when an external logdir is on another filesystem
    except BaseException:
        _move_back(path, aside, manifest)
        shutil.rmtree(aside)
        raise


def _move_back(path: Path, aside: Path, manifest: Mapping[str, str]) -> None:
    for name, original in manifest.items():
        if (aside / name).exists() or (aside / name).is_symlink():
            target = path / original  # an absolute original stays absolute
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(aside / name, target)


def _put_back(path: Path, logdir: Path | None) -> None:
    """Delete what the failed run wrote and move the set-aside files back where they were. A manifest that cannot
    be read is a ValueError naming the folder, which is then left as it is."""
    aside = path / PREVIOUS
    try:
        manifest = json.loads((aside / "manifest.json").read_text())
        if not isinstance(manifest, dict) or not all(isinstance(v, str) for v in manifest.values()):
            raise ValueError("not a JSON object of file names")
    except (OSError, ValueError) as e:
        raise ValueError(
            f"the previous run's files in {aside} could not be put back ({aside / 'manifest.json'}: {e}); they are "
            f"still there"
        ) from None
    _remove(run_files(path, logdir))
    _move_back(path, aside, manifest)
    shutil.rmtree(aside)


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``'key: recorded -> current'`` for every key whose value differs."""
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
def locked(path: str | Path) -> Iterator[Path]:
    """Hold the workdir's lock (as :func:`claim` does) while a recipe writes into it before claiming it (data it
    prepares there, say); a second run meets the same one-line error. Released at the end, for the claim to take."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    handle = _lock(path)
    try:
        yield path
    finally:
        handle.close()


def read_run_file(path: str | Path) -> dict[str, Any] | None:
    """The recorded ``run.json`` of workdir ``path`` (None when absent); a damaged one is a ValueError naming it."""
    run_file = Path(path) / RUN_FILE
    if not run_file.is_file():
        return None
    try:
        recorded = json.loads(run_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{run_file} is damaged ({e}); resume refused (start over with overwrite)") from None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("config"), dict):
        raise ValueError(f"{run_file} is damaged (no 'config' object); resume refused (start over with overwrite)")
    return recorded


@contextlib.contextmanager
def claim(
    path: str | Path,
    config: Mapping[str, Any],
    resume: bool = False,
    overwrite: bool = False,
    logdir: str | Path | None = None,
) -> Iterator[Path]:
    """Lock ``path`` for this run, check or record its configuration, and yield the path (see the module doc).
    ``logdir`` is where the run writes its event files (default ``<path>/tensorboard``)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    with locked(path):  # released when the run ends, whichever way
        current = {"config": dict(config), "versions": versions()}
        checkpoints = path / "checkpoints"
        has_checkpoints = checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())
        aside = path / PREVIOUS
        recorded = None
        if resume:
            recorded = read_run_file(path)
            if recorded is None and has_checkpoints:
                raise ValueError(
                    f"workdir {path} holds checkpoints but no {RUN_FILE} saying which run they belong to; "
                    f"resume refused (start over with overwrite)"
                )
            if recorded is not None:
                diff = differences(recorded["config"], current["config"]) + differences(
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
            previous = run_files(path, logdir)
            if aside.is_dir():  # a run killed outright: its files are unfinished, the result before it is aside
                _remove(previous)
            elif previous:
                _set_aside(path, previous)
                log.info("the previous run's files are in %s until this run finishes", aside)
        if recorded is None:  # a resume keeps the record it matched
            tmp = path / (RUN_FILE + ".tmp")
            tmp.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, path / RUN_FILE)
        try:
            yield path
        except BaseException:
            if not resume and aside.is_dir():
                try:
                    _put_back(path, logdir)
                    log.info("this run failed: the previous run's files are back in %s", path)
                except ValueError as e:  # said beside the run's own error, which is the one raised
                    log.error("%s", e)
            raise
        if aside.is_dir():
            shutil.rmtree(aside)  # this run has its own result now
