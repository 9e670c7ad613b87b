"""Checkpoints without pickle: training states through orbax-checkpoint, final parameters as ``.npz``.

:class:`Checkpointer` wraps an orbax ``CheckpointManager``: it saves a train state's arrays (step, params, optimizer
state) every N steps and at each epoch end, keeps the last K, and restores the latest one into a state of the same
structure. A latest checkpoint that cannot be read (a damaged file, a write cut short) is skipped with a warning
for the one before it. Each checkpoint may carry a small JSON ``extra`` (the recipes keep the epoch's per-step
losses there, so a resumed epoch reports the uninterrupted run's numbers), written before the checkpoint itself.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxnn import checks


class Checkpointer:
    """Save and restore train states under ``directory`` (one sub-folder per step), keeping the last ``keep``."""

    def __init__(self, directory: str | Path, keep: int = 3):
        import orbax.checkpoint as ocp

        checks.positive_int(keep, "keep")
        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True),
        )

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, state: Any, extra: dict | None = None) -> int:
        """Save ``state`` under its step after checking that every array is finite; returns the step. ``extra``
        (JSON-serialisable) is written first, so every checkpoint that exists has its extra."""
        step = int(state.step)
        leaves = jax.tree_util.tree_leaves(state.params)
        if not all(bool(jnp.all(jnp.isfinite(x))) for x in leaves):
            raise FloatingPointError(
                f"parameters are not finite at step {step}; not saving over the last good checkpoint "
                f"(steps kept: {self.steps()})"
            )
        if step not in self.manager.all_steps():
            if extra is not None:
                folder = self.directory / "extra"
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / f"{step}.json.tmp"
                tmp.write_text(json.dumps(extra))
                os.replace(tmp, folder / f"{step}.json")
                for old in folder.glob("*.json"):  # the extras of checkpoints no longer kept
                    if old.stem.isdigit() and int(old.stem) < min(self.steps(), default=step):
                        old.unlink(missing_ok=True)
            self.manager.save(step, args=self._ocp.args.StandardSave(_arrays(state)))
        return step

    def extra(self, step: int) -> dict | None:
        """What :meth:`save` was given as ``extra`` for ``step``, or None."""
        path = self.directory / "extra" / f"{step}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def restore_latest(self, state: Any) -> tuple[Any, int | None]:
        """The newest readable checkpoint restored into ``state``'s structure, or ``(state, None)`` if there is none.

        Raises ValueError when checkpoints exist but none can be restored (another model's, say), rather than
        silently starting over.
        """
        self.wait()
        steps = self.steps()
        for step in reversed(steps):
            try:
                arrays = self.manager.restore(step, args=self._ocp.args.StandardRestore(_arrays(state)))
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: fall back to the previous one
                warnings.warn(
                    f"checkpoint at step {step} in {self.directory} could not be read "
                    f"({type(e).__name__}: {str(e)[:200]}); falling back to an older one",
                    stacklevel=2,
                )
                continue
            return state.replace(**arrays), step
        if steps:
            raise ValueError(
                f"none of the checkpoints {steps} in {self.directory} can be restored into this train "
                f"state (a different model or optimizer?)"
            )
        return state, None

    def close(self) -> None:
        self.wait()
        self.manager.close()


def _arrays(state: Any) -> dict:
    """The saved part of a flax TrainState: its arrays (apply_fn and tx are code, rebuilt by the caller)."""
    arrays = {"step": state.step, "params": state.params, "opt_state": state.opt_state}
    if getattr(state, "batch_stats", None) is not None:  # a model with BatchNorm: its running statistics too
        arrays["batch_stats"] = state.batch_stats
    return arrays


def save_params(path: str | Path, params: Any) -> Path:
    """Write a nested dict of arrays to ``path`` (an ``.npz``) atomically; a non-finite parameter is a
    FloatingPointError naming it, and nothing is written."""
    for key, value in traverse_util.flatten_dict(dict(params)).items():
        if not np.all(np.isfinite(np.asarray(value))):
            raise FloatingPointError(f"parameter {'/'.join(key)} is not finite: not writing {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(dict(params)).items()}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **flat)
    os.replace(tmp, path)
    return path


def load_params(path: str | Path) -> dict:
    """Read what :func:`save_params` wrote, as a nested dict of NumPy arrays."""
    with np.load(Path(path), allow_pickle=False) as z:
        flat = {tuple(k.split("/")): z[k] for k in z.files}
    return traverse_util.unflatten_dict(flat)
