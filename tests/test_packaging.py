"""Data by name, from an installed package: a wheel built from the checkout, installed into a fresh venv, runs the
labs from a folder outside the checkout (the shipped data, MNIST's files and the macro series, is found through the
package, not through the checkout), and every lab's dataset is registered (jaxnn.data.registry)."""

import hashlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import ROOT

from jaxnn.checkpoint import load_params


def _run(command, cwd, **kwargs):
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def test_a_wheel_installed_in_a_fresh_venv_runs_mnist_cnn_and_timeseries_from_anywhere(tmp_path, mnist_data_dir):
    # Built from a copy of what the wheel is made of (setuptools writes build/ beside its source), without build
    # isolation: setuptools comes from this environment (the test extra), not the network.
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    shutil.copytree(ROOT / "jaxnn", source / "jaxnn", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, source], source
    )
    (wheel,) = wheels.glob("jaxnn-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    for shipped in ("mnist/train-images-idx3-ubyte.gz", "mnist/README.md", "macrodata/macrodata.csv"):
        assert f"jaxnn/data/shipped/{shipped}" in names, sorted(n for n in names if "shipped" in n)

    # A fresh venv: jaxnn from the wheel alone; its dependencies from this environment's site-packages, added as a
    # plain path (its .pth files, this checkout's editable install among them, are not read).
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    site = Path(
        _run(
            [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
        ).strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", site, wheel], tmp_path)
    python = str(venv / "bin" / "python")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = _run(
        [
            python,
            "-c",
            "import jaxnn, jaxnn.data as d; from jaxnn.data import mnist; "
            "mnist.verify_files(mnist.default_manual_dir()); print(jaxnn.__file__); print(d.shipped('macrodata'))",
        ],
        elsewhere,
    ).split()
    assert all(Path(p).is_relative_to(site) for p in where), (where, site)

    out = _run(
        [
            python,
            "-m",
            "jaxnn",
            "mnist_cnn",
            "--epochs",
            "1",
            "--train_subset",
            "300",
            "--test_subset",
            "300",
            "--data_dir",
            str(mnist_data_dir),
            "--workdir",
            "runs/mnist_cnn",
            "--no_progress",
        ],
        elsewhere,
    )
    assert "Accuracy:" in out and (elsewhere / "runs" / "mnist_cnn" / "params.npz").is_file()
    out = _run(
        [python, "-m", "jaxnn", "timeseries", "--iterations", "20", "--epochs", "2", "--workdir", "ts"], elsewhere
    )
    assert "test RMSE: " in out and (elsewhere / "ts" / "predictions.png").is_file(), out
    params = load_params(elsewhere / "ts" / "params.npz")
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(params))


def test_every_lab_names_a_registered_dataset_and_every_shipped_one_has_its_files_and_readme():
    from jaxnn.data import registry, shipped
    from jaxnn.labs.registry import LABS, Lab

    used = {lab.dataset for lab in LABS.values() if lab.dataset}
    assert used <= set(registry.DATASETS) and used >= {"mnist", "cifar10", "macrodata", "image_folder", "text"}
    for dataset in registry.DATASETS.values():
        assert callable(dataset.load()), dataset.reader
        if dataset.shipped:
            folder = shipped(dataset.name)
            readme = (folder / "README.md").read_text()
            assert "License" in readme or "licensed" in readme, dataset.name
            files = [p for p in folder.iterdir() if p.name != "README.md"]
            assert files and all(
                p.name in readme and hashlib.sha256(p.read_bytes()).hexdigest() in readme for p in files
            )
    with pytest.raises(ValueError, match="no dataset named 'imagenet'; choose one of: mnist, cifar10"):
        Lab("x", "", "a lab on a dataset nobody registered", "demo", dataset="imagenet")
    with pytest.raises(FileNotFoundError, match="jaxnn ships no dataset 'imagenet'"):
        shipped("imagenet")
