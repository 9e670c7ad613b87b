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
# Under CI (CI=true) the draws are derandomized, so a CI run is reproducible; elsewhere every run explores anew.
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=bool(os.environ.get("CI")), print_blob=True)
settings.register_profile("thorough", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

RTOL, ATOL = 1e-5, 1e-6


def _np(a):
    return a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def assert_close(actual, expected, rtol=RTOL, atol=ATOL, what="", scale=None, exact=None):
    """``|actual - expected| <= atol + rtol * max(|expected|, scale)`` elementwise.

    ``scale`` is for sums that cancel: pass the same computation on absolute values (sum |a_i * b_i| instead of
    sum a_i * b_i). Two float32 implementations that add in different orders legitimately differ by about
    ``eps * sum |terms|``, which can exceed ``rtol * |result|`` when the terms nearly cancel; measured against the
    magnitude of the terms, the rtol holds for every element, and a wrong term still fails by orders of magnitude.

    ``exact`` is for the same situation where no such scale exists (a recurrent network): the float64 result of the
    same computation. An element outside the tolerance of the float32 PyTorch value then still passes if it is
    within twice PyTorch's own worst float32 error on that tensor of the exact value, i.e. if it is as accurate as
    PyTorch's float32 answer.
    """
    actual, expected = _np(actual), _np(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if scale is None and exact is None:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)
        return
    scale = np.abs(expected) if scale is None else np.maximum(np.abs(expected), _np(scale))
    err = np.abs(actual.astype(np.float64) - expected)
    bad = err > atol + rtol * scale
    if exact is not None:
        exact = _np(exact).astype(np.float64)
        torch_worst = np.abs(expected.astype(np.float64) - exact).max(initial=0.0)
        bad &= np.abs(actual.astype(np.float64) - exact) > 2 * torch_worst
    assert not bad.any(), (
        f"{what}: {bad.sum()} of {bad.size} elements differ; worst error {err.max():.3g}, "
        f"at {np.argwhere(bad)[0].tolist()}: {actual[bad][0]} vs {expected[bad][0]}"
    )


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
