"""Recurrent networks with the semantics of ``torch.nn.RNN`` / ``LSTM`` / ``GRU``, the time loop a ``lax.scan``.

Parameters carry PyTorch's names and shapes (``weight_ih_l0`` of shape (gates*H, I), ``weight_hh_l0`` (gates*H, H),
``bias_ih_l0``, ``bias_hh_l0``, ``weight_hr_l0`` with ``proj_size``, and ``..._reverse`` for the backward direction),
initialised ``U(-1/sqrt(H), 1/sqrt(H))`` as PyTorch does; a PyTorch state_dict is therefore Flax params as it is.
Each time step is the step of the matching cell in :mod:`jaxnn.nn.recurrent`.

The input projection of every time step is one matrix multiply before the scan; the scan carries only the
recurrent part, so compile time does not grow with the sequence length.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.lax import PrecisionLike

from jaxnn import checks
from jaxnn.nn import rnn_native
from jaxnn.nn.layers import Dropout, torch_uniform
from jaxnn.nn.recurrent import CELLS, Carry, Cell, cell_step


def _scan_direction(cell: Cell, xs, carry0: Carry, weights, reverse: bool, precision, mask=None):
    """Run one layer in one direction, differentiated by autodiff of the scan. xs: (T, B, I) inputs; carry0: the
    cell's carry of (B, H); weights: (w_ih, b_ih, w_hh, b_hh, w_hr). With ``mask`` (T, B, 1) bool, a step where it
    is False keeps the carry and outputs zeros: a padded batch then gives PyTorch's packed-sequence results, in
    either direction.

    Returns outputs (T, B, H) in the original time order and the final carry."""
    w_ih, b_ih, *weights = weights
    xs_proj = jnp.matmul(xs, w_ih.T, precision=precision)  # every time step at once: (T, B, G*H)
    if b_ih is not None:
        xs_proj = xs_proj + b_ih

    def body(carry, inputs):
        if mask is None:
            carry = cell_step(cell, carry, inputs, *weights, precision=precision)
            return carry, carry[0]
        gi, valid = inputs
        new = cell_step(cell, carry, gi, *weights, precision=precision)
        carry = tuple(jnp.where(valid, n, c) for n, c in zip(new, carry, strict=True))
        return carry, jnp.where(valid, new[0], jnp.zeros_like(new[0]))

    carry, ys = jax.lax.scan(body, carry0, xs_proj if mask is None else (xs_proj, mask), reverse=reverse)
    return ys, carry


def _fused_direction(cell: Cell, xs, carry0: Carry, weights, reverse: bool, precision, mask=None):
    """:func:`_scan_direction` with the hand-written backward of :func:`_time_loop`: the same values. Its loops run
    on jaxnn's native kernels where :func:`jaxnn.nn.rnn_native.applies`."""
    native = rnn_native.applies(cell, xs, carry0, weights, mask)
    if native:  # (the outputs and the final carry: no c stack for the cotangent of its last step)
        return _time_loop(cell, reverse, precision, native, xs, carry0, weights, mask)
    carries = _time_loop(cell, reverse, precision, native, xs, carry0, weights, mask)
    ys = carries[0] if mask is None else jnp.where(mask, carries[0], jnp.zeros_like(carries[0]))
    return ys, tuple(s[0 if reverse else -1] for s in carries)


