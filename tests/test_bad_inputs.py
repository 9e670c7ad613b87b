"""A sweep of bad inputs across ops, models, data, training, checkpoints and command-line flags: each one gets a
clear ValueError/TypeError (or argparse's exit 2 with a message), never a silent wrong answer or an XLA trace."""

import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import COMPILES, ROOT, load_script

from jaxnn import ops, parallel, train
from jaxnn.checkpoint import Checkpointer
from jaxnn.data import mnist
from jaxnn.data.text import Vocab, sliding_windows
from jaxnn.labs import mnist as mnist_lab
from jaxnn.labs.char import make_lab, run_lab
from jaxnn.layout import nchw_to_nhwc, oihw_to_hwio
from jaxnn.models import RNN, CharRNN, DeepCNN, MnistCNN, generate
from jaxnn.nn import Linear

X = np.random.default_rng(0).standard_normal((2, 6, 6, 3)).astype(np.float32)
W = np.random.default_rng(1).standard_normal((3, 3, 3, 4)).astype(np.float32)
CNN_PARAMS = MnistCNN().init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))
LONGSEQ = make_lab("longseq")

CASES = {
    # ops
    "conv rank": (lambda: ops.conv2d(X[0, 0], W), ValueError, r"x must be \(N, H, W, C\) or \(H, W, C\)"),
    "conv channels": (lambda: ops.conv2d(X, W[:, :, :2]), ValueError, r"input channels 3 .* do not match weight"),
    "conv groups": (lambda: ops.conv2d(X, W[:, :, :1], groups=2), ValueError, r"groups=2 does not divide"),
    "conv kernel too big": (
        lambda: ops.conv2d(X, np.ones((7, 7, 3, 4), np.float32)),
        ValueError,
        r"larger than the padded input",
    ),
    "conv stride 0": (lambda: ops.conv2d(X, W, stride=0), ValueError, r"stride must be >= 1"),
    "conv same stride 2": (lambda: ops.conv2d(X, W, stride=2, padding="same"), ValueError, r"'same' .* stride 1"),
    "conv int input": (lambda: ops.conv2d(X.astype(np.int64), W), TypeError, r"floating dtype"),
    "pool padding": (lambda: ops.max_pool2d(X, 3, padding=2), ValueError, r"at most half of kernel_size"),
    "pool dilation 0": (lambda: ops.max_pool2d(X, 2, dilation=0), ValueError, r"dilation must be >= 1"),
    "avg kernel type": (lambda: ops.avg_pool2d(X, 2.0), TypeError, r"kernel_size must be an int or a pair"),
    "unpool index shape": (
        lambda: ops.max_unpool2d(X, np.zeros((2, 6, 6, 2), np.int32), 2),
        ValueError,
        r"indices shape \(2, 6, 6, 2\) does not match x shape \(2, 6, 6, 3\)",
    ),
    "conv_output_size": (lambda: ops.conv_output_size(5, 0), ValueError, r"kernel_size must be >= 1"),
    "layout rank": (lambda: nchw_to_nhwc(np.zeros((2, 3))), ValueError, r"x must be \(N, C, H, W\) or \(C, H, W\)"),
    "oihw rank": (lambda: oihw_to_hwio(np.zeros((2, 3, 3))), ValueError, r"weight must be \(O, I, kh, kw\)"),
    # models
    "cnn shape": (
        lambda: MnistCNN().apply(CNN_PARAMS, jnp.ones((2, 1, 28, 28))),
        ValueError,
        r"images must have shape \(N, 28, 28, 1\)",
    ),
    "cnn dtype": (
        lambda: DeepCNN().init(jax.random.key(0), jnp.ones((1, 28, 28, 1), jnp.uint8)),
        TypeError,
        r"images must be floating point",
    ),
    "rnn cell": (
        lambda: RNN(4, cell="transformer").init(jax.random.key(0), jnp.ones((1, 3, 2))),
        ValueError,
        r"cell must be one of",
    ),
    "rnn nonlinearity": (
        lambda: RNN(4, nonlinearity="gelu").init(jax.random.key(0), jnp.ones((1, 3, 2))),
        ValueError,
        r"nonlinearity must be one of .* got 'gelu'",
    ),
    "rnn h0 shape": (
        lambda: RNN(4, num_layers=2, batch_first=True).init(
            jax.random.key(0), jnp.ones((1, 3, 2)), jnp.zeros((1, 1, 4))
        ),
        ValueError,
        r"h0 must have shape \(2, 1, 4\)",
    ),
    "rnn int input": (
        lambda: RNN(4).init(jax.random.key(0), jnp.ones((1, 3, 2), jnp.int32)),
        TypeError,
        r"x must be floating",
    ),
    "charrnn features": (
        lambda: CharRNN(5, 8).init(jax.random.key(0), jnp.ones((1, 3, 6))),
        ValueError,
        r"one-hot input must have 5 features",
    ),
    "generate prompt out of vocabulary": (
        lambda: generate(LONGSEQ.model, None, jnp.array([0, 99]), 4),
        ValueError,
        r"prompt indices must lie in \[0, 25\) \(vocab_size\), got values in \[0, 99\]",
    ),
    "generate length": (
        lambda: generate(LONGSEQ.model, None, jnp.array([0]), -2),
        ValueError,
        r"length must be a positive int, got -2",
    ),
    "generate nan temperature": (
        lambda: generate(LONGSEQ.model, None, jnp.array([0]), 3, None, float("nan")),
        ValueError,
        r"temperature must be a finite number >= 0, got nan",
    ),
    "linear int input": (
        lambda: Linear(3).init(jax.random.key(0), jnp.ones((2, 4), jnp.int32)),
        TypeError,
        r"Linear: x must be floating, got int32",
    ),
    "generate prompt": (
        lambda: generate(LONGSEQ.model, None, jnp.zeros((2, 3), jnp.int32), 4),
        ValueError,
        r"prompt must be a non-empty \(P,\) index array, got shape \(2, 3\)",
    ),
    # data
    "vocab unknown": (
        lambda: LONGSEQ.vocab.encode("Zebra"),
        ValueError,
        r"characters \['Z'\] of text 'Zebra' are not in the vocabulary",
    ),
    "windows too long": (
        lambda: sliding_windows("abc", Vocab.from_text("abc"), 3),
        ValueError,
        r"sequence_length 3 must be shorter than the text \(3 characters\)",
    ),
    "empty vocab": (lambda: Vocab.from_text(""), ValueError, r"empty text"),
    "normalize floats": (
        lambda: mnist.normalize(np.ones((2, 28, 28, 1), np.float32)),
        TypeError,
        r"images must be uint8 pixels",
    ),
    "mnist missing": (
        lambda: mnist.verify_files("/nonexistent/mnist"),
        FileNotFoundError,
        r"MNIST files missing from /nonexistent/mnist",
    ),
    # training
    "batch too big": (lambda: train.check_batch_size(101, 100), ValueError, r"batch_size 101 is larger than the"),
    "batch zero": (lambda: train.check_batch_size(0, 100), ValueError, r"batch_size must be a positive int"),
    "iterations": (lambda: run_lab(make_lab("hihello"), iterations=0), ValueError, r"iterations must be a positive"),
    "adam learning rate": (lambda: train.adam(float("nan")), ValueError, r"learning_rate must be a finite number"),
    "mnist config": (lambda: mnist_lab.Config(epochs=0), ValueError, r"epochs must be an int >= 1, got 0"),
    "unknown lab": (lambda: make_lab("bigseq"), ValueError, r"unknown lab 'bigseq'"),
    "mesh divisibility": (
        lambda: parallel.check_divisible(10, type("M", (), {"devices": type("D", (), {"size": 4})()})()),
        ValueError,
        r"not divisible by the 4",
    ),
    # checkpoints
    "checkpoint keep": (
        lambda: Checkpointer("/tmp/jaxnn-never-created", keep=0),
        ValueError,
        r"keep must be a positive int, got 0",
    ),
    # complex weights would lose their imaginary part; empty images and zero channels have no pooling window
    "conv complex weight": (lambda: ops.conv2d(X, W.astype(np.complex64)), TypeError, r"conv2d: weight is complex"),
    "conv complex bias": (
        lambda: ops.conv2d(X, W, np.ones(4, np.complex64)),
        TypeError,
        r"conv2d: bias is complex",
    ),
    "conv transpose complex weight": (
        lambda: ops.conv_transpose2d(X, W.astype(np.complex64)),
        TypeError,
        r"conv_transpose2d: weight is complex",
    ),
    "linear complex kernel": (
        lambda: Linear(2).apply({"params": {"kernel": np.ones((3, 2), np.complex64), "bias": np.ones(2)}}, X[0, 0]),
        TypeError,
        r"Linear: kernel is complex",
    ),
    "pool zero channels": (lambda: ops.max_pool2d(X[..., :0], 2), ValueError, r"non-zero height, width and channels"),
    "avg pool empty image": (lambda: ops.avg_pool2d(X[:, :0], 2), ValueError, r"non-zero height, width and channels"),
    "charrnn index out of range": (
        lambda: CharRNN(5, 4).init(jax.random.key(0), np.array([[0, 5, 1]])),
        ValueError,
        r"CharRNN: indices must lie in \[0, 5\) \(vocab_size\), found values in \[0, 5\]",
    ),
    "charrnn negative index": (
        lambda: CharRNN(5, 4).init(jax.random.key(0), np.array([[0, -1]])),
        ValueError,
        r"found values in \[-1, 0\]",
    ),
    # RNN params of another configuration: named, never silently ignored
    "rnn params of a deeper rnn": (
        lambda: RNN(4).apply(RNN(4, num_layers=2).init(jax.random.key(0), X[0]), X[0]),
        ValueError,
        r"params hold \['bias_hh_l1', 'bias_ih_l1', 'weight_hh_l1', 'weight_ih_l1'\], which this RNN .*num_layers=1",
    ),
    "rnn params of a bidirectional rnn": (
        lambda: RNN(4).apply(RNN(4, bidirectional=True).init(jax.random.key(0), X[0]), X[0]),
        ValueError,
        r"params hold .*weight_ih_l0_reverse",
    ),
    "rnn params of another hidden size": (
        lambda: RNN(5).apply(RNN(4).init(jax.random.key(0), X[0]), X[0]),
        ValueError,
        r"weight_ih_l0 has shape \(4, 3\), but this RNN needs \(5, 3\): .*another configuration .*hidden_size=5",
    ),
    "rnn input of another feature size": (
        lambda: RNN(4).apply(RNN(4).init(jax.random.key(0), X[0]), X[0, :, :, :2]),
        ValueError,
        r"the input has 2 features, the parameters were made for 3",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name):
    call, error, pattern = CASES[name]
    with pytest.raises(error, match=pattern):
        call()


def _state(model):
    params = train.init_params(model, jax.random.key(0), jnp.ones((1, 28, 28, 1)))
    return train.create_train_state(model, params, train.adam(1e-3))


def test_checkpoint_of_another_model_is_refused_not_silently_ignored(tmp_path):
    ck = Checkpointer(tmp_path / "ck")
    ck.save(_state(MnistCNN()))
    ck.close()
    deep = _state(DeepCNN())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"none of the checkpoints \[0\] .* can be restored into this train"):
            Checkpointer(tmp_path / "ck").restore_latest(deep)


