"""The lab 11 models around :class:`jaxnn.nn.RNN` (``torch.nn.RNN``/``LSTM``/``GRU``, re-exported here): the
character model ``CharRNN`` and its sampler ``generate``, and the time-series regressor ``RNNRegressor``.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnn import checks
from jaxnn.nn import Linear
from jaxnn.nn.rnn import RNN as RNN

MAX_GENERATED = 10**6  # characters generate() writes at most (each one a step of a compiled loop)


class CharRNN(nn.Module):
    """A character model: :class:`RNN` (batch first) plus a Dense head to ``vocab_size`` logits (the labs' Net).

    With ``head=False`` the RNN outputs are the logits directly (hihello, charseq), which needs
    ``hidden_size == vocab_size``.

    ``__call__(x, h0=None, *, deterministic=True, return_state=False)``: x is ``(B, T)`` int character indices
    (one-hot encoded here) or ``(B, T, vocab_size)`` floats (the labs' one-hot input); returns ``(B, T, vocab_size)``
    logits, and the final hidden state too when ``return_state``.
    """

    vocab_size: int
    hidden_size: int
    num_layers: int = 1
    cell: str = "rnn"
    nonlinearity: str = "tanh"
    dropout: float = 0.0
    head: bool = True

    @nn.compact
    def __call__(self, x, h0=None, *, deterministic: bool = True, return_state: bool = False):
        x = jnp.asarray(x) if not isinstance(x, jax.core.Tracer) else x
        if jnp.issubdtype(x.dtype, jnp.integer):
            # Out-of-range indices would one-hot to zero vectors: refused where they can be seen (outside jit).
            if not isinstance(x, jax.core.Tracer) and x.size and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
                raise ValueError(
                    f"CharRNN: indices must lie in [0, {self.vocab_size}) (vocab_size), found values in "
                    f"[{int(x.min())}, {int(x.max())}]; under jit they cannot be checked and become zero vectors"
                )
            x = nn.one_hot(x, self.vocab_size, dtype=jnp.result_type(float))  # float32 unless x64 is on
        elif x.shape[-1] != self.vocab_size:
            raise ValueError(
                f"one-hot input must have {self.vocab_size} features (vocab_size), got shape {tuple(x.shape)}"
            )
        if not self.head and self.hidden_size != self.vocab_size:
            raise ValueError(
                f"head=False uses the RNN outputs as logits, so hidden_size ({self.hidden_size}) must "
                f"equal vocab_size ({self.vocab_size})"
            )
        out, h_n = RNN(
            self.hidden_size,
            self.num_layers,
            self.nonlinearity,
            batch_first=True,
            dropout=self.dropout,
            cell=self.cell,
            name="rnn",
        )(x, h0, deterministic=deterministic)
        logits = Linear(self.vocab_size, name="fc")(out) if self.head else out
        return (logits, h_n) if return_state else logits


def generate(
    model: CharRNN, params: Any, prompt: jax.Array, length: int, rng: jax.Array | None = None, temperature: float = 0.0
) -> jax.Array:
    """Continue ``prompt`` (``(P,)`` int indices) by ``length`` characters; greedy when ``temperature`` is 0, else
    sampled from ``softmax(logits / temperature)``. The continuation is one compiled ``lax.scan`` that carries the
    hidden state. Returns the ``(length,)`` new indices."""
    prompt = jnp.asarray(prompt)
    if prompt.ndim != 1 or prompt.shape[0] < 1:
        raise ValueError(f"prompt must be a non-empty (P,) index array, got shape {tuple(prompt.shape)}")
    if not jnp.issubdtype(prompt.dtype, jnp.integer):
        raise TypeError(f"prompt must hold integer character indices, got {prompt.dtype}")
    if not isinstance(prompt, jax.core.Tracer) and (int(prompt.min()) < 0 or int(prompt.max()) >= model.vocab_size):
        raise ValueError(
            f"prompt indices must lie in [0, {model.vocab_size}) (vocab_size), got values in "
            f"[{int(prompt.min())}, {int(prompt.max())}]"
        )
    checks.positive_int(length, "length", MAX_GENERATED)
    checks.finite(temperature, "temperature", strict=False)
    if temperature != 0 and np.float32(temperature) == 0:  # logits / 0: every sample the first character
        raise ValueError(
            f"temperature must be 0 (greedy) or at least float32's smallest positive number "
            f"({float(np.finfo(np.float32).smallest_subnormal):g}), got {temperature!r}"
        )
    rng = jax.random.key(0) if rng is None else rng
    return _generate(model, params, prompt, rng, length=length, temperature=float(temperature))


@functools.partial(jax.jit, static_argnames=("model", "length", "temperature"))
def _generate(model, params, prompt, rng, *, length, temperature):
    logits, h = model.apply({"params": params}, prompt[None], return_state=True)

    def pick(logits_t, key):
        if temperature == 0.0:
            return jnp.argmax(logits_t, -1)
        # Shifted by the largest logit (softmax is unchanged): a tiny temperature then gives the greedy choice, not
        # an overflow to +inf that picks the first positive logit.
        return jax.random.categorical(key, (logits_t - logits_t.max(-1, keepdims=True)) / temperature, axis=-1)

    first = pick(logits[0, -1], jax.random.fold_in(rng, 0))

    def body(carry, i):
        prev, h = carry
        out, h = model.apply({"params": params}, prev[None, None], h, return_state=True)
        nxt = pick(out[0, -1], jax.random.fold_in(rng, i))
        return (nxt, h), prev

    _, chars = jax.lax.scan(body, (first, h), jnp.arange(1, length + 1))
    return chars


class RNNRegressor(nn.Module):
    """Lab 11-4's ``Net``: an :class:`RNN` (batch first; an LSTM by default) and a Linear head on the output of the
    last time step. ``(B, T, features)`` float -> ``(B, output_size)``."""

    hidden_size: int
    output_size: int = 1
    num_layers: int = 1
    cell: str = "lstm"

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        out, _ = RNN(self.hidden_size, self.num_layers, batch_first=True, cell=self.cell, name="rnn")(
            x, deterministic=deterministic
        )
        return Linear(self.output_size, name="fc")(out[:, -1])
