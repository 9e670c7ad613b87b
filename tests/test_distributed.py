"""A real two-process run on localhost (jax.distributed, one CPU device per process, Gloo collectives): it trains
like one process over two devices, a killed process stops the other with a clear error instead of a hang, and a
checkpoint saved by both processes resumes exactly."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ROOT, load_script

from jaxnn.checkpoint import load_params

SCRIPT = str(ROOT / "experiments" / "mnist_cnn.py")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _flags(workdir, data_dir, *extra, batch_size="100"):
    size = ["--batch_size", batch_size] if batch_size else []
    return ["--data_dir", str(data_dir), "--workdir", str(workdir), "--no_progress", *size, *extra]


def _start_pair(workdir, data_dir, *extra, script=SCRIPT, batch_size="100", ids=(0, 1), per_process=((), ())):
    port = _port()
    return [
        subprocess.Popen(
            [
                sys.executable,
                script,
                *_flags(workdir, data_dir, *extra, *own, batch_size=batch_size),
                "--coordinator_address",
                f"localhost:{port}",
                "--num_processes",
                "2",
                "--process_id",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for i, own in zip(ids, per_process, strict=True)
    ]


def _finish(procs, timeout=300):
    outs = [p.communicate(timeout=timeout) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, out + err
    return outs


def _assert_params(a, b, exact=True):
    for x, y in zip(jax.tree.leaves(load_params(a)), jax.tree.leaves(load_params(b)), strict=True):
        if exact:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def _wait_for(path, procs, timeout=180):
    deadline = time.time() + timeout
    while not path.is_dir():
        assert all(p.poll() is None for p in procs), "a process ended before it could be killed"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_a_killed_process_stops_the_other_with_a_clear_error(mnist_data_dir, tmp_path):
    procs = _start_pair(tmp_path, mnist_data_dir, "--epochs", "1", "--train_subset", "30000", "--checkpoint_every", "5")
    _wait_for(tmp_path / "checkpoints" / "5", procs)
    procs[1].send_signal(signal.SIGKILL)
    t0 = time.time()
    out, err = procs[0].communicate(timeout=120)  # not a hang: bounded by the heartbeat timeout (10 s)
    assert procs[0].returncode == 1 and time.time() - t0 < 60, err[-2000:]
    assert err.splitlines() == [
        "mnist_cnn.py: error: process 0: another process of this run has stopped (killed or failed); this one stops too"
    ] or _one_line(err, "another process of this run has stopped"), err[-2000:]
    procs[1].wait()


def _one_line(err, text):
    lines = err.strip().splitlines()
    return len(lines) == 1 and text in lines[0] and "Traceback" not in err


def test_a_peer_that_never_comes_or_a_twice_used_id_is_one_line_within_the_timeout(mnist_data_dir, tmp_path):
    alone = subprocess.Popen(
        [sys.executable, SCRIPT, *_flags(tmp_path / "alone", mnist_data_dir), "--coordinator_address"]
        + [f"localhost:{_port()}", "--num_processes", "2", "--process_id", "0", "--coordinator_timeout", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    twice = _start_pair(tmp_path / "twice", mnist_data_dir, "--coordinator_timeout", "3", ids=(0, 0))
    out, err = alone.communicate(timeout=120)
    assert alone.returncode == 1 and _one_line(err, "did not all join within --coordinator_timeout 3 s"), err
    for p in twice:  # which of the two notices first, and how, is the runtime's: the rule is one line, exit 1
        out, err = p.communicate(timeout=120)
        assert p.returncode == 1 and _one_line(err, "mnist_cnn.py: error: process 0: "), err[-2000:]
    assert not (tmp_path / "alone" / "run.json").exists() and not (tmp_path / "twice" / "run.json").exists()


def test_processes_that_run_different_configs_refuse_to_start(mnist_data_dir, tmp_path):
    flags = ["--epochs", "1", "--train_subset", "400", "--test_subset", "100", "--seed", "1"]
    procs = _start_pair(tmp_path, mnist_data_dir, *flags, per_process=((), ("--lr", "0.002")))
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=180)
        assert p.returncode == 1, err[-2000:]
        assert _one_line(err, "the processes of this run differ: process(es) [1]"), err[-2000:]
        assert ("learning_rate: 0.001 -> 0.002" in err) == (i == 1)
    assert not (tmp_path / "run.json").exists()


def test_two_processes_train_like_one_process_and_resume_exactly_from_their_checkpoint(mnist_data_dir, tmp_path):
    """One two-process run is compared with one process over two devices (the same training, the same test
    accuracy, files written once), and with the same run killed at a checkpoint and resumed (bit for bit)."""
    flags = ["--epochs", "2", "--train_subset", "1000", "--test_subset", "1000", "--seed", "2"]
    flags += ["--checkpoint_every", "3"]
    outs = _finish(_start_pair(tmp_path / "straight", mnist_data_dir, *flags))
    accuracies = [re.search(r"Accuracy: (\S+)", out) for out, _ in outs]
    assert all(accuracies), outs
    one = subprocess.run(
        [sys.executable, SCRIPT, *_flags(tmp_path / "one", mnist_data_dir, *flags)],
        capture_output=True,
        text=True,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
    )
    assert one.returncode == 0, one.stderr
    _assert_params(tmp_path / "straight" / "params.npz", tmp_path / "one" / "params.npz", exact=False)
    # both processes report the test accuracy of the one-process run
    expected = re.search(r"Accuracy: (\S+)", one.stdout)[1]
    assert [m[1] for m in accuracies] == [expected, expected]
    # process 0 wrote the run's files, once
    assert len((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()) == 2

    procs = _start_pair(tmp_path / "killed", mnist_data_dir, *flags)
    _wait_for(tmp_path / "killed" / "checkpoints" / "9", procs)
    time.sleep(0.5)
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert not (tmp_path / "killed" / "params.npz").exists()
    outs = _finish(_start_pair(tmp_path / "killed", mnist_data_dir, *flags, "--resume"))
    assert all("resumed from step" in out for out, _ in outs)
    _assert_params(tmp_path / "killed" / "params.npz", tmp_path / "straight" / "params.npz")


@pytest.mark.parametrize(
    "script", ["mnist_cnn.py", "cifar.py", "image_folder.py", "hihello.py", "longseq.py", "timeseries.py", "seq2seq.py"]
)
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num_processes", "2"], "needs --coordinator_address"),
        (["--num_processes", "2", "--coordinator_address", "localhost:1", "--process_id", "2"], "process_id must be"),
        (["--num_processes", "0"], "--num_processes must be an int >= 1, got 0"),
        (["--process_id", "5"], "--process_id must be in [0, 0] for --num_processes 1, got 5"),
    ],
)
def test_bad_distributed_flags_are_one_line(script, argv, message, capsys):
    # Refused while parsing, before JAX is touched (in this process: parse_args exits through argparse).
    command = load_script(script.removesuffix(".py"))
    with pytest.raises(SystemExit) as e:
        getattr(command, "parse_args", command.main)(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err.splitlines()[-1], err


def test_two_processes_train_vgg_bn_like_one_process_over_two_devices(mnist_data_dir, tmp_path):
    """A second recipe on two processes: BatchNorm's statistics are taken over the global batch in both runs. A
    narrow VGG-BN (4 and 8 channels, a 16-wide classifier): the gradients and statistics that cross the processes
    are the same collectives whatever the width, and the lab's width costs a minute of compute here."""
    cifar = str(ROOT / "experiments" / "cifar.py")
    narrow = ["--model", "vgg", "--cfg", "4,M,8,M,8,M", "--hidden_features", "16"]
    flags = [*narrow, "--train_subset", "64", "--test_subset", "32", "--batch_size", "16"]
    _finish(_start_pair(tmp_path / "two", mnist_data_dir, *flags, script=cifar, batch_size=None))
    one = subprocess.run(
        [sys.executable, cifar, *_flags(tmp_path / "one", mnist_data_dir, *flags, batch_size=None)],
        capture_output=True,
        text=True,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
    )
    assert one.returncode == 0, one.stderr
    _assert_params(tmp_path / "two" / "params.npz", tmp_path / "one" / "params.npz", exact=False)
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 1
