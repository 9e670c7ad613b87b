"""The one driver's guarantees hold for every recipe: a SIGKILL at a checkpoint and a resume end bit-identical to
the uninterrupted run for every recipe family (VGG-BN with the ResNet lab's augmentation, the image-folder lab, the
time series, seq2seq and the character labs; MNIST's in test_resume.py), with its metrics.jsonl, TensorBoard events
and curves.png; a diverging run of every lab script ends in one line and exit code 1 and saves nothing; flags come
from the config and contradictory ones are refused."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxnn import train
from jaxnn.checkpoint import load_params

ROOT = Path(__file__).resolve().parents[1]

# Each recipe small: 6 (cifar) or 4 (image folder) steps an epoch, 2 epochs, a checkpoint every 2 steps. The VGG-BN
# is narrow (4 and 8 channels, a 16-wide classifier): what resumes is the whole train state (parameters, momentum,
# BatchNorm statistics, step, batch order), the same pytree however wide its arrays, so the property does not depend
# on the width. It trains with the ResNet lab's options too (RandomCrop with padding 4, a flip, weight decay), whose
# random draws and update must resume as well: the cifar recipe's resume does not depend on the model, and a
# ResNet-18 case cost 40 s of compilation here (benchmarks/RESULTS.md, issue 33).
SMALL = ["--train_subset", "96", "--batch_size", "16", "--test_subset", "32"]
NARROW_VGG = ["--model", "vgg", "--cfg", "4,M,8,M,8,M", "--hidden_features", "16"]
AUGMENTED = ["--crop_padding", "4", "--flip", "--weight_decay", "5e-4"]
RECIPES = {  # name -> (script, flags, the step whose checkpoint the killed run dies at)
    "vgg-bn": ("cifar.py", [*NARROW_VGG, *AUGMENTED, *SMALL], 4),
    "image_folder": ("image_folder.py", ["--per_class", "16"], 4),
    # Full-batch epochs, each one compiled scan of 10 steps, checkpointed at its end: killed after epoch 2 of 3.
    # seq2seq adds tuple inputs and the lab's one random pair per step, drawn from the step number; the character
    # labs (hihello's family) the per-step losses and predictions their Result reports.
    "timeseries": ("timeseries.py", ["--iterations", "30", "--epochs", "3"], 20),
    "seq2seq": ("seq2seq.py", ["--iterations", "30", "--epochs", "3", "--one_pair_per_step"], 20),
    "hihello": ("hihello.py", ["--iterations", "30", "--epochs", "3"], 20),
}


def _env():
    return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")


def _command(script, args, workdir, data_dir, *extra):
    if script in ("mnist_cnn.py", "cifar.py", "image_folder.py"):  # 2 epochs, a checkpoint every 2 steps
        args = [*args, "--epochs", "2", "--checkpoint_every", "2", "--data_dir", str(data_dir)]
    script = str(ROOT / "experiments" / script)
    return [sys.executable, script, *args, "--no_progress", "--workdir", str(workdir), *extra]


def _same_variables(a, b):
    va, vb = load_params(a), load_params(b)
    assert jax.tree_util.tree_structure(va) == jax.tree_util.tree_structure(vb)
    for x, y in zip(jax.tree_util.tree_leaves(va), jax.tree_util.tree_leaves(vb), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_epoch_recipe_resumes_bit_identically_after_a_sigkill(recipe, mnist_data_dir, tmp_path):
    script, args, kill_at = RECIPES[recipe]
    straight = tmp_path / "straight"
    subprocess.run(_command(script, args, straight, mnist_data_dir), check=True, capture_output=True, env=_env())
    killed = tmp_path / "killed"
    command = _command(script, args, killed, mnist_data_dir)
    command[1:2] = [str(ROOT / "tests" / "kill_at_save.py"), str(kill_at), command[1]]
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
    if recipe == "vgg-bn":  # BatchNorm's running statistics are part of what resumes
        assert "batch_stats" in load_params(straight / "params.npz")
    lines = lambda w: [line.split('"time_s"')[0] for line in (w / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert lines(killed) == lines(straight)
    assert (killed / "curves.png").is_file() and list((killed / "tensorboard").glob("events.out.tfevents.*"))


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
    from jaxnn.cli.commands import cifar as cifar_script
    from jaxnn.cli.commands import image_folder as folder_script

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


class _Affine(train.core.nn.Module):
    """y = x @ w + b: a regression model for the driver's tests."""

    @train.core.nn.compact
    def __call__(self, x, deterministic=True):
        w = self.param("w", lambda k: jax.random.normal(k, (3, 1)))
        return x @ w + self.param("b", lambda k: np.zeros(1, np.float32))


