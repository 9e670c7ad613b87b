"""Lab 10 CNNs: shapes, forward and one Adam step equal to the PyTorch lab models, training, determinism, data."""

import copy
import dataclasses
import functools
import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from conftest import COMPILES

from jaxnn import report, runtime, train
from jaxnn.checkpoint import load_params
from jaxnn.data import mnist, tfds_cache
from jaxnn.interop import torch_labs
from jaxnn.interop.torch import cnn_params_from_torch, cnn_params_to_torch
from jaxnn.labs import mnist as mnist_lab
from jaxnn.layout import nhwc_to_nchw
from jaxnn.models import DeepCNN, MnistCNN
from jaxnn.testing import assert_close


@pytest.fixture(scope="session")
def mnist_data(mnist_data_dir):
    """The real MNIST, prepared through TFDS once per test session into a temporary data_dir."""
    return mnist.load_mnist(mnist_data_dir, verbose=False)


@pytest.fixture(scope="session")
def mnist_slice(mnist_data):
    x = mnist.normalize(mnist_data["train"].images[:256])
    return x, mnist_data["train"].labels[:256]


def test_loader_returns_real_mnist(mnist_data):
    train_split, test_split = mnist_data["train"], mnist_data["test"]
    assert train_split.images.shape == (60000, 28, 28, 1) and train_split.images.dtype == np.uint8
    assert test_split.images.shape == (10000, 28, 28, 1) and test_split.labels.shape == (10000,)
    np.testing.assert_array_equal(
        np.bincount(train_split.labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    )
    assert abs(train_split.images.mean() / 255 - 0.1307) < 1e-4
    # The TFDS examples are the original ones: the first original training image (a 5) is among them.
    original = mnist.read_idx(mnist.default_manual_dir() / "train-images-idx3-ubyte.gz", 16, (60000, 28, 28, 1))
    hits = np.flatnonzero((train_split.images == original[0]).all(axis=(1, 2, 3)))
    assert len(hits) >= 1 and train_split.labels[hits[0]] == 5


def test_loader_is_served_from_the_npz_cache_afterwards(mnist_data, mnist_data_dir, monkeypatch):
    # A second load of the same data_dir reads the cached arrays, not the prepared dataset, and agrees.
    def not_expected(*args):
        raise AssertionError("the prepared dataset was read although the cache is there")

    monkeypatch.setattr(tfds_cache, "_read_source", not_expected)
    again = mnist.load_mnist(mnist_data_dir)
    np.testing.assert_array_equal(again["test"].labels, mnist_data["test"].labels)


def test_missing_files_fail_at_once_naming_the_folder(tmp_path, caplog):
    manual = tmp_path / "manual"
    manual.mkdir()
    shutil.copy(mnist.default_manual_dir() / "t10k-labels-idx1-ubyte.gz", manual)
    (tmp_path / "tfds" / "mnist" / mnist.VERSION).mkdir(parents=True)  # an empty folder, as a failed try leaves
    with pytest.raises(FileNotFoundError, match=r"missing from .*manual: train-images-idx3-ubyte.gz"):
        mnist.load_mnist(tmp_path / "tfds", manual)
    # Refused before TFDS was asked to prepare anything (so nothing was downloaded or half-written), and before
    # TFDS logged a warning about the empty folder: the error is the one line the user sees.
    assert not [p for p in (tmp_path / "tfds" / "mnist").rglob("*") if p.is_file()]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_corrupt_file_fails_with_sha256_mismatch(tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(mnist.default_manual_dir(), manual)
    path = manual / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.raises(ValueError, match=r"corrupt or truncated: 4442 bytes with sha256 [0-9a-f]{64}, expected 4542"):
        mnist.load_mnist(tmp_path / "tfds", manual)
    data = bytearray((manual / "train-labels-idx1-ubyte.gz").read_bytes())
    path.write_bytes(mnist.default_manual_dir().joinpath("t10k-labels-idx1-ubyte.gz").read_bytes())
    data[100] ^= 1  # same size, one bit flipped
    (manual / "train-labels-idx1-ubyte.gz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz is corrupt"):
        mnist.load_mnist(tmp_path / "tfds", manual)


@pytest.mark.parametrize(
    "model_cls, shapes",
    [
        (MnistCNN, {"layer1": (3, 3, 1, 32), "layer2": (3, 3, 32, 64), "fc": (3136, 10)}),
        (
            DeepCNN,
            {
                "layer1": (3, 3, 1, 32),
                "layer2": (3, 3, 32, 64),
                "layer3": (3, 3, 64, 128),
                "fc1": (2048, 625),
                "fc2": (625, 10),
            },
        ),
    ],
)
def test_model_shapes(model_cls, shapes):
    x = jnp.zeros((3, 28, 28, 1)) + 0.5
    params = model_cls().init(jax.random.key(0), x)["params"]
    for name, shape in shapes.items():
        kernel = params[name]["conv"]["kernel"] if "conv" in params[name] else params[name]["kernel"]
        assert kernel.shape == shape
    assert model_cls().apply({"params": params}, x).shape == (3, 10)


@pytest.mark.parametrize(
    "bad, error, pattern",
    [
        (
            np.zeros((2, 28, 28), np.float32),
            ValueError,
            r"images must have shape \(N, 28, 28, 1\) \(NHWC\), got \(2, 28, 28\)",
        ),
        (np.zeros((2, 1, 28, 28), np.float32), ValueError, r"got \(2, 1, 28, 28\)"),
        (np.zeros((2, 28, 28, 1), np.uint8), TypeError, r"images must be floating point .* got uint8"),
    ],
)
def test_models_reject_bad_batches(bad, error, pattern):
    params = MnistCNN().init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))
    with pytest.raises(error, match=pattern):
        MnistCNN().apply(params, bad)


