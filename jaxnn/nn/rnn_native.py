"""The time loop of :class:`jaxnn.nn.RNN` on jaxnn's native CPU kernels (``native/rnn_loop.cc``, through
``jax.ffi``), used when :func:`jaxnn.runtime.use_native_kernels` has them on.

XLA runs a ``lax.scan`` step as some 25 small kernels with a loop around them; the native loop runs a whole
layer's direction in one call forward and one backward, each step one sgemm (oneDNN's) and the cell's arithmetic
as :mod:`jaxnn.nn.recurrent` writes it. It replaces the two loops of :func:`jaxnn.nn.rnn._time_loop`, and the
products after the backward loop (:func:`products_backward`) are oneDNN's too; the input projection before the
loops stays XLA's matrix product.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxnn import native
from jaxnn.nn.recurrent import Carry, Cell

CODES = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}  # the handlers' `cell` attribute


def applies(cell: Cell, xs, carry0: Carry, weights, mask) -> bool:
    """Whether this layer runs natively: no lengths (``mask``), no projection (``proj_size``), and operands the
    native kernels take (:func:`jaxnn.native.takes`: on, the CPU, float32, nothing empty)."""
    w_ih, b_ih, w_hh, b_hh, w_hr = weights
    arrays = [xs, w_ih, w_hh, *carry0] + [b for b in (b_ih, b_hh) if b is not None]
    return cell.name in CODES and mask is None and w_hr is None and native.takes(*arrays)


def loop_forward(cell: Cell, reverse: bool, gi, w_hh, b_ih, b_hh, carry0: Carry):
    """gi (T, B, G*H): the input projection (b_ih is added in the loop, as the scan adds it); carry0: (h0,) or
    (h0, c0), each (B, H).
    Returns every step's carry, stacked (T, B, H) in the original time order, and what the backward needs: the
    cell's saved values (T, B, 4H) for LSTM and GRU, else an empty (T, B, 0)."""
    steps, batch, width = gi.shape
    hidden = w_hh.shape[1]
    c = hidden if cell.states == 2 else 0
    saved = 4 * hidden if cell.name in ("lstm", "gru") else 0
    b_ih, b_hh = (jnp.zeros((width,), gi.dtype) if b is None else b for b in (b_ih, b_hh))
    c0 = carry0[1] if cell.states == 2 else jnp.zeros((batch, 0), gi.dtype)
    shapes = ((steps, batch, hidden), (steps, batch, c), (steps, batch, saved))
    operands = (gi, jnp.transpose(w_hh), b_ih, b_hh, carry0[0], c0)
    hs, cs, saved = native.call("JaxnnRnnLoopForward", shapes, *operands, cell=CODES[cell.name], reverse=reverse)
    return ((hs, cs) if cell.states == 2 else (hs,)), saved


def loop_backward(cell: Cell, reverse: bool, d_hs, d_final: Carry, saved, carries: Carry, carry0: Carry, w_hh):
    """The backward loop of :func:`loop_forward` given the cotangents of the stacked outputs ``d_hs`` (T, B, H)
    and of the final carry ``d_final`` (the other steps' c is no output, so it has none): the cotangents of the
    input and hidden projections of every step, (T, B, G*H) each (the hidden one None where it is the input one:
    every cell but GRU), and of carry0."""
    hs = carries[0]
    steps, batch, hidden = hs.shape
    width = w_hh.shape[0]
    if cell.states == 2:
        cs, c0, d_c = carries[1], carry0[1], d_final[1]
    else:
        cs, c0 = jnp.zeros((steps, batch, 0), hs.dtype), jnp.zeros((batch, 0), hs.dtype)
        d_c = c0
    gh = (steps, batch, width) if cell.name == "gru" else (0,)
    shapes = ((steps, batch, width), gh, (batch, hidden), c0.shape)
    operands = (d_hs, d_final[0], d_c, saved, hs, cs, carry0[0], c0, w_hh)
    d_gi, d_gh, d_h0, d_c0 = native.call(
        "JaxnnRnnLoopBackward", shapes, *operands, cell=CODES[cell.name], reverse=reverse
    )
    return d_gi, (d_gh if cell.name == "gru" else None), ((d_h0, d_c0) if cell.states == 2 else (d_h0,))


def products_backward(d_gi, d_gh, xs, h_prev, w_ih):
    """The gradients of ``w_ih`` and ``w_hh`` and the inputs' cotangent from the loop's projection cotangents, on
    oneDNN's sgemm (:func:`jaxnn.native.matmul`): ``d_gi`` (T, B, G*H), ``d_gh`` the same (the very array ``d_gi``
    for every cell but GRU), ``xs`` (T, B, I), ``h_prev`` (T, B, H) the hidden state each step started from,
    ``w_ih`` (G*H, I). Where ``d_gh`` is ``d_gi`` both weights' gradients are one product over ``[xs, h_prev]``.
    Returns (G*H, I), (G*H, H) and (T, B, I). With XLA's products of these shapes the native LSTM step was slower
    than PyTorch's on an AMD EPYC (benchmarks/RESULTS.md)."""
    steps, batch, width = d_gi.shape
    inputs = xs.shape[-1]
    rows = d_gi.reshape(-1, width)
    if d_gh is d_gi:
        both = jnp.concatenate([xs, h_prev], axis=-1).reshape(steps * batch, -1)
        d_w = native.matmul(rows, both, transpose_a=True)
        d_w_ih, d_w_hh = d_w[:, :inputs], d_w[:, inputs:]
    else:
        d_w_ih = native.matmul(rows, xs.reshape(-1, inputs), transpose_a=True)
        d_w_hh = native.matmul(d_gh.reshape(-1, width), h_prev.reshape(steps * batch, -1), transpose_a=True)
    return d_w_ih, d_w_hh, native.matmul(rows, w_ih).reshape(steps, batch, inputs)
