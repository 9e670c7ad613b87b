"""Checkpoint and resume: a run killed with SIGKILL (mid-epoch, and during a checkpoint write) and resumed ends
bit-identical to an uninterrupted run; a damaged latest checkpoint falls back to the previous one; no pickle."""

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import shared_once

from jaxnn import train
from jaxnn.checkpoint import Checkpointer, load_params
from jaxnn.models import MnistCNN

ROOT = Path(__file__).resolve().parents[1]
# 40 steps per epoch, 2 epochs; a checkpoint every 7 steps and at epoch ends. The first 1000 test images: what
# resumes is the train state and the metrics file, whatever the size of the test split.
ARGS = [
    "--epochs",
    "2",
    "--train_subset",
    "2000",
    "--test_subset",
    "1000",
    "--batch_size",
    "50",
    "--checkpoint_every",
    "7",
    "--keep",
    "3",
    "--seed",
    "3",
    "--no_progress",
    "--lr",
    "3e-3",
]


def _script(workdir, data_dir, *extra, env=None):
    return [
        sys.executable,
        str(ROOT / "experiments/mnist_cnn.py"),
        *ARGS,
        "--data_dir",
        str(data_dir),
        "--workdir",
        str(workdir),
        *extra,
    ]


def _env(**extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _assert_same_params(a, b):
    pa, pb = load_params(a), load_params(b)
    for x, y in zip(jax.tree_util.tree_leaves(pa), jax.tree_util.tree_leaves(pb), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="session")
def uninterrupted(mnist_data_dir, tmp_path_factory, worker_id):
    """The uninterrupted run every resumed run is compared with, once for all of xdist's workers."""

    def run(workdir):
        subprocess.run(_script(workdir, mnist_data_dir), check=True, capture_output=True, env=_env())

    return shared_once(tmp_path_factory, worker_id, "resume-straight", run) / "params.npz"


def test_sigkill_mid_epoch_then_resume_is_bit_identical(uninterrupted, mnist_data_dir, tmp_path):
    proc = subprocess.Popen(
        _script(tmp_path, mnist_data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env()
    )
    ckpts = tmp_path / "checkpoints"
    deadline = time.time() + 120
    while not (ckpts / "14").is_dir():  # two checkpoints in: mid first epoch
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "params.npz").exists()
    out = subprocess.run(
        _script(tmp_path, mnist_data_dir, "--resume"), check=True, capture_output=True, text=True, env=_env()
    )
    assert "resumed from step" in out.stdout
    step = int(out.stdout.split("resumed from step ")[1].split()[0])
    assert 14 <= step < 80
    _assert_same_params(tmp_path / "params.npz", uninterrupted)


def _killed_at_save(step, workdir, data_dir, *extra):
    """The run killed with SIGKILL just after it handed the checkpoint of ``step`` to orbax."""
    command = _script(workdir, data_dir, *extra)
    command[1:2] = [str(ROOT / "tests" / "kill_at_save.py"), str(step), command[1]]
    killed = subprocess.run(command, capture_output=True, text=True, env=_env())
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    return killed


def _records(workdir):
    from jaxnn.report import read_metrics

    return [{k: v for k, v in r.items() if k != "time_s"} for r in read_metrics(workdir / "metrics.jsonl")]


# Killed just after the checkpoint of step 40 (the epoch-1 end) or 56 (mid epoch 2) was handed to orbax, its write
# under way: the resume starts from that checkpoint or the one before, and ends with the uninterrupted run's
# parameters and its metrics.jsonl (every epoch logged once, a resumed epoch's mean loss too).
@pytest.mark.parametrize("kill_at, before", [(40, 35), (56, 49)])
def test_sigkill_during_checkpoint_write_then_resume_is_bit_identical_with_the_same_metrics(
    kill_at, before, uninterrupted, mnist_data_dir, tmp_path
):
    _killed_at_save(kill_at, tmp_path, mnist_data_dir)
    out = subprocess.run(
        _script(tmp_path, mnist_data_dir, "--resume"), check=True, capture_output=True, text=True, env=_env()
    )
    assert any(f"resumed from step {step}" in out.stdout for step in (before, kill_at)), out.stdout
    _assert_same_params(tmp_path / "params.npz", uninterrupted)
    assert _records(tmp_path) == _records(uninterrupted.parent)


def test_ctrl_c_is_one_line_exit_130_and_the_previous_result_comes_back_byte_for_byte(
    uninterrupted, mnist_data_dir, tmp_path
):
    shutil.copytree(uninterrupted.parent, tmp_path, dirs_exist_ok=True)  # a finished run's workdir
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file() and p.name != ".lock"}
    # Ctrl-C in a new run just after its checkpoint of step 14: its own files written (checkpoints, their extras)
    command = _script(tmp_path, mnist_data_dir, "--overwrite")
    command[1:2] = [str(ROOT / "tests" / "kill_at_save.py"), "14", "SIGINT", command[1]]
    out = subprocess.run(command, capture_output=True, text=True, env=_env())
    assert out.returncode == 130 and out.stderr.splitlines() == ["mnist_cnn.py: interrupted (Ctrl-C)"], out.stderr
    after = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file() and p.name != ".lock"}
    assert sorted(after) == sorted(before)
    assert after == before