def test_batch_size_larger_than_split_is_an_error():
    x = jnp.ones((10, 28, 28, 1))
    with pytest.raises(ValueError, match=r"batch_size 11 is larger than the train split \(10 examples\)"):
        next(train.epoch_batches(x, jnp.zeros(10, jnp.int32), 11, jax.random.key(0), 0))


def _state(model, params=None, seed=0, lr=1e-3):
    if params is None:
        params = train.init_params(model, jax.random.key(seed), jnp.ones((1, 28, 28, 1)))
    return train.create_train_state(model, params, train.adam(lr))


FAST_JIT = functools.partial(jax.jit, compiler_options=runtime.compiler_options())  # as the lab recipe compiles


def _torch_model(model_cls):
    torch.manual_seed(0)
    m = torch_labs.CNN() if model_cls is MnistCNN else torch_labs.DeepCNN(keep_prob=1.0)
    return m


@pytest.mark.parametrize("model_cls", [MnistCNN, DeepCNN])
def test_forward_equals_pytorch_lab_model(model_cls, mnist_slice):
    x, _ = mnist_slice
    tm = _torch_model(model_cls).eval()
    params = cnn_params_from_torch(tm.state_dict(), model_cls)
    ours = model_cls().apply({"params": params}, x[:64])
    # And as training and evaluation compute it: compiled, with jaxnn's compiler options.
    compiled = FAST_JIT(train.predict)(_state(model_cls(), params), jnp.asarray(x[:64]))
    with torch.no_grad():
        theirs = tm(torch.tensor(nhwc_to_nchw(x[:64]).copy())).numpy()
    assert_close(ours, theirs, what="logits")
    assert_close(compiled, theirs, what="compiled logits")


@pytest.mark.parametrize("model_cls", [MnistCNN, DeepCNN])
def test_state_dict_round_trip_is_exact(model_cls):
    tm = _torch_model(model_cls)
    sd = tm.state_dict()
    back = cnn_params_to_torch(cnn_params_from_torch(sd, model_cls), model_cls)
    assert set(back) == set(sd)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
    tm.load_state_dict(back, strict=True)


def _torch_step(tm, x, y, dtype):
    """One step of the lab's PyTorch loop in ``dtype``: returns (loss, grads by name, state_dict after the step)."""
    tm = copy.deepcopy(tm).to(dtype).train()
    opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
    opt.zero_grad()
    # (.copy() gives standard strides; a transposed view with C=1 looks channels_last to PyTorch, whose lab model
    # then fails in out.view)
    logits = tm(torch.tensor(nhwc_to_nchw(x).copy(), dtype=dtype))
    loss = torch.nn.CrossEntropyLoss()(logits, torch.tensor(y, dtype=torch.long))
    loss.backward()
    grads = {k: p.grad.clone() for k, p in tm.named_parameters()}
    opt.step()
    return loss.item(), grads, tm.state_dict()


