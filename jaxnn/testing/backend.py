"""Backend defects that jaxnn routes around, as checks on a traced program (no torch needed).

XLA's CPU float32 convolution is wrong with a negative low padding (openxla/xla#48713: wrong values, an
out-of-bounds read), and JAX writes one where a convolution's padding crops: a transposed convolution whose
``padding`` exceeds ``dilation * (kernel_size - 1)``, and the input gradient of such a convolution. No jaxnn op
hands ``lax`` one; :func:`negative_low_padding_convolutions` finds them in any program, yours included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import jax
from jax.extend import core


def _equations(jaxpr: core.Jaxpr) -> Iterator[core.JaxprEqn]:
    """Every equation of ``jaxpr`` and of the jaxprs nested in it (scan, cond, custom derivatives, pjit)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in core.jaxprs_in_params(eqn.params):
            yield from _equations(sub)


def negative_low_padding_convolutions(fn: Callable, *args, **kwargs) -> list[str]:
    """The ``conv_general_dilated`` equations with a negative low padding in ``fn(*args, **kwargs)``'s program,
    nested programs included, each as a line naming its padding, shapes and dilations; ``[]`` when there is none.

    Trace what you run: a gradient's convolutions are in the program of ``jax.grad(fn)``, not of ``fn``.

    Example::

      bad = negative_low_padding_convolutions(jax.grad(loss), params, batch)
      assert not bad, bad
    """
    closed = jax.make_jaxpr(fn)(*args, **kwargs)
    found = []
    for eqn in _equations(closed.jaxpr):
        if eqn.primitive.name != "conv_general_dilated":
            continue
        padding = tuple(tuple(int(p) for p in pair) for pair in eqn.params["padding"])
        if any(lo < 0 for lo, _ in padding):
            shapes = " and ".join(str(tuple(v.aval.shape)) for v in eqn.invars)
            found.append(
                f"conv_general_dilated of {shapes}: padding {padding}, lhs_dilation "
                f"{tuple(eqn.params['lhs_dilation'])}, rhs_dilation {tuple(eqn.params['rhs_dilation'])}"
            )
    return found
