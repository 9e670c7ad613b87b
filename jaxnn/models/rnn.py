"""Recurrent networks with the semantics of ``torch.nn.RNN`` / ``LSTM`` / ``GRU``, the time loop a ``lax.scan``.

Parameters carry PyTorch's names and shapes (``weight_ih_l0`` of shape (gates*H, I), ``weight_hh_l0`` (gates*H, H),
``bias_ih_l0``, ``bias_hh_l0``, and ``..._reverse`` for the backward direction), both biases kept, initialised
``U(-1/sqrt(H), 1/sqrt(H))`` as PyTorch does; a PyTorch state_dict is therefore Flax params as it is.

Gate order as PyTorch: LSTM (i, f, g, o), GRU (r, z, n) with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.

The input projection of every time step is one matrix multiply before the scan; the scan carries only the
recurrent part, so compile time does not grow with the sequence length.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnn import nn as jnn

CELLS = {"rnn": 1, "lstm": 4, "gru": 3}  # gates per cell
NONLINEARITIES = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _rnn_step(nonlinearity):
    act = NONLINEARITIES[nonlinearity]

    def step(h, gi, gh):
        h = act(gi + gh)
        return h, h

    return step


def _gru_step(h, gi, gh):
    i_r, i_z, i_n = jnp.split(gi, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(i_r + h_r)
    z = jax.nn.sigmoid(i_z + h_z)
    n = jnp.tanh(i_n + r * h_n)
    h = (1.0 - z) * n + z * h
    return h, h


def _lstm_step(carry, gi, gh):
    h, c = carry
    i, f, g, o = jnp.split(gi + gh, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def _scan_direction(step, xs_proj, carry0, w_hh, b_hh, reverse: bool):
    """Run one layer in one direction. xs_proj: (T, B, G*H) input projections; carry0: (B, H) or an (h, c) pair.

    Returns outputs (T, B, H) in the original time order and the final carry."""

    def body(carry, gi):
        h = carry[0] if isinstance(carry, tuple) else carry
        gh = h @ w_hh.T
        if b_hh is not None:
            gh = gh + b_hh
        return step(carry, gi, gh)

    carry, ys = jax.lax.scan(body, carry0, xs_proj, reverse=reverse)
    return ys, carry


class RNN(nn.Module):
    """``torch.nn.RNN`` (``cell='rnn'``), ``LSTM`` (``'lstm'``) or ``GRU`` (``'gru'``).

    ``__call__(x, h0=None, *, deterministic=True) -> (output, h_n)``:
      x: ``(B, T, I)`` when ``batch_first`` else ``(T, B, I)``; or unbatched ``(T, I)``. Floating.
      h0: ``(D*num_layers, B, H)`` (``(D*num_layers, H)`` unbatched), zeros when None; for LSTM an ``(h0, c0)`` pair.
      output: ``(B, T, D*H)`` when ``batch_first`` else ``(T, B, D*H)``; unbatched ``(T, D*H)``.
      h_n: like h0 (for LSTM the pair ``(h_n, c_n)``).
    ``dropout`` applies to the outputs of every layer but the last when ``deterministic`` is False (rng
    ``'dropout'``). D is 2 when ``bidirectional``.
    """

    hidden_size: int
    num_layers: int = 1
    nonlinearity: str = "tanh"
    bias: bool = True
    batch_first: bool = True
    dropout: float = 0.0
    bidirectional: bool = False
    cell: str = "rnn"

    def _check_config(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {sorted(NONLINEARITIES)}, got {self.nonlinearity!r}")
        if self.cell != "rnn" and self.nonlinearity != "tanh":
            raise ValueError(f"nonlinearity applies to cell='rnn' only, got {self.nonlinearity!r} with {self.cell!r}")
        if not isinstance(self.hidden_size, int) or self.hidden_size < 1:
            raise ValueError(f"hidden_size must be a positive int, got {self.hidden_size!r}")
        if not isinstance(self.num_layers, int) or self.num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {self.num_layers!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def _weight(self, name: str, shape: tuple[int, ...]) -> jax.Array:
        if self.has_variable("params", name):
            existing = self.get_variable("params", name)
            if tuple(existing.shape) != tuple(shape):
                raise ValueError(f"{name} has shape {tuple(existing.shape)}, but this input needs {tuple(shape)}: "
                                 f"the input feature size {shape[-1]} does not match the parameters")
        return self.param(name, jnn.torch_uniform(self.hidden_size), shape)

    @nn.compact
    def __call__(self, x: jax.Array, h0: Any = None, *, deterministic: bool = True):
        self._check_config()
        x = jnp.asarray(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"x must be (B, T, I) / (T, B, I) or unbatched (T, I), got shape {tuple(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"x must be floating (one-hot or features), got {x.dtype}")
        batched = x.ndim == 3
        xs = x if not batched else (jnp.swapaxes(x, 0, 1) if self.batch_first else x)  # time-major
        if not batched:
            xs = xs[:, None, :]
        steps, batch, _ = xs.shape
        num_dirs = 2 if self.bidirectional else 1
        hidden = self.hidden_size
        gates = CELLS[self.cell]
        is_lstm = self.cell == "lstm"
        h_init, c_init = self._initial_state(h0, batched, batch, num_dirs, x.dtype)

        step = {"rnn": _rnn_step(self.nonlinearity), "gru": _gru_step, "lstm": _lstm_step}[self.cell]
        layer_in = xs
        h_last, c_last = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(num_dirs):
                sfx = f"l{layer}" + ("_reverse" if direction else "")
                in_size = layer_in.shape[-1]
                w_ih = self._weight(f"weight_ih_{sfx}", (gates * hidden, in_size))
                w_hh = self._weight(f"weight_hh_{sfx}", (gates * hidden, hidden))
                b_ih = self._weight(f"bias_ih_{sfx}", (gates * hidden,)) if self.bias else None
                b_hh = self._weight(f"bias_hh_{sfx}", (gates * hidden,)) if self.bias else None
                proj = layer_in @ w_ih.T  # every time step at once: (T, B, G*H)
                if b_ih is not None:
                    proj = proj + b_ih
                k = layer * num_dirs + direction
                # (the state takes the projection's dtype: float64 parameters make a float64 recurrence)
                carry0 = (h_init[k].astype(proj.dtype), c_init[k].astype(proj.dtype)) if is_lstm \
                    else h_init[k].astype(proj.dtype)
                ys, carry = _scan_direction(step, proj, carry0, w_hh, b_hh, reverse=bool(direction))
                outs.append(ys)
                h_last.append(carry[0] if is_lstm else carry)
                if is_lstm:
                    c_last.append(carry[1])
            layer_in = outs[0] if num_dirs == 1 else jnp.concatenate(outs, axis=-1)
            if self.dropout > 0 and layer < self.num_layers - 1:
                layer_in = nn.Dropout(self.dropout, deterministic=deterministic)(layer_in)

        output = layer_in
        h_n = jnp.stack(h_last)
        c_n = jnp.stack(c_last) if is_lstm else None
        if not batched:
            output, h_n = output[:, 0], h_n[:, 0]
            c_n = c_n[:, 0] if is_lstm else None
        elif self.batch_first:
            output = jnp.swapaxes(output, 0, 1)
        return output, ((h_n, c_n) if is_lstm else h_n)

    def _initial_state(self, h0, batched: bool, batch: int, num_dirs: int, dtype):
        n = num_dirs * self.num_layers
        shape = (n, batch, self.hidden_size) if batched else (n, self.hidden_size)
        is_lstm = self.cell == "lstm"
        if h0 is None:
            zeros = jnp.zeros((n, batch, self.hidden_size), dtype)
            return zeros, (zeros if is_lstm else None)
        if is_lstm:
            if not (isinstance(h0, (tuple, list)) and len(h0) == 2):
                raise ValueError("for cell='lstm', h0 must be an (h0, c0) pair")
            states = [jnp.asarray(s) for s in h0]
        else:
            states = [jnp.asarray(h0)]
        for name, s in zip(("h0", "c0"), states):
            if tuple(s.shape) != shape:
                raise ValueError(f"{name} must have shape {shape} (D*num_layers, {'B, ' if batched else ''}H), "
                                 f"got {tuple(s.shape)}")
        if not batched:
            states = [s[:, None, :] for s in states]
        states = [s.astype(dtype) for s in states]
        return states[0], (states[1] if is_lstm else None)


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
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.integer):
            x = jax.nn.one_hot(x, self.vocab_size, dtype=jnp.result_type(float))  # float32 unless x64 is on
        elif x.shape[-1] != self.vocab_size:
            raise ValueError(f"one-hot input must have {self.vocab_size} features (vocab_size), "
                             f"got shape {tuple(x.shape)}")
        if not self.head and self.hidden_size != self.vocab_size:
            raise ValueError(f"head=False uses the RNN outputs as logits, so hidden_size ({self.hidden_size}) must "
                             f"equal vocab_size ({self.vocab_size})")
        out, h_n = RNN(self.hidden_size, self.num_layers, self.nonlinearity, dropout=self.dropout, cell=self.cell,
                       name="rnn")(x, h0, deterministic=deterministic)
        logits = jnn.Linear(self.vocab_size, name="fc")(out) if self.head else out
        return (logits, h_n) if return_state else logits


def generate(model: CharRNN, params: Any, prompt: jax.Array, length: int, rng: Optional[jax.Array] = None,
             temperature: float = 0.0) -> jax.Array:
    """Continue ``prompt`` (``(P,)`` int indices) by ``length`` characters; greedy when ``temperature`` is 0, else
    sampled from ``softmax(logits / temperature)``. The continuation is one compiled ``lax.scan`` that carries the
    hidden state. Returns the ``(length,)`` new indices."""
    prompt = jnp.asarray(prompt)
    if prompt.ndim != 1 or prompt.shape[0] < 1:
        raise ValueError(f"prompt must be a non-empty (P,) index array, got shape {tuple(prompt.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    rng = jax.random.key(0) if rng is None else rng
    return _generate(model, params, prompt, length, rng, float(temperature))


@functools.partial(jax.jit, static_argnums=(0, 3, 5))  # XLA's defaults, like train.train_loop
def _generate(model, params, prompt, length, rng, temperature):
    logits, h = model.apply({"params": params}, prompt[None], return_state=True)

    def pick(logits_t, key):
        if temperature == 0.0:
            return jnp.argmax(logits_t, -1)
        return jax.random.categorical(key, logits_t / temperature, axis=-1)

    first = pick(logits[0, -1], jax.random.fold_in(rng, 0))

    def body(carry, i):
        prev, h = carry
        out, h = model.apply({"params": params}, prev[None, None], h, return_state=True)
        nxt = pick(out[0, -1], jax.random.fold_in(rng, i))
        return (nxt, h), prev

    _, chars = jax.lax.scan(body, (first, h), jnp.arange(1, length + 1))
    return chars
