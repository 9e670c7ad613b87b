"""jaxnn.testing: the tolerance model must fail every mutant (NaN, inf, a flipped sign, a shifted window, a scale
error) on every path (plain, ``scale=``, ``exact=``) and pass errors of one float32 rounding; compare_with_torch must
find a mutated layer and name it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxnn import ops
from jaxnn.interop import torch_labs
from jaxnn.interop.state_dict import from_state_dict
from jaxnn.models import MnistCNN
from jaxnn.nn import BatchNorm2d, Conv2d, Linear
from jaxnn.testing import assert_close, compare_with_torch

EPS32 = float(np.finfo(np.float32).eps)


def _reference(seed=0, shape=(4, 6, 6, 3)):
    """A float32 'PyTorch' answer, its float64 exact value and the sum of |terms| of a cancelling sum."""
    r = np.random.default_rng(seed)
    terms = r.standard_normal((*shape, 16))
    exact = terms.sum(-1)
    expected = terms.astype(np.float32).sum(-1, dtype=np.float32)
    return expected, exact, np.abs(terms).sum(-1)


PATHS = {
    "plain": {},
    "scale": {"scale": "scale"},
    "exact": {"exact": "exact"},
    "scale and exact": {"scale": "scale", "exact": "exact"},
}


def _kwargs(path, exact, scale):
    return {k: {"scale": scale, "exact": exact}[v] for k, v in PATHS[path].items()}


def _mutants(expected):
    shifted = np.roll(expected, 1, axis=2)  # a pooling window off by one
    nan, inf, ninf = expected.copy(), expected.copy(), expected.copy()
    nan[1, 2, 3, 0], inf[0, 0, 0, 1], ninf[3, 5, 5, 2] = np.nan, np.inf, -np.inf
    flipped = expected.copy()
    flipped[2, 1, 1, 1] *= -1
    return {
        "all NaN": np.full_like(expected, np.nan),
        "one NaN": nan,
        "one inf": inf,
        "one -inf": ninf,
        "a flipped sign": flipped,
        "a shifted window": shifted,
        "2x scale": 2 * expected,
        "zeros": np.zeros_like(expected),
    }


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("mutant", list(_mutants(_reference()[0])))
def test_every_mutant_fails_on_every_path(path, mutant):
    expected, exact, scale = _reference()
    with pytest.raises(AssertionError, match="what I named"):
        assert_close(_mutants(expected)[mutant], expected, what="what I named", **_kwargs(path, exact, scale))


@pytest.mark.parametrize("path", list(PATHS))
def test_an_error_of_one_float32_rounding_passes(path):
    expected, exact, scale = _reference()
    # one rounding of the largest term-sum an element is made of: what any other order of the sum may give
    near = expected.astype(np.float64) + EPS32 * np.maximum(np.abs(expected), 1.0) * np.sign(expected)
    kwargs = _kwargs(path, exact, scale)
    assert_close(near.astype(np.float32), expected, **kwargs)
    assert_close(expected, expected, **kwargs)


def test_scale_accepts_what_cancellation_explains_and_nothing_more():
    expected, exact, scale = _reference()
    # the float64 answer differs from the float32 one by a few roundings of sum |terms|: fine with the scale
    assert_close(exact, expected, scale=scale)
    # ... but an error of 1e-3 of the terms' magnitude is not
    with pytest.raises(AssertionError):
        assert_close(expected + 1e-3 * scale, expected, scale=scale)


def test_exact_accepts_only_what_is_as_accurate_as_the_reference():
    expected, exact, _ = _reference()
    worst = np.abs(expected - exact).max()
    assert worst > 0
    far = exact.copy()
    far[0, 0, 0, 0] += 5 * worst
    strict = {"rtol": 0.0, "atol": 0.0}  # every element outside rtol/atol: the exact path alone decides
    assert_close(exact, expected, exact=exact, **strict)
    assert_close(exact + 3.9 * worst, expected, exact=exact, **strict)
    with pytest.raises(AssertionError):
        assert_close(far, expected, exact=exact, **strict)
    assert_close(far, expected, exact=exact, exact_factor=6, **strict)  # the factor is the model's one knob


def test_nan_and_inf_where_the_reference_has_them_pass_and_nowhere_else():
    expected = np.array([1.0, np.nan, np.inf, -np.inf], np.float32)
    assert_close(expected.copy(), expected)
    assert_close(expected.copy(), expected, scale=np.ones(4), exact=expected.astype(np.float64))
    for wrong in ([1.0, 0.0, np.inf, -np.inf], [1.0, np.nan, -np.inf, -np.inf], [1.0, np.nan, np.inf, 5.0]):
        with pytest.raises(AssertionError):
            assert_close(np.array(wrong, np.float32), expected)
        with pytest.raises(AssertionError):
            assert_close(np.array(wrong, np.float32), expected, scale=np.ones(4))


def test_integers_must_be_equal_and_shapes_the_same():
    assert_close(np.array([3, 4]), np.array([3, 4]))
    with pytest.raises(AssertionError, match="integer"):
        assert_close(np.array([3, 5]), np.array([3, 4]), rtol=1.0)
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.zeros(3), np.zeros((3, 1)))
    assert_close(torch.tensor([1.0, 2.0]), jnp.array([1.0, 2.0]))  # tensors and jax arrays alike


def test_unusable_references_are_errors_not_passes():
    with pytest.raises(ValueError, match="scale"):
        assert_close(np.ones(2) * 2, np.ones(2), scale=np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="exact"):
        assert_close(np.ones(2) * 2, np.ones(2), exact=np.array([np.nan, 1.0]))


# compare_with_torch


# jaxnn's MnistCNN names its blocks' layers; the lab's Sequentials number them
NAMES = {
    "rename": {f"layer{i}/{ours}": f"layer{i}.{n}" for i in (1, 2) for ours, n in (("conv", 0), ("MaxPool2d_0", 2))},
    "flatten_chw": {"fc": (64, 7, 7)},
}


def _lab_cnn():
    torch.manual_seed(0)
    tm = torch_labs.CNN()
    x = np.random.default_rng(0).standard_normal((2, 28, 28, 1)).astype(np.float32)
    return MnistCNN(), from_state_dict(MnistCNN(), tm.state_dict(), x, **NAMES), tm, x


def test_compare_with_torch_reports_every_layer_gradient_and_step():
    model, variables, tm, x = _lab_cnn()
    report = compare_with_torch(model, variables, tm, x, steps=2, labels=np.array([3, 7]), check=True, **NAMES)
    names = [(r.kind, r.name) for r in report.rows]
    first = [("output", n) for n in ("layer1.0", "layer1.1", "layer1.2", "layer1", "layer2.0")]
    assert names[:5] == first  # in the order PyTorch ran them, its ReLU module (a jaxnn function) included
    assert ("grad", "fc.weight") in names and ("loss", "step 2") in names and ("param", "step 2 fc.bias") in names
    assert ("param", "step 1 fc.bias") in names  # every step's parameters, not only the last
    text = str(report)
    assert "layer2.0" in text and "fc.weight" in text and f"{len(report.rows)} of {len(report.rows)} agree" in text
    assert report.ok and report.first_divergence is None
    assert ("output", "layer1.1") in names and not report.unmatched  # PyTorch's ReLU module; jaxnn calls a function


def test_compare_with_torch_names_the_first_layer_that_diverges(monkeypatch):
    model, variables, tm, x = _lab_cnn()
    real = ops.max_pool2d

    def shifted(x, *args, **kwargs):  # a pooling window off by one pixel
        return real(jnp.roll(x, 1, axis=2), *args, **kwargs)

    monkeypatch.setattr("jaxnn.nn.layers.ops.max_pool2d", shifted)
    report = compare_with_torch(model, variables, tm, x, **NAMES)
    assert not report.ok and report.first_divergence.name == "layer1.2"
    with pytest.raises(AssertionError, match="first divergence at output layer1.2"):
        report.check()


def test_compare_with_torch_catches_a_nan_conv(monkeypatch):
    model, variables, tm, x = _lab_cnn()
    real = ops.conv2d
    monkeypatch.setattr("jaxnn.nn.layers.ops.conv2d", lambda *a, **k: real(*a, **k) * jnp.nan)
    with pytest.raises(
        AssertionError, match="first divergence at output layer1.0 .*NaN where the reference has a number"
    ):
        compare_with_torch(model, variables, tm, x, check=True, **NAMES)


class _BNNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3)
        self.bn = torch.nn.BatchNorm2d(3)
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def _bn_pair():
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, *, deterministic=True):
            x = BatchNorm2d(3, name="bn")(Conv2d(3, 3, name="conv")(x), deterministic=deterministic)
            return Linear(4, name="fc")(jnp.mean(nn.relu(x), axis=(1, 2)))

    torch.manual_seed(1)
    tm = _BNNet()
    x = np.random.default_rng(1).standard_normal((4, 6, 6, 2)).astype(np.float32)
    return Net(), from_state_dict(Net(), tm.state_dict(), x), tm, x


def test_training_mode_with_steps_compares_the_statistics_of_the_first_forward_pass():
    """The running statistics after the compared forward pass, then SGD steps that change them again on both sides:
    each is compared with PyTorch's at its own moment (PyTorch's buffers are read before its steps move them)."""
    model, variables, tm, x = _bn_pair()
    report = compare_with_torch(model, variables, tm, x, train=True, steps=2, labels=np.array([0, 1, 2, 3]))
    report.check()
    kinds = [r.kind for r in report.rows]
    assert (
        "buffer" in kinds
        and "loss" in kinds
        and "step 2 bn.running_mean" in [r.name for r in report.rows if r.kind == "param"]
    )


def test_compare_with_torch_catches_a_biased_running_variance(monkeypatch):
    model, variables, tm, x = _bn_pair()
    compare_with_torch(model, variables, tm, x, train=True, check=True)
    compare_with_torch(model, variables, tm, x, train=True, dtype="float64", check=True)
    from jaxnn.nn import normalization

    # the running variance updated with the biased batch variance
    monkeypatch.setattr(normalization, "_unbiased", lambda var, n: var)
    report = compare_with_torch(model, variables, tm, x, train=True)
    assert report.first_divergence.name == "bn.running_var"
    assert [r.name for r in report.rows if not r.ok] == ["bn.running_var"]  # outputs and gradients still agree


class _TorchRecurrent(torch.nn.Module):
    def __init__(self, cell):
        super().__init__()
        kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.rnn = kind(3, 4, num_layers=2, batch_first=True, bidirectional=cell == "gru")
        self.fc = torch.nn.Linear(8 if cell == "gru" else 4, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_compare_with_torch_takes_a_recurrent_layers_outputs_and_states_in_their_own_layout(cell):
    """An LSTM's ``(output, (h_n, c_n))`` and a GRU's ``(output, h_n)``, 3-D and nested, are compared as they are
    (no NHWC -> NCHW move), each array under its own name."""
    from flax import linen

    from jaxnn.nn import RNN

    class Net(linen.Module):
        @linen.compact
        def __call__(self, x, deterministic=True):
            out, _ = RNN(4, 2, batch_first=True, cell=cell, bidirectional=cell == "gru", name="rnn")(x)
            return Linear(2, name="fc")(out[:, -1])

    torch.manual_seed(0)
    tm = _TorchRecurrent(cell)
    x = np.random.default_rng(0).standard_normal((5, 6, 3)).astype(np.float32)
    variables = from_state_dict(Net(), tm.state_dict(), x)
    for dtype in ("float32", "float64"):
        report = compare_with_torch(Net(), variables, tm, x, torch_inputs=[x], dtype=dtype).check()
        names = [r.name for r in report.rows if r.kind == "output"]
        states = ["rnn[1][0]", "rnn[1][1]"] if cell == "lstm" else ["rnn[1]"]
        assert names == ["rnn[0]", *states, "fc", "(model)"], names
        assert {r.shape for r in report.rows if r.name in states} == {(2 * (1 + (cell == "gru")), 5, 4)}


@pytest.mark.parametrize(
    "actual, expected, kwargs, error, message",
    [
        # a complex result would lose its imaginary part (a NaN there included)
        (np.array([1 + 2j]), np.array([1.0]), {}, TypeError, "actual is complex"),
        (np.array([1.0]), np.array([1 + np.nan * 1j]), {}, TypeError, "expected is complex"),
        (np.array([1.0]), np.array([1.0]), {"exact": np.array([1 + 1j])}, TypeError, "exact is complex"),
        (np.array(["1.0"]), np.array(["1.0"]), {}, TypeError, "must hold real numbers, got dtype <U3"),
        (np.array([1.0], object), np.array([1.0]), {}, TypeError, "must hold real numbers, got dtype object"),
        # a negative tolerance would blame equal values; a NaN one would pass anything
        (np.array([1.0]), np.array([1.0]), {"rtol": -1e-5}, ValueError, "rtol must be a finite number >= 0"),
        (np.array([1.0]), np.array([1.0]), {"atol": float("nan")}, ValueError, "atol must be a finite number >= 0"),
        (np.array([1.0]), np.array([1.0]), {"exact_factor": -4}, ValueError, "exact_factor must be"),
    ],
)
def test_assert_close_refuses_what_it_cannot_compare(actual, expected, kwargs, error, message):
    with pytest.raises(error, match=message):
        assert_close(actual, expected, what="x", **kwargs)


def test_assert_close_reads_torch_bfloat16_and_float16_exactly():
    values = torch.tensor([1.0, -2.5, 3.140625], dtype=torch.bfloat16)
    assert_close(values, np.array([1.0, -2.5, 3.140625], np.float32))
    assert_close(values.to(torch.float16), values.float())
    with pytest.raises(AssertionError, match="1 of 3 elements differ"):
        assert_close(values, np.array([1.0, -2.5, 3.15], np.float32))


def _lab_resnet():
    from jaxnn.models import BasicBlock, ResNet

    torch.manual_seed(0)
    tm = torch_labs.ResNet(torch_labs.BasicBlock, [1, 1, 1, 1], 5)
    model = ResNet(BasicBlock, (1, 1, 1, 1), num_classes=5)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    return model, from_state_dict(model, tm.state_dict(), x), tm, x


def test_functional_steps_are_compared_under_the_module_that_takes_them():
    """PyTorch's ReLU modules, F.relu calls and residual adds each have a row, named by PyTorch's module (and call)."""
    model, variables, tm, x = _lab_resnet()
    report = compare_with_torch(model, variables, tm, x, check=True)
    names = [r.name for r in report.rows if r.kind == "output"]
    assert {"relu", "layer1.0.relu (call 1)", "layer1.0.relu (call 2)", "layer1.0:add"} <= set(names), names
    assert report.ok and not report.unmatched


def test_a_wrong_activation_is_named_at_its_own_step(monkeypatch):
    model, variables, tm, x = _lab_cnn()
    real = jax.nn.relu
    monkeypatch.setattr("jaxnn.models.cnn.nn.relu", lambda v: real(v - 0.01))  # a shifted kink
    report = compare_with_torch(model, variables, tm, x, **NAMES)
    assert report.first_divergence.name == "layer1.1"  # PyTorch's ReLU module in the lab's Sequential


def test_a_missing_activation_is_named_by_its_count(monkeypatch):
    model, variables, tm, x = _lab_cnn()
    monkeypatch.setattr("jaxnn.models.cnn.nn.relu", lambda v: v)
    with pytest.raises(AssertionError, match=r"first divergence at output layer1.1 .*relu 0 times in jaxnn's layer1"):
        compare_with_torch(model, variables, tm, x, check=True, **NAMES)


def test_a_wrong_residual_add_is_named(monkeypatch):
    model, variables, tm, x = _lab_resnet()

    def forward(self, v):  # the lab's BasicBlock with 0.9 of the shortcut
        identity = v if self.downsample is None else self.downsample(v)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(v)))))
        out += 0.9 * identity
        return self.relu(out)

    monkeypatch.setattr(torch_labs.BasicBlock, "forward", forward)
    report = compare_with_torch(model, variables, tm, x)
    assert report.first_divergence.name == "layer1.0:add"


def test_a_wrong_flatten_is_named():
    class Net(torch.nn.Module):  # the lab CNN, flattened channels last: the same weights no longer fit
        def __init__(self, lab):
            super().__init__()
            self.layer1, self.layer2, self.fc = lab.layer1, lab.layer2, lab.fc

        def forward(self, v):
            out = self.layer2(self.layer1(v))
            return self.fc(out.permute(0, 2, 3, 1).reshape(out.shape[0], -1))

    model, variables, tm, x = _lab_cnn()
    report = compare_with_torch(model, variables, Net(tm), x, **NAMES)
    assert report.first_divergence.name == "(model):flatten"


def test_a_wrong_lstm_gate_is_named_at_the_lstm(monkeypatch):
    from flax import linen

    from jaxnn.nn import RNN

    class Net(linen.Module):
        @linen.compact
        def __call__(self, x, deterministic=True):
            out, _ = RNN(4, 2, batch_first=True, cell="lstm", name="rnn")(x)
            return Linear(2, name="fc")(out[:, -1])

    torch.manual_seed(0)
    tm = _TorchRecurrent("lstm")
    x = np.random.default_rng(0).standard_normal((5, 6, 3)).astype(np.float32)
    variables = from_state_dict(Net(), tm.state_dict(), x)
    real = jax.nn.sigmoid
    monkeypatch.setattr("jaxnn.nn.recurrent.nn.sigmoid", lambda v: real(1.01 * v))
    report = compare_with_torch(Net(), variables, tm, x, torch_inputs=[x])
    assert report.first_divergence.name == "rnn[0]"


def test_a_pytorch_module_with_nothing_to_compare_fails_the_report():
    class Net(torch.nn.Module):
        def __init__(self, lab):
            super().__init__()
            self.layer1, self.layer2, self.fc = lab.layer1, lab.layer2, lab.fc
            self.extra = torch.nn.Hardtanh(-1e3, 1e3)  # a module jaxnn's model has nothing for (identity here)

        def forward(self, v):
            out = self.extra(self.layer2(self.layer1(v)))
            return self.fc(out.reshape(out.shape[0], -1))

    model, variables, tm, x = _lab_cnn()
    report = compare_with_torch(model, variables, Net(tm), x, **NAMES)
    assert report.unmatched == ("extra",) and not report.ok
    with pytest.raises(AssertionError, match="extra"):
        report.check()


def _lab_models():
    """name -> (jaxnn model, PyTorch model, jaxnn input, PyTorch input or None, from_state_dict/compare kwargs)."""
    from jaxnn.interop.lab_names import CNN_NAMES
    from jaxnn.models import CharRNN, DeepCNN, FolderCNN, RNNRegressor, Seq2Seq

    r = np.random.default_rng(0)
    mnist = r.standard_normal((2, 28, 28, 1)).astype(np.float32)
    chars = np.eye(6, dtype=np.float32)[r.integers(0, 6, (3, 7))]
    deep = {k: dict(CNN_NAMES[DeepCNN][k]) for k in ("rename", "flatten_chw")}
    deep["rename"].update({f"layer{i}/MaxPool2d_0": f"layer{i}.2" for i in (1, 2, 3)})  # the Sequentials' pools
    return {
        "10-2 DeepCNN": (DeepCNN(), torch_labs.DeepCNN(keep_prob=1.0), mnist, None, deep),
        "10-4 FolderCNN": (
            FolderCNN(),
            torch_labs.FolderCNN(),
            r.random((2, 64, 128, 3)).astype(np.float32),
            None,
            {
                "flatten_chw": {"layer3/0": (16, 13, 29)},
                "rename": {f"layer{i}/MaxPool2d_0": f"layer{i}.2" for i in (1, 2)},  # the Sequential's index
            },
        ),
        **{
            f"11-3/11-4 CharRNN ({cell})": (
                CharRNN(6, 6, 2, cell=cell),
                torch_labs.Net(6, 6, 2, cell=cell),
                chars,
                [chars],
                {},
            )
            for cell in ("rnn", "lstm", "gru")
        },
        "11-5 Seq2Seq": (
            Seq2Seq(7, 9, 16),
            torch_labs.Seq2Seq(7, 9, 16),
            (r.integers(0, 7, (3, 5)), np.full(3, 5), r.integers(0, 9, (3, 4))),
            "same",
            {},
        ),
        "11-4 RNNRegressor": (
            RNNRegressor(10, 1, 2),
            torch_labs.TimeSeriesNet(5, 10, 1, 2),
            r.standard_normal((4, 6, 5)).astype(np.float32),
            "same",
            {},
        ),
    }


@pytest.mark.parametrize("name", list(_lab_models()))
def test_compare_with_torch_passes_on_every_lab_model(name):
    """The lab models the VGG/ResNet tests and the tests above do not run (10-1, VGG, ResNet and the RNN layers
    are there): every layer, functional step and gradient, nothing of PyTorch's left uncompared."""
    torch.manual_seed(0)
    model, tm, x, torch_inputs, kwargs = _lab_models()[name]
    x = x if isinstance(x, tuple) else (x,)
    torch_inputs = list(x) if isinstance(torch_inputs, str) else torch_inputs
    variables = from_state_dict(model, tm.state_dict(), *x, ignore=("layer4.0.weight", "layer4.0.bias"), **kwargs)
    report = compare_with_torch(model, variables, tm, *x, torch_inputs=torch_inputs, **kwargs).check()
    assert report.ok and not report.unmatched
