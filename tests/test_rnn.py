"""jaxnn.nn.RNN against torch.nn.RNN / LSTM / GRU: outputs, final states and every parameter's gradient."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import SHARED_FIXTURE
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxnn.interop.torch import rnn_params_from_torch, rnn_params_to_torch
from jaxnn.nn import RNN
from jaxnn.testing import assert_close

TORCH_CELLS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


@st.composite
def rnn_cases(draw):
    cell = draw(st.sampled_from(["rnn", "lstm", "gru"]))
    case = dict(
        cell=cell,
        num_layers=draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()),
        nonlinearity=draw(st.sampled_from(["tanh", "relu"])) if cell == "rnn" else "tanh",
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        batched=draw(st.sampled_from([True, True, False])),
        with_h0=draw(st.booleans()),
        with_lengths=draw(st.booleans()),
        T=draw(st.one_of(st.integers(1, 12), st.integers(13, 50))),
        B=draw(st.integers(1, 4)),
        I=draw(st.integers(1, 6)),
        H=draw(st.integers(1, 6)),
        seed=draw(st.integers(0, 2**31 - 1)),
    )
    if cell == "lstm" and case["H"] > 1:
        case["proj_size"] = draw(st.sampled_from([0, 0, *range(1, case["H"])]))
    return case


def _torch_module(c):
    kwargs = dict(
        num_layers=c["num_layers"], bias=c["bias"], batch_first=c["batch_first"], bidirectional=c["bidirectional"]
    )
    if c["cell"] == "rnn":
        kwargs["nonlinearity"] = c["nonlinearity"]
    if c.get("proj_size"):
        kwargs["proj_size"] = c["proj_size"]
    torch.manual_seed(c["seed"] % 10000)
    return TORCH_CELLS[c["cell"]](c["I"], c["H"], **kwargs)


def _jax_module(c):
    return RNN(
        c["H"],
        c["num_layers"],
        c["nonlinearity"],
        c["bias"],
        c["batch_first"],
        0.0,
        c["bidirectional"],
        proj_size=c.get("proj_size", 0),
        cell=c["cell"],
    )


@SHARED_FIXTURE
@given(c=rnn_cases())
def test_rnn_matches_torch_outputs_states_and_gradients(c, kernels):
    """On XLA's scan and on the native time loop (``kernels``; cases with lengths or proj_size take the scan)."""
    r = np.random.default_rng(c["seed"])
    d = 2 if c["bidirectional"] else 1
    if c["batched"]:
        shape = (c["B"], c["T"], c["I"]) if c["batch_first"] else (c["T"], c["B"], c["I"])
        hshape = (d * c["num_layers"], c["B"], c["H"])
    else:
        shape, hshape = (c["T"], c["I"]), (d * c["num_layers"], c["H"])
    x = r.standard_normal(shape).astype(np.float32)
    h_size = c.get("proj_size") or c["H"]
    lengths = None
    if c["with_lengths"] and c["batched"]:  # a padded batch of random lengths in 1..T: PyTorch's packed path
        lengths = r.integers(1, c["T"] + 1, c["B"])
    h0 = None
    if c["with_h0"]:
        h0 = r.standard_normal(hshape[:-1] + (h_size,)).astype(np.float32)
        if c["cell"] == "lstm":
            h0 = (h0, r.standard_normal(hshape).astype(np.float32))

    tm = _torch_module(c)
    params = rnn_params_from_torch(tm.state_dict())
    model = _jax_module(c)

    def f(p, x_, h0_):
        out, hn = model.apply({"params": p}, x_, h0_, seq_lengths=lengths)
        return out, hn

    # One compiled program for the forward pass and the gradients (eagerly, each primitive compiles on its own).
    out_shape, hn_shape = jax.eval_shape(f, params, x, h0)
    g_out = r.standard_normal(out_shape.shape).astype(np.float32)
    g_hn = jax.tree_util.tree_map(lambda a: r.standard_normal(a.shape).astype(np.float32), hn_shape)

    @jax.jit
    def forward_and_vjp(p, x_, h0_, cotangent):
        primals, vjp = jax.vjp(f, p, x_, h0_)
        return primals, vjp(cotangent)

    (out, hn), (g_params, g_x, g_h0) = forward_and_vjp(params, x, h0, (g_out, g_hn))

    ref32 = _torch_run(tm, c, x, h0, g_out, g_hn, torch.float32, lengths)
    ref64 = _torch_run(tm, c, x, h0, g_out, g_hn, torch.float64, lengths)  # the exact answer, for sums that cancel
    ours = {"output": out, "grad x": g_x}
    ours.update({f"state {i}": v for i, v in enumerate(list(hn) if c["cell"] == "lstm" else [hn])})
    if h0 is not None:
        ours.update({f"grad h0 {i}": v for i, v in enumerate(list(g_h0) if c["cell"] == "lstm" else [g_h0])})
    ours.update({f"grad {k}": v for k, v in g_params.items()})
    assert set(ours) == set(ref32)
    for name, value in ours.items():
        assert_close(value, ref32[name], what=name, exact=ref64[name])


