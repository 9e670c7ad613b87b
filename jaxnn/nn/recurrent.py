"""Recurrent cells with ``torch.nn.RNNCell`` / ``LSTMCell`` / ``GRUCell`` semantics: one time step each.

A cell's state is one carry: ``(h,)`` for RNN and GRU cells, ``(h, c)`` for LSTM cells. :data:`CELLS` holds the
step functions; :class:`jaxnn.models.RNN` runs the same steps over time in a ``lax.scan``.

Gate order as PyTorch: LSTM (i, f, g, o), GRU (r, z, n) with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.
Parameters carry PyTorch's names and shapes (``weight_ih`` (gates*H, I), ``weight_hh`` (gates*H, H), ``bias_ih``,
``bias_hh``), initialised ``U(-1/sqrt(H), 1/sqrt(H))`` as PyTorch does, so a PyTorch state_dict is Flax params.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.lax import PrecisionLike

from jaxnn.nn.layers import torch_uniform

Carry = tuple[jax.Array, ...]  # (h,) for RNN and GRU, (h, c) for LSTM: every cell has one carry shape


# Each cell is written once, as a forward that also returns what its hand-written backward needs ("saved"); the
# plain step is that forward's carry. backward(d_new, saved, prev, new) -> (d_gi, d_gh, d_prev): the cotangents of
# the input and hidden projections, and of the previous carry through paths other than the hidden projection (None
# where there is none). RNN's time loop uses the pair for its custom VJP (jaxnn.nn.rnn).


def _rnn_forward(activation):
    def forward(carry: Carry, gi: jax.Array, gh: jax.Array):
        return (activation(gi + gh),), ()

    return forward


def _rnn_tanh_backward(d_new: Carry, saved, prev: Carry, new: Carry):
    (h,) = new
    dz = d_new[0] * (1.0 - h * h)
    return dz, dz, (None,)


def _rnn_relu_backward(d_new: Carry, saved, prev: Carry, new: Carry):
    dz = jnp.where(new[0] > 0, d_new[0], jnp.zeros_like(d_new[0]))  # jax.nn.relu's derivative: 0 at 0
    return dz, dz, (None,)


def _gru_forward(carry: Carry, gi: jax.Array, gh: jax.Array):
    (h,) = carry
    i_r, i_z, i_n = jnp.split(gi, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
    r = nn.sigmoid(i_r + h_r)
    z = nn.sigmoid(i_z + h_z)
    n = jnp.tanh(i_n + r * h_n)
    return ((1.0 - z) * n + z * h,), jnp.concatenate([r, z, n, h_n], axis=-1)


def _gru_backward(d_new: Carry, saved, prev: Carry, new: Carry):
    (dh,) = d_new
    r, z, n, h_n = jnp.split(saved, 4, axis=-1)
    d_pre_n = dh * (1.0 - z) * (1.0 - n * n)
    d_pre_z = dh * (prev[0] - n) * z * (1.0 - z)
    d_pre_r = d_pre_n * h_n * r * (1.0 - r)
    d_gi = jnp.concatenate([d_pre_r, d_pre_z, d_pre_n], axis=-1)
    d_gh = jnp.concatenate([d_pre_r, d_pre_z, d_pre_n * r], axis=-1)
    return d_gi, d_gh, (dh * z,)


def _lstm_forward(carry: Carry, gi: jax.Array, gh: jax.Array):
    h, c = carry
    i, f, g, o = jnp.split(gi + gh, 4, axis=-1)
    i, f, g, o = nn.sigmoid(i), nn.sigmoid(f), jnp.tanh(g), nn.sigmoid(o)
    c = f * c + i * g
    return (o * jnp.tanh(c), c), jnp.concatenate([i, f, g, o], axis=-1)


def _lstm_backward(d_new: Carry, saved, prev: Carry, new: Carry):
    dh, dc = d_new
    i, f, g, o = jnp.split(saved, 4, axis=-1)
    tanh_c = jnp.tanh(new[1])
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
    dz = jnp.concatenate(
        [dc * g * i * (1.0 - i), dc * prev[1] * f * (1.0 - f), dc * i * (1.0 - g * g), dh * tanh_c * o * (1.0 - o)],
        axis=-1,
    )
    return dz, dz, (None, dc * f)


class Cell(NamedTuple):
    """One recurrent cell: its gate count, its carry's length, and one time step given the input and hidden
    projections ``gi``, ``gh`` of shape (B, gates*H): ``forward(carry, gi, gh) -> (carry, saved)``, with
    ``backward(d_carry, saved, prev_carry, carry) -> (d_gi, d_gh, d_prev)`` its hand-written derivative. The output
    of a step is carry[0]."""

    gates: int
    states: int
    forward: Callable[[Carry, jax.Array, jax.Array], tuple[Carry, Any]]
    backward: Callable[[Carry, Any, Carry, Carry], tuple[jax.Array, jax.Array, tuple]]
    name: str = ""  # "rnn_tanh", "rnn_relu", "lstm" or "gru": the cell of jaxnn's native time loop

    def step(self, carry: Carry, gi: jax.Array, gh: jax.Array) -> Carry:
        """The new carry (what ``forward`` saves for the backward is dropped, and compiled away)."""
        return self.forward(carry, gi, gh)[0]


CELLS = {
    ("rnn", "tanh"): Cell(1, 1, _rnn_forward(jnp.tanh), _rnn_tanh_backward, "rnn_tanh"),
    ("rnn", "relu"): Cell(1, 1, _rnn_forward(nn.relu), _rnn_relu_backward, "rnn_relu"),
    ("lstm", "tanh"): Cell(4, 2, _lstm_forward, _lstm_backward, "lstm"),
    ("gru", "tanh"): Cell(3, 1, _gru_forward, _gru_backward, "gru"),
}


def cell_step(cell: Cell, carry: Carry, gi: jax.Array, w_hh, b_hh, w_hr=None, precision: PrecisionLike = None):
    """One step of ``cell`` from ``carry`` given the input projection ``gi`` (B, gates*H): the hidden projection,
    the cell's update, and the LSTM output projection ``h @ w_hr.T`` when ``w_hr`` is given (``proj_size``)."""
    gh = jnp.matmul(carry[0], w_hh.T, precision=precision)
    if b_hh is not None:
        gh = gh + b_hh
    carry = cell.step(carry, gi, gh)
    if w_hr is not None:
        carry = (jnp.matmul(carry[0], w_hr.T, precision=precision), *carry[1:])
    return carry


