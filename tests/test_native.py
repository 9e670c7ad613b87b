"""jaxnn's optional native kernels: a failed build is one line and no library; without the library jaxnn runs on
its XLA path (the parity of the native convolutions with PyTorch is in tests/test_ops.py, run both ways)."""

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def test_a_failed_build_is_one_line_and_leaves_no_library(tmp_path):
    out = tmp_path / "libjaxnn_native.so"
    out.write_bytes(b"an older build")
    done = subprocess.run(
        [sys.executable, str(ROOT / "native" / "build.py"), "--fail", "--out", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0 and not out.exists()
    assert done.stdout.splitlines() == ["jaxnn: native kernels not built (--fail given); jaxnn runs on its XLA path"], (
        done.stdout
    )


def test_without_the_library_the_switch_stays_off_and_conv2d_runs_on_xla(tmp_path):
    script = f"""
import numpy as np
from pathlib import Path
from jaxnn import native, ops, runtime
native.LIBRARY = Path({str(tmp_path / "missing.so")!r})
assert runtime.use_native_kernels(True) is False and not runtime.native_kernels()
assert "is not built" in native.why_not()
x, w = np.ones((1, 5, 5, 2), np.float32), np.ones((3, 3, 2, 4), np.float32)
print(float(ops.conv2d(x, w, padding=1).sum()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout) == np.float32(4 * 2 * (9 * 9 + 4 * 6 * 3 + 4 * 4))  # 3x3 window sums of a 5x5 map


def test_the_switch_is_part_of_the_jit_cache_key():
    """One jitted function, traced on each path as the switch says: the native program calls the kernels, and both
    give conv2d's numbers."""
    import jax
    import jax.numpy as jnp
    import pytest

    from jaxnn import native, ops, runtime

    if not native.available():
        pytest.skip(f"native kernels: {native.why_not()}")
    f = jax.jit(lambda x, w: ops.conv2d(x, w, stride=2, padding=1))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 7, 7, 3)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(1).standard_normal((3, 3, 3, 4)), jnp.float32)
    xla = f(x, w)
    try:
        assert runtime.use_native_kernels(True) and runtime.native_kernels()
        assert "JaxnnConvForward" in f.lower(x, w).as_text()
        np.testing.assert_allclose(f(x, w), xla, rtol=1e-5, atol=1e-5)
    finally:
        runtime.use_native_kernels(False)
    assert "JaxnnConvForward" not in f.lower(x, w).as_text()


