"""No jaxnn op or layer hands XLA a convolution with a negative low padding, in its forward, VJP or JVP program.

XLA's CPU backend computes float32 convolutions with a negative low padding wrongly (openxla/xla#48713, open
upstream: wrong values and an out-of-bounds read; conv_transpose2d's weight gradient was off by up to 6 in 10 of 86
configurations with padding > dilation * (kernel_size - 1)). JAX writes such a padding where a padding crops, so
every public op and layer is traced (tracing only, nothing compiles) over a sweep of its window arguments, padding
past dilation * (kernel_size - 1) included wherever PyTorch accepts it, and the programs are walked with
``jaxnn.testing.negative_low_padding_convolutions``, nested programs (scan, custom derivatives) too.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import nn, ops
from jaxnn.testing import negative_low_padding_convolutions


def _float_outputs(out):
    """The floating leaves of an output (pooling's indices and BatchNorm's counters have no cotangent)."""
    return [leaf for leaf in jax.tree.leaves(out) if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)]


def _programs(fn, args, jvp=True):
    """``fn`` (of float arrays) as the three programs a user runs: forward, reverse mode and forward mode."""

    def vjp(*a):
        out, pull = jax.vjp(lambda *b: _float_outputs(fn(*b)), *a)
        return pull(jax.tree.map(jnp.ones_like, out))

    def jvp_(*a):
        return jax.jvp(lambda *b: _float_outputs(fn(*b)), a, jax.tree.map(jnp.ones_like, a))

    yield "forward", fn
    yield "vjp", vjp
    if jvp:
        yield "jvp", jvp_


def _assert_clean(name, fn, args, jvp=True):
    for mode, program in _programs(fn, args, jvp):
        bad = negative_low_padding_convolutions(program, *args)
        assert not bad, f"{name} ({mode}): {bad}"


def _windows():
    """Kernel, stride, dilation and every padding up to 2 past dilation * (kernel - 1), per axis pair."""
    for k, s, d in itertools.product((1, 2, 3), (1, 2, 3), (1, 2)):
        for p in range(d * (k - 1) + 3):
            yield k, s, d, p


def _rand(*shape):
    return jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)


def test_conv2d_and_convolve2d_and_conv1d():
    x, x1 = _rand(2, 9, 8, 4), _rand(2, 9, 4)
    for k, s, d, p in _windows():
        for groups, mode in ((1, "zeros"), (2, "zeros"), (1, "reflect")):
            if mode == "reflect" and p >= 8:
                continue  # PyTorch refuses a reflect padding as large as the axis
            w, w1 = _rand(k, k + 1, 4 // groups, 6), _rand(k, 4 // groups, 6)
            kw = dict(stride=s, padding=(p, p + 1), dilation=d, groups=groups)
            if (d * k - d + 1) > 9 + 2 * p:
                continue  # no output: refused
            _assert_clean(
                f"conv2d {kw} {mode}", lambda a, b, kw=kw, m=mode: ops.conv2d(a, b, padding_mode=m, **kw), (x, w)
            )
            _assert_clean(f"convolve2d {kw}", lambda a, b, kw=kw: ops.convolve2d(a, b, **kw), (x, w))
            kw1 = dict(stride=s, padding=p, dilation=d, groups=groups)
            _assert_clean(
                f"conv1d {kw1} {mode}", lambda a, b, kw=kw1, m=mode: ops.conv1d(a, b, padding_mode=m, **kw), (x1, w1)
            )
    # 'same', and a batch large enough for the sliced weight gradient (weight_grad_parts)
    for k, d in itertools.product((1, 2, 3, 4), (1, 2)):
        w = _rand(k, k, 4, 6)
        _assert_clean("conv2d same", lambda a, b, d=d: ops.conv2d(a, b, padding="same", dilation=d), (x, w))
        big = _rand(64, 5, 5, 4)
        _assert_clean("conv2d sliced", lambda a, b, d=d, k=k: ops.conv2d(a, b, padding=d * k, dilation=d), (big, w))


def test_conv_transpose2d_over_every_padding_pytorch_accepts():
    x = _rand(2, 4, 5, 4)
    for k, s, d, p in _windows():
        for groups, op in itertools.product((1, 2), range(max(s, d))):
            w = _rand(k, k + 1, 4, 6 // groups)
            kw = dict(stride=s, padding=(p, max(p - 1, 0)), output_padding=(op, 0), groups=groups, dilation=d)
            size = ops.conv_transpose_output_size(4, k, s, p, op, d)
            if size < 1:
                continue  # refused, as PyTorch refuses it
            _assert_clean(
                f"conv_transpose2d {kw}", lambda a, b, c, kw=kw: ops.conv_transpose2d(a, b, c, **kw), (x, w, _rand(6))
            )


def test_pooling_padding_and_unpooling():
    x, x1 = _rand(2, 9, 8, 3), _rand(2, 9, 3)
    for k, s, d, ceil in itertools.product((1, 2, 3), (1, 2, 3), (1, 2), (False, True)):
        for p in range(k // 2 + 1):  # PyTorch's rule: padding <= kernel_size // 2
            kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
            _assert_clean(
                f"max_pool2d {kw}", lambda a, kw=kw, d=d: ops.max_pool2d(a, dilation=d, return_indices=True, **kw), (x,)
            )
            _assert_clean(f"max_pool2d {kw}", lambda a, kw=kw, d=d: ops.max_pool2d(a, dilation=d, **kw), (x,))
            _assert_clean(f"avg_pool2d {kw}", lambda a, kw=kw: ops.avg_pool2d(a, **kw), (x,))
            _assert_clean(f"max_pool1d {kw}", lambda a, kw=kw, d=d: ops.max_pool1d(a, dilation=d, **kw), (x1,))
            _assert_clean(f"avg_pool1d {kw}", lambda a, kw=kw: ops.avg_pool1d(a, **kw), (x1,))
            y, idx = ops.max_pool2d(x, k, s, p, return_indices=True)
            _assert_clean(
                f"max_unpool2d {kw}",
                lambda a, i=idx, k=k, s=s, p=p: ops.max_unpool2d(a, i, k, s, p, output_size=x.shape[1:3]),
                (y,),
            )
    for size in (1, 3, (2, None), 7, 12):
        _assert_clean("adaptive_avg_pool2d", lambda a, o=size: ops.adaptive_avg_pool2d(a, o), (x,))
        _assert_clean("adaptive_max_pool2d", lambda a, o=size: ops.adaptive_max_pool2d(a, o, return_indices=True), (x,))
        if not isinstance(size, tuple):
            _assert_clean("adaptive_avg_pool1d", lambda a, o=size: ops.adaptive_avg_pool1d(a, o), (x1,))
    for widths, mode in itertools.product(((1, 2), (0, 3, 2, 1)), ("constant", "reflect", "replicate", "circular")):
        _assert_clean(f"pad {mode}", lambda a, w=widths, m=mode: ops.pad(a, w, mode=m), (x,))


def _layer_cases():
    """One or more instances of every public layer, with an input."""
    img, seq = _rand(2, 10, 9, 4), _rand(5, 2, 3)
    for k, s, d, p in _windows():
        yield nn.Conv2d(6, k, s, p, d), img
        yield nn.ConvTranspose2d(6, k, s, p, output_padding=s - 1, dilation=d), img
        yield nn.Conv1d(6, k, s, p, d), img[:, 0]
    yield nn.Conv2d(6, 3, padding="same", padding_mode="circular"), img
    yield nn.Linear(5), img
    yield nn.MaxPool2d(3, 2, 1, ceil_mode=True), img
    yield nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), img
    yield nn.AdaptiveAvgPool2d(3), img
    yield nn.AdaptiveMaxPool2d((2, 5)), img
    yield nn.Dropout2d(0.3), img
    yield nn.Dropout(0.3), img
    yield nn.BatchNorm2d(4), img
    yield nn.BatchNorm1d(4), img[:, 0, 0]
    yield nn.Embedding(7, 3, padding_idx=0), jnp.array([[1, 0, 6]])
    for cell in (nn.RNNCell(4), nn.LSTMCell(4), nn.GRUCell(4)):
        yield cell, seq[0]
    for kind, fused in itertools.product(("rnn", "lstm", "gru"), (True, False)):
        yield nn.RNN(4, num_layers=2, bidirectional=True, cell=kind, fused_backward=fused), seq


TRAINING_MODE = ("Dropout", "Dropout2d", "BatchNorm1d", "BatchNorm2d")  # traced in training mode, where they act


def test_every_public_layer():
    covered = set()
    for layer, x in _layer_cases():
        covered.add(type(layer).__name__)
        train = {"deterministic": False} if type(layer).__name__ in TRAINING_MODE else {}
        # Shapes are all a trace needs: no initialisation runs
        variables = jax.eval_shape(
            lambda x, layer=layer, train=train: layer.init(
                {"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, **train
            ),
            x,
        )
        params = variables.get("params", {})
        rest = {
            k: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), v) for k, v in variables.items() if k != "params"
        }

        def apply(params, *xs, layer=layer, rest=rest, train=train):
            return layer.apply(
                {"params": params, **rest}, *xs, rngs={"dropout": jax.random.key(2)}, mutable=list(rest), **train
            )

        float_x = jnp.issubdtype(x.dtype, jnp.floating)
        args = (params, x) if float_x else (params,)
        fn = apply if float_x else (lambda params, apply=apply, x=x: apply(params, x))
        # The RNN's hand-written backward has no forward mode (jax.jvp raises JAX's TypeError); fused_backward=False
        # is the plain scan, whose JVP is traced here.
        jvp = not getattr(layer, "fused_backward", False)
        _assert_clean(repr(layer).splitlines()[0], fn, args, jvp=jvp)
    classes = {name for name in nn.__all__ if isinstance(getattr(nn, name), type)}
    assert classes <= covered, f"public layers not swept: {sorted(classes - covered)}"


def test_losses():
    """The losses have no window and call no convolution; swept all the same, so that none ever hands lax one."""
    x, p, t = _rand(3, 4), jax.nn.sigmoid(_rand(3, 4)), jax.nn.sigmoid(_rand(3, 4))
    labels = jnp.array([0, 3, 1])
    _assert_clean("cross_entropy", lambda a: ops.cross_entropy(a, labels, label_smoothing=0.1), (x,))
    _assert_clean("nll_loss", lambda a: ops.nll_loss(a, labels), (x,))
    for name, loss in (
        ("mse_loss", lambda a: ops.mse_loss(a, t)),
        ("l1_loss", lambda a: ops.l1_loss(a, t)),
        ("smooth_l1_loss", lambda a: ops.smooth_l1_loss(a, t)),
        ("huber_loss", lambda a: ops.huber_loss(a, t)),
        ("binary_cross_entropy", lambda a: ops.binary_cross_entropy(jax.nn.sigmoid(a), p)),
        ("binary_cross_entropy_with_logits", lambda a: ops.binary_cross_entropy_with_logits(a, p)),
        ("kl_div", lambda a: ops.kl_div(a, p)),
    ):
        _assert_clean(name, loss, (x,))


def test_every_public_op_is_swept():
    """The op tests above name every function in ``jaxnn.ops.__all__`` that computes (not the size formulas): a
    new public op must join the sweep."""
    import inspect

    source = inspect.getsource(inspect.getmodule(test_every_public_op_is_swept))
    computing = {name for name in ops.__all__ if not name.endswith("_size")}
    missing = {name for name in computing if f"ops.{name}(" not in source}
    assert not missing, f"public ops not swept: {sorted(missing)}"


@pytest.mark.parametrize("padding", [((-1, 1), (-1, 1)), ((0, -2), (1, 0)), ((1, 1), (0, -1))])
def test_the_checker_finds_negative_low_paddings_and_only_those(padding):
    """The guard can fail: lax's own convolution with a negative low padding is reported, nested in a jit and a
    scan too; a negative high padding is not (the defect is the low side's)."""
    x, w = _rand(2, 10, 4, 2), _rand(1, 2, 2, 2)

    def conv(a, b):
        return jax.lax.conv_general_dilated(a, b, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    nested = jax.jit(lambda a, b: jax.lax.scan(lambda c, _: (c, conv(a, b)), 0.0, None, length=2)[1])
    negative_low = any(lo < 0 for lo, _ in padding)
    for fn in (conv, nested):
        assert bool(negative_low_padding_convolutions(fn, x, w)) == negative_low
