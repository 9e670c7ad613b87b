"""jaxnn.nn.init against torch.nn.init: the same bound or standard deviation on the same (transposed) shapes."""

import jax
import numpy as np
import pytest
import torch

from jaxnn import layout
from jaxnn.nn import init

SHAPES = [(3, 3, 16, 32), (5, 8, 12), (64, 10)]  # HWIO, (k, I, O), (in, out)


def _torch_shape(shape):
    """The PyTorch layout of a jaxnn kernel shape: (O, I, *receptive)."""
    *receptive, i, o = shape
    return (o, i, *receptive)


@pytest.mark.parametrize(
    "nonlinearity, param",
    [("relu", None), ("leaky_relu", 0.2), ("tanh", None), ("linear", None), ("selu", None), ("leaky_relu", None)],
)
def test_calculate_gain_is_pytorchs(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("kaiming_uniform", dict(a=0.1, mode="fan_in", nonlinearity="leaky_relu")),
        ("kaiming_uniform", dict(mode="fan_out", nonlinearity="relu")),
        ("kaiming_normal", dict(mode="fan_out", nonlinearity="relu")),
        ("xavier_uniform", dict(gain=2.0)),
        ("xavier_normal", dict(gain=0.5)),
        ("normal", dict(mean=0.3, std=0.02)),
    ],
)
def test_initializers_follow_pytorchs_rule(shape, name, kwargs):
    ours = np.asarray(getattr(init, name)(**kwargs)(jax.random.key(0), shape), np.float64)
    assert ours.shape == shape
    # PyTorch's own fans of the same weight in its layout, and its own gain: the rule's bound or std.
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(_torch_shape(shape)))
    if name.startswith("kaiming"):
        gain = torch.nn.init.calculate_gain(kwargs["nonlinearity"], kwargs.get("a", 0))
        std = gain / np.sqrt(fan_in if kwargs["mode"] == "fan_in" else fan_out)
    elif name.startswith("xavier"):
        std = kwargs["gain"] * np.sqrt(2.0 / (fan_in + fan_out))
    else:
        std = kwargs["std"]
    n = ours.size
    if "uniform" in name:  # U(-b, b) with b = sqrt(3) * std: the maximum sits just under b
        bound = np.sqrt(3.0) * std
        assert 0.97 * bound < np.abs(ours).max() <= bound
    else:
        assert abs(ours.mean() - kwargs.get("mean", 0.0)) < 5 * std / np.sqrt(n)
        assert abs(ours.std() / std - 1) < 5 / np.sqrt(2 * n)


def test_constant_and_pytorch_layout_axes():
    np.testing.assert_array_equal(init.constant(0.5)(jax.random.key(0), (2, 3)), np.full((2, 3), 0.5))
    # A weight kept in PyTorch's (out, in) layout: name its axes.
    w = np.asarray(init.kaiming_uniform(mode="fan_in", in_axis=-1, out_axis=-2)(jax.random.key(1), (256, 16)))
    assert np.abs(w).max() <= np.sqrt(2.0) * np.sqrt(3.0 / 16) and np.abs(w).max() > 0.9 * np.sqrt(6.0 / 16)
    k = init.kaiming_normal(mode="fan_out")(jax.random.key(2), (3, 3, 8, 64))
    assert np.asarray(k).std() == pytest.approx(np.sqrt(2.0 / (64 * 9)), rel=0.06)
    assert layout.oihw_to_hwio(np.zeros(_torch_shape((3, 3, 8, 64)))).shape == (3, 3, 8, 64)
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_uniform(mode="fan_avg")(jax.random.key(0), (3, 3))


def test_init_variables_compiled_faster_gives_the_same_values_bit_for_bit():
    """train.init_variables compiles with LLVM at optimisation level 1 on the CPU (seconds less per lab start); every
    initialiser the lab models use must give exactly the values of JAX's default compilation. One small model per
    family of initialisers (PyTorch's defaults for Conv2d and Linear; VGG's and ResNet's kaiming_normal_, normal_ and
    BatchNorm constants; LSTM, GRU and Embedding): the initialisers, not the sizes, make the program's operations."""
    import jax.numpy as jnp

    from jaxnn import models, train
    from jaxnn.train import core

    cases = {
        "MnistCNN": (models.MnistCNN(), jnp.ones((1, 28, 28, 1))),
        "VGG-BN": (models.VGG((8, "M", 16, "M"), batch_norm=True, hidden_features=16), jnp.ones((1, 32, 32, 3))),
        "CharRNN LSTM": (models.CharRNN(vocab_size=7, hidden_size=5, num_layers=2, cell="lstm"), jnp.ones((1, 4), int)),
        "RNNRegressor GRU": (models.RNNRegressor(hidden_size=6, num_layers=2, cell="gru"), jnp.ones((1, 3, 5))),
        "Seq2Seq": (
            models.Seq2Seq(source_vocab=9, target_vocab=8),
            (jnp.ones((1, 5), jnp.int32), jnp.array([5]), jnp.ones((1, 4), jnp.int32)),
        ),
    }
    assert core.INIT_COMPILER_OPTIONS == {"xla_backend_optimization_level": 1}
    for name, (model, x) in cases.items():
        inputs = x if isinstance(x, tuple) else (x,)
        default = jax.jit(lambda r, *a, m=model: m.init(r, *a, deterministic=True))(jax.random.key(3), *inputs)
        fast = train.init_variables(model, jax.random.key(3), x)
        assert jax.tree_util.tree_structure(fast) == jax.tree_util.tree_structure(default), name
        for a, b in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(default), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