def _jax_model(model_cls):
    # DeepCNN with dropout off on both sides (keep_prob 1 / rate 0): the masks of two RNGs cannot agree.
    return MnistCNN() if model_cls is MnistCNN else DeepCNN(dropout_rate=0.0)


def _assert_trees_close(ours, expected, **kw):
    for path, leaf in jax.tree_util.tree_leaves_with_path(ours):
        refs = [e for e in expected]
        for key in path:
            refs = [r[key.key] for r in refs]
        assert_close(
            leaf, refs[0], what=jax.tree_util.keystr(path), **({"exact": refs[1]} if len(refs) > 1 else {}), **kw
        )


def _torch_adam_steps(tm, batches, dtype):
    """The lab's PyTorch loop over ``batches`` in ``dtype``: each step's loss, and the state_dict after the last."""
    tm = copy.deepcopy(tm).to(dtype).train()
    opt = torch.optim.Adam(tm.parameters(), lr=1e-3)
    losses = []
    for x, y in batches:
        opt.zero_grad()
        logits = tm(torch.tensor(nhwc_to_nchw(x).copy(), dtype=dtype))
        loss = torch.nn.CrossEntropyLoss()(logits, torch.tensor(y, dtype=torch.long))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses), tm.state_dict()


@pytest.mark.parametrize("model_cls", [MnistCNN, DeepCNN])
def test_five_train_steps_equal_pytorch_adam_steps(model_cls, mnist_slice):
    # In float64 on both sides. In float32, Adam's first step lr * g / (|g| + eps) turns a 1e-10 difference in a
    # gradient near zero (there are many: background pixels) into a 1e-5 difference in the parameter, so two
    # float32 implementations that round differently cannot agree parameter by parameter after one step; their
    # gradients agree (next test), and in float64 the whole run must. Five steps: after the first, Adam's moments
    # weigh the gradients' sizes, so a scaled or stale gradient shows (the first step is about lr * sign(g)).
    batches = [(mnist_slice[0][i : i + 20], mnist_slice[1][i : i + 20]) for i in range(0, 100, 20)]
    tm = _torch_model(model_cls)
    model = _jax_model(model_cls)
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(
            lambda a: np.asarray(a, np.float64), cnn_params_from_torch(tm.state_dict(), model)
        )
        state, losses = _state(model, params), []
        step = FAST_JIT(train.train_step)
        for x, y in batches:
            batch = {"inputs": jnp.asarray(x, jnp.float64), "labels": jnp.asarray(y)}
            state, metrics = step(state, batch, jax.random.key(0))
            losses.append(metrics["loss"])
        assert losses[0].dtype == jnp.float64
    t_losses, after = _torch_adam_steps(tm, batches, torch.float64)
    assert_close(np.array(losses), t_losses, what="losses")
    assert not np.allclose(t_losses[0], t_losses[-1])  # the steps moved the model
    _assert_trees_close(state.params, [cnn_params_from_torch(after, model)])


@pytest.mark.parametrize("model_cls", [MnistCNN, DeepCNN])
def test_float32_loss_and_gradients_equal_pytorch(model_cls, mnist_slice):
    x, y = mnist_slice[0][:100], mnist_slice[1][:100]
    tm = _torch_model(model_cls)
    model = _jax_model(model_cls)
    params = cnn_params_from_torch(tm.state_dict(), model)
    batch = {"inputs": jnp.asarray(x), "labels": jnp.asarray(y)}

    def loss_fn(p):
        return train.cross_entropy_loss(
            model.apply({"params": p}, batch["inputs"], deterministic=False), batch["labels"]
        )

    loss, grads = FAST_JIT(jax.value_and_grad(loss_fn))(params)
    t_loss, t_grads, _ = _torch_step(tm, x, y, torch.float32)
    _, t_grads64, _ = _torch_step(tm, x, y, torch.float64)
    assert_close(loss, t_loss, what="loss")
    _assert_trees_close(grads, [cnn_params_from_torch(t_grads, model), cnn_params_from_torch(t_grads64, model)])