def _torch_run(tm, c, x, h0, g_out, g_hn, dtype, lengths=None):
    """Forward and backward of the PyTorch module in ``dtype``: every output and gradient by name, as numpy. With
    ``lengths``: pack_padded_sequence(enforce_sorted=False) -> module -> pad_packed_sequence(total_length=T)."""
    tm = copy.deepcopy(tm).to(dtype)
    t = lambda a: torch.tensor(np.asarray(a), dtype=dtype, requires_grad=True)  # noqa: E731
    xt = t(x)
    is_lstm = c["cell"] == "lstm"
    h0t = None if h0 is None else (tuple(t(a) for a in h0) if is_lstm else t(h0))
    if lengths is None:
        out_t, hn_t = tm(xt, h0t)
    else:
        rnn_utils = torch.nn.utils.rnn
        packed = rnn_utils.pack_padded_sequence(xt, torch.tensor(lengths), c["batch_first"], enforce_sorted=False)
        out_p, hn_t = tm(packed, h0t)
        out_t, _ = rnn_utils.pad_packed_sequence(out_p, c["batch_first"], total_length=c["T"])
    hn_list = list(hn_t) if is_lstm else [hn_t]
    g_hn_list = list(g_hn) if is_lstm else [g_hn]
    torch.autograd.backward([out_t] + hn_list, [torch.tensor(np.asarray(g), dtype=dtype) for g in [g_out] + g_hn_list])
    res = {"output": out_t.detach().numpy(), "grad x": xt.grad.numpy()}
    res.update({f"state {i}": v.detach().numpy() for i, v in enumerate(hn_list)})
    if h0 is not None:
        res.update({f"grad h0 {i}": v.grad.numpy() for i, v in enumerate(list(h0t) if is_lstm else [h0t])})
    res.update({f"grad {k}": v.grad.numpy() for k, v in tm.named_parameters()})
    return res


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_dict_round_trip_and_init(cell):
    tm = TORCH_CELLS[cell](5, 7, num_layers=2, bidirectional=True)
    params = rnn_params_from_torch(tm.state_dict())
    back = rnn_params_to_torch(params)
    assert list(back) == list(tm.state_dict())
    for k, v in tm.state_dict().items():
        assert torch.equal(back[k], v)
    tm.load_state_dict(back, strict=True)
    # Our initialisation: same names and shapes, U(-1/sqrt(H), 1/sqrt(H)).
    ours = RNN(7, 2, bidirectional=True, cell=cell).init(jax.random.key(0), jnp.ones((3, 4, 5)))["params"]
    assert {k: v.shape for k, v in ours.items()} == {k: tuple(v.shape) for k, v in tm.state_dict().items()}
    for v in ours.values():
        assert np.abs(np.asarray(v)).max() <= 1 / np.sqrt(7)