def _loop_forward(cell: Cell, reverse: bool, precision, native: bool, xs, carry0: Carry, weights, mask):
    """The time loop: every step's carry, stacked (T, B, .) in the original time order, what the cell saves for
    its backward, and with ``proj_size`` the unprojected h."""
    w_ih, b_ih, w_hh, b_hh, w_hr = weights
    xs_proj = jnp.matmul(xs, w_ih.T, precision=precision)  # every time step at once; b_ih is added in the loop
    if native:
        return (*rnn_native.loop_forward(cell, reverse, xs_proj, w_hh, b_ih, b_hh, carry0), None)
    # The transposed weight, made once: XLA's CPU product h @ w_hh.T re-reads w_hh transposed at every step.
    w_hh_t = jax.lax.optimization_barrier(jnp.transpose(w_hh))

    def body(carry, inputs):
        gi, valid = inputs
        if b_ih is not None:
            gi = gi + b_ih
        gh = jnp.matmul(carry[0], w_hh_t, precision=precision)
        if b_hh is not None:
            gh = gh + b_hh
        new, saved = cell.forward(carry, gi, gh)
        h_full = None
        if w_hr is not None:
            h_full = new[0]
            new = (jnp.matmul(h_full, w_hr.T, precision=precision), *new[1:])
        if valid is not None:
            new = tuple(jnp.where(valid, n, c) for n, c in zip(new, carry, strict=True))
        return new, (new, saved, h_full)

    _, stacked = jax.lax.scan(body, carry0, (xs_proj, mask), reverse=reverse)
    return stacked


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def _time_loop(cell: Cell, reverse: bool, precision, native: bool, xs, carry0: Carry, weights, mask):
    """One layer's input projection and time loop in one direction: the stacked carries (T, B, .) (outputs are
    carries[0]). Its VJP is written by hand: the backward loop carries only the state's cotangent and emits each
    step's gate cotangents; the gradients of the weights, the biases and the inputs are then one matrix product (or
    sum) over all steps each. A ``jax.custom_vjp``: no forward mode of its own (``RNN(fused_backward=False)`` for
    ``jax.jvp``); forward over reverse (``jax.hessian``) differentiates the backward and works.
    ``native``: both loops on jaxnn's native kernels (:mod:`jaxnn.nn.rnn_native`), first-order only; it returns the
    outputs (T, B, H) and the final carry instead."""
    return _time_loop_fwd(cell, reverse, precision, native, xs, carry0, weights, mask)[0]


def _time_loop_fwd(cell, reverse, precision, native, xs, carry0, weights, mask):
    carries, saved, h_full = _loop_forward(cell, reverse, precision, native, xs, carry0, weights, mask)
    out = (carries[0], tuple(s[0 if reverse else -1] for s in carries)) if native else carries
    return out, (xs, carry0, weights, mask, carries, saved, h_full)


def _time_loop_bwd(cell, reverse, precision, native, residuals, d_carries):
    xs, carry0, weights, mask, carries, saved, h_full = residuals
    w_ih, b_ih, w_hh, b_hh, w_hr = weights
    # The carry each step started from, in the stacks' (original) time order.
    if reverse:
        prev = tuple(jnp.concatenate([s[1:], c[None]]) for s, c in zip(carries, carry0, strict=True))
    else:
        prev = tuple(jnp.concatenate([c[None], s[:-1]]) for s, c in zip(carries, carry0, strict=True))

    def body(d_carry, inputs):
        d_step, saved_t, prev_t, new_t, valid = inputs
        total = tuple(a + b for a, b in zip(d_carry, d_step, strict=True))  # through the next step, and as output
        d_cell = total if w_hr is None else (jnp.matmul(total[0], w_hr, precision=precision), *total[1:])
        d_gi, d_gh, d_direct = cell.backward(d_cell, saved_t, prev_t, new_t)
        same = d_gi is d_gh
        if valid is not None:  # a padded step passed the carry on unchanged
            d_gi = jnp.where(valid, d_gi, jnp.zeros_like(d_gi))
            d_gh = d_gi if same else jnp.where(valid, d_gh, jnp.zeros_like(d_gh))
            d_direct = tuple(
                jnp.where(valid, jnp.zeros_like(t) if d is None else d, t) for d, t in zip(d_direct, total, strict=True)
            )
        d_out = None  # the projected h's cotangent, for w_hr's gradient
        if w_hr is not None:
            d_out = total[0] if valid is None else jnp.where(valid, total[0], jnp.zeros_like(total[0]))
        d_prev = tuple(jnp.zeros_like(t) if d is None else d for d, t in zip(d_direct, total, strict=True))
        d_prev = (d_prev[0] + jnp.matmul(d_gh, w_hh, precision=precision), *d_prev[1:])
        return d_prev, (d_gi, None if same else d_gh, d_out)

    if native:
        d_hs, d_final = d_carries
        d_gi, d_gh, d_carry0 = rnn_native.loop_backward(cell, reverse, d_hs, d_final, saved, carries, carry0, w_hh)
        d_out = None
    else:
        d_carry0 = tuple(jnp.zeros_like(c) for c in carry0)
        d_carry0, (d_gi, d_gh, d_out) = jax.lax.scan(
            body, d_carry0, (d_carries, saved, prev, carries, mask), reverse=not reverse
        )
    d_gh = d_gi if d_gh is None else d_gh
    if native:
        d_w_ih, d_w_hh, d_xs = rnn_native.products_backward(d_gi, d_gh, xs, prev[0], w_ih)
    else:
        d_w_ih = _sum_of_outer_products(d_gi, xs, precision)
        d_w_hh = _sum_of_outer_products(d_gh, prev[0], precision)
        d_xs = jnp.matmul(d_gi, w_ih, precision=precision)
    d_weights = (
        d_w_ih,
        None if b_ih is None else jnp.sum(d_gi, axis=(0, 1)),
        d_w_hh,
        None if b_hh is None else jnp.sum(d_gh, axis=(0, 1)),
        None if w_hr is None else _sum_of_outer_products(d_out, h_full, precision),
    )
    # Each cotangent in its primal's dtype (float32 inputs may meet float64 parameters, and the other way round).
    d_weights = tuple(None if d is None else d.astype(w.dtype) for d, w in zip(d_weights, weights, strict=True))
    return d_xs.astype(xs.dtype), d_carry0, d_weights, None


