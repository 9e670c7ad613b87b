"""The one command line: ``python -m jaxnn LAB`` for every lab of the registry, the same command as
``experiments/LAB.py``, its listing, its errors, and a start that imports nothing heavy (a multi-process run's
supervisor runs before JAX)."""

import ast
import importlib
import subprocess
import sys

import pytest
from conftest import ROOT

from jaxnn.labs import registry


def _run(*args, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd)


def test_every_lab_has_a_command_a_script_and_its_recipe():
    scripts = {p.stem for p in (ROOT / "experiments").glob("*.py")}
    assert set(registry.LABS) <= scripts
    for name, lab in registry.LABS.items():
        assert lab.name == name
        command = importlib.import_module(lab.command or "jaxnn.cli.commands._recipe")
        assert callable(command.main) and (lab.command is not None or lab.kind == "recipe")
        tree = ast.parse((ROOT / "experiments" / f"{name}.py").read_text())
        launched = [
            n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "launch"
        ]
        assert launched == [name], name
        if lab.kind == "recipe":
            recipe = importlib.import_module(lab.recipe)
            assert callable(recipe.train_and_evaluate) and isinstance(recipe.Config, type), name


def test_a_recipe_added_with_a_registry_line_alone_runs_from_its_config(tmp_path):
    """README's "Adding a lab": timeseries_conv has a recipe module and a registry line, no command module: the
    generic command makes its flags from its config and prints its result."""
    assert registry.get("timeseries_conv").command is None
    ran = _run("-m", "jaxnn", "timeseries_conv", "--iterations", "20", "--epochs", "2", "--channels", "4", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "[Epoch:    2] cost = " in ran.stdout and "\ntest_rmse: " in ran.stdout, ran.stdout
    assert (tmp_path / "runs" / "timeseries_conv" / "metrics.jsonl").is_file()
    bad = _run("-m", "jaxnn", "timeseries_conv", "--kernel_size", "4", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr == (
        "jaxnn timeseries_conv: error: --kernel_size must be odd and <= seq_length 7, got 4\n"
    )


def test_a_name_not_in_the_registry_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="no lab named 'mnist'; choose one of: conv_basics, pooling, mnist_cnn"):
        registry.get("mnist")
    with pytest.raises(ValueError, match="kind must be one of"):
        registry.Lab("x", "", "", kind="script")
    with pytest.raises(ValueError, match="a recipe names its module"):
        registry.Lab("x", "", "")


def test_python_m_jaxnn_lists_the_labs_and_runs_one_from_any_folder(tmp_path):
    listing = _run("-m", "jaxnn", cwd=tmp_path)
    assert listing.returncode == 0 and listing.stderr == ""
    for name in registry.LABS:
        assert f"  {name} " in listing.stdout
    wrong = _run("-m", "jaxnn", "mnist", cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "no lab named 'mnist'" in wrong.stderr
    bad_flag = _run("-m", "jaxnn", "hihello", "--iterations", "0", cwd=tmp_path)
    assert bad_flag.returncode == 2
    assert bad_flag.stderr == "jaxnn hihello: error: --iterations must be an int >= 1, got 0\n"
    helped = _run("-m", "jaxnn", "timeseries", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "usage: jaxnn timeseries" in helped.stdout and "--hidden_size" in helped.stdout
    ran = _run("-m", "jaxnn", "hihello", "--iterations", "2", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "\n  0 loss: " in ran.stdout and "\n  1 loss: " in ran.stdout and "final prediction" in ran.stdout


def test_the_command_line_starts_without_importing_jax():
    """A multi-process run's supervisor reads its flags and starts the child before anything imports JAX: each
    process of a pair would otherwise load JAX twice."""
    code = (
        "import sys, jaxnn, jaxnn.cli, jaxnn.cli.flags, jaxnn.cli.processes, jaxnn.labs.registry, jaxnn.__main__; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'numpy', 'optax')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    import jaxnn

    assert jaxnn.nn.Conv2d is importlib.import_module("jaxnn.nn").Conv2d  # the subpackages on first use
