"""jaxnn.runtime: the compiler options jaxnn's step functions use, and that they change speed, not results."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnn import runtime, train
from jaxnn.models import MnistCNN


@pytest.fixture(scope="module")
def state_and_batch():
    rng = np.random.default_rng(0)
    batch = {"inputs": jnp.asarray(rng.standard_normal((8, 28, 28, 1)), jnp.float32),
             "labels": jnp.asarray(rng.integers(0, 10, 8), jnp.int32)}
    return train.create_train_state(MnistCNN(), jax.random.key(0), batch["inputs"][:1], 1e-3), batch


@pytest.fixture
def fresh_options(monkeypatch):
    runtime.compiler_options.cache_clear()
    yield monkeypatch
    runtime.compiler_options.cache_clear()


def test_cpu_options_are_used_on_the_cpu_only():
    expected = runtime.CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
    assert runtime.compiler_options() == expected


def test_options_can_be_switched_off(fresh_options):
    fresh_options.setenv("JAXNN_XLA_OPTIONS", "0")
    assert runtime.compiler_options() is None


def test_users_xla_flags_win(fresh_options):
    fresh_options.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=dot")
    assert runtime.compiler_options() is None


def test_step_inside_a_users_jit_traces_as_a_plain_jit(state_and_batch):
    # Compiler options belong to the outermost jit only: nested in a user's jit the step must still trace (as a
    # plain jit), and then computes what XLA's defaults compute.
    state, batch = state_and_batch
    key = jax.random.key(1)
    nested, m_nested = jax.jit(lambda s, b, k: train.train_step(s, b, k))(state, batch, key)
    plain, m_plain, _ = jax.jit(train.train_step_with_logits)(state, batch, key)
    np.testing.assert_allclose(m_nested["loss"], m_plain["loss"], rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(nested.params), jax.tree_util.tree_leaves(plain.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_options_move_convolutions_out_of_ynnpack_and_keep_the_results(state_and_batch):
    state, batch = state_and_batch
    key = jax.random.key(2)
    fast = jax.jit(train.train_step_with_logits, compiler_options=runtime.CPU_COMPILER_OPTIONS)
    plain = jax.jit(train.train_step_with_logits)
    # What the options are for: no convolution left in a (single-threaded) YNNPACK fusion.
    ynn_convs = [line for line in fast.lower(state, batch, key).compile().as_text().splitlines()
                 if "__ynn_fusion" in line and "conv_general_dilated" in line]
    assert not ynn_convs, ynn_convs[:1]
    # Different convolution kernels add in different orders: the forward pass agrees to float32 rounding.
    (_, m1, logits1), (_, m2, logits2) = fast(state, batch, key), plain(state, batch, key)
    np.testing.assert_allclose(logits1, logits2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m1["loss"], m2["loss"], rtol=1e-5)
