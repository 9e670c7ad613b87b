"""Data parallel training over 8 (forced host) devices equals training on 1, for MnistCNN and CharRNN."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from jaxnn import parallel


def test_eight_devices_agree_with_one(mnist_data_dir):
    worker = Path(__file__).with_name("parallel_worker.py")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, str(worker), str(mnist_data_dir)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "MnistCNN: steps 20" in out.stdout and "CharRNN: steps" in out.stdout, out.stdout


def test_batch_must_divide_over_the_devices():
    mesh = parallel.make_mesh(jax.devices()[:1] * 1)
    parallel.check_divisible(7, mesh)  # one device: anything goes
    fake = type("M", (), {"devices": type("D", (), {"size": 8})()})()
    with pytest.raises(ValueError, match="batch_size 100 is not divisible by the 8 devices"):
        parallel.check_divisible(100, fake)