def test_the_driver_trains_any_loss_and_records_what_it_returns(tmp_path, caplog):
    """An MSE regression through driver.fit: the epoch records hold the loss's own metrics (no accuracy), in
    metrics.jsonl, TensorBoard and curves.png, and the log line says the test loss."""
    import functools
    import logging

    from jaxnn import report
    from jaxnn.train import driver

    r = np.random.default_rng(0)
    x = r.standard_normal((40, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.1).astype(np.float32)
    model = _Affine()
    state = train.create_train_state(model, train.init_params(model, jax.random.key(0), x[:1]), train.adam(0.1))
    data = driver.Data(x[:32], y[:32], x[32:], y[32:], batch_size=8)
    mse_step = functools.partial(train.train_step, loss=train.mse)
    mse_eval = functools.partial(train.eval_step, loss=train.mse)
    with caplog.at_level(logging.INFO, logger="jaxnn.train"):
        fit = driver.fit(
            driver.RunOptions(epochs=3, progress=False),
            tmp_path,
            identity={"lab": "regression"},
            state=state,
            data=data,
            rng=jax.random.key(1),
            train_step=mse_step,
            eval_step=mse_eval,
        )
    assert [sorted(r) for r in fit.records] == [["epoch", "test_loss", "train_loss"]] * 3
    assert fit.records[-1]["test_loss"] < fit.records[0]["test_loss"] and set(fit.test) == {"loss"}
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in report.read_metrics(fit.metrics_path)] == fit.records
    assert [step for step, _ in report.read_scalars(fit.logdir)["test/loss"]] == [1, 2, 3]
    assert fit.curves_path.is_file()
    lines = [m for m in caplog.messages if m.startswith("[Epoch:")]
    assert len(lines) == 3 and "test loss = " in lines[0] and "acc" not in lines[0], lines


def test_an_epoch_resumed_mid_way_has_the_means_of_every_metric_of_the_straight_one():
    import functools

    import jax.numpy as jnp

    def mse_and_mae(outputs, batch):  # a loss that returns a metric of its own
        error = outputs - batch["labels"]
        return jnp.mean(error**2), {"mae": jnp.mean(jnp.abs(error))}

    r = np.random.default_rng(1)
    batches = [{"inputs": r.standard_normal((4, 3), np.float32), "labels": r.standard_normal((4, 1), np.float32)}]
    batches *= 4
    model = _Affine()
    state = train.create_train_state(
        model, train.init_params(model, jax.random.key(0), batches[0]["inputs"]), train.sgd(0.1)
    )
    step = jax.jit(functools.partial(train.train_step, loss=mse_and_mae))
    _, straight = train.train_epoch(step, state, batches, jax.random.key(0))
    saved = {}
    half, _ = train.train_epoch(step, state, batches[:2], jax.random.key(0), lambda s, so_far: saved.update(so_far))
    previous = {k: [float(v) for v in vs] for k, vs in saved.items()}  # as a checkpoint's JSON holds them
    _, resumed = train.train_epoch(step, half, batches[2:], jax.random.key(0), previous=previous)
    assert sorted(straight) == sorted(previous) == ["loss", "mae"]
    assert resumed == straight


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_an_epoch_stops_at_the_first_non_finite_loss_of_any_kind(bad, checkpointing):
    import functools

    import jax.numpy as jnp

    def loss(outputs, batch):  # finite but at step 2
        return jnp.where(batch["bad"], bad, jnp.mean(outputs**2)), {}

    x = np.ones((2, 3), np.float32)
    batches = [{"inputs": x, "labels": x[:, :1], "bad": np.bool_(i == 2)} for i in range(4)]
    model = _Affine()
    state = train.create_train_state(model, train.init_params(model, jax.random.key(0), x), train.sgd(0.1))
    saved = []
    after = (lambda s, so_far: saved.append(int(s.step))) if checkpointing else None
    step = jax.jit(functools.partial(train.train_step, loss=loss))
    with pytest.raises(train.NonFiniteLossError, match=rf"non-finite loss {bad} at step 2:"):
        train.train_epoch(step, state, batches, jax.random.key(0), after)
    assert saved == ([1, 2] if checkpointing else [])  # nothing after the bad step is handed on
