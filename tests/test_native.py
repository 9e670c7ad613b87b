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
