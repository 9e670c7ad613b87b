"""jaxnn.nn layers: PyTorch's default initialisation and the same forward as torch.nn layers with equal weights."""

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED_FIXTURE, forward_and_vjp, load_script
from hypothesis import given
from hypothesis import strategies as st

from jaxnn import nn as jnn
from jaxnn.layout import hwio_to_oihw, nchw_to_nhwc, nhwc_to_nchw
from jaxnn.testing import assert_close


def test_conv2d_layer_init_bounds_and_shapes():
    layer = jnn.Conv2d(16, 3, groups=2)
    params = layer.init(jax.random.key(0), np.ones((1, 8, 8, 4), np.float32))["params"]
    assert params["kernel"].shape == (3, 3, 2, 16) and params["bias"].shape == (16,)
    bound = 1 / np.sqrt(2 * 3 * 3)  # fan_in = C // groups * kh * kw
    for p in (params["kernel"], params["bias"]):
        p = np.asarray(p)
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound  # the whole range is used
    # torch's own init draws from the same range
    t = torch.nn.Conv2d(4, 16, 3, groups=2)
    assert abs(t.weight.abs().max().item() - bound) < 0.1 * bound


def test_conv2d_layer_matches_torch_with_same_weights(rng):
    x = rng.standard_normal((2, 9, 7, 4)).astype(np.float32)
    layer = jnn.Conv2d(6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    params = layer.init(jax.random.key(1), x)
    t = torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    with torch.no_grad():
        t.weight.copy_(torch.tensor(hwio_to_oihw(np.asarray(params["params"]["kernel"])).copy()))
        t.bias.copy_(torch.tensor(np.asarray(params["params"]["bias"])))
    assert_close(layer.apply(params, x), nchw_to_nhwc(t(torch.tensor(nhwc_to_nchw(x).copy())).detach().numpy()))


def test_linear_and_pool_layers(rng):
    x = rng.standard_normal((3, 8, 8, 2)).astype(np.float32)
    lin = jnn.Linear(5)
    p = lin.init(jax.random.key(0), x[:, 0, 0])
    assert p["params"]["kernel"].shape == (2, 5)
    assert np.abs(np.asarray(p["params"]["kernel"])).max() <= 1 / np.sqrt(2)
    y, idx = jnn.MaxPool2d(3, 2, 1, return_indices=True).apply({}, x)
    yt, it = torch.nn.MaxPool2d(3, 2, 1, return_indices=True)(torch.tensor(nhwc_to_nchw(x).copy()))
    assert_close(y, nchw_to_nhwc(yt.numpy()))
    np.testing.assert_array_equal(idx, nchw_to_nhwc(it.numpy()))
    ya = jnn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False).apply({}, x)
    yat = torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)(torch.tensor(nhwc_to_nchw(x).copy()))
    assert_close(ya, nchw_to_nhwc(yat.numpy()))


@SHARED_FIXTURE
@given(
    lead=st.lists(st.integers(1, 5), max_size=2),
    fan_in=st.integers(1, 40),
    out=st.integers(1, 40),
    bias=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_linear_matches_torch_forward_and_gradients(lead, fan_in, out, bias, seed, kernels):
    """On XLA's products and on the native kernels (``kernels``: oneDNN's sgemm for the input and weight
    gradients), any number of leading axes; the products' sums are judged by their terms' magnitudes."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((*lead, fan_in)).astype(np.float32)
    layer = jnn.Linear(out, bias=bias)
    params = layer.init(jax.random.key(seed % 1000), x)["params"]
    k = np.asarray(params["kernel"])
    b = np.asarray(params["bias"]) if bias else None
    args = (x, k) + ((b,) if bias else ())
    keys = ("kernel", "bias")[: len(args) - 1]
    y, grads, g = forward_and_vjp(lambda x, *p: layer.apply({"params": dict(zip(keys, p, strict=True))}, x), args, seed)

    def torch_linear(x, k, b, g):
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(k.T.copy(), requires_grad=True)
        bt = torch.tensor(b, requires_grad=True) if b is not None else None
        yt = F.linear(xt, wt, bt)
        yt.backward(torch.tensor(g))
        return yt.detach().numpy(), xt.grad.numpy(), wt.grad.numpy().T, None if bt is None else bt.grad.numpy()

    expected = torch_linear(x, k, b, g)
    scale = torch_linear(np.abs(x), np.abs(k), None if b is None else np.abs(b), np.abs(g))
    ours = (y, *grads)  # no bias gradient without a bias
    names = ["forward", "grad x", "grad kernel", "grad bias"][: len(ours)]
    for name, mine, theirs, mag in zip(names, ours, expected[: len(ours)], scale[: len(ours)], strict=True):
        assert_close(mine, theirs, what=name, scale=mag)


def test_import_jaxnn_does_not_import_torch():
    import subprocess
    import sys

    modules = "jaxnn, jaxnn.ops, jaxnn.nn, jaxnn.layout, jaxnn.models, jaxnn.train, jaxnn.report, jaxnn.runtime, "
    modules += (
        "jaxnn.parallel, jaxnn.checkpoint, jaxnn.data.mnist, jaxnn.data.text, jaxnn.labs.mnist, jaxnn.labs.char, "
    )
    modules += "jaxnn.interop.state_dict, jaxnn.nn.init, jaxnn.data.sequence"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("script", ["conv_basics", "pooling"])
def test_experiment_scripts_run(script, capsys):
    load_script(script).main([])
    out = capsys.readouterr().out
    assert "==" in out
    if script == "conv_basics":
        assert "28 -> 28 -> 14 -> 14 -> 7" in out and "conv2d(x, w[::-1, ::-1]): True" in out


def test_embedding_checks_closed_over_indices_under_jit():
    """Indices closed over by a jitted function are concrete: checked on the host (a ConcretizationTypeError once)."""
    import jax.numpy as jnp

    layer = jnn.Embedding(7, 3)
    indices = jnp.array([[1, 0, 6]])
    variables = layer.init(jax.random.key(0), indices)
    assert_close(jax.jit(lambda v: layer.apply(v, indices))(variables), layer.apply(variables, indices))
    bad = jnp.array([[1, 0, 9]])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 7\), got values in \[0, 9\]"):
        jax.jit(lambda v: layer.apply(v, bad))(variables)
