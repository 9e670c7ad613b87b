"""PyTorch's losses (jaxnn.ops.loss) against torch.nn.functional: values and gradients with respect to the input,
over drawn shapes, options and reductions; float64 to 1e-12, float32 by the tolerance model. The class axis is last
in jaxnn, PyTorch's second (the K-dimensional cases move it)."""

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from jaxnn import ops
from jaxnn.testing import assert_close

SHAPES = [(5, 4), (3, 2, 4), (1, 3)]  # (*batch, C): a few, so that drawn cases share compiled programs


def _both(ours, theirs, args):
    """``(value, grad)`` of ``ours(*args)`` (jitted) and of ``theirs(*torch args)`` with respect to ``args[0]``."""
    value, grad = jax.jit(jax.value_and_grad(lambda x, *rest: ours(x, *rest).sum()))(*args)
    tensors = [torch.tensor(a) for a in args]
    tensors[0].requires_grad_(True)
    out = theirs(*tensors)
    out.sum().backward()
    return (value, grad), (out.sum().detach().numpy(), tensors[0].grad.numpy())


def _compare(ours, theirs, args64, what):
    """float64: equal to 1e-12; float32: within the tolerance model, PyTorch's float64 as the exact answer."""
    with jax.enable_x64(True):
        (v64, g64), (tv64, tg64) = _both(ours, theirs, args64)
        np.testing.assert_allclose(np.asarray(v64), tv64, rtol=1e-12, atol=1e-12, err_msg=f"{what} value")
        np.testing.assert_allclose(np.asarray(g64), tg64, rtol=1e-12, atol=1e-12, err_msg=f"{what} grad")
    args32 = [a.astype(np.float32) if a.dtype == np.float64 else a for a in args64]
    (v, g), (tv, tg) = _both(ours, theirs, args32)
    assert_close(v, tv, exact=tv64, what=f"{what} float32 value")
    assert_close(g, tg, exact=tg64, what=f"{what} float32 grad")