def test_nan_parameters_are_never_saved(tmp_path):
    state = _state(MnistCNN())
    bad = state.replace(params=jax.tree_util.tree_map(lambda p: p * jnp.nan, state.params))
    with pytest.raises(FloatingPointError, match=r"parameters are not finite at step 0"):
        Checkpointer(tmp_path / "ck").save(bad)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs must be an int >= 1, got 0"),
        (["--batch_size", "-5"], "--batch_size must be an int >= 1, got -5"),
        (["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
        (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
        (["--model", "resnet"], "--model must be one of ['cnn', 'deep'], got 'resnet'"),
        (["--schedule", "linear"], "--schedule must be 'cosine' or 'constant', got 'linear'"),
        (["--checkpoint_every", "-1"], "--checkpoint_every must be an int >= 0, got -1"),
        (["--keep", "0"], "--keep must be an int >= 1, got 0"),
        (["--resume", "--no_checkpoints"], "--resume needs checkpoints"),
        (["--train_subset", "0"], "--train_subset must be an int >= 1"),
        (["--epochs", "99999999999999999999"], "--epochs must be an int <= 2147483647"),
        (["--data_dir", ""], "--data_dir must be a path (None for the default), got ''"),
        (["--logdir", " "], "--logdir must be a path (None for the default), got ' '"),
        (["--seed", "99999999999999999999"], "--seed must be an int in [0, 2**32)"),
        (["--checkpoint_every", "99999999999999999999"], "--checkpoint_every must be an int <= 2147483647"),
        (["--train_subset", "99999999999999999999"], "--train_subset must be an int <= 2147483647"),
    ],
)
def test_mnist_cli_rejects_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        load_script("mnist_cnn").parse_args(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err  # one line, no usage


@pytest.mark.parametrize(
    "script, flag",
    [
        ("mnist_cnn", "--workdir"),
        ("cifar", "--workdir"),
        ("image_folder", "--workdir"),
        ("timeseries", "--workdir"),
        ("hihello", "--workdir"),
        ("seq2seq", "--workdir"),
        ("port_resnet", "--workdir"),
        ("port_resnet", "--weights"),
        ("port_resnet", "--data_dir"),
    ],
)
def test_an_empty_path_flag_is_refused_before_anything_runs(script, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty path would be this folder
    with pytest.raises(SystemExit) as e:
        load_script(script).main([flag, ""])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.endswith(f": error: argument {flag}: must be a path, got ''\n"), err
    assert err.count("\n") == 1, err  # one line, no usage block
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("hihello", ["--iterations", "0"], "--iterations must be an int >= 1, got 0"),
        ("hihello", ["--iterations", "99999999999999999999"], "--iterations must be an int <= 10000000"),
        ("hihello", ["--seed", "99999999999999999999"], "--seed must be an int in [0, 2**32)"),
        ("charseq", ["--seed", "-1"], "--seed must be an int in [0, 2**32), got -1"),
        ("longseq", ["--length", "99999999999999"], "--length must be an int in [1, 1000000]"),
        ("conv_basics", ["--size", "99999999"], "--size must be an int in [3, 64]"),
        ("pooling", ["--size", "999999999"], "--size must be an int in [4, 64]"),
        ("pooling", ["--seed", "99999999999999999999"], "--seed must be an int in [0, 4294967295]"),
        ("rnn_basics", ["--seed", "99999999999999999999"], "--seed must be an int in [0, 4294967295]"),
        ("packed_sequence", ["--seed", "99999999999999999999"], "--seed must be an int in [0, 4294967295]"),
        ("rnn_seed_table", ["--seeds", "99999999999999999999"], "--seeds must be an int in [1, 10000]"),
        ("seq2seq", ["--seed", "99999999999999999999"], "--seed must be an int in [0, 2**32)"),
        ("seq2seq", ["--iterations", "99999999999999999999"], "--iterations must be an int <= 10000000"),
        ("timeseries", ["--iterations", "99999999999999999999"], "--iterations must be an int <= 10000000"),
        ("charseq", ["--lr", "-1"], "--lr must be a finite number > 0, got -1.0"),
        ("charseq", ["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
        ("longseq", ["--temperature", "nan"], "--temperature must be > 0"),
        ("longseq", ["--temperature", "1e-300"], "--temperature must be > 0 in float32"),
        ("longseq", ["--cell", "tcn"], "--cell must be one of ['rnn', 'lstm', 'gru'], got 'tcn'"),
        ("longseq", ["--length", "0"], "--length must be an int in [1, 1000000], got 0"),
        ("longseq", ["--prompt", "QQ"], "--prompt: characters ['Q']"),
        ("conv_basics", ["--size", "2"], "--size must be an int in [3, 64] (the demo kernel is 3x3"),
        ("pooling", ["--size", "1"], "--size must be an int in [4, 64] (2x2 windows with dilation 2"),
    ],
)
def test_lab_clis_reject_bad_flags(script, argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        load_script(script).main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err  # one line, no usage


def test_a_run_that_diverges_names_its_first_non_finite_step():
    lab = make_lab("hihello")
    params = train.init_params(lab.model, jax.random.key(0), jnp.asarray(lab.x))
    poisoned = jax.tree_util.tree_map(lambda p: p.at[0].set(jnp.nan) if p.ndim == 1 else p, params)
    with pytest.raises(train.NonFiniteLossError, match=r"non-finite loss nan at step 0"):
        run_lab(lab, params=poisoned)


def test_non_finite_parameters_are_never_written(tmp_path):
    from jaxnn.checkpoint import save_params

    with pytest.raises(FloatingPointError, match=r"parameter fc/bias is not finite: not writing"):
        save_params(tmp_path / "p.npz", {"fc": {"kernel": np.ones((2, 2)), "bias": np.array([1.0, np.inf])}})
    assert not list(tmp_path.iterdir())


def test_script_errors_are_one_line_unless_debug(tmp_path):
    import subprocess
    import sys

    script = [
        sys.executable,
        str(ROOT / "experiments" / "mnist_cnn.py"),
        "--data_dir",
        str(tmp_path / "tfds"),
        "--manual_dir",
        str(tmp_path / "nowhere"),
        "--workdir",
        str(tmp_path / "run"),
        "--epochs",
        "1",
    ]
    out = subprocess.run(script, capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "mnist_cnn.py: error: MNIST files missing from" in lines[0]
    debug = subprocess.run(script + ["--debug"], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_model_too_large_for_memory_is_one_line_before_anything_compiles(tmp_path):
    from jaxnn.labs import timeseries
    from jaxnn.models import RNNRegressor

    with pytest.raises(ValueError, match=r"RNNRegressor has 40,002,900,001 parameters \(149\.0 GiB\); training keeps"):
        timeseries.train_and_evaluate(timeseries.Config(hidden_size=100000), tmp_path / "run")
    key, x = jax.random.key(0), jnp.ones((1, 7, 5))
    before = COMPILES.count
    with pytest.raises(ValueError, match="choose smaller sizes"):
        train.init_params(RNNRegressor(hidden_size=100000), key, x)
    assert COMPILES.count == before  # refused from the shapes alone
    out = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "timeseries.py"), "--hidden_size", "100000"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "choose smaller sizes" in out.stderr and "RESOURCE_EXHAUSTED" not in out.stderr