class _CellModule(nn.Module):
    """``cell(x, hx=None)``: x ``(B, I)`` or unbatched ``(I,)``; hx as PyTorch's (zeros when None)."""

    hidden_size: int
    bias: bool = True
    precision: PrecisionLike = None

    kind = "rnn"
    nonlinearity_ = "tanh"

    def _cell(self) -> Cell:
        if not isinstance(self.hidden_size, int) or isinstance(self.hidden_size, bool) or self.hidden_size < 1:
            raise ValueError(f"hidden_size must be a positive int, got {self.hidden_size!r}")
        return CELLS[self.kind, self.nonlinearity_]

    @nn.compact
    def __call__(self, x: jax.Array, hx: Any = None):
        cell = self._cell()
        x = jnp.asarray(x)
        name = type(self).__name__
        if x.ndim not in (1, 2):
            raise ValueError(f"{name}: x must be (B, I) or unbatched (I,), got shape {tuple(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"{name}: x must be floating, got {x.dtype}")
        batched = x.ndim == 2
        x2 = x if batched else x[None]
        g, h = cell.gates * self.hidden_size, self.hidden_size
        init = torch_uniform(h)
        w_ih = self.param("weight_ih", init, (g, x2.shape[-1]))
        w_hh = self.param("weight_hh", init, (g, h))
        b_ih = self.param("bias_ih", init, (g,)) if self.bias else None
        b_hh = self.param("bias_hh", init, (g,)) if self.bias else None
        if tuple(w_ih.shape) != (g, x2.shape[-1]):
            raise ValueError(
                f"{name}: weight_ih has shape {tuple(w_ih.shape)}, but x has {x2.shape[-1]} features "
                f"(x shape {tuple(x.shape)})"
            )
        carry = self._carry(hx, cell, x2.shape[0], batched, x2.dtype)
        gi = jnp.matmul(x2, w_ih.T, precision=self.precision)
        if b_ih is not None:
            gi = gi + b_ih
        carry = cell_step(cell, carry, gi, w_hh, b_hh, precision=self.precision)
        if not batched:
            carry = tuple(s[0] for s in carry)
        return carry[0] if cell.states == 1 else carry

    def _carry(self, hx, cell: Cell, batch: int, batched: bool, dtype) -> Carry:
        shape = (batch, self.hidden_size) if batched else (self.hidden_size,)
        if hx is None:
            return (jnp.zeros((batch, self.hidden_size), dtype),) * cell.states
        states = tuple(hx) if cell.states == 2 else (hx,)
        if cell.states == 2 and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise ValueError(f"{type(self).__name__}: hx must be an (h, c) pair")
        states = tuple(jnp.asarray(s) for s in states)
        for what, s in zip(("h", "c"), states, strict=False):  # c only for LSTM
            if tuple(s.shape) != shape:
                raise ValueError(f"{type(self).__name__}: {what} must have shape {shape}, got {tuple(s.shape)}")
        return tuple((s if batched else s[None]).astype(dtype) for s in states)


class RNNCell(_CellModule):
    """``torch.nn.RNNCell``: ``h' = nonlinearity(x W_ih^T + b_ih + h W_hh^T + b_hh)``. Returns h' ``(B, H)``.

    Example::

      cell = RNNCell(hidden_size=20)                       # torch.nn.RNNCell(10, 20)
      params = cell.init(jax.random.key(0), jnp.ones((3, 10)))
      h = cell.apply(params, jnp.ones((3, 10)))            # (3, 20)
    """

    hidden_size: int
    bias: bool = True
    nonlinearity: str = "tanh"
    precision: PrecisionLike = None

    def _cell(self) -> Cell:
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be one of ['relu', 'tanh'], got {self.nonlinearity!r}")
        super()._cell()
        return CELLS["rnn", self.nonlinearity]


class LSTMCell(_CellModule):
    """``torch.nn.LSTMCell``: ``cell(x, (h, c)) -> (h', c')``, each ``(B, H)``."""

    kind = "lstm"


class GRUCell(_CellModule):
    """``torch.nn.GRUCell``: ``cell(x, h) -> h'`` ``(B, H)``."""

    kind = "gru"


__all__ = ["RNNCell", "LSTMCell", "GRUCell", "Cell", "CELLS", "cell_step"]
