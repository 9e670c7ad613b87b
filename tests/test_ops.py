"""jaxnn.ops against torch.nn.functional: values, indices, shapes and gradients over random configurations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED_FIXTURE, forward_and_vjp
from hypothesis import given
from hypothesis import strategies as st

from jaxnn import ops
from jaxnn.layout import hwio_to_oihw, nchw_to_nhwc, nhwc_to_nchw
from jaxnn.testing import assert_close


def to_torch(x_nhwc: np.ndarray, requires_grad=True) -> torch.Tensor:
    # .copy(): a transposed NumPy view keeps odd strides on size-1 axes, which PyTorch's CPU kernels may reject
    # ("grad_weight must be contiguous") or read as channels_last.
    return torch.tensor(nhwc_to_nchw(x_nhwc).copy(), requires_grad=requires_grad)


def torch_grad_nhwc(t: torch.Tensor) -> np.ndarray:
    return nchw_to_nhwc(t.grad.numpy())


def vjp_and_torch(jax_fn, jax_args, torch_out, torch_inputs, seed):
    """JAX forward and gradients for a random cotangent; the same cotangent is back-propagated through torch_out."""
    out, grads, g = forward_and_vjp(jax_fn, jax_args, seed)
    g_t = torch.tensor(nhwc_to_nchw(g).copy() if g.ndim in (3, 4) else g)
    torch_out.backward(g_t)
    return out, grads


def torch_conv(x, w, b, g, **kwargs):
    """F.conv2d on NHWC/HWIO numpy inputs with cotangent g: (y, grad_x, grad_w, grad_b) as NHWC/HWIO numpy."""
    xt, wt = to_torch(x), torch.tensor(hwio_to_oihw(w).copy(), requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if b is not None else None
    yt = F.conv2d(xt, wt, bt, **kwargs)
    yt.backward(torch.tensor(nhwc_to_nchw(g).copy()))
    return (
        nchw_to_nhwc(yt.detach().numpy()),
        torch_grad_nhwc(xt),
        wt.grad.numpy().transpose(2, 3, 1, 0),
        None if bt is None else bt.grad.numpy(),
    )


def check_conv_against_torch(x, w, b, seed, **kwargs):
    """Forward and every gradient of ops.conv2d against F.conv2d; sums that cancel are judged by their terms."""
    args = (x, w) if b is None else (x, w, b)
    out, grads, g = forward_and_vjp(
        lambda *a: ops.conv2d(a[0], a[1], a[2] if b is not None else None, **kwargs), args, seed
    )
    expected = torch_conv(x, w, b, g, **kwargs)
    scale = torch_conv(np.abs(x), np.abs(w), None if b is None else np.abs(b), np.abs(g), **kwargs)
    ours = (out, *grads)  # no bias gradient without a bias
    names = ["forward", "grad x", "grad weight", "grad bias"][: len(ours)]
    for name, mine, theirs, mag in zip(names, ours, expected[: len(ours)], scale[: len(ours)], strict=True):
        assert_close(mine, theirs, what=name, scale=mag)
    return out


@st.composite
def conv_cases(draw):
    batched = draw(st.booleans())
    n = draw(st.integers(1, 3)) if batched else None
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    # Any padding PyTorch accepts: past dilation * (k - 1) the input gradient's padding would be negative (issue 32)
    ph, pw = draw(st.integers(0, dh * (kh - 1) + 2)), draw(st.integers(0, dw * (kw - 1) + 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 13))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 13))
    use_bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return dict(
        n=n,
        groups=groups,
        cin=cin,
        cout=cout,
        k=(kh, kw),
        s=(sh, sw),
        d=(dh, dw),
        p=(ph, pw),
        hw=(h, w),
        bias=use_bias,
        seed=seed,
    )


@SHARED_FIXTURE
@given(case=conv_cases())
def test_conv2d_matches_torch_forward_and_gradients(case, kernels):
    r = np.random.default_rng(case["seed"])
    shape = (case["hw"][0], case["hw"][1], case["cin"])
    if case["n"]:
        shape = (case["n"],) + shape
    x = r.standard_normal(shape).astype(np.float32)
    w = r.standard_normal(case["k"] + (case["cin"] // case["groups"], case["cout"])).astype(np.float32)
    b = r.standard_normal(case["cout"]).astype(np.float32) if case["bias"] else None
    kwargs = dict(stride=case["s"], padding=case["p"], dilation=case["d"], groups=case["groups"])
    out = check_conv_against_torch(x, w, b, case["seed"], **kwargs)
    # the formula agrees with both libraries' shapes
    for axis in range(2):
        assert out.shape[-3 + axis] == ops.conv_output_size(
            case["hw"][axis], case["k"][axis], case["s"][axis], case["p"][axis], case["d"][axis]
        )


@SHARED_FIXTURE
@given(case=conv_cases(), n=st.integers(ops.conv.WEIGHT_GRAD_MIN_BATCH, ops.conv.WEIGHT_GRAD_MIN_BATCH + 9))
def test_conv2d_weight_gradient_summed_over_batch_slices_matches_torch(case, n, kernels):
    # From WEIGHT_GRAD_MIN_BATCH images on the CPU the weight gradient is a sum of convolutions over slices of the
    # batch (even and uneven slices here): the same parity with PyTorch as one convolution.
    r = np.random.default_rng(case["seed"])
    x = r.standard_normal((n, *case["hw"], case["cin"])).astype(np.float32)
    w = r.standard_normal(case["k"] + (case["cin"] // case["groups"], case["cout"])).astype(np.float32)
    b = r.standard_normal(case["cout"]).astype(np.float32) if case["bias"] else None
    kwargs = dict(stride=case["s"], padding=case["p"], dilation=case["d"], groups=case["groups"])
    check_conv_against_torch(x, w, b, case["seed"], **kwargs)


def _conv_count(fn, *args):
    return str(jax.make_jaxpr(fn)(*args)).count("conv_general_dilated[")


@pytest.mark.parametrize("n", [ops.conv.WEIGHT_GRAD_MIN_BATCH - 1, ops.conv.WEIGHT_GRAD_MIN_BATCH, 130])
def test_conv2d_weight_gradient_slices_equal_one_convolution_in_float64(n):
    rng = np.random.default_rng(n)
    x = jnp.asarray(rng.standard_normal((n, 9, 7, 4)))
    w = jnp.asarray(rng.standard_normal((3, 2, 2, 6)))
    g = jnp.asarray(rng.standard_normal((n, 5, 5, 6)))
    kwargs = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    with jax.enable_x64():
        x, w, g = x.astype(jnp.float64), w.astype(jnp.float64), g.astype(jnp.float64)

        def sliced(x, w):
            return ops.conv2d(x, w, **kwargs)

        def single(x, w):  # one lax convolution: autodiff's weight gradient is one convolution too
            return jax.lax.conv_general_dilated(
                x,
                w,
                (2, 1),
                ((1, 1), (0, 0)),
                rhs_dilation=(1, 2),
                feature_group_count=2,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )

        y, vjp = jax.vjp(sliced, x, w)
        y1, vjp1 = jax.vjp(single, x, w)
        np.testing.assert_array_equal(y, y1)
        for a, b in zip(vjp(g), vjp1(g), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        # the weight gradient's program: the forward convolution, then one per slice (or one below the threshold)
        parts = ops.conv.weight_grad_parts(n)
        assert parts == (ops.conv.WEIGHT_GRAD_PARTS if n >= ops.conv.WEIGHT_GRAD_MIN_BATCH else 1)
        assert _conv_count(lambda w: jax.vjp(lambda w: sliced(x, w), w)[1](g), w) == 1 + parts
        # forward mode: the tangent of both arguments
        _, t = jax.jvp(sliced, (x, w), (x, w))
        _, t1 = jax.jvp(single, (x, w), (x, w))
        np.testing.assert_allclose(t, t1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "x_shape, k, kwargs",
    [
        # The explore profile's draw: XLA's CPU compiler (jaxlib 0.10.2) aborted compiling its input gradient.
        ((12, 8, 2), (2, 5), dict(stride=(2, 3), padding=(1, 2), dilation=(1, 2))),
        ((1, 4, 2, 3), (2, 3), dict(stride=2, padding=1)),
        ((2, 6, 1, 1), (2, 1), dict(stride=(2, 1), padding=(1, 0))),
    ],
)
def test_conv2d_kernel_2_stride_2_padding_1_gradients_compile_and_match_torch(x_shape, k, kwargs):
    r = np.random.default_rng(7)
    x = r.standard_normal(x_shape).astype(np.float32)
    w = r.standard_normal(k + (x_shape[-1], 2)).astype(np.float32)
    check_conv_against_torch(x, w, r.standard_normal(2).astype(np.float32), 7, **kwargs)


@given(
    kh=st.integers(1, 5),
    kw=st.integers(1, 5),
    dh=st.integers(1, 3),
    dw=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_conv2d_same_padding_matches_torch(kh, kw, dh, dw, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((2, 7, 8, 3)).astype(np.float32)
    w = r.standard_normal((kh, kw, 3, 4)).astype(np.float32)
    out = check_conv_against_torch(x, w, None, seed, padding="same", dilation=(dh, dw))
    assert out.shape == (2, 7, 8, 4)


def test_conv2d_valid_padding_is_zero_padding(rng):
    x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(ops.conv2d(x, w, padding="valid"), ops.conv2d(x, w, padding=0))


def _direct_convolution_f64(x, k):
    """Textbook 'valid' convolution, float64: y[i, j] = sum_{a,b} x[i + kh-1 - a, j + kw-1 - b] k[a, b]."""
    kh, kw = k.shape
    out = np.zeros((x.shape[0] - kh + 1, x.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for a in range(kh):
                for b in range(kw):
                    out[i, j] += x[i + kh - 1 - a, j + kw - 1 - b] * k[a, b]
    return out


def test_convolve2d_is_true_convolution_and_flip_identity(rng):
    x = rng.standard_normal((7, 6)).astype(np.float32)
    k = rng.standard_normal((3, 2)).astype(np.float32)  # asymmetric, so the flip matters
    y = ops.convolve2d(x[:, :, None], k[:, :, None, None])[:, :, 0]
    assert_close(y, _direct_convolution_f64(x.astype(np.float64), k.astype(np.float64)), what="convolution")
    flipped = ops.conv2d(x[:, :, None], k[::-1, ::-1, None, None].copy())[:, :, 0]
    np.testing.assert_array_equal(np.asarray(y), np.asarray(flipped))
    assert not np.allclose(y, ops.conv2d(x[:, :, None], k[:, :, None, None])[:, :, 0])


@st.composite
def pool_cases(draw, dilation=True):
    batched = draw(st.booleans())
    n = draw(st.integers(1, 3)) if batched else None
    c = draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dh, dw = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 14))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 14))
    ceil_mode = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return dict(n=n, c=c, k=(kh, kw), s=stride, d=(dh, dw), p=(ph, pw), hw=(h, w), ceil=ceil_mode, seed=seed)


def _pool_input(case, ties=False):
    r = np.random.default_rng(case["seed"])
    shape = case["hw"] + (case["c"],)
    if case["n"]:
        shape = (case["n"],) + shape
    if ties:  # few distinct values, so windows hold tied maxima
        return r.integers(-2, 3, size=shape).astype(np.float32)
    return r.standard_normal(shape).astype(np.float32)


def _torch_stride(case):
    return case["s"] if case["s"] is not None else None


@pytest.mark.parametrize("ties", [False, True])
@given(case=pool_cases())
def test_max_pool2d_values_indices_gradients_match_torch(case, ties):
    x = _pool_input(case, ties)
    kw = dict(kernel_size=case["k"], stride=case["s"], padding=case["p"], dilation=case["d"], ceil_mode=case["ceil"])
    xt = to_torch(x)
    yt, it = F.max_pool2d(xt, return_indices=True, **kw)
    out, (gx,), g, idx = forward_and_vjp(
        lambda a: (ops.max_pool2d(a, **kw), ops.max_pool2d(a, return_indices=True, **kw)[1]),
        (x,),
        case["seed"] + 1,
        has_aux=True,
    )
    assert_close(out, nchw_to_nhwc(yt.detach().numpy()), what="values")
    np.testing.assert_array_equal(np.asarray(idx), nchw_to_nhwc(it.numpy()))
    # A window that lies wholly in the padding (possible with dilation) has value -inf and an index that can point
    # past the plane; PyTorch's backward then writes out of bounds and corrupts memory, so it must not run at all.
    if not np.isneginf(yt.detach().numpy()).any():
        yt.backward(torch.tensor(nhwc_to_nchw(g).copy()))
        assert_close(gx, torch_grad_nhwc(xt), what="grad x")
    for axis in range(2):
        assert out.shape[-3 + axis] == ops.conv_output_size(
            case["hw"][axis],
            case["k"][axis],
            (case["s"] or case["k"])[axis],
            case["p"][axis],
            case["d"][axis],
            case["ceil"],
        )


@given(
    case=pool_cases(dilation=False),
    count_include_pad=st.booleans(),
    divisor_override=st.one_of(st.none(), st.integers(1, 7)),
)
def test_avg_pool2d_matches_torch(case, count_include_pad, divisor_override):
    x = _pool_input(case)
    kw = dict(
        kernel_size=case["k"],
        stride=case["s"],
        padding=case["p"],
        ceil_mode=case["ceil"],
        count_include_pad=count_include_pad,
        divisor_override=divisor_override,
    )
    xt = to_torch(x)
    yt = F.avg_pool2d(xt, **kw)
    out, (gx,) = vjp_and_torch(lambda a: ops.avg_pool2d(a, **kw), (x,), yt, None, case["seed"])
    assert_close(out, nchw_to_nhwc(yt.detach().numpy()), what="values")
    assert_close(gx, torch_grad_nhwc(xt), what="grad x")


@given(case=pool_cases(dilation=False), bigger=st.booleans())
def test_max_unpool2d_matches_torch(case, bigger):
    x = _pool_input(case)
    k, s, p = case["k"], case["s"] or case["k"], case["p"]
    pooled, idx = ops.max_pool2d(x, k, s, p, return_indices=True)
    xt = to_torch(np.asarray(pooled))
    it = torch.tensor(nhwc_to_nchw(np.asarray(idx)).astype(np.int64))
    out_hw = None
    if bigger:
        default = [(pooled.shape[-3 + a] - 1) * s[a] - 2 * p[a] + k[a] for a in range(2)]
        out_hw = (default[0] + s[0] - 1, default[1] + s[1] - 1)
        if out_hw[0] * out_hw[1] == 0:
            out_hw = None
    default = [(pooled.shape[-3 + a] - 1) * s[a] - 2 * p[a] + k[a] for a in range(2)]
    plane = (out_hw or default)[0] * (out_hw or default)[1]
    if min(out_hw or default) < 1 or np.asarray(idx).max() >= plane:
        # With padding the pooled indices can point past the default unpooled plane; PyTorch raises, so do we.
        with pytest.raises(ValueError, match="max_unpool2d"):
            ops.max_unpool2d(pooled, idx, k, s, p, output_size=out_hw)
        return
    yt = F.max_unpool2d(xt, it, k, s, p, output_size=out_hw)
    out, (gx,) = vjp_and_torch(
        lambda a: ops.max_unpool2d(a, idx, k, s, p, output_size=out_hw), (pooled,), yt, None, case["seed"]
    )
    assert_close(out, nchw_to_nhwc(yt.detach().numpy()), what="values")
    assert_close(gx, torch_grad_nhwc(xt), what="grad x")


def test_max_unpool2d_jits_with_concrete_indices_closed_over(rng):
    # The indices' range is checked on the host when they are concrete, also when a jitted function closes over them.
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    y, idx = ops.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(jax.jit(lambda a: ops.max_unpool2d(a, idx, 2))(y), ops.max_unpool2d(y, idx, 2))
    far = idx + 100
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 36\)"):
        jax.jit(lambda a: ops.max_unpool2d(a, far, 2))(y)


def test_unpool_of_pool_keeps_maxima_in_place(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    y, idx = ops.max_pool2d(x, 2, return_indices=True)
    up = np.asarray(ops.max_unpool2d(y, idx, 2))
    mask = up != 0
    np.testing.assert_array_equal(up[mask], x[mask])
    assert mask.sum() == y.size


@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 4), st.integers(0, 3), st.integers(1, 3), st.booleans())
def test_conv_output_size_matches_torch_shapes(size, k, s, p, d, ceil):
    p = min(p, k // 2)
    ours = ops.conv_output_size(size, k, s, p, d, ceil)
    x = np.random.default_rng(size).standard_normal((size, size, 1)).astype(np.float32)
    try:
        expected = F.max_pool2d(torch.tensor(x[None, :, :, 0][None]), k, s, p, d, ceil_mode=ceil).shape[-1]
    except RuntimeError:  # "Output size is too small"
        assert ours < 1
        with pytest.raises(ValueError, match="larger than the padded input"):
            ops.max_pool2d(x, k, s, p, d, ceil)
        return
    assert ours == expected == ops.max_pool2d(x, k, s, p, d, ceil).shape[0]
    if not ceil:
        tc = F.conv2d(torch.randn(1, 1, size, size), torch.randn(1, 1, k, k), stride=s, padding=p, dilation=d)
        assert ours == tc.shape[-1]


def test_lab_cnn_size_chain():
    sizes = [28]
    for k, s, p in [(3, 1, 1), (2, 2, 0), (3, 1, 1), (2, 2, 0)]:
        sizes.append(ops.conv_output_size(sizes[-1], k, s, p))
    assert sizes == [28, 28, 14, 14, 7]
    assert ops.conv_output_size(7, 2, 2, 1) == 4  # lab 10-2's third pool


def test_ops_jit_vmap_and_grad(rng):
    x = rng.standard_normal((4, 9, 9, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 5)).astype(np.float32)

    def f(x1):  # unbatched pipeline, vmapped over the batch
        y = ops.conv2d(x1, w, stride=1, padding=1)
        y = ops.max_pool2d(y, 3, 2, 1, ceil_mode=True)
        return ops.avg_pool2d(y, 2, ceil_mode=True, count_include_pad=False).sum()

    direct = jnp.stack([f(x[i]) for i in range(4)])
    vmapped = jax.jit(jax.vmap(f))(x)
    assert_close(vmapped, direct)
    g = jax.jit(jax.grad(lambda a: jax.vmap(f)(a).sum()))(x)
    assert g.shape == x.shape and np.abs(np.asarray(g)).sum() > 0
    # A jitted max_pool2d with indices and unpool round-trips too.
    y, idx = jax.jit(lambda a: ops.max_pool2d(a, 2, return_indices=True))(x)
    up = jax.jit(lambda a, i: ops.max_unpool2d(a, i, 2, output_size=(9, 9)))(y, idx)
    assert up.shape == x.shape


@pytest.mark.parametrize("ties", [False, True, "-inf"])
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 4),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    h=st.integers(4, 13),
    w=st.integers(4, 13),
    ceil=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_max_pool2d_tiling_fast_path_matches_torch(n, c, kh, kw, h, w, ceil, seed, ties, data):
    # stride == kernel, no dilation, any padding: the pad-and-reshape path with its own first-maximum backward.
    # With "-inf", ties are drawn and every -2 becomes -inf: windows whose input taps are all -inf next to padding.
    ph, pw = data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2))
    case = dict(n=n, c=c, hw=(h, w), seed=seed)
    x = _pool_input(case, bool(ties))
    if ties == "-inf":
        x[x == -2] = -np.inf
    xt = to_torch(x)
    yt = F.max_pool2d(xt, (kh, kw), padding=(ph, pw), ceil_mode=ceil)
    out, (gx,) = vjp_and_torch(
        lambda a: ops.max_pool2d(a, (kh, kw), padding=(ph, pw), ceil_mode=ceil), (x,), yt, None, seed
    )
    assert_close(out, nchw_to_nhwc(yt.detach().numpy()), what="values")
    assert_close(gx, torch_grad_nhwc(xt), what="grad x")


# (length(s), kernel, stride, padding): with ceil_mode the last window starts inside the padded input but runs past
# its end; PyTorch's count_include_pad divisor then counts the padding it covers and not the overhang beyond it.
OVERHANG = [((6, 6), 3, 2, 1), ((5, 7), 4, 2, 1), ((4, 6), 3, (2, 3), 1), ((8, 5), 4, 3, 2), ((5, 7), 3, 3, 0)]


@pytest.mark.parametrize("hw, k, s, p", OVERHANG)
def test_avg_pool_ceil_mode_overhang_is_divided_as_pytorch_does(hw, k, s, p):
    """The drawn cases of the avg_pool tests never reach a ceil-mode window that overhangs the padding with
    count_include_pad=True (a divisor twice too large there survived them); these fixed cases do, in 2-D and 1-D."""
    pairs = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    for axis in range(2):  # each case really overhangs: the last window ends past the padded input
        n, kk, ss, pp = hw[axis], pairs(k)[axis], pairs(s)[axis], pairs(p)[axis]
        out = -(-(n + 2 * pp - kk) // ss) + 1
        assert (out - 1) * ss < n + pp and (out - 1) * ss + kk > n + 2 * pp, (hw, k, s, p)
    x = np.random.default_rng(sum(hw)).standard_normal((2, *hw, 3)).astype(np.float32)
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=True, count_include_pad=True)
    xt = to_torch(x)
    yt = F.avg_pool2d(xt, **kw)
    out, (gx,) = vjp_and_torch(lambda a: ops.avg_pool2d(a, **kw), (x,), yt, None, 0)
    assert_close(out, nchw_to_nhwc(yt.detach().numpy()), what="avg_pool2d values")
    assert_close(gx, torch_grad_nhwc(xt), what="avg_pool2d grad x")
    line = x[:, 0]  # (N, L, C)
    kw1 = {name: pairs(v)[1] if name in ("kernel_size", "stride", "padding") else v for name, v in kw.items()}
    y1 = F.avg_pool1d(torch.tensor(np.moveaxis(line, -1, 1).copy()), **kw1)
    assert_close(ops.avg_pool1d(line, **kw1), np.moveaxis(y1.numpy(), 1, -1), what="avg_pool1d values")
