"""Checking a port against PyTorch: the tolerance model and a per-layer comparison.

- :func:`assert_close`: float32 parity to rtol 1e-5 / atol 1e-6, with a ``scale`` for cancelling sums and an
  ``exact`` float64 answer for results float32 cannot pin down elementwise; NaN and infinities must stand where the
  reference has them; integers must be equal (:mod:`jaxnn.testing.tolerance`).
- :func:`compare_with_torch`: a jaxnn model against its PyTorch original on the same weights and inputs: every
  layer's output, every gradient and buffer by state_dict key, the loss over a few optimizer steps; the report names
  the first layer that diverges (:mod:`jaxnn.testing.compare`, imports torch when called).
- :func:`negative_low_padding_convolutions`: the convolutions in a traced program that XLA's CPU backend computes
  wrongly in float32 (a negative low padding, openxla/xla#48713) (:mod:`jaxnn.testing.backend`).
"""

from jaxnn.testing.backend import negative_low_padding_convolutions
from jaxnn.testing.compare import Report, Row, compare_with_torch
from jaxnn.testing.tolerance import ATOL, EXACT_FACTOR, RTOL, as_numpy, assert_close, worst_error

__all__ = [
    "ATOL",
    "EXACT_FACTOR",
    "RTOL",
    "Report",
    "Row",
    "as_numpy",
    "assert_close",
    "compare_with_torch",
    "negative_low_padding_convolutions",
    "worst_error",
]
