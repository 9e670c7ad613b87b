import importlib.util
import os
from pathlib import Path

# Tests run on CPU in float32, with a fixed number of threads for repeatable timings of anything that times.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402
from jax import monitoring  # noqa: E402

torch.set_num_threads(2)
if jax.default_backend() != "cpu":  # JAX_PLATFORMS=cuda: parity is with full fp32, and GPUs may default to TF32
    jax.config.update("jax_default_matmul_precision", "highest")
torch.use_deterministic_algorithms(True, warn_only=True)

# Each example compiles new shapes, so keep examples few but varied; no deadline (first compiles are slow).
# The default profile is derandomized on every machine, so `make test` gives the same answer everywhere; the
# explore profile (HYPOTHESIS_PROFILE=explore) draws anew on every run, many more examples, to hunt for failures.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=100, deadline=None, derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def mnist_data_dir(tmp_path_factory):
    """A TFDS data_dir with MNIST prepared from the shipped files, once per test session."""
    from jaxnn.data import mnist

    data_dir = tmp_path_factory.mktemp("tfds")
    mnist.load_mnist(data_dir, verbose=False)
    return data_dir


def forward_and_vjp(fn, args, seed):
    """``fn(*args)`` and its gradients for a random float32 cotangent (drawn from ``seed``), as one compiled
    program: run eagerly, every primitive of an op and of its gradient compiles on its own, which was most of a
    parity test's time. Returns ``(out, grads, cotangent)``."""
    args = tuple(jax.numpy.asarray(a) for a in args)
    shape = jax.eval_shape(fn, *args).shape
    g = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)

    def both(args, g):
        out, vjp = jax.vjp(fn, *args)
        return out, vjp(g)

    out, grads = jax.jit(both)(args, g)
    return out, grads, g


class CompileCounter:
    """Counts XLA compilations (JAX's backend_compile events) in this process."""

    def __init__(self):
        self.count = 0
        monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            self.count += 1


COMPILES = CompileCounter()


ROOT = Path(__file__).resolve().parents[1]


def load_script(name):
    """An experiments/ script as a module, to call its main(argv) in this process."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_compilation_cache(monkeypatch):
    """The scripts turn on the persistent compilation cache; not inside the test process."""
    from jaxnn import runtime

    monkeypatch.setattr(runtime, "enable_compilation_cache", lambda *a, **k: None)
