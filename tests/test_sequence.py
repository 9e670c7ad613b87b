"""Variable-length sequences, cells and Embedding against PyTorch: torch.nn.utils.rnn, *Cell, Embedding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as rnn_utils
from hypothesis import given
from hypothesis import strategies as st

from jaxnn.data import sequence
from jaxnn.models import RNN
from jaxnn.nn import Embedding, GRUCell, LSTMCell, RNNCell
from jaxnn.testing import assert_close


@st.composite
def ragged(draw):
    """A few sequences of random lengths with 0-2 trailing feature axes, and the flags of the utilities."""
    r = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    lengths = draw(st.lists(st.integers(1, 7), min_size=1, max_size=5))
    features = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    seqs = [r.standard_normal((n, *features)).astype(np.float32) for n in lengths]
    return dict(seqs=seqs, batch_first=draw(st.booleans()), padding_value=draw(st.sampled_from([0.0, -1.5])))


@given(ragged(), st.sampled_from(["right", "left"]))
def test_pad_sequence_equals_torch(case, side):
    ours = sequence.pad_sequence(case["seqs"], case["batch_first"], case["padding_value"], side)
    theirs = rnn_utils.pad_sequence(
        [torch.tensor(s) for s in case["seqs"]], case["batch_first"], case["padding_value"], side
    )
    np.testing.assert_array_equal(ours, theirs.numpy())


@given(ragged(), st.booleans())
def test_pack_and_unpack_equal_torch(case, enforce_sorted):
    seqs = case["seqs"]
    if enforce_sorted:
        seqs = sorted(seqs, key=len, reverse=True)
    ours = sequence.pack_sequence(seqs, enforce_sorted)
    theirs = rnn_utils.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted)
    np.testing.assert_array_equal(ours.data, theirs.data.numpy())
    np.testing.assert_array_equal(ours.batch_sizes, theirs.batch_sizes.numpy())
    for name in ("sorted_indices", "unsorted_indices"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a, b.numpy())
    # From the padded form too, and back.
    padded = sequence.pad_sequence(seqs, case["batch_first"])
    lengths = np.array([len(s) for s in seqs])
    ours = sequence.pack_padded_sequence(padded, lengths, case["batch_first"], enforce_sorted)
    theirs = rnn_utils.pack_padded_sequence(
        torch.tensor(padded), torch.tensor(lengths), case["batch_first"], enforce_sorted
    )
    np.testing.assert_array_equal(ours.data, theirs.data.numpy())
    total = int(lengths.max()) + 2
    out, out_lengths = sequence.pad_packed_sequence(ours, case["batch_first"], case["padding_value"], total)
    t_out, t_lengths = rnn_utils.pad_packed_sequence(theirs, case["batch_first"], case["padding_value"], total)
    np.testing.assert_array_equal(out, t_out.numpy())
    np.testing.assert_array_equal(out_lengths, t_lengths.numpy())
    assert out_lengths.dtype == np.int64 and ours.batch_sizes.dtype == np.int64


def test_packed_batch_feeds_the_rnn_as_padded_plus_lengths():
    r = np.random.default_rng(0)
    seqs = [r.standard_normal((n, 3)).astype(np.float32) for n in (2, 5, 3)]
    padded, lengths = sequence.pad_packed_sequence(sequence.pack_sequence(seqs, enforce_sorted=False))
    model = RNN(4, cell="gru")
    params = model.init(jax.random.key(0), padded)
    out, h_n = model.apply(params, padded, seq_lengths=lengths)
    for b, s in enumerate(seqs):  # each sequence alone gives the same outputs and final state
        alone, h_alone = model.apply(params, s[:, None])
        assert_close(out[: len(s), b], alone[:, 0])
        assert_close(h_n[:, b], h_alone[:, 0])
        assert not np.asarray(out[len(s) :, b]).any()


CELL_PAIRS = {
    "rnn": (RNNCell, torch.nn.RNNCell),
    "lstm": (LSTMCell, torch.nn.LSTMCell),
    "gru": (GRUCell, torch.nn.GRUCell),
}


@given(
    st.sampled_from(sorted(CELL_PAIRS)),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["tanh", "relu"]),
    st.integers(0, 2**31 - 1),
)
def test_cells_equal_torch_values_and_gradients(kind, batched, bias, with_h, nonlinearity, seed):
    ours_cls, torch_cls = CELL_PAIRS[kind]
    r = np.random.default_rng(seed)
    kwargs = dict(bias=bias)
    if kind == "rnn":
        kwargs["nonlinearity"] = nonlinearity
    torch.manual_seed(seed % 1000)
    tm = torch_cls(3, 5, **kwargs)
    params = {k: v.detach().numpy().copy() for k, v in tm.state_dict().items()}
    x = r.standard_normal((4, 3) if batched else (3,)).astype(np.float32)
    hshape = (4, 5) if batched else (5,)
    h = None
    if with_h:
        h = r.standard_normal(hshape).astype(np.float32)
        if kind == "lstm":
            h = (h, r.standard_normal(hshape).astype(np.float32))
    model = ours_cls(5, **kwargs)
    out, vjp = jax.vjp(lambda p, x_, h_: model.apply({"params": p}, x_, h_), params, x, h)
    outs = list(out) if kind == "lstm" else [out]
    gs = [r.standard_normal(o.shape).astype(np.float32) for o in outs]
    g_params, g_x, g_h = vjp(tuple(gs) if kind == "lstm" else gs[0])

    xt = torch.tensor(x, requires_grad=True)
    ht = (
        None
        if h is None
        else (
            tuple(torch.tensor(a, requires_grad=True) for a in h)
            if kind == "lstm"
            else torch.tensor(h, requires_grad=True)
        )
    )
    t_out = tm(xt, ht)
    t_outs = list(t_out) if kind == "lstm" else [t_out]
    torch.autograd.backward(t_outs, [torch.tensor(g) for g in gs])
    for o, t in zip(outs, t_outs, strict=True):
        assert_close(o, t.detach().numpy(), what="output")
    assert_close(g_x, xt.grad.numpy(), what="grad x")
    for k, p in tm.named_parameters():
        assert_close(g_params[k], p.grad.numpy(), what=f"grad {k}")
    if h is not None:
        for a, t in zip(jax.tree_util.tree_leaves(g_h), list(ht) if kind == "lstm" else [ht], strict=True):
            assert_close(a, t.grad.numpy(), what="grad h")


def test_cell_init_names_shapes_and_bounds():
    params = LSTMCell(6).init(jax.random.key(0), jnp.ones((2, 3)))["params"]
    torch_shapes = {k: tuple(v.shape) for k, v in torch.nn.LSTMCell(3, 6).state_dict().items()}
    assert {k: v.shape for k, v in params.items()} == torch_shapes
    assert all(np.abs(np.asarray(v)).max() <= 1 / np.sqrt(6) for v in params.values())


@given(st.integers(1, 12), st.integers(1, 5), st.sampled_from([None, 0, 3, -1]), st.integers(0, 2**31 - 1))
def test_embedding_equals_torch_values_and_gradients(num, dim, padding_idx, seed):
    if padding_idx is not None and padding_idx >= num:
        padding_idx = num - 1
    r = np.random.default_rng(seed)
    torch.manual_seed(seed % 1000)
    tm = torch.nn.Embedding(num, dim, padding_idx=padding_idx)
    with torch.no_grad():  # a non-zero padding row too: PyTorch looks it up as it is, and sends it no gradient
        tm.weight.add_(0.5)
    idx = r.integers(0, num, (3, 4))
    model = Embedding(num, dim, padding_idx=padding_idx)
    weight = tm.weight.detach().numpy().copy()
    out, vjp = jax.vjp(lambda w: model.apply({"params": {"weight": w}}, idx), weight)
    g = r.standard_normal(out.shape).astype(np.float32)
    (g_w,) = vjp(g)
    t_out = tm(torch.tensor(idx))
    t_out.backward(torch.tensor(g))
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    assert_close(g_w, tm.weight.grad.numpy(), what="grad weight")


def test_embedding_init_is_standard_normal_with_a_zero_padding_row():
    w = Embedding(1000, 8, padding_idx=-2).init(jax.random.key(0), jnp.zeros(1, jnp.int32))["params"]["weight"]
    assert w.shape == (1000, 8) and not np.asarray(w[998]).any()
    assert abs(float(w.mean())) < 0.05 and abs(float(w.std()) - 1) < 0.05


def _rnn_init(lengths, x_shape=(5, 3, 2), **kwargs):
    model = RNN(4, **kwargs)
    x = jnp.ones(x_shape)
    return model.init(jax.random.key(0), x, seq_lengths=lengths)


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (
            lambda: _rnn_init(np.array([5, 6, 1])),
            ValueError,
            r"seq_lengths must lie in \[1, 5\] .* got values in \[1, 6\]",
        ),
        (lambda: _rnn_init(np.array([0, 2, 1])), ValueError, r"PyTorch rejects a length of 0"),
        (lambda: _rnn_init(np.array([5, 2])), ValueError, r"seq_lengths must have shape \(3,\) .* got \(2,\)"),
        (lambda: _rnn_init(np.array([5.0, 2.0, 1.0])), TypeError, r"seq_lengths must be integers, got float"),
        (lambda: _rnn_init(None, (0, 3, 2)), ValueError, r"x has no time steps"),
        (lambda: _rnn_init(None, cell="gru", proj_size=2), ValueError, r"proj_size is supported for cell='lstm' only"),
        (lambda: _rnn_init(None, cell="lstm", proj_size=4), ValueError, r"proj_size \(4\) must be smaller than"),
        (
            lambda: Embedding(5, 2, max_norm=1.0).init(jax.random.key(0), jnp.zeros(1, jnp.int32)),
            ValueError,
            r"max_norm is not supported",
        ),
        (
            lambda: Embedding(5, 2).init(jax.random.key(0), jnp.array([5])),
            ValueError,
            r"indices must lie in \[0, 5\), got values in \[5, 5\]",
        ),
        (lambda: Embedding(5, 2).init(jax.random.key(0), jnp.array([1.0])), TypeError, r"indices must be integers"),
        (
            lambda: Embedding(5, 2, padding_idx=5).init(jax.random.key(0), jnp.array([1])),
            ValueError,
            r"padding_idx must be within num_embeddings",
        ),
        (
            lambda: LSTMCell(3).init(jax.random.key(0), jnp.ones((2, 4)), jnp.ones((2, 3))),
            ValueError,
            r"hx must be an \(h, c\) pair",
        ),
        (
            lambda: GRUCell(3).init(jax.random.key(0), jnp.ones((2, 4)), jnp.ones((2, 4))),
            ValueError,
            r"h must have shape \(2, 3\), got \(2, 4\)",
        ),
        (lambda: sequence.pack_padded_sequence(np.ones((4, 2)), [2, 3]), ValueError, r"sorted in decreasing order"),
        (lambda: sequence.pack_padded_sequence(np.ones((4, 2)), [5, 3]), ValueError, r"<= the padded length 4"),
        (lambda: sequence.pack_padded_sequence(np.ones((4, 2)), [3, 0]), ValueError, r"lengths must be >= 1"),
        (
            lambda: sequence.pad_packed_sequence(sequence.pack_sequence([np.ones(3)]), total_length=2),
            ValueError,
            r"total_length \(2\) must be at least the longest sequence \(3\)",
        ),
    ],
)
def test_bad_sequence_inputs(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_lengths_under_jit_give_the_eager_answer():
    model = RNN(4, cell="lstm", batch_first=True, bidirectional=True)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 6, 2)), jnp.float32)
    lengths = jnp.array([6, 2, 4])
    params = model.init(jax.random.key(0), x)
    eager = model.apply(params, x, seq_lengths=lengths)
    jitted = jax.jit(lambda p, x_, n: model.apply(p, x_, seq_lengths=n))(params, x, lengths)
    for a, b in zip(jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(jitted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_embedding_under_jit_gives_nan_rows_past_the_end_as_documented():
    model = Embedding(3, 2)
    params = model.init(jax.random.key(0), jnp.array([0]))
    out = jax.jit(lambda i: model.apply(params, i))(jnp.array([1, 3]))
    assert np.isfinite(np.asarray(out[0])).all() and np.isnan(np.asarray(out[1])).all()
