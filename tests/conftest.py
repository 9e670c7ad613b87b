import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

# Tests run on CPU in float32, with a fixed number of threads for repeatable timings of anything that times.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from jax import monitoring  # noqa: E402

torch.set_num_threads(2)
# The lab scripts the tests start as processes keep compiled programs in JAX's persistent cache, and a test session
# gives them one of its own (pytest_configure), shared by its workers: a script run again (a resume after a SIGKILL,
# the second process of a pair) loads its programs instead of compiling them. Never the user's cache, and not in the
# test process itself, whose tests count their compilations.
jax.config.update("jax_compilation_cache_dir", None)
if jax.default_backend() != "cpu":  # JAX_PLATFORMS=cuda: parity is with full fp32, and GPUs may default to TF32
    from jaxnn import precision

    precision.set_float32_matmul_precision("highest")
torch.use_deterministic_algorithms(True, warn_only=True)

# Each example compiles new shapes, so keep examples few but varied; no deadline (first compiles are slow).
# The default profile is derandomized on every machine, so `make test` gives the same answer everywhere; the
# explore profile (HYPOTHESIS_PROFILE=explore) draws anew on every run, many more examples, to hunt for failures.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=100, deadline=None, derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# The longest tests (whole lab runs in processes, the RNN parity sweep), longest first: started first, so that the two
# workers finish together instead of one waiting for a long test that started last. `make test` prints the ten
# slowest; keep this list in step with it.
LONGEST = (
    "test_distributed.py::test_two_processes_train_like_one_process_and_resume_exactly_from_their_checkpoint",
    "test_port.py::test_port_guide_runs_on_a_pth_file",
    "test_driver.py::test_every_epoch_recipe_resumes_bit_identically_after_a_sigkill",
    "test_distributed.py::test_two_processes_train",
    "test_ops_cnn_toolkit.py::test_adaptive_pooling_matches_torch",
    "test_parallel.py::test_eight_devices_agree_with_one",
    "test_packaging.py::test_a_wheel_installed",
    "test_ops.py::test_max_pool2d_values_indices_gradients_match_torch",
    "test_rnn.py::test_rnn_matches_torch_outputs_states_and_gradients",
    "test_vgg_resnet.py::test_resnet_variant_matches_the_labs_pytorch_resnet",
    "test_distributed.py::test_a_killed_process_stops_the_other_with_a_clear_error",
    "test_resume.py::",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        return next((i for i, name in enumerate(LONGEST) if name in item.nodeid), len(LONGEST))

    items.sort(key=rank)  # stable: the rest keep their order


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        return  # an xdist worker: its controller made the session's cache, and the environment carries it
    config._jaxnn_session_cache = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxnn-tests-xla-")


def pytest_unconfigure(config):
    path = getattr(config, "_jaxnn_session_cache", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        del os.environ["JAX_COMPILATION_CACHE_DIR"]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def shared_once(tmp_path_factory, worker_id, name, build):
    """A folder that ``build(folder)`` fills once per test session, shared by xdist's workers (the folder above their
    own temporary folders; a file lock lets the first build it while the others wait). Returns the folder."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    root = base.parent if worker_id != "master" else base
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def mnist_data_dir(tmp_path_factory, worker_id):
    """A TFDS data_dir with MNIST prepared from the shipped files, once per test session for all of xdist's workers
    (:func:`shared_once`). Tests that damage a prepared dataset work on a copy (test_data_cache.py)."""
    from jaxnn.data import mnist

    return shared_once(tmp_path_factory, worker_id, "tfds", lambda folder: mnist.load_mnist(folder, verbose=False))


def forward_and_vjp(fn, args, seed, has_aux=False):
    """``fn(*args)`` and its gradients for a random float32 cotangent (drawn from ``seed``), as one compiled
    program: run eagerly, every primitive of an op and of its gradient compiles on its own, which was most of a
    parity test's time. Returns ``(out, grads, cotangent)``; with ``has_aux`` (as ``jax.vjp``'s), ``fn`` returns
    ``(out, aux)``, only ``out`` is differentiated, and ``aux`` comes fourth."""
    args = tuple(jax.numpy.asarray(a) for a in args)
    shape = jax.eval_shape(fn, *args)
    g = np.random.default_rng(seed).standard_normal((shape[0] if has_aux else shape).shape).astype(np.float32)

    def both(args, g):
        out, vjp, *aux = jax.vjp(fn, *args, has_aux=has_aux)
        return out, vjp(g), aux

    out, grads, aux = jax.jit(both)(args, g)
    return (out, grads, g, *aux)


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
    """A lab's command (what ``experiments/NAME.py`` and ``python -m jaxnn NAME`` run), or another script of
    experiments/, to call its main(argv) in this process."""
    from jaxnn.labs.registry import LABS

    if name in LABS:
        return importlib.import_module(LABS[name].command)
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_compilation_cache(monkeypatch):
    """The scripts turn on the persistent compilation cache; not inside the test process."""
    from jaxnn import runtime

    monkeypatch.setattr(runtime, "enable_compilation_cache", lambda *a, **k: None)


# For a hypothesis test that takes a function-scoped fixture its examples share (as `kernels`).
SHARED_FIXTURE = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=["xla", "native"])
def kernels(request):
    """A parity test on both paths: XLA's kernels and jaxnn's native ones (conv2d's oneDNN convolutions, the RNN's
    time loop; built by make, and without them the native case is skipped, naming why). A switch, not per-example
    state: hypothesis's examples share it (:data:`SHARED_FIXTURE`)."""
    from jaxnn import native, runtime

    if request.param == "native" and not native.available():
        pytest.skip(f"native kernels: {native.why_not()}")
    runtime.use_native_kernels(request.param == "native")
    yield request.param
    runtime.use_native_kernels(False)