_time_loop.defvjp(_time_loop_fwd, _time_loop_bwd)


def _sum_of_outer_products(a, b, precision):
    """``sum_t,b a[t, b]^T b[t, b]``: (T, B, M), (T, B, N) -> (M, N), as one matrix product of the flattened
    stacks, formed as (N, M) and transposed: XLA's CPU product then reads the larger stack ``a`` as it lies."""
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return jnp.matmul(b2.T, a2, precision=precision).T


class RNN(nn.Module):
    """``torch.nn.RNN`` (``cell='rnn'``), ``LSTM`` (``'lstm'``) or ``GRU`` (``'gru'``), with PyTorch's defaults.

    ``__call__(x, h0=None, *, seq_lengths=None, deterministic=True) -> (output, h_n)``:
      x: ``(T, B, I)``, or ``(B, T, I)`` when ``batch_first``; or unbatched ``(T, I)``. Floating.
      h0: ``(D*num_layers, B, H_out)`` (``(D*num_layers, H_out)`` unbatched), zeros when None; for LSTM an
        ``(h0, c0)`` pair, c0 of size ``hidden_size``. ``H_out`` is ``proj_size`` when set, else ``hidden_size``.
      seq_lengths: ``(B,)`` integer lengths in ``1..T`` of the sequences of a padded batch, in the batch's order.
        The result is PyTorch's ``pack_padded_sequence(x, lengths, enforce_sorted=False)`` -> module ->
        ``pad_packed_sequence(..., total_length=T)``: outputs past each length are zero, ``h_n`` is each
        sequence's state at its own last step, and the reverse direction runs backwards within each length.
      output: ``(T, B, D*H_out)``, or ``(B, T, D*H_out)`` when ``batch_first``; unbatched ``(T, D*H_out)``.
      h_n: like h0 (for LSTM the pair ``(h_n, c_n)``).
    ``dropout`` applies to the outputs of every layer but the last when ``deterministic`` is False (rng
    ``'dropout'``, or PyTorch's masks: :class:`jaxnn.nn.Dropout`, drawn over the time-major ``(T, B, D*H_out)``
    as PyTorch draws them). D is 2 when ``bidirectional``. ``proj_size`` (LSTM only) projects each h to that size with
    ``weight_hr_l{k}``. There is no ``input_size``: Flax infers it from ``x``.

    ``fused_backward`` (not in PyTorch): the time loop's gradient is written by hand (a ``jax.custom_vjp``): the
    backward loop carries only the state's cotangent, and the recurrent weights' gradients are one matrix product
    after it, where autodiff of the scan accumulates them step by step. The same gradients (tests compare both
    ways in float64), faster. ``jax.grad``, ``jax.vmap`` and second order (``jax.hessian``, reverse over reverse)
    work through it; forward mode alone (``jax.jvp``, ``jax.jacfwd`` of the RNN) does not: set
    ``fused_backward=False`` for that (JAX otherwise raises "can't apply forward-mode autodiff (jvp) to a
    custom_vjp function"). With jaxnn's native kernels on (:func:`jaxnn.runtime.use_native_kernels`), float32
    layers without ``seq_lengths`` or ``proj_size`` run this loop natively on the CPU, first order only.

    Lengths are checked (range, shape, dtype) when they are concrete; under ``jit`` only their shape and dtype can
    be, and a length outside ``1..T`` then reads as if clipped to it.

    Example::

      rnn = RNN(hidden_size=2)                              # torch.nn.RNN(4, 2)
      params = rnn.init(jax.random.key(0), jnp.ones((5, 3, 4)))
      output, h_n = rnn.apply(params, jnp.ones((5, 3, 4)))  # (5, 3, 2), (1, 3, 2)
      output, h_n = rnn.apply(params, jnp.ones((5, 3, 4)), seq_lengths=jnp.array([5, 2, 4]))
    """

    hidden_size: int
    num_layers: int = 1
    nonlinearity: str = "tanh"
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    cell: str = "rnn"
    precision: PrecisionLike = None
    fused_backward: bool = True

    def _cell(self) -> Cell:
        if self.cell not in ("rnn", "lstm", "gru"):
            raise ValueError(f"cell must be one of ['gru', 'lstm', 'rnn'], got {self.cell!r}")
        if (self.cell, self.nonlinearity) not in CELLS:
            if self.nonlinearity not in ("tanh", "relu"):
                raise ValueError(f"nonlinearity must be one of ['relu', 'tanh'], got {self.nonlinearity!r}")
            raise ValueError(f"nonlinearity applies to cell='rnn' only, got {self.nonlinearity!r} with {self.cell!r}")
        checks.positive_int(self.hidden_size, "hidden_size")
        checks.positive_int(self.num_layers, "num_layers")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout <= 1.0):
            raise ValueError(f"dropout must be a number in [0, 1], got {self.dropout!r}")
        for flag in ("bias", "batch_first", "bidirectional", "fused_backward"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, got {getattr(self, flag)!r}")
        if not isinstance(self.proj_size, int) or self.proj_size < 0:
            raise ValueError(f"proj_size must be a non-negative int, got {self.proj_size!r}")
        if self.proj_size and self.cell != "lstm":
            raise ValueError(f"proj_size is supported for cell='lstm' only (as in PyTorch), got cell={self.cell!r}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size ({self.proj_size}) must be smaller than hidden_size ({self.hidden_size})")
        return CELLS[self.cell, self.nonlinearity]

    def _weight(self, name: str, shape: tuple[int, ...]) -> jax.Array:
        if self.has_variable("params", name):
            existing = tuple(self.get_variable("params", name).shape)
            if existing != tuple(shape):
                if name.startswith("weight_ih_l0") and existing[:-1] == tuple(shape[:-1]):
                    cause = f"the input has {shape[-1]} features, the parameters were made for {existing[-1]}"
                else:
                    cause = (
                        f"the parameters were made for another configuration than cell={self.cell!r}, "
                        f"hidden_size={self.hidden_size}, proj_size={self.proj_size}, "
                        f"bidirectional={self.bidirectional}"
                    )
                raise ValueError(f"{name} has shape {existing}, but this RNN needs {tuple(shape)}: {cause}")
        return self.param(name, torch_uniform(self.hidden_size), shape)

    def _check_no_extra_params(self, used: set[str]) -> None:
        """Params this RNN does not read (those of a deeper, bidirectional or biased one) are an error, not ignored."""
        if self.is_initializing() or not self.has_variable("params", next(iter(used), "")):
            return
        extra = sorted(set(self.variables.get("params", {})) - used)
        if extra:
            raise ValueError(
                f"params hold {extra}, which this RNN (cell={self.cell!r}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, bias={self.bias}, proj_size={self.proj_size}) does not use: "
                f"parameters of another configuration?"
            )

    @nn.compact
    def __call__(self, x: jax.Array, h0: Any = None, *, seq_lengths: Any = None, deterministic: bool = True):
        cell = self._cell()
        x = jnp.asarray(x)
        if x.ndim not in (2, 3):
            raise ValueError(f"x must be (T, B, I) / (B, T, I) or unbatched (T, I), got shape {tuple(x.shape)}")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"x must be floating (one-hot or features), got {x.dtype}")
        batched = x.ndim == 3
        if not batched:
            xs = x[:, None, :]
        else:
            xs = jnp.swapaxes(x, 0, 1) if self.batch_first else x  # time-major
        steps, batch = xs.shape[0], xs.shape[1]
        if steps == 0:
            raise ValueError(f"x has no time steps (shape {tuple(x.shape)}); PyTorch rejects an empty sequence too")
        mask = None if seq_lengths is None else self._mask(seq_lengths, steps, batch, batched)
        num_dirs = 2 if self.bidirectional else 1
        gates, hidden = cell.gates, self.hidden_size
        out_size = self.proj_size or hidden
        init = self._initial_state(h0, cell, batched, batch, num_dirs, x.dtype)  # cell.states arrays (L*D, B, .)

        layer_in = xs
        finals: list[Carry] = []
        used: set[str] = set()
        for layer in range(self.num_layers):
            outs = []
            for direction in range(num_dirs):
                sfx = f"l{layer}" + ("_reverse" if direction else "")
                w_ih = self._weight(f"weight_ih_{sfx}", (gates * hidden, layer_in.shape[-1]))
                w_hh = self._weight(f"weight_hh_{sfx}", (gates * hidden, out_size))
                b_ih = self._weight(f"bias_ih_{sfx}", (gates * hidden,)) if self.bias else None
                b_hh = self._weight(f"bias_hh_{sfx}", (gates * hidden,)) if self.bias else None
                w_hr = self._weight(f"weight_hr_{sfx}", (self.proj_size, hidden)) if self.proj_size else None
                kinds = (
                    ["weight_ih", "weight_hh"]
                    + ["bias_ih", "bias_hh"] * self.bias
                    + ["weight_hr"] * bool(self.proj_size)
                )
                used.update(f"{kind}_{sfx}" for kind in kinds)
                k = layer * num_dirs + direction
                # (the state takes the projection's dtype: float64 parameters make a float64 recurrence)
                dtype = jnp.result_type(layer_in, w_ih)
                carry0 = tuple(s[k].astype(dtype) for s in init)
                weights = (w_ih, b_ih, w_hh, b_hh, w_hr)
                loop = _fused_direction if self.fused_backward else _scan_direction
                ys, carry = loop(cell, layer_in, carry0, weights, bool(direction), self.precision, mask)
                outs.append(ys)
                finals.append(carry)
            layer_in = outs[0] if num_dirs == 1 else jnp.concatenate(outs, axis=-1)
            if self.dropout > 0 and layer < self.num_layers - 1:  # on the time-major (T, B, H), as PyTorch draws it
                layer_in = Dropout(self.dropout)(layer_in, deterministic=deterministic)

        self._check_no_extra_params(used)
        output = layer_in
        states = [jnp.stack(s) for s in zip(*finals, strict=True)]  # (h_n,) or (h_n, c_n), each (L*D, B, .)
        if not batched:
            output, states = output[:, 0], [s[:, 0] for s in states]
        elif self.batch_first:
            output = jnp.swapaxes(output, 0, 1)
        return output, (states[0] if cell.states == 1 else tuple(states))

    @staticmethod
    def _mask(seq_lengths, steps: int, batch: int, batched: bool) -> jax.Array:
        """``(T, B, 1)``: whether step t lies within sequence b's length."""
        lengths = seq_lengths if isinstance(seq_lengths, jax.core.Tracer) else np.asarray(seq_lengths)
        expected = (batch,) if batched else ()
        if tuple(lengths.shape) != expected and not (not batched and tuple(lengths.shape) == (1,)):
            raise ValueError(
                f"seq_lengths must have shape {expected} (one length per sequence of the batch), "
                f"got {tuple(lengths.shape)}"
            )
        if not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise TypeError(f"seq_lengths must be integers, got {lengths.dtype}")
        if not isinstance(lengths, jax.core.Tracer) and lengths.size:
            lo, hi = int(lengths.min()), int(lengths.max())
            if lo < 1 or hi > steps:
                raise ValueError(
                    f"seq_lengths must lie in [1, {steps}] (the padded length T; PyTorch rejects a "
                    f"length of 0), got values in [{lo}, {hi}]"
                )
        lengths = jnp.reshape(jnp.asarray(lengths), (-1,))
        return (jnp.arange(steps)[:, None] < lengths[None, :])[:, :, None]

    def _initial_state(self, h0, cell: Cell, batched: bool, batch: int, num_dirs: int, dtype) -> list[jax.Array]:
        """h0 as the cell's carry of stacked states, each ``(D*num_layers, B, .)``; zeros when None."""
        n = num_dirs * self.num_layers
        sizes = (self.proj_size or self.hidden_size, self.hidden_size)[: cell.states]  # h, and c for LSTM
        if h0 is None:
            return [jnp.zeros((n, batch, size), dtype) for size in sizes]
        if cell.states == 2:
            if not (isinstance(h0, (tuple, list)) and len(h0) == 2):
                raise ValueError(f"for cell={self.cell!r}, h0 must be an (h0, c0) pair")
            states = [jnp.asarray(s) for s in h0]
        else:
            states = [jnp.asarray(h0)]
        for name, s, size in zip(("h0", "c0"), states, sizes, strict=False):  # c0 only for LSTM
            shape = (n, batch, size) if batched else (n, size)
            if tuple(s.shape) != shape:
                raise ValueError(
                    f"{name} must have shape {shape} (D*num_layers, {'B, ' if batched else ''}H), got {tuple(s.shape)}"
                )
        return [(s if batched else s[:, None, :]).astype(dtype) for s in states]