def test_unbatched_and_time_major_agree_with_batch_first(rng):
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    m_bf = RNN(4, 2, cell="gru", batch_first=True)
    p = m_bf.init(jax.random.key(0), x)
    out_bf, h_bf = m_bf.apply(p, x)
    out_tm, h_tm = RNN(4, 2, cell="gru", batch_first=False).apply(p, x.transpose(1, 0, 2))
    np.testing.assert_allclose(out_tm.transpose(1, 0, 2), out_bf, rtol=1e-6, atol=1e-7)
    out_u, h_u = m_bf.apply(p, x[1])
    np.testing.assert_allclose(out_u, out_bf[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h_u, h_bf[:, 1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, x_shape, h0, error, pattern",
    [
        (dict(cell="conv"), (2, 3, 4), None, ValueError, r"cell must be one of \['gru', 'lstm', 'rnn'\], got 'conv'"),
        (dict(nonlinearity="sigmoid"), (2, 3, 4), None, ValueError, r"nonlinearity must be one of .* got 'sigmoid'"),
        (
            dict(cell="gru", nonlinearity="relu"),
            (2, 3, 4),
            None,
            ValueError,
            r"nonlinearity applies to cell='rnn' only",
        ),
        (dict(), (2, 3, 4, 5), None, ValueError, r"x must be .* got shape \(2, 3, 4, 5\)"),
        (
            dict(batch_first=True),
            (2, 3, 4),
            np.zeros((2, 2, 5)),
            ValueError,
            r"h0 must have shape \(1, 2, 5\) .* got \(2, 2, 5\)",
        ),
        (dict(), (2, 3, 4), np.zeros((1, 2, 5)), ValueError, r"h0 must have shape \(1, 3, 5\) .* got \(1, 2, 5\)"),
        (dict(cell="lstm"), (2, 3, 4), np.zeros((1, 2, 5)), ValueError, r"h0 must be an \(h0, c0\) pair"),
        (dict(dropout=1.5), (2, 3, 4), None, ValueError, r"dropout must be a number in \[0, 1\], got 1.5"),
        (dict(bidirectional=1), (2, 3, 4), None, TypeError, r"bidirectional must be a bool, got 1"),
    ],
)
def test_rnn_bad_configuration_and_input(kwargs, x_shape, h0, error, pattern):
    with pytest.raises(error, match=pattern):
        RNN(5, **kwargs).init(jax.random.key(0), jnp.ones(x_shape), h0)


def test_rnn_input_size_mismatch_names_the_parameter():
    m = RNN(5)
    p = m.init(jax.random.key(0), jnp.ones((2, 3, 4)))
    with pytest.raises(
        ValueError, match=r"weight_ih_l0 has shape \(5, 4\), but this RNN needs \(5, 6\): the input has 6 features"
    ):
        m.apply(p, jnp.ones((2, 3, 6)))


@pytest.mark.parametrize("with_lengths", [False, True])
def test_compiled_program_does_not_grow_with_sequence_length(with_lengths):
    # The time loop must stay a loop: the optimised program for T=1000 has as many instructions as for T=10.
    # (Compile time itself is measured in benchmarks/, not in a timed test.)
    def instructions(T):
        m = RNN(16, 2, batch_first=True, bidirectional=with_lengths)
        x = jnp.ones((4, T, 8))
        lengths = jnp.array([T, 1, T // 2, 3]) if with_lengths else None
        p = m.init(jax.random.key(0), x)

        def loss(params, x_, n):
            out, _ = m.apply({"params": params}, x_, seq_lengths=n)
            return out.sum()

        text = jax.jit(jax.grad(loss)).lower(p["params"], x, lengths).compile().as_text()
        return sum(" = " in line for line in text.splitlines())

    assert instructions(1000) == instructions(10)


def test_rnn_state_dict_with_a_wrong_shape_or_key_is_named():
    sd = dict(torch.nn.GRU(3, 4, num_layers=2).state_dict())
    sd["bias_hh_l1"] = torch.zeros(5)
    with pytest.raises(ValueError, match=r"mis-shaped \['bias_hh_l1: \(5,\) gives \(5,\), the model needs \(12,\)'\]"):
        rnn_params_from_torch(sd)
    with pytest.raises(KeyError, match=r"not the parameters of a torch.nn.RNN/LSTM/GRU: \['fc.weight'\]"):
        rnn_params_from_torch({"fc.weight": torch.zeros(2, 2)})


def test_rnn_takes_dropout_1_as_pytorch_does():
    model = RNN(4, num_layers=2, dropout=1.0)
    x = jnp.ones((3, 2, 5))
    params = model.init(jax.random.key(0), x)
    out, _ = model.apply(params, x, deterministic=False, rngs={"dropout": jax.random.key(1)})
    # Every first-layer output dropped: the second layer sees zeros, as PyTorch's does with dropout=1.
    zeros_in, _ = RNN(4).apply(
        {"params": {k[:-1] + "0": v for k, v in params["params"].items() if "_l1" in k}}, jnp.zeros((3, 2, 4))
    )
    assert_close(out, zeros_in)


# A third of the profile's examples (8 in CI, 33 exploring): each case compiles two paths in float64, and the
# PyTorch parity test above runs the same (default) path over the full count.
@settings(max_examples=max(8, settings.default.max_examples // 3))
@given(rnn_cases(), st.sampled_from([0.0, 0.0, 0.5]))
def test_fused_backward_equals_autodiff_of_the_scan_in_float64(c, dropout):
    # The hand-written backward of the time loop against jax's autodiff of the plain scan, in float64, where only
    # the order of sums differs: every output, state and gradient (params, x, h0) to 1e-12.
    r = np.random.default_rng(c["seed"])
    d = 2 if c["bidirectional"] else 1
    h_size = c.get("proj_size") or c["H"]
    batch = (c["B"],) if c["batched"] else ()
    x = r.standard_normal((c["T"], *batch, c["I"]))
    lengths = r.integers(1, c["T"] + 1, c["B"]) if c["with_lengths"] and c["batched"] else None
    h0 = None
    if c["with_h0"]:
        h0 = r.standard_normal((d * c["num_layers"], *batch, h_size))
        if c["cell"] == "lstm":
            h0 = (h0, r.standard_normal((d * c["num_layers"], *batch, c["H"])))
    fused = _jax_module(c).clone(dropout=dropout, batch_first=False)
    plain = fused.clone(fused_backward=False)
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(
            lambda a: jnp.asarray(r.standard_normal(a.shape)),
            jax.eval_shape(fused.init, jax.random.key(0), jnp.asarray(x, jnp.float32))["params"],  # shapes only
        )
        key = jax.random.key(c["seed"] % 1000)

        def apply(model):
            def f(p, x_, h0_):
                return model.apply(
                    {"params": p}, x_, h0_, seq_lengths=lengths, deterministic=dropout == 0, rngs={"dropout": key}
                )

            return f

        def both(p, x_, h0_, cotangent):  # one compiled program per drawn case, both paths in it
            def forward_and_vjp(model):
                outputs, vjp = jax.vjp(apply(model), p, x_, h0_)
                return outputs, vjp(cotangent)

            return forward_and_vjp(fused), forward_and_vjp(plain)

        shapes = jax.eval_shape(apply(plain), params, jnp.asarray(x), h0)
        cotangent = jax.tree_util.tree_map(
            lambda a: jnp.asarray(np.random.default_rng(1).standard_normal(a.shape)), shapes
        )
        ours, ref = jax.jit(both)(params, jnp.asarray(x), h0, cotangent)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(ours), jax.tree_util.tree_leaves(ref), strict=True):
        assert a.dtype == jnp.float64
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=jax.tree_util.keystr(path))


def test_fused_backward_second_order_and_forward_mode():
    # jax.hessian (forward over reverse) and reverse over reverse differentiate through the hand-written backward
    # and give the plain scan's second derivatives; forward mode alone (jax.jvp) raises JAX's clear TypeError,
    # and fused_backward=False is the way to it.
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 2, 2)), jnp.float32)
    fused = RNN(2, cell="lstm")
    plain = fused.clone(fused_backward=False)
    params = fused.init(jax.random.key(0), x)["params"]

    def loss(model):
        return lambda p: jnp.sum(model.apply({"params": p}, x, seq_lengths=jnp.asarray([3, 2]))[0] ** 2)

    def primitives(model):
        return str(jax.make_jaxpr(loss(model))(params))

    # The two paths differ: the default goes through the custom VJP, fused_backward=False through autodiff.
    assert "custom_vjp_call" in primitives(fused) and "custom_vjp_call" not in primitives(plain)
    expected = jax.jit(jax.hessian(loss(plain)))(params)
    for got in (jax.jit(jax.hessian(loss(fused)))(params), jax.jit(jax.jacrev(jax.grad(loss(fused))))(params)):
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected), strict=True):
            assert_close(a, b, what="hessian")
    v = jax.tree_util.tree_map(jnp.ones_like, params)
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff \\(jvp\\) to a custom_vjp function"):
        jax.jvp(loss(fused), (params,), (v,))
    _, tangent = jax.jvp(loss(plain), (params,), (v,))
    assert np.isfinite(tangent)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fused_backward_under_vmap_matches_one_sequence_at_a_time(cell):
    # jax.vmap over a batch of unbatched sequences (T, I), each with its own length.
    r = np.random.default_rng(3)
    xs = jnp.asarray(r.standard_normal((4, 6, 3)), jnp.float32)
    lengths = jnp.asarray([6, 1, 3, 5])
    model = RNN(5, cell=cell, bidirectional=True)
    params = model.init(jax.random.key(0), xs[0])["params"]

    def loss(p, x, n):
        out, _ = model.apply({"params": p}, x, seq_lengths=n[None])
        return jnp.sum(jnp.sin(out))

    # Compiled, as one program each: run eagerly, every primitive of the scan and its backward compiles on its own.
    batched = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(None, 0, 0)))(params, xs, lengths)
    one_sequence = jax.jit(jax.grad(loss, argnums=(0, 1)))
    for i in range(len(xs)):
        one = one_sequence(params, xs[i], lengths[i])
        for a, b in zip(jax.tree_util.tree_leaves(batched), jax.tree_util.tree_leaves(one), strict=True):
            assert_close(a[i], b, what=f"sequence {i}")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_backward_keeps_each_gradient_in_its_primals_dtype(cell):
    # float32 inputs with float64 parameters make a float64 recurrence; each gradient keeps its primal's dtype and
    # equals autodiff's.
    r = np.random.default_rng(5)
    model = RNN(4, 2, cell=cell, bidirectional=True, proj_size=2 if cell == "lstm" else 0)
    x = jnp.asarray(r.standard_normal((5, 3, 3)), jnp.float32)
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(0), x)["params"])

        def grads(m):
            def loss(p, x_):
                return jnp.sum(jnp.sin(m.apply({"params": p}, x_, seq_lengths=jnp.asarray([5, 2, 4]))[0]))

            return jax.grad(loss, argnums=(0, 1))(params, x)

        ours, ref = grads(model), grads(model.clone(fused_backward=False))
    assert ours[1].dtype == jnp.float32
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(ours), jax.tree_util.tree_leaves(ref), strict=True):
        assert a.dtype == b.dtype, jax.tree_util.keystr(path)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=jax.tree_util.keystr(path))
