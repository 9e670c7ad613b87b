"""jaxnn.runtime: the CPU compiler options change the speed of a lab step, not its results."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import runtime, train
from jaxnn.models import MnistCNN


@pytest.fixture(scope="module")
def state_and_batch():
    rng = np.random.default_rng(0)
    batch = {
        "inputs": jnp.asarray(rng.standard_normal((8, 28, 28, 1)), jnp.float32),
        "labels": jnp.asarray(rng.integers(0, 10, 8), jnp.int32),
    }
    params = train.init_params(MnistCNN(), jax.random.key(0), batch["inputs"][:1])
    return train.create_train_state(MnistCNN(), params, train.adam(1e-3)), batch


def test_cpu_options_are_for_the_cpu_only():
    assert runtime.compiler_options("cpu") == runtime.CPU_COMPILER_OPTIONS
    assert runtime.compiler_options("gpu") is None and runtime.compiler_options("tpu") is None
    assert runtime.compiler_options() == runtime.compiler_options(jax.default_backend())


def test_options_move_convolutions_out_of_ynnpack_and_keep_the_results(state_and_batch):
    state, batch = state_and_batch
    key = jax.random.key(2)
    fast = jax.jit(train.train_step, compiler_options=runtime.CPU_COMPILER_OPTIONS)
    plain = jax.jit(train.train_step)

    # What the options are for: no convolution left in a (single-threaded) YNNPACK fusion. Under XLA's defaults
    # there are some, so this check can fail.
    def ynn_convs(jitted):
        return [
            line
            for line in jitted.lower(state, batch, key).compile().as_text().splitlines()
            if "__ynn_fusion" in line and "conv_general_dilated" in line
        ]

    assert not ynn_convs(fast), ynn_convs(fast)[:1]
    assert ynn_convs(plain)
    # Different convolution kernels add in different orders: the step agrees to float32 rounding.
    (s1, m1), (_s2, m2) = fast(state, batch, key), plain(state, batch, key)
    np.testing.assert_allclose(m1["loss"], m2["loss"], rtol=1e-5)
    logits1 = jax.jit(train.predict, compiler_options=runtime.CPU_COMPILER_OPTIONS)(s1, batch["inputs"])
    logits2 = jax.jit(train.predict)(s1, batch["inputs"])
    np.testing.assert_allclose(logits1, logits2, rtol=1e-5, atol=1e-6)


# A step whose scratch memory (the 128 MB sine, which the matrix product needs whole) is above both of glibc's
# limits, the 32 MB mapping threshold and a worker thread's 64 MB heap; the child reports the page faults of eight
# more calls after a first one.
_STEP_FAULTS = """
import json, resource, sys
from jaxnn import runtime
reused = runtime.reuse_step_memory() if sys.argv[1] == "reuse" else None
import jax, jax.numpy as jnp
f = jax.jit(lambda x, w: jnp.sin(x) @ w)
x, w = jnp.ones((8192, 4096)), jnp.ones((4096, 4))
f(x, w).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    y = f(x, w)
y.block_until_ready()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"reused": reused, "faults": faults, "again": runtime.reuse_step_memory(), "y": float(y[0, 0])}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings: Linux only")
def test_reuse_step_memory_stops_the_kernel_mapping_each_step_anew():
    def child(mode):
        out = subprocess.run([sys.executable, "-c", _STEP_FAULTS, mode], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    default, reused = child("default"), child("reuse")
    assert reused["reused"] is True  # the C library is glibc and JAX had not started
    assert reused["again"] is False  # JAX has started: the dispatch setting can no longer take effect
    assert reused["y"] == default["y"]
    # Without it, each call maps its scratch memory anew: 32,768 pages of 4 KB a call. With it, most calls fault
    # none (on this machine one call in eight or so still does, when a small block has split the freed one).
    assert default["faults"] > 8 * 30_000, default
    assert reused["faults"] < default["faults"] / 2, (reused, default)
