"""The one driver's guarantees hold for every recipe: a SIGKILL at a checkpoint and a resume end bit-identical to
the uninterrupted run (VGG-BN, ResNet with BatchNorm, the image-folder lab); a diverging run of every lab script
ends in one line and exit code 1 and saves nothing; flags come from the config and contradictory ones are refused."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxnn import train
from jaxnn.checkpoint import load_params

ROOT = Path(__file__).resolve().parents[1]

# Each recipe small: 6 (cifar) or 4 (image folder) steps an epoch, 2 epochs, a checkpoint every 2 steps. The models
# are narrow (VGG-BN with 4 and 8 channels and a 16-wide classifier, ResNet-18 with 4 stem channels): what resumes is
# the whole train state (parameters, momentum, BatchNorm statistics, step, batch order), the same pytree however
# wide its arrays, so the property does not depend on the width; the lab-sized models cost minutes of compute here.
SMALL = ["--train_subset", "96", "--batch_size", "16", "--test_subset", "32"]
NARROW_VGG = ["--model", "vgg", "--cfg", "4,M,8,M,8,M", "--hidden_features", "16"]
RECIPES = {
    "vgg-bn": ("cifar.py", [*NARROW_VGG, *SMALL]),
    "resnet18": ("cifar.py", ["--model", "resnet", "--arch", "resnet18", "--width", "4", *SMALL]),
    "image_folder": ("image_folder.py", ["--per_class", "16"]),
}


def _env():
    return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")


def _command(script, args, workdir, data_dir, *extra):
    return [
        sys.executable,
        str(ROOT / "experiments" / script),
        *args,
        "--epochs",
        "2",
        "--checkpoint_every",
        "2",
        "--no_progress",
        "--data_dir",
        str(data_dir),
        "--workdir",
        str(workdir),
        *extra,
    ]


def _same_variables(a, b):
    va, vb = load_params(a), load_params(b)
    assert jax.tree_util.tree_structure(va) == jax.tree_util.tree_structure(vb)
    for x, y in zip(jax.tree_util.tree_leaves(va), jax.tree_util.tree_leaves(vb), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_epoch_recipe_resumes_bit_identically_after_a_sigkill(recipe, mnist_data_dir, tmp_path):
    script, args = RECIPES[recipe]
    straight = tmp_path / "straight"
    subprocess.run(_command(script, args, straight, mnist_data_dir), check=True, capture_output=True, env=_env())
    killed = tmp_path / "killed"
    command = _command(script, args, killed, mnist_data_dir)
    command[1:2] = [str(ROOT / "tests" / "kill_at_save.py"), "4", command[1]]
    run = subprocess.run(command, capture_output=True, text=True, env=_env())
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert not (killed / "params.npz").exists()
    out = subprocess.run(
        _command(script, args, killed, mnist_data_dir, "--resume"),
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert "resumed from step" in out.stdout, out.stdout
    _same_variables(killed / "params.npz", straight / "params.npz")
    if recipe != "image_folder":  # BatchNorm's running statistics are part of what resumes
        assert "batch_stats" in load_params(straight / "params.npz")
    lines = lambda w: [line.split('"time_s"')[0] for line in (w / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert lines(killed) == lines(straight)


DIVERGING = {
    "mnist_cnn.py": ["--epochs", "1", "--train_subset", "200", "--no_progress", "--lr", "1e30"],
    "cifar.py": [*NARROW_VGG, "--train_subset", "64", "--batch_size", "32", "--lr", "1e30"],
    "image_folder.py": ["--per_class", "8", "--epochs", "1", "--lr", "1e30"],
    # Adam's steps are about lr whatever the gradient: at 1e30 the char labs' tanh RNNs stay finite (logits near
    # 1e31, a finite loss); at 1e38 their logits overflow.
    "hihello.py": ["--lr", "1e38", "--iterations", "5"],
    "charseq.py": ["--lr", "1e38", "--iterations", "5"],
    "longseq.py": ["--lr", "1e38", "--iterations", "5"],
    "timeseries.py": ["--lr", "1e30", "--iterations", "5"],
    "seq2seq.py": ["--lr", "1e30", "--iterations", "5"],
}


@pytest.mark.parametrize("script", sorted(DIVERGING))
def test_a_diverging_run_of_every_lab_is_one_line_exit_1_and_saves_nothing(script, mnist_data_dir, tmp_path):
    extra = ["--data_dir", str(mnist_data_dir), "--workdir", str(tmp_path / "run")]
    if script in ("hihello.py", "charseq.py", "longseq.py", "seq2seq.py"):
        extra = []
    elif script == "timeseries.py":
        extra = ["--workdir", str(tmp_path / "run")]
    out = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / script), *DIVERGING[script], *extra],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
    )
    assert out.returncode == 1, out.stderr
    errors = out.stderr.strip().splitlines()
    assert len(errors) == 1 and "non-finite" in errors[0] and "Traceback" not in out.stderr, out.stderr
    written = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert not written & {"params.npz", "curves.png", "predictions.png"}, written


def test_train_loop_names_the_first_non_finite_step():
    class Scale(train.core.nn.Module):
        @train.core.nn.compact
        def __call__(self, x, deterministic=True):
            return x * self.param("w", lambda k: np.ones((), np.float32))

    model = Scale()
    x = np.ones((2, 1), np.float32)
    state = train.create_train_state(model, train.init_params(model, jax.random.key(0), x), train.sgd(1e20))
    batch = {"inputs": x, "labels": np.zeros((2, 1), np.float32)}
    # Loss 1 at step 10; the update makes w = -2e20, whose loss 4e40 overflows float32 at step 11.
    with pytest.raises(train.NonFiniteLossError, match=r"non-finite loss inf at step 11:"):
        train.train_loop(state.replace(step=10), batch, jax.random.key(0), 5, loss=train.mse)


def test_flags_come_from_the_config_and_contradictions_are_refused():
    sys.path.insert(0, str(ROOT / "experiments"))
    import cifar as cifar_script
    import image_folder as folder_script

    config, _ = cifar_script.parse_args(["--model", "vgg", "--no_batch_norm", "--lr", "0.1", "--keep", "2"])
    assert (config.batch_norm, config.learning_rate, config.keep) == (False, 0.1, 2)
    for argv, message in (
        (["--model", "vgg", "--arch", "resnet50"], "--arch is for model 'resnet', not model 'vgg'"),
        (["--model", "resnet", "--no_batch_norm"], "--no_batch_norm is for model 'vgg', not model 'resnet'"),
        (["--resume", "--overwrite"], "--resume and overwrite exclude each other"),
    ):
        with pytest.raises(SystemExit):
            cifar_script.parse_args(argv)
        out = subprocess.run(
            [sys.executable, str(ROOT / "experiments" / "cifar.py"), *argv], capture_output=True, text=True
        )
        assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].endswith(message), out.stderr
    with pytest.raises(SystemExit):
        folder_script.parse_args(["--test_root", "somewhere"])


def test_a_run_whose_step_count_overflows_is_refused_before_the_workdir_is_touched(tmp_path):
    from jaxnn.models import MnistCNN
    from jaxnn.train import driver

    model = MnistCNN()
    x = np.ones((4, 28, 28, 1), np.float32)
    state = train.create_train_state(model, train.init_params(model, jax.random.key(0), x), train.adam(1e-3))
    data = driver.Data(x, np.zeros(4, np.int32), batch_size=2)
    options = driver.RunOptions(epochs=2**30)
    with pytest.raises(ValueError, match=r"epochs 1073741824 x 2 steps per epoch must be <= 2147483647 steps"):
        driver.fit(options, tmp_path / "run", identity={}, state=state, data=data, rng=jax.random.key(0))
    assert not (tmp_path / "run").exists()


def test_ctrl_c_is_one_line_exit_130_and_the_previous_result_comes_back_byte_for_byte(mnist_data_dir, tmp_path):
    small = ["--train_subset", "200", "--test_subset", "100", "--batch_size", "50", "--no_progress"]
    first = [sys.executable, str(ROOT / "experiments" / "mnist_cnn.py"), *small, "--epochs", "1", "--workdir"]
    subprocess.run(
        [*first, str(tmp_path), "--data_dir", str(mnist_data_dir)], check=True, capture_output=True, env=_env()
    )
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file() and p.name != ".lock"}
    long = [*first, str(tmp_path), "--data_dir", str(mnist_data_dir), "--epochs", "100", "--overwrite"]
    long += ["--checkpoint_every", "2"]
    proc = subprocess.Popen(long, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.time() + 120
    while not (tmp_path / "checkpoints" / "6").is_dir():  # training, with files of its own written
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.splitlines() == ["mnist_cnn.py: interrupted (Ctrl-C)"], err[-3000:]
    after = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file() and p.name != ".lock"}
    assert sorted(after) == sorted(before)
    assert after == before