@given(
    shape=st.sampled_from(SHAPES),
    seed=st.integers(0, 2**16),
    weighted=st.booleans(),
    ignore=st.booleans(),
    smoothing=st.sampled_from([0.0, 0.1, 0.7]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    probabilities=st.booleans(),
)
def test_cross_entropy_and_nll_loss_match_pytorch(shape, seed, weighted, ignore, smoothing, reduction, probabilities):
    r = np.random.default_rng(seed)
    classes = shape[-1]
    x = r.standard_normal(shape) * 3
    weight = r.uniform(0.2, 2.0, classes) if weighted else None
    if probabilities:
        target = r.dirichlet(np.ones(classes), shape[:-1])
        ignore_index = -100
    else:
        target = r.integers(0, classes, shape[:-1])
        ignore_index = 1 if ignore else -100  # class 1 ignored where drawn, never all of them in a mean
        target.reshape(-1)[0] = 0
    options = dict(reduction=reduction, label_smoothing=smoothing, ignore_index=ignore_index)

    def ours(x, target, *w):
        return ops.cross_entropy(x, target, w[0] if w else None, **options)

    def theirs(x, target, *w):
        return F.cross_entropy(_class_first_t(x), _class_first_t(target), w[0] if w else None, **options)

    args = [x, target] + ([weight] if weighted else [])
    _compare(ours, theirs, args, f"cross_entropy {shape} {options} weighted={weighted}")
    if not probabilities:
        nll = dict(reduction=reduction, ignore_index=ignore_index)

        def ours_nll(x, target, *w):
            return ops.nll_loss(jax.nn.log_softmax(x, -1), target, w[0] if w else None, **nll)

        def theirs_nll(x, target, *w):
            return F.nll_loss(F.log_softmax(_class_first_t(x), 1), target, w[0] if w else None, **nll)

        _compare(ours_nll, theirs_nll, args, f"nll_loss {shape} {nll}")


def _class_first_t(t):
    """A torch tensor with its class axis moved to PyTorch's place (index targets have none: left as they are)."""
    return t.movedim(-1, 1) if t.ndim > 2 and t.is_floating_point() else t


@given(
    shape=st.sampled_from(SHAPES),
    seed=st.integers(0, 2**16),
    name=st.sampled_from(["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"]),
    size=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    weighted=st.booleans(),
    reduction=st.sampled_from(["mean", "sum", "none"]),
)
def test_regression_losses_match_pytorch(shape, seed, name, size, weighted, reduction):
    r = np.random.default_rng(seed)
    x, target = r.standard_normal(shape) * 2, r.standard_normal(shape) * 2
    options = {"reduction": reduction}
    if name == "smooth_l1_loss":
        options["beta"] = size
    if name == "huber_loss":
        options["delta"] = size or 1.5
    weight = r.uniform(0.1, 2.0, shape) if weighted and name != "smooth_l1_loss" else None
    ours = lambda x, t, *w: getattr(ops, name)(x, t, **options, **({"weight": w[0]} if w else {}))  # noqa: E731
    theirs = lambda x, t, *w: getattr(F, name)(x, t, **options, **({"weight": w[0]} if w else {}))  # noqa: E731
    _compare(ours, theirs, [x, target] + ([weight] if weight is not None else []), f"{name} {shape} {options}")


@given(
    shape=st.sampled_from(SHAPES),
    seed=st.integers(0, 2**16),
    name=st.sampled_from(["binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"]),
    option=st.booleans(),
    weighted=st.booleans(),
    reduction=st.sampled_from(["mean", "sum", "none"]),
)
def test_binary_and_kl_losses_match_pytorch(shape, seed, name, option, weighted, reduction):
    r = np.random.default_rng(seed)
    logits = r.standard_normal(shape) * 4
    options = {"reduction": reduction}
    extra = []
    if name == "binary_cross_entropy":
        x, target = 1 / (1 + np.exp(-logits)), r.uniform(0, 1, shape)
        if option:  # hard targets, and probabilities that PyTorch's log clamp at -100 reaches
            target = (target > 0.5).astype(np.float64)
            x.reshape(-1)[:1] = 0.0
    elif name == "binary_cross_entropy_with_logits":
        x, target = logits, (r.uniform(0, 1, shape) > 0.5).astype(np.float64)
        if option:
            extra = [r.uniform(0.5, 3.0, shape[-1])]  # pos_weight, one per class
    else:
        x = np.log(r.dirichlet(np.ones(shape[-1]), shape[:-1]))
        target = r.dirichlet(np.ones(shape[-1]), shape[:-1])
        target.reshape(-1)[:1] = 0.0  # a zero target: xlogy's 0
        options["log_target"] = option
        if option:
            target = np.log(target + 1e-3)
        if reduction == "none":
            options["reduction"] = "batchmean"
    weight = r.uniform(0.1, 2.0, shape) if weighted and name != "kl_div" else None

    def call(module, x, t, *rest):
        kw = dict(options)
        rest = list(rest)
        if weight is not None:
            kw["weight"] = rest.pop(0)
        if rest:
            kw["pos_weight"] = rest.pop(0)
        return getattr(module, name)(x, t, **kw)

    args = [x, target] + ([weight] if weight is not None else []) + extra
    _compare(lambda *a: call(ops, *a), lambda *a: call(F, *a), args, f"{name} {shape} {options}")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ops.cross_entropy(np.ones((3, 4)), np.array([0, 1, 4])), ValueError, r"class indices in \[0, 4\)"),
        (lambda: ops.cross_entropy(np.ones((3, 4)), np.array([0, 1])), ValueError, r"without its class axis, \(3,\)"),
        (lambda: ops.cross_entropy(np.ones((3, 4)), np.array([0, 1, 2]), reduction="avg"), ValueError, "reduction"),
        (lambda: ops.cross_entropy(np.ones((3, 4)), np.array([0, 1, 2]), np.ones(3)), ValueError, r"weight.*\(4,\)"),
        (lambda: ops.cross_entropy(np.ones((3, 4)), np.array([0, 1, 2]), label_smoothing=2), ValueError, "smoothing"),
        (lambda: ops.mse_loss(np.ones((3, 4)), np.ones((4, 3))), ValueError, r"same shape, got \(3, 4\) and \(4, 3\)"),
        (lambda: ops.mse_loss(np.ones(3), np.ones(3), weight=np.ones(2)), ValueError, r"weight.*\(3,\)"),
        (lambda: ops.huber_loss(np.ones(3), np.ones(3), delta=0), ValueError, "delta must be > 0"),
        (lambda: ops.kl_div(np.ones(3), np.ones(3), reduction="batch"), ValueError, "batchmean"),
        (lambda: ops.nll_loss(np.ones((3, 4), np.int32), np.zeros(3, np.int32)), TypeError, "floating point"),
    ],
)
def test_bad_loss_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
