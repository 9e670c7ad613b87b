"""BatchNorm1d/2d against torch.nn.BatchNorm1d/2d: train-mode outputs and gradients, running statistics over
several steps (momentum, momentum=None, no tracking), eval-mode outputs; and a BatchNorm CNN trained with
jaxnn.train.train_step against the same PyTorch model step by step."""

import copy
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jaxnn import layout, train
from jaxnn.nn import BatchNorm1d, BatchNorm2d, Conv2d, Linear
from jaxnn.testing import assert_close

TORCH_BN = {1: torch.nn.BatchNorm1d, 2: torch.nn.BatchNorm2d}
OURS_BN = {1: BatchNorm1d, 2: BatchNorm2d}


def _channels_first(a):
    """NHWC/NLC -> NCHW/NCL (and (N, C) as it is), as a standard-strided copy."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim > 2 else a


@given(
    dims=st.sampled_from([1, 1, 2]),
    n=st.integers(2, 5),
    c=st.integers(1, 4),
    extent=st.integers(1, 4),
    momentum=st.sampled_from([0.1, 0.5, None]),
    affine=st.booleans(),
    bias=st.booleans(),
    track=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_batchnorm_matches_torch_over_several_steps(dims, n, c, extent, momentum, affine, bias, track, seed):
    r = np.random.default_rng(seed)
    shape = {1: [(n, c), (n, extent, c)][seed % 2], 2: (n, extent, extent + 1, c)}[dims]
    tm = TORCH_BN[dims](c, momentum=momentum, affine=affine, track_running_stats=track, bias=bias).double()
    model = OURS_BN[dims](c, momentum=momentum, affine=affine, track_running_stats=track, bias=bias)
    variables = model.init(jax.random.key(0), jnp.ones(shape))
    if affine:  # non-trivial weight and bias on both sides
        w, b = r.standard_normal(c), r.standard_normal(c)
        with torch.no_grad():
            tm.weight.copy_(torch.tensor(w))
            if bias:
                tm.bias.copy_(torch.tensor(b))
        params = {"weight": w.astype(np.float32), "bias": b.astype(np.float32)}
        variables = {**variables, "params": params if bias else {"weight": params["weight"]}}

    @jax.jit  # one compiled program for the three steps (eagerly, each primitive compiles on its own)
    def train_step(variables, x, g):
        f = functools.partial(_train_apply, model, variables)
        y, pullback, updates = jax.vjp(f, variables.get("params", {}), x, has_aux=True)
        return y, updates, pullback(g)

    for step in range(3):
        x = (3 * r.standard_normal(shape) + step).astype(np.float32)
        g = r.standard_normal(shape).astype(np.float32)
        y, updates, (g_params, g_x) = train_step(variables, x, g)
        # PyTorch in float32 is the reference, its float64 the exact answer for sums that cancel (the tolerance
        # model of conftest.assert_close): with 2 values per channel, BatchNorm's input gradient cancels heavily.
        ref = {dtype: _torch_train_step(copy.deepcopy(tm), x, g, dtype) for dtype in (torch.float32, torch.float64)}
        _torch_train_step(tm, x, g, torch.float64)  # advance the running statistics of the module we keep
        t32, t64 = ref[torch.float32], ref[torch.float64]
        assert_close(_channels_first(np.asarray(y)), t32["y"], what=f"train output, step {step}", exact=t64["y"])
        assert_close(_channels_first(np.asarray(g_x)), t32["x"], what=f"grad x, step {step}", exact=t64["x"])
        if affine:
            assert_close(g_params["weight"], t32["weight"], what="grad weight", exact=t64["weight"])
            if bias:
                assert_close(g_params["bias"], t32["bias"], what="grad bias", exact=t64["bias"])
        if track:
            variables = {**variables, "batch_stats": updates["batch_stats"]}
            stats = variables["batch_stats"]
            assert_close(stats["running_mean"], tm.running_mean.numpy(), what="running_mean")
            assert_close(stats["running_var"], tm.running_var.numpy(), what="running_var")
            assert int(stats["num_batches_tracked"]) == int(tm.num_batches_tracked) == step + 1
        else:
            assert not updates.get("batch_stats")
    # Evaluation: the running statistics (or, untracked, the batch's own).
    x = r.standard_normal(shape).astype(np.float32)
    tm.eval()
    with torch.no_grad():
        expected = tm(torch.tensor(_channels_first(x).astype(np.float64))).numpy()
    assert_close(_channels_first(np.asarray(model.apply(variables, x))), expected, what="eval output")


def _train_apply(model, variables, params, x):
    return model.apply({**variables, "params": params}, x, deterministic=False, mutable=["batch_stats"])


def _torch_train_step(tm, x, g, dtype):
    """One train-mode forward and backward of ``tm`` in ``dtype``: output and gradients, channels first."""
    tm = tm.to(dtype).train()
    xt = torch.tensor(_channels_first(x), dtype=dtype, requires_grad=True)
    yt = tm(xt)
    yt.backward(torch.tensor(_channels_first(g), dtype=dtype))
    out = {"y": yt.detach().numpy(), "x": xt.grad.numpy()}
    for name in ("weight", "bias"):
        p = getattr(tm, name)
        if p is not None:
            out[name] = p.grad.numpy()
            p.grad = None
    return out


def test_batchnorm_names_and_init_are_pytorchs():
    variables = BatchNorm2d(3).init(jax.random.key(0), jnp.ones((2, 4, 4, 3)))
    sd = torch.nn.BatchNorm2d(3).state_dict()
    ours = {**variables["params"], **variables["batch_stats"]}
    assert set(ours) == set(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(ours[k], v.numpy())


@pytest.mark.parametrize(
    "call, pattern",
    [
        (
            lambda: BatchNorm1d(3).apply(
                _bn_vars(1, (1, 3)), jnp.ones((1, 3)), deterministic=False, mutable=["batch_stats"]
            ),
            r"expected more than 1 value per channel",
        ),
        (
            lambda: BatchNorm2d(3).init(jax.random.key(0), jnp.ones((2, 4, 4, 5))),
            r"x has 5 channels .* num_features is 3",
        ),
        (lambda: BatchNorm2d(3).init(jax.random.key(0), jnp.ones((2, 4, 3))), r"x must be \(N, H, W, C\), got shape"),
        (lambda: BatchNorm1d(3, momentum=1.5).init(jax.random.key(0), jnp.ones((2, 3))), r"momentum must be in"),
    ],
)
def test_batchnorm_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def _bn_vars(dims, shape):
    return OURS_BN[dims](shape[-1]).init(jax.random.key(0), jnp.ones((2, *shape[1:])))


class _TorchBNNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


class BNNet(nn.Module):
    @nn.compact
    def __call__(self, x, *, deterministic=True):
        x = BatchNorm2d(4, name="bn")(Conv2d(4, 3, padding=1, name="conv")(x), deterministic=deterministic)
        return Linear(3, name="fc")(nn.relu(x).reshape(x.shape[0], -1))


def test_a_batchnorm_model_trains_step_by_step_as_pytorch():
    torch.manual_seed(0)
    tm = _TorchBNNet().double()
    sd = {k: v.numpy() for k, v in tm.state_dict().items()}
    params = {
        "conv": {"kernel": layout.oihw_to_hwio(sd["conv.weight"]), "bias": sd["conv.bias"]},
        "bn": {"weight": sd["bn.weight"], "bias": sd["bn.bias"]},
        "fc": {
            "kernel": layout.chw_flatten_to_hwc(layout.linear_to_dense(sd["fc.weight"]), 4, 5, 5),
            "bias": sd["fc.bias"],
        },
    }
    batch_stats = {"bn": {k: sd[f"bn.{k}"] for k in ("running_mean", "running_var", "num_batches_tracked")}}
    r = np.random.default_rng(1)
    with jax.enable_x64(True):
        state = train.create_train_state(
            BNNet(),
            jax.tree_util.tree_map(jnp.asarray, params),
            optax.sgd(0.1),
            jax.tree_util.tree_map(jnp.asarray, batch_stats),
        )
        step = jax.jit(train.train_step)
        opt = torch.optim.SGD(tm.parameters(), lr=0.1)
        for _ in range(3):
            x = r.standard_normal((6, 5, 5, 2))
            y = r.integers(0, 3, 6)
            state, metrics = step(state, {"inputs": jnp.asarray(x), "labels": jnp.asarray(y)}, jax.random.key(0))
            tm.train()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(tm(torch.tensor(layout.nhwc_to_nchw(x).copy())), torch.tensor(y))
            loss.backward()
            opt.step()
            assert_close(metrics["loss"], loss.item(), what="loss")
        for k in ("running_mean", "running_var"):
            assert_close(state.batch_stats["bn"][k], getattr(tm.bn, k).numpy(), what=k)
        assert int(state.batch_stats["bn"]["num_batches_tracked"]) == 3
        assert_close(state.params["conv"]["kernel"], layout.oihw_to_hwio(tm.conv.weight.detach().numpy()), what="conv")
        x = r.standard_normal((4, 5, 5, 2))
        tm.eval()
        with torch.no_grad():
            expected = tm(torch.tensor(layout.nhwc_to_nchw(x).copy())).numpy()
        assert_close(jax.jit(train.predict)(state, jnp.asarray(x)), expected, what="eval logits")