def test_a_workdir_with_checkpoints_is_not_mixed_with_a_new_run(uninterrupted, mnist_data_dir, tmp_path):
    _killed_at_save(21, tmp_path, mnist_data_dir)  # checkpoints 7 and 14 written, 21 cut short

    def contents():
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if ".lock" not in p.name)

    before = contents()
    fresh = subprocess.run(_script(tmp_path, mnist_data_dir), capture_output=True, text=True, env=_env())
    assert fresh.returncode == 1 and "Traceback" not in fresh.stderr
    assert "holds the checkpoints of a run (steps [7, 14" in fresh.stderr
    # --resume with another batch size (the saved step would land in another epoch) or seed: refused, named
    other = _script(tmp_path, mnist_data_dir, "--resume")
    other[other.index("--batch_size") + 1] = "40"
    other[other.index("--seed") + 1] = "4"
    out = subprocess.run(other, capture_output=True, text=True, env=_env())
    assert out.returncode == 1 and "resume refused" in out.stderr
    assert "batch_size: 50 -> 40" in out.stderr and "seed: 3 -> 4" in out.stderr
    assert contents() == before  # neither refused run changed anything
    # --overwrite starts over, and ends as the uninterrupted run
    subprocess.run(_script(tmp_path, mnist_data_dir, "--overwrite"), check=True, capture_output=True, env=_env())
    _assert_same_params(tmp_path / "params.npz", uninterrupted)
    assert _records(tmp_path) == _records(uninterrupted.parent)


def test_a_run_that_fails_its_checks_changes_nothing_and_a_busy_workdir_is_refused(mnist_data_dir, tmp_path):
    from jaxnn import workdir
    from jaxnn.labs import mnist as mnist_lab

    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')
    config = mnist_lab.Config(epochs=1, batch_size=3000, train_subset=2000, data_dir=str(mnist_data_dir))
    with pytest.raises(ValueError, match="batch_size 3000 is larger"):
        mnist_lab.train_and_evaluate(config, tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 1}\n'
    config = mnist_lab.Config(epochs=1, batch_size=50, train_subset=100, test_subset=100, data_dir=str(mnist_data_dir))
    with workdir.claim(tmp_path / "busy", {"another": "run"}):
        with pytest.raises(
            ValueError, match=rf"workdir {tmp_path / 'busy'} is in use by another run \(pid {os.getpid()}"
        ):
            mnist_lab.train_and_evaluate(config, tmp_path / "busy")
    mnist_lab.train_and_evaluate(config, tmp_path / "busy")  # the lock is gone with the run that held it


def _small_state(seed=0):
    params = train.init_params(MnistCNN(), jax.random.key(seed), jnp.ones((1, 28, 28, 1)))
    return train.create_train_state(MnistCNN(), params, train.adam(1e-3))


def test_damaged_latest_checkpoint_falls_back_with_a_warning(tmp_path):
    ckpt = Checkpointer(tmp_path / "ck", keep=3)
    s1 = _small_state(1).replace(step=jnp.asarray(1))
    s2 = _small_state(2).replace(step=jnp.asarray(2))
    ckpt.save(s1)
    ckpt.save(s2)
    ckpt.wait()
    for f in (tmp_path / "ck" / "2").rglob("*"):  # damage every data file of the latest checkpoint
        if f.is_file():
            f.write_bytes(b"\0garbage")
    with pytest.warns(UserWarning, match=r"checkpoint at step 2 .* could not be read"):
        restored, step = Checkpointer(tmp_path / "ck").restore_latest(_small_state(0))
    assert step == 1
    for a, b in zip(jax.tree_util.tree_leaves(restored.params), jax.tree_util.tree_leaves(s1.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_restore_uses_no_pickle(tmp_path, monkeypatch):
    ckpt = Checkpointer(tmp_path / "ck")
    ckpt.save(_small_state(1).replace(step=jnp.asarray(5)))
    ckpt.close()

    def forbidden(*a, **k):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a fallback would hide a pickle attempt
        restored, step = Checkpointer(tmp_path / "ck").restore_latest(_small_state(0))
    assert step == 5 and int(restored.step) == 5


def test_nan_guard_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    x = jnp.ones((40, 28, 28, 1))
    y = jnp.zeros(40, jnp.int32)
    state = _small_state(0)
    ckpt = Checkpointer(tmp_path / "ck")
    poisoned = x.at[30:].set(jnp.nan)  # the first shuffled batch of 10 that holds one of these gives a NaN loss
    saved = []
    shuffle_rng, step_rng = jax.random.split(jax.random.key(0))
    batches = train.epoch_batches(poisoned, y, 10, shuffle_rng, 0)
    assert not bool(jnp.isnan(next(train.epoch_batches(poisoned, y, 10, shuffle_rng, 0))["inputs"]).any())

    def after_step(s, so_far):
        saved.append(ckpt.save(s))

    with pytest.raises(train.NonFiniteLossError, match=r"non-finite loss nan at step (\d+)") as err:
        train.train_epoch(jax.jit(train.train_step), state, batches, step_rng, after_step=after_step)
    ckpt.wait()
    assert err.value.step == len(saved)  # every step before the bad one was saved, none after
    assert ckpt.steps()[-1] == err.value.step
    restored, step = ckpt.restore_latest(_small_state(1))
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree_util.tree_leaves(restored.params))
