"""One precision switch for every model (jaxnn.precision): each lab model's forward pass and gradients, traced under
``float32_matmul_precision('highest')``, hold only full-float32 products and convolutions (and none is pinned
without it); the recipes trace everything under their config's ``matmul_precision``.

On the CPU every precision computes the same numbers, so what is checked is the programs: the precision of every
``dot_general`` and ``conv_general_dilated`` in the traced jaxpr, sub-programs (scans, custom gradients) included.
"""

import dataclasses

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxnn import models, precision, train
from jaxnn.labs import timeseries_conv
from jaxnn.nn import Conv2d, Linear
from jaxnn.train import driver

PRODUCTS = ("dot_general", "conv_general_dilated")
HIGHEST = (lax.Precision.HIGHEST, lax.Precision.HIGHEST)


def _products(jaxpr):
    """The precision of every product and convolution in ``jaxpr`` and in every program inside it."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in PRODUCTS:
            found.append((eqn.primitive.name, eqn.params["precision"]))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    found += _products(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    found += _products(sub)
    return found


def _images(shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _tokens(shape, vocab):
    return np.random.default_rng(1).integers(0, vocab, shape).astype(np.int32)


# name -> (model, its inputs[, keyword inputs]): every architecture of jaxnn.models and the own-model recipe's, small
MODELS = {
    "MnistCNN": (models.MnistCNN(), (_images((2, 28, 28, 1)),)),
    "DeepCNN": (models.DeepCNN(), (_images((2, 28, 28, 1)),)),
    "FolderCNN": (models.FolderCNN(), (_images((1, 64, 128, 3)),)),
    "VGG-BN": (
        models.VGG([4, "M", 8, "M"], batch_norm=True, num_classes=3, hidden_features=8),
        (_images((2, 8, 8, 2)),),
    ),
    "ResNet": (models.ResNet("bottleneck", (1, 1, 1, 1), num_classes=3, width=4), (_images((2, 8, 8, 3)),)),
    "ResNet imagenet": (models.resnet18(num_classes=3, stem="imagenet", width=4), (_images((2, 16, 16, 3)),)),
    "CharRNN": (models.CharRNN(vocab_size=5, hidden_size=6, num_layers=2, cell="lstm"), (_tokens((2, 4), 5),)),
    "RNNRegressor": (models.RNNRegressor(hidden_size=6, num_layers=2), (_images((2, 5, 3)),)),
    "RNN packed": (
        models.RNN(6, 2, cell="gru", batch_first=True, bidirectional=True),
        (_images((2, 5, 3)),),
        {"seq_lengths": np.array([5, 2])},
    ),
    "Seq2Seq": (
        models.Seq2Seq(source_vocab=7, target_vocab=6),
        (_tokens((2, 4), 7), np.array([4, 2]), _tokens((2, 3), 6)),
    ),
    "ConvGRURegressor": (timeseries_conv.ConvGRURegressor(channels=4, hidden_size=5), (_images((2, 7, 5)),)),
}


def _loss_and_grads_jaxpr(model, inputs, kwargs=None):
    """The jaxpr of the loss and the gradients of a training step (every product of the backward pass too)."""
    kwargs = kwargs or {}
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs, **kwargs))
    variables = jax.tree_util.tree_map(lambda s: jnp.full(s.shape, 0.5, s.dtype), variables)

    def loss(params):
        out = model.apply({**variables, "params": params}, *inputs, mutable=["batch_stats"], **kwargs)[0]
        return sum(jnp.sum(leaf) for leaf in jax.tree_util.tree_leaves(out))

    return jax.make_jaxpr(jax.value_and_grad(loss))(variables["params"]).jaxpr


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_traces_every_product_in_the_precision_asked_for(name):
    with precision.float32_matmul_precision("highest"):
        pinned = _products(_loss_and_grads_jaxpr(*MODELS[name]))
    assert {p for _, p in pinned} == {HIGHEST}, pinned
    # forward and backward: at least two products of each kind the model has
    assert len(pinned) >= 2 * len({kind for kind, _ in pinned})
    unset = _products(_loss_and_grads_jaxpr(*MODELS[name]))
    assert len(unset) == len(pinned) and {p for _, p in unset} == {None}, unset


def test_a_layer_given_its_own_precision_keeps_it():
    x = _images((2, 6, 6, 3))
    conv = Conv2d(4, 3, precision="default")
    variables = conv.init(jax.random.key(0), x)
    with precision.float32_matmul_precision("highest"):
        found = _products(jax.make_jaxpr(lambda v: conv.apply(v, x))(variables).jaxpr)
        found += _products(jax.make_jaxpr(lambda v: Linear(3).apply(v, x))(Linear(3).init(jax.random.key(0), x)).jaxpr)
    assert [p for _, p in found] == [(lax.Precision.DEFAULT, lax.Precision.DEFAULT), HIGHEST]


@pytest.mark.parametrize(
    "name, jax_name, canonical",
    [("highest", "float32", HIGHEST), ("high", "tensorfloat32", None), ("medium", "bfloat16", None)],
)
def test_pytorchs_names_set_jaxs_default_and_read_back(name, jax_name, canonical):
    before = jax.config.jax_default_matmul_precision
    try:
        precision.set_float32_matmul_precision(name)
        assert jax.config.jax_default_matmul_precision == jax_name
        assert precision.get_float32_matmul_precision() == name
        if canonical:
            assert {p for _, p in _products(jax.make_jaxpr(jnp.dot)(np.ones((2, 2)), np.ones((2, 2))).jaxpr)} == {
                canonical
            }
    finally:
        jax.config.update("jax_default_matmul_precision", before)
    assert precision.get_float32_matmul_precision() is None  # nothing set: the backend's default
    with precision.float32_matmul_precision(name):
        assert precision.get_float32_matmul_precision() == name
    assert precision.get_float32_matmul_precision() is None
    with jax.default_matmul_precision("highest"):  # JAX's own names read back as PyTorch's
        assert precision.get_float32_matmul_precision() == "highest"


@pytest.mark.parametrize("bad", ["float32", "HIGHEST", "", None, 3])
def test_a_precision_that_is_not_pytorchs_name_is_refused(bad):
    with pytest.raises(ValueError, match=r"precision must be one of \['high', 'highest', 'medium'\], got"):
        precision.set_float32_matmul_precision(bad)
    with pytest.raises(ValueError, match="precision must be one of"):
        with precision.float32_matmul_precision(bad):
            pass
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        dataclasses.replace(timeseries_conv.Config(), matmul_precision=bad)


class _Head(flax.linen.Module):
    @flax.linen.compact
    def __call__(self, x, *, deterministic=True):
        return Linear(1)(x)


def test_a_recipe_and_the_driver_trace_under_the_configs_precision(tmp_path):
    """``@driver.recipe`` runs the whole recipe, and ``driver.fit`` its steps, in ``config.matmul_precision``."""
    seen = []

    @driver.recipe
    def recipe(config, workdir):
        seen.append(precision.get_float32_matmul_precision())
        return workdir

    for name in ("highest", "medium"):
        assert recipe(driver.RunOptions(matmul_precision=name), tmp_path) == tmp_path
    assert seen == ["highest", "medium"] and precision.get_float32_matmul_precision() is None

    def step(state, batch, rng):  # traced once, inside fit
        seen.append(_products(jax.make_jaxpr(lambda p: state.apply_fn({"params": p}, batch["inputs"]))(state.params)))
        return train.train_step(state, batch, rng, loss=train.mse)

    model = _Head()
    x = _images((8, 3))
    state = train.create_train_state(model, train.init_params(model, jax.random.key(0), x), train.adam(0.1))
    options = driver.RunOptions(progress=False, checkpoints=False)
    assert options.matmul_precision == "highest"  # every recipe's default: PyTorch's numbers
    data = driver.Data(x, x[:, :1], batch_size=4)
    driver.fit(options, tmp_path / "run", identity={}, state=state, data=data, rng=jax.random.key(1), train_step=step)
    assert seen[2:] == [[("dot_general", HIGHEST)]]
    assert precision.get_float32_matmul_precision() is None