def test_loss_falls_on_real_mnist_slice(mnist_slice):
    x, y = jnp.asarray(mnist_slice[0]), jnp.asarray(mnist_slice[1])
    state = _state(MnistCNN())
    step, evaluate = FAST_JIT(train.train_step), FAST_JIT(train.eval_step)
    before = train.evaluate(evaluate, state, x, y)["loss"]
    for epoch in range(3):
        batches = train.epoch_batches(x, y, 32, jax.random.key(1), epoch)
        state, _ = train.train_epoch(step, state, batches, jax.random.key(2))
    after = train.evaluate(evaluate, state, x, y)
    assert after["loss"] < 0.5 * before and after["accuracy"] > 0.8


def test_same_seed_gives_identical_parameters(mnist_slice):
    x, y = jnp.asarray(mnist_slice[0][:128]), jnp.asarray(mnist_slice[1][:128])

    def run(seed):
        batches = train.epoch_batches(x, y, 32, jax.random.key(seed + 1), 0)
        state, m = train.train_epoch(
            FAST_JIT(train.train_step), _state(DeepCNN(), seed=seed), batches, jax.random.key(seed + 2)
        )
        return state.params, m

    (p1, m1), (p2, m2), (p3, _) = run(0), run(0), run(1)
    assert m1 == m2
    for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p3), strict=True)
    )


def test_adam_defaults_match_torch():
    # The update rule optax.adam(lr) uses is torch.optim.Adam's with its defaults.
    p = np.linspace(-1, 1, 7).astype(np.float32)
    g = np.sin(np.arange(7)).astype(np.float32)
    tx = optax.adam(0.1)
    s = tx.init(jnp.asarray(p))
    pt = torch.tensor(p, requires_grad=True)
    opt = torch.optim.Adam([pt], lr=0.1)
    pj = jnp.asarray(p)
    for _ in range(5):
        u, s = tx.update(jnp.asarray(g), s)
        pj = optax.apply_updates(pj, u)
        pt.grad = torch.tensor(g)
        opt.step()
    assert_close(pj, pt.detach().numpy())


def test_mnist_recipe_trains_evaluates_and_writes_its_files(mnist_data_dir, tmp_path):
    # The first 1500 test images: the evaluation's batches of 1000 end in a partial one.
    config = mnist_lab.Config(
        epochs=2, batch_size=50, train_subset=1000, test_subset=1500, data_dir=str(mnist_data_dir), checkpoints=False
    )
    result = mnist_lab.train_and_evaluate(config, tmp_path / "a")
    assert result.test_accuracy > 0.8 and [r["epoch"] for r in result.records] == [1, 2]
    for r in result.records:  # a mean over exactly 1500 images: a whole number of them right
        assert abs(r["test_accuracy"] * 1500 - round(r["test_accuracy"] * 1500)) < 1e-3
    with pytest.raises(ValueError, match="test_subset must be an int >= 1, got 0"):
        dataclasses.replace(config, test_subset=0)
    assert result.test_accuracy == result.records[-1]["test_accuracy"]
    assert [r["epoch"] for r in report.read_metrics(result.metrics_path)] == [1, 2]
    assert result.predictions_path == tmp_path / "a" / "predictions.png" and result.predictions_path.is_file()
    scalars = report.read_scalars(tmp_path / "a" / "tensorboard")  # the same numbers as TensorBoard scalars
    assert [step for step, _ in scalars["test/accuracy"]] == [1, 2]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([r["train_loss"] for r in result.records])
    saved = load_params(result.params_path)
    for a, b in zip(jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(result.state.params), strict=True):
        np.testing.assert_array_equal(a, b)
    # Again with another seed: the same program, nothing compiled anew.
    before = COMPILES.count
    other = mnist_lab.train_and_evaluate(dataclasses.replace(config, seed=1), tmp_path / "b")
    assert COMPILES.count == before, f"{COMPILES.count - before} new compilations"
    assert other.records[0]["train_loss"] != result.records[0]["train_loss"]
