"""jaxnn.random against torch's CPU generator: every draw equal bit for bit over seeds, shapes and dtypes, in any
sequence of calls, and after the generator's state was saved (as JSON) and restored."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnn import random as torch_random

SEEDS = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 777, 2**32, 2**63 + 5]))
SHAPES = st.sampled_from([(), (1,), (5,), (15,), (16,), (17,), (3, 4), (2, 3, 8), (40,), (7, 9), (64, 3, 3, 3)])
DTYPES = st.sampled_from(["float32", "float64"])


def _theirs(g, kind, shape, dtype, args):
    t = getattr(torch, dtype)
    if kind == "uniform":
        return torch.empty(shape, dtype=t).uniform_(*args, generator=g).numpy()
    if kind == "normal":
        return torch.empty(shape, dtype=t).normal_(*args, generator=g).numpy()
    if kind == "randperm":
        return torch.randperm(args[0], generator=g).numpy()
    if kind == "bernoulli":
        return torch.empty(shape, dtype=t).bernoulli_(args[0], generator=g).numpy()
    if kind == "dropout":  # F.dropout draws from the default generator: ``g`` is swapped in for the call
        saved = torch.get_rng_state()
        torch.set_rng_state(g.get_state())
        out = torch.nn.functional.dropout(torch.ones(shape, dtype=t), args[0], training=True).numpy()
        g.set_state(torch.get_rng_state())
        torch.set_rng_state(saved)
        return out
    return torch.randint(args[0], args[1], shape, generator=g).numpy()


def _ours(g, kind, shape, dtype, args):
    if kind == "uniform":
        return g.uniform(shape, *args, dtype=dtype)
    if kind == "normal":
        return g.normal(shape, *args, dtype=dtype)
    if kind == "randperm":
        return g.randperm(args[0])
    if kind == "bernoulli":
        return g.bernoulli(shape, args[0], dtype=dtype)
    if kind == "dropout":
        return g.dropout_mask(shape, args[0], dtype=dtype)
    return g.randint(args[0], args[1], shape)


CALL = st.tuples(
    st.sampled_from(["uniform", "normal", "randperm", "randint", "bernoulli", "dropout"]),
    SHAPES,
    DTYPES,
    st.sampled_from([(0.0, 1.0), (-0.25, 0.75), (3.0, 0.5), (0, 10), (100, 1), (-5, 2**33), (1, 2), (0.0, 0.01)]),
)


def _fix(kind, shape, dtype, args):
    """A drawn call made valid for its kind (uniform needs from <= to; randint ints low < high...)."""
    if kind == "uniform":
        lo, hi = sorted(float(a) for a in args)
        return kind, shape, dtype, (lo, hi)
    if kind == "normal":
        return kind, shape, dtype, (float(args[0]), abs(float(args[1])))
    if kind == "randperm":
        return kind, shape, dtype, (int(abs(args[0])) + 1,)
    if kind in ("bernoulli", "dropout"):  # a probability: 0, 1, 0.25, 0.5, 0.75...
        return kind, shape, dtype, (min(abs(float(args[0])), 4.0) / 4,)
    lo, hi = sorted(int(a) for a in args)
    return kind, shape, dtype, (lo, hi if hi > lo else lo + 1)


def _exact(kind, dtype, shape):
    """Every draw, except float32 normal from 16 values on a CPU where PyTorch runs no AVX2 kernel (the module's
    note): there within a few ulps."""
    vector_normal = kind == "normal" and dtype == "float32" and int(np.prod(shape)) >= 16
    return torch_random.EXACT_FLOAT32_NORMAL or not vector_normal


@settings(max_examples=300)  # no compilation: many examples cost a second
@given(seed=SEEDS, calls=st.lists(CALL, min_size=1, max_size=6), save_at=st.integers(0, 6))
def test_every_draw_equals_torchs_in_any_sequence_and_after_a_saved_state(seed, calls, save_at):
    g = torch.Generator().manual_seed(seed)
    ours = torch_random.Generator().manual_seed(seed)
    assert ours.initial_seed() == g.initial_seed()
    for i, call in enumerate(calls):
        if i == save_at:  # a checkpoint: the state as JSON, into a new generator
            ours = torch_random.Generator().set_state(json.loads(json.dumps(ours.get_state())))
        kind, shape, dtype, args = _fix(*call)
        theirs, mine = _theirs(g, kind, shape, dtype, args), _ours(ours, kind, shape, dtype, args)
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape, (kind, mine.dtype, theirs.dtype)
        if _exact(kind, dtype, shape):
            np.testing.assert_array_equal(mine, theirs, err_msg=f"call {i}: {kind}{shape} {dtype} {args}")
        else:  # a few ulps of the values' scale (mean + a few std), where PyTorch's vector kernel rounds
            mean, std = args
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=4 * np.spacing(np.float32(abs(mean) + 8 * std)))


def test_the_default_generator_and_the_module_functions_follow_torch_manual_seed():
    torch.manual_seed(777)
    torch_random.manual_seed(777)
    np.testing.assert_array_equal(torch_random.rand((3, 5)), torch.rand(3, 5).numpy())
    np.testing.assert_array_equal(torch_random.randn(7, dtype="float64"), torch.randn(7, dtype=torch.float64).numpy())
    np.testing.assert_array_equal(torch_random.randperm(1000), torch.randperm(1000).numpy())
    np.testing.assert_array_equal(torch_random.randint(0, 9, (4,)), torch.randint(0, 9, (4,)).numpy())
    np.testing.assert_array_equal(
        torch_random.Generator().rand(4),
        torch.rand(4, generator=torch.Generator()).numpy(),  # a new generator starts from PyTorch's default seed
    )


def test_bad_arguments_are_refused_by_name():
    g = torch_random.Generator()
    for call, match in (
        (lambda: g.manual_seed(1.5), "seed"),
        (lambda: g.uniform(3, 1.0, 0.0), "from_ <= to"),
        (lambda: g.normal(3, std=-1.0), "std"),
        (lambda: g.rand(3, dtype="float16"), "dtype"),
        (lambda: g.randint(3, 3, 2), "low < high"),
        (lambda: g.randperm(-1), "n"),
        (lambda: g.set_state({"seed": 0, "key": [0] * 3, "pos": 0, "next_normal": None}), "mt19937"),
        (lambda: g.bernoulli(3, 1.5), "p"),
        (lambda: torch_random.init.kaiming_normal_(np.zeros((4, 3)), mode="fan_avg", generator=g), "mode"),
    ):
        with pytest.raises(ValueError, match=match):
            call()


@given(seed=SEEDS, n=st.sampled_from([1, 2, 10, 97, 1000]), batch_size=st.sampled_from([1, 4, 32]))
def test_dataloader_epochs_come_in_torchs_order(seed, n, batch_size):
    """DataLoader(shuffle=True) after torch.manual_seed: three epochs, the same batches in the same order."""
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(n)), batch_size, shuffle=True)
    g = torch_random.Generator().manual_seed(seed)
    for _ in range(3):
        theirs = np.concatenate([b[0].numpy() for b in loader])
        np.testing.assert_array_equal(g.dataloader_order(n), theirs)


def test_randperm_of_mnists_size_is_torchs():
    np.testing.assert_array_equal(
        torch_random.Generator().manual_seed(1).randperm(60000),
        torch.randperm(60000, generator=torch.Generator().manual_seed(1)).numpy(),
    )


class _TorchMixed(torch.nn.Module):  # every kind of layer, registered in the order it is called
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 6)
        self.embedding = torch.nn.Embedding(5, 3)
        self.lstm = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
        self.out = torch.nn.Linear(4, 2)


def _mixed():
    import flax.linen as linen

    from jaxnn.nn import RNN, BatchNorm2d, Conv2d, Embedding, Linear

    class Mixed(linen.Module):
        @linen.compact
        def __call__(self, x, tokens):
            y = BatchNorm2d(4, name="bn")(Conv2d(4, 3, name="conv")(x))
            y = Linear(6, name="fc")(y.mean((1, 2)))
            out, _ = RNN(4, 2, batch_first=True, cell="lstm", name="lstm")(Embedding(5, 3, name="embedding")(tokens))
            return y, Linear(2, name="out")(out)

    return Mixed(), np.zeros((1, 5, 5, 2), np.float32), np.zeros((1, 3), np.int32)


@given(seed=SEEDS)
def test_a_models_default_initialisation_is_pytorchs_after_manual_seed(seed):
    model, x, tokens = _mixed()
    torch.manual_seed(seed)
    theirs = _TorchMixed().state_dict()
    ours = torch_random.init.torch_state_dict(model, x, tokens, generator=torch_random.Generator().manual_seed(seed))
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        if key != "embedding.weight":  # 15 values: below 16, the exact path
            np.testing.assert_array_equal(ours[key], value.numpy(), err_msg=key)
    np.testing.assert_array_equal(ours["embedding.weight"], theirs["embedding.weight"].numpy())


def test_the_lab_cnn_starts_from_pytorchs_weights_after_manual_seed_777():
    """Lab 10-1: the CNN's layers, then xavier_uniform_ on fc.weight, as the lab's __init__ does."""
    from jaxnn.interop import torch_labs
    from jaxnn.interop.state_dict import from_state_dict
    from jaxnn.models import MnistCNN

    names = {
        "rename": {
            f"layer{i}/{ours}": f"layer{i}.{n}" for i in (1, 2) for ours, n in (("conv", 0), ("MaxPool2d_0", 2))
        },
        "flatten_chw": {"fc": (64, 7, 7)},
    }
    x = np.zeros((1, 28, 28, 1), np.float32)
    torch.manual_seed(777)
    theirs = torch_labs.CNN().state_dict()
    g = torch_random.Generator().manual_seed(777)
    ours = torch_random.init.torch_state_dict(MnistCNN(), x, generator=g, **names)
    ours["fc.weight"] = torch_random.init.xavier_uniform_(ours["fc.weight"], generator=g)
    for key, value in theirs.items():
        np.testing.assert_array_equal(ours[key], value.numpy(), err_msg=key)
    from_state_dict(MnistCNN(), ours, x, **names)  # and it loads


@given(seed=SEEDS, p=st.sampled_from([0.25, 0.5, 0.8]))
@settings(max_examples=10)
def test_an_lstms_dropout_between_layers_is_dropout_mask_on_the_first_layers_output(seed, p):
    """nn.LSTM(num_layers=2, dropout=p) in training: layer 1 reads layer 0's output times ``dropout_mask``, drawn
    from the default generator after the draws before it (the LSTM's own initialisation and the input here), in
    time-major order (T, N, H) even with ``batch_first``: PyTorch runs its layers on the transposed sequence."""
    torch.manual_seed(seed)
    g = torch_random.Generator().manual_seed(seed)
    lstm = torch.nn.LSTM(4, 5, num_layers=2, dropout=p, batch_first=True)
    g.uniform(sum(v.numel() for v in lstm.parameters()), -(5**-0.5), 5**-0.5)  # the LSTM's 16 draws in one
    x = torch.randn(3, 6, 4)
    np.testing.assert_array_equal(g.randn((3, 6, 4)), x.numpy())
    out = lstm(x)[0].detach().numpy()
    layers = [torch.nn.LSTM(4 if i == 0 else 5, 5) for i in range(2)]  # time-major, as PyTorch runs them
    for i, layer in enumerate(layers):
        weights = lstm.state_dict().items()
        layer.load_state_dict({k.replace(f"_l{i}", "_l0"): v for k, v in weights if k.endswith(f"_l{i}")})
    with torch.no_grad():
        hidden = layers[0](x.transpose(0, 1).contiguous())[0] * torch.from_numpy(g.dropout_mask((6, 3, 5), p))
        # oneDNN runs the two layers as one primitive, summing in another order (3e-8 apart); a mask one value off
        # moves the output by 1e-2
        np.testing.assert_allclose(layers[1](hidden)[0].transpose(0, 1).numpy(), out, rtol=1e-6, atol=1e-7)


def _lab_models():
    """name -> (jaxnn model, the lab's PyTorch model's constructor, sample inputs)."""
    import flax.linen as linen

    from jaxnn import models
    from jaxnn.interop import torch_labs
    from jaxnn.nn import RNN, Linear

    img = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    vgg_cfg = [8, "M", 16, 16, "M"]

    class Projected(torch.nn.Module):  # an LSTM with proj_size, and a head
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(4, 6, num_layers=2, proj_size=3, batch_first=True)
            self.fc = torch.nn.Linear(3, 2)

    class OursProjected(linen.Module):
        @linen.compact
        def __call__(self, x):
            out, _ = RNN(6, 2, batch_first=True, cell="lstm", proj_size=3, name="rnn")(x)
            return Linear(2, name="fc")(out)

    return {
        "10-1 MnistCNN": (models.MnistCNN(), torch_labs.CNN, (img(1, 28, 28, 1),)),
        "10-2 DeepCNN": (models.DeepCNN(), torch_labs.DeepCNN, (img(1, 28, 28, 1),)),
        "10-4 FolderCNN": (models.FolderCNN(), torch_labs.FolderCNN, (img(1, 64, 128, 3),)),
        "10-5 VGG-BN": (
            models.VGG(vgg_cfg, batch_norm=True, num_classes=4, hidden_features=32),
            lambda: torch_labs.VGG(torch_labs.make_layers(vgg_cfg, True, 2), 4, True, 16 * 2 * 2, 0.5, None, 32),
            (img(1, 8, 8, 2),),
        ),
        "10-6 ResNet, Bottleneck, zero_init_residual": (
            models.ResNet(models.Bottleneck, (1, 2, 1, 1), num_classes=5, zero_init_residual=True),
            lambda: torch_labs.ResNet(torch_labs.Bottleneck, [1, 2, 1, 1], 5, True),
            (img(1, 8, 8, 3),),
        ),
        "10-6 ResNet, BasicBlock, imagenet stem": (
            models.ResNet("basic", (1, 1, 1, 1), num_classes=5, stem="imagenet"),
            lambda: torch_labs.ResNet(torch_labs.BasicBlock, [1, 1, 1, 1], 5, stem="imagenet"),
            (img(1, 32, 32, 3),),
        ),
        **{
            f"11 CharRNN ({cell})": (
                models.CharRNN(6, 6, 2, cell=cell),
                lambda cell=cell: torch_labs.Net(6, 6, 2, cell=cell),
                (img(1, 3, 6),),
            )
            for cell in ("rnn", "lstm", "gru")
        },
        "11-4 RNNRegressor": (
            models.RNNRegressor(10, 1, 2),
            lambda: torch_labs.TimeSeriesNet(5, 10, 1, 2),
            (img(1, 6, 5),),
        ),
        "11-5 Seq2Seq": (
            models.Seq2Seq(7, 9, 16),
            lambda: torch_labs.Seq2Seq(7, 9, 16),
            (np.zeros((1, 5), np.int32), np.full(1, 5), np.zeros((1, 4), np.int32)),
        ),
        "LSTM with proj_size": (OursProjected(), Projected, (img(1, 3, 4),)),
    }


@pytest.mark.parametrize(
    "name, seed",
    [(name, 777) for name in _lab_models()] + [(name, 2**32 + 3) for name in _lab_models() if "ResNet" not in name],
)
def test_every_lab_model_starts_from_the_pytorch_labs_weights_after_manual_seed(name, seed):
    """``lab_state_dict`` equals the lab's PyTorch model's state_dict after ``torch.manual_seed``, bit for bit and
    key for key (DeepCNN's alias included); ``torch_init`` loads it, and the default generator goes on as torch's."""
    from jaxnn.interop.lab_names import lab_names
    from jaxnn.interop.state_dict import to_state_dict
    from jaxnn.random.models import lab_state_dict, torch_init

    model, torch_model, args = _lab_models()[name]
    torch.manual_seed(seed)
    theirs = {k: v.numpy() for k, v in torch_model().state_dict().items()}
    after = torch.rand(3).numpy()
    ours = lab_state_dict(model, *args, generator=torch_random.Generator().manual_seed(seed))
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        np.testing.assert_array_equal(ours[key], value, err_msg=key)
    variables = torch_init(model, *args, torch_seed=seed)
    np.testing.assert_array_equal(torch_random.rand(3), after)  # the default generator went on as torch's did
    names = lab_names(model, *args)
    back = to_state_dict(model, variables, *args, rename=names["rename"], flatten_chw=names["flatten_chw"])
    for key, value in back.items():
        np.testing.assert_array_equal(value, theirs[key], err_msg=key)