def test_linear_gradients_take_the_native_product_when_switched_on():
    """Linear's forward stays XLA's product; its input and weight gradients are the native sgemm's, and only while
    the switch is on."""
    import jax
    import jax.numpy as jnp
    import pytest

    from jaxnn import native, runtime
    from jaxnn.nn import Linear

    if not native.available():
        pytest.skip(f"native kernels: {native.why_not()}")
    x = jnp.ones((4, 3, 5))
    params = Linear(2).init(jax.random.key(0), x)
    grad = jax.jit(jax.grad(lambda p, x: jnp.sum(Linear(2).apply(p, x) ** 2), argnums=(0, 1)))
    xla = grad(params, x)
    try:
        assert runtime.use_native_kernels(True)
        assert grad.lower(params, x).as_text().count("JaxnnMatmul") == 2
        forward = jax.jit(Linear(2).apply).lower(params, x).as_text()
        assert "JaxnnMatmul" not in forward
        for a, b in zip(jax.tree.leaves(grad(params, x)), jax.tree.leaves(xla), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    finally:
        runtime.use_native_kernels(False)
    assert "JaxnnMatmul" not in grad.lower(params, x).as_text()


def test_kernels_that_xla_runs_at_once_do_not_share_scratch_memory():
    """XLA runs independent kernels of one program on several threads at once. oneDNN's own scratchpad is one
    buffer shared by every primitive (the wheel is built without DNNL_ENABLE_CONCURRENT_EXEC), so each kernel
    brings its own: eight independent convolutions' gradients in one program, again and again, equal XLA's."""
    import jax
    import jax.numpy as jnp
    import pytest

    from jaxnn import native, ops, runtime

    if not native.available():
        pytest.skip(f"native kernels: {native.why_not()}")
    rng = np.random.default_rng(0)
    xs = [jnp.asarray(rng.standard_normal((4, 12, 12, 16)), jnp.float32) for _ in range(8)]
    ws = [jnp.asarray(rng.standard_normal((3, 3, 16, 16)), jnp.float32) for _ in range(8)]

    def loss(xs, ws):
        return sum(jnp.sum(jnp.sin(ops.conv2d(x, w, padding=1))) for x, w in zip(xs, ws, strict=True))

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))
    expected = grads(xs, ws)
    try:
        assert runtime.use_native_kernels(True)
        for _ in range(20):
            for got, want in zip(jax.tree.leaves(grads(xs, ws)), jax.tree.leaves(expected), strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    finally:
        runtime.use_native_kernels(False)


def _native_or_skip():
    import pytest

    from jaxnn import native

    if not native.available():
        pytest.skip(f"native kernels: {native.why_not()}")


def test_the_native_time_loops_tanh_and_logistic_are_within_a_few_ulp():
    """The loop's own float32 tanh and logistic (vectorised, no libm calls), read off single steps: an RNN step from
    h0 = 0 with gi = x is tanh(x); a GRU step from h0 = 1 with only the update gate's input x is logistic(x). Against
    float64 over a sweep: tanh within 1.5 ulp, the logistic within 2.5, and a NaN stays NaN."""
    import jax.numpy as jnp

    from jaxnn.nn import rnn_native
    from jaxnn.nn.recurrent import CELLS

    _native_or_skip()
    grid = np.concatenate([np.linspace(-30, 30, 60001), np.geomspace(1e-30, 30, 6001)])
    x = np.concatenate([grid, -grid, [0.0, 88.0, 89.0, -88.0, -89.0, 1e30, -1e30, np.inf, -np.inf]]).astype(np.float32)
    x = np.append(x, np.nan).astype(np.float32)
    n = x.size
    xs, zeros = jnp.asarray(x).reshape(1, n, 1), jnp.zeros((n, 1))
    (hs,), _ = rnn_native.loop_forward(CELLS["rnn", "tanh"], False, xs, jnp.zeros((1, 1)), None, None, (zeros,))
    gi = np.zeros((1, n, 3), np.float32)
    gi[0, :, 1] = x
    (zs,), _ = rnn_native.loop_forward(
        CELLS["gru", "tanh"], False, jnp.asarray(gi), jnp.zeros((3, 1)), None, None, (jnp.ones((n, 1)),)
    )
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        exact = {"tanh": np.tanh(x64), "logistic": 1 / (1 + np.exp(-x64))}
    for name, got, ulps in (("tanh", hs, 1.5), ("logistic", zs, 2.5)):
        got, want = np.asarray(got, np.float64).ravel(), exact[name]
        assert np.isnan(got[-1]) and not np.isnan(got[:-1]).any(), name
        got, want = got[:-1], want[:-1]
        normal = np.abs(want) > np.finfo(np.float32).tiny
        error = np.abs(got - want) / np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
        assert error[normal].max() <= ulps, (name, error[normal].max(), x[:-1][normal][np.argmax(error[normal])])
        assert np.abs(got - want)[~normal].max() <= 1e-38, name  # the logistic far below -87: zero or nearly


def test_an_rnn_without_lengths_runs_the_native_loop_and_with_lengths_the_scan():
    import jax
    import jax.numpy as jnp

    from jaxnn import runtime
    from jaxnn.nn import RNN

    _native_or_skip()
    model = RNN(8, cell="lstm", batch_first=True)
    x = jnp.ones((3, 5, 4))
    params = model.init(jax.random.key(0), x)

    def program(lengths=None):
        f = jax.grad(lambda p: jnp.sum(model.apply(p, x, seq_lengths=lengths)[0]))
        return jax.jit(f).lower(params).as_text()

    try:
        assert runtime.use_native_kernels(True)
        text = program()
        assert "JaxnnRnnLoopForward" in text and "JaxnnRnnLoopBackward" in text
        assert "JaxnnRnnLoop" not in program(jnp.array([5, 2, 4]))
    finally:
        runtime.use_native_kernels(False)
    assert "JaxnnRnnLoop" not in program()


def test_a_recipe_runs_on_the_native_kernels_when_its_config_says(tmp_path, monkeypatch):
    """``RunOptions.native_kernels`` (``--native_kernels`` on every epoch recipe's command line): ``@driver.recipe``
    turns the kernels on for the whole recipe and back off after it; without the library the config is refused,
    naming the field and why."""
    import pytest

    from jaxnn import native, runtime
    from jaxnn.labs import mnist
    from jaxnn.train import driver

    seen = []

    @driver.recipe
    def recipe(config, workdir):
        seen.append(runtime.native_kernels())
        return workdir

    assert recipe(driver.RunOptions(), tmp_path) == tmp_path and seen == [False]
    if native.available():
        assert recipe(driver.RunOptions(native_kernels=True), tmp_path) == tmp_path and seen == [False, True]
        assert not runtime.native_kernels()
    monkeypatch.setattr(native, "available", lambda: False)
    monkeypatch.setattr(native, "why_not", lambda: "not built here")
    with pytest.raises(ValueError, match=r"native_kernels: .* not available \(not built here\)"):
        mnist.Config(native_kernels=True)
    with pytest.raises(TypeError, match="native_kernels must be a bool"):
        mnist.Config(native_kernels="yes")
