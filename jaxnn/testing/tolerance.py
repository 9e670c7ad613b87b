"""The tolerance model every parity claim of jaxnn rests on: :func:`assert_close`.

An element passes when ``|actual - expected| <= atol + rtol * max(|expected|, scale)``, with two refinements for
results that float32 cannot pin down elementwise:

- ``scale``: the same computation on absolute values (``sum |a_i * b_i|`` for ``sum a_i * b_i``). Two float32
  implementations that add in different orders differ by about ``eps * sum |terms|``, which can exceed
  ``rtol * |result|`` where the terms cancel; measured against the terms, the rtol holds and a wrong term still
  fails by orders of magnitude.
- ``exact``: the float64 result of the same computation, where no such scale exists (a recurrent network, a deep
  net's gradients). An element outside the tolerance of the float32 reference still passes if its own error against
  ``exact`` is within ``EXACT_FACTOR`` (4) times the reference's worst float32 error on that tensor: it is as
  accurate as the reference, up to the spread of rounding between two summation orders. The bound is the
  reference's worst error on the whole tensor, not on each element: an element whose terms cancel carries the
  rounding of its terms, which only ``scale`` knows. A per-element bound (the reference's worst error over the
  elements no larger than this one) failed 14 of the ResNet parity tests on one cancelled element each, where
  jaxnn and PyTorch float32 are equally far from float64. With no ``scale``, a small element is therefore judged
  at the error scale of the tensor's largest ones: give ``scale`` where that matters.

Non-finite values are never "close": a NaN must stand exactly where ``expected`` has one, and an infinity where
``expected`` has the same infinity; anything else fails, on every path. Integer and boolean results must be equal.
Only real numbers are compared: a complex, string or object array is a TypeError (a complex one would lose its
imaginary part); torch's bfloat16 and float16 tensors are read as float32, which holds them exactly. A negative or
non-finite tolerance is a ValueError.

Example::

    from jaxnn.testing import assert_close
    assert_close(ops.conv2d(x, w), torch_out_nhwc, what="conv2d")          # rtol 1e-5, atol 1e-6
    assert_close(grad32, torch_grad32, exact=torch_grad64, what="grad w")   # as accurate as PyTorch's float32
"""

from __future__ import annotations

import numpy as np

RTOL = 1e-5
ATOL = 1e-6
# An element that misses the rtol/atol bound still passes where its error against the float64 answer is at most
# this many times the reference's own worst float32 error on the tensor. Measured on the ResNet/VGG variants against
# float64 on both sides (benchmarks/RESULTS.md): jaxnn's worst error per tensor is a median 1.1x PyTorch float32's
# for layer outputs and 2.0x for gradients, at most 3.7x; a wrong result is off by orders of magnitude more.
EXACT_FACTOR = 4.0


def as_numpy(value) -> np.ndarray:
    """A NumPy view of an array, a jax.Array, a torch.Tensor (detached, on the CPU; bfloat16 and other dtypes NumPy
    lacks as float32, which holds them exactly) or a Python scalar."""
    if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
        value = value.detach().cpu()
        if value.is_floating_point() and value.element_size() < 4:  # bfloat16, float16, float8: no NumPy dtype
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def _check_real(array: np.ndarray, name: str, what: str) -> None:
    """Only real numbers are compared: a complex array would lose its imaginary part, a string or object array has
    no distance."""
    if array.dtype.kind == "c":
        raise TypeError(
            f"{what + ': ' if what else ''}{name} is complex ({array.dtype}); compare its .real and .imag parts"
        )
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what + ': ' if what else ''}{name} must hold real numbers, got dtype {array.dtype}")


def _where(mask: np.ndarray) -> list[int]:
    return np.argwhere(mask)[0].tolist() if mask.ndim else []


def _fail(what: str, message: str):
    raise AssertionError(f"{what}: {message}" if what else message)


def assert_close(
    actual,
    expected,
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
    scale=None,
    exact=None,
    exact_factor: float = EXACT_FACTOR,
    what: str = "",
) -> None:
    """Assert that ``actual`` matches the reference ``expected`` by the tolerance model above.

    Args:
      actual: the result under test (any array-like, including ``jax.Array`` and ``torch.Tensor``).
      expected: the reference of the same shape (PyTorch's float32 answer, say).
      rtol, atol: the elementwise bound ``atol + rtol * max(|expected|, scale)``.
      scale: magnitudes of the terms that were summed (broadcastable to ``expected``), for cancelling sums.
      exact: the float64 answer (same shape), to accept elements as accurate as ``expected`` itself.
      exact_factor: how much farther from ``exact`` than the reference's worst element an element may be.
      what: a name for the message ("grad layer1.0.conv1.weight").

    Raises:
      AssertionError: naming ``what``, how many elements differ, the worst error and the first bad element.
      ValueError: where ``scale`` or ``exact`` are unusable (non-finite where the reference is finite, wrong shape),
        or a tolerance is negative or not finite.
      TypeError: for complex, string or object arrays (only real numbers are compared).
    """
    for name, value in (("rtol", rtol), ("atol", atol), ("exact_factor", exact_factor)):
        if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value) and value >= 0):
            raise ValueError(f"{what + ': ' if what else ''}{name} must be a finite number >= 0, got {value!r}")
    a, e = as_numpy(actual), as_numpy(expected)
    _check_real(a, "actual", what)
    _check_real(e, "expected", what)
    if exact is not None:
        exact = as_numpy(exact)
        _check_real(exact, "exact", what)
    if a.shape != e.shape:
        _fail(what, f"shape {a.shape} != {e.shape}")
    if a.dtype.kind in "biu" or e.dtype.kind in "biu":  # counters, indices, labels: equal, not close
        if not np.array_equal(a, e):
            bad = a != e
            _fail(
                what,
                f"{int(bad.sum())} of {bad.size} integer elements differ, first at {_where(bad)}: "
                f"{a[bad].ravel()[0] if bad.any() else a} vs {e[bad].ravel()[0] if bad.any() else e}",
            )
        return
    a64, e64 = a.astype(np.float64, copy=False), e.astype(np.float64, copy=False)
    finite = np.isfinite(e64)
    if not (finite.all() and np.isfinite(a64).all()):
        _check_non_finite(a64, e64, what)
    magnitude = np.abs(e64)
    if scale is not None:
        s = np.broadcast_to(np.abs(as_numpy(scale).astype(np.float64)), e.shape)
        if not np.isfinite(s[finite]).all():
            raise ValueError(f"{what}: scale is not finite where the reference is")
        magnitude = np.maximum(magnitude, s)
    with np.errstate(invalid="ignore"):  # inf - inf where both have the same infinity, checked above
        err = np.abs(a64 - e64)
    bad = finite & ~(err <= atol + rtol * magnitude)  # written so that a NaN error is bad
    if exact is not None and bad.any():
        x = exact.astype(np.float64)
        if x.shape != e.shape:
            raise ValueError(f"{what}: exact has shape {x.shape}, the reference {e.shape}")
        if not np.isfinite(x[finite]).all():
            raise ValueError(f"{what}: exact is not finite where the reference is")
        reference_worst = np.abs(e64 - x)[finite].max(initial=0.0)
        bad &= ~(np.abs(a64 - x) <= exact_factor * reference_worst)
    if bad.any():
        at = _where(bad)
        _fail(
            what,
            f"{int(bad.sum())} of {bad.size} elements differ; worst error {err[finite].max():.3g}, "
            f"first at {at}: {a64[tuple(at)]!r} vs {e64[tuple(at)]!r}",
        )


def _check_non_finite(a64: np.ndarray, e64: np.ndarray, what: str) -> None:
    """AssertionError unless ``a64`` has NaN, +inf and -inf exactly where ``e64`` has them."""
    for name, mask_a, mask_e in (
        ("NaN", np.isnan(a64), np.isnan(e64)),
        ("+inf", np.isposinf(a64), np.isposinf(e64)),
        ("-inf", np.isneginf(a64), np.isneginf(e64)),
    ):
        if (mask_a != mask_e).any():
            at = _where(mask_a != mask_e)
            where = (
                f"{name} where the reference has a number"
                if mask_a[tuple(at)]
                else f"no {name} where the reference has one"
            )
            _fail(
                what,
                f"{where}: {int((mask_a != mask_e).sum())} of {a64.size} elements, first at {at}: "
                f"{a64[tuple(at)]} vs {e64[tuple(at)]}",
            )


def worst_error(actual, expected) -> float:
    """The largest ``|actual - expected|`` over the elements (``inf`` where their non-finite values disagree)."""
    a, e = as_numpy(actual).astype(np.float64, copy=False), as_numpy(expected).astype(np.float64, copy=False)
    if a.shape != e.shape:
        return float("inf")
    if np.isfinite(a).all() and np.isfinite(e).all():  # the common case, in one pass less
        return float(np.abs(a - e).max(initial=0.0))
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    err = np.where(same, 0.0, np.abs(a - e))
    return float(np.nan_to_num(err, nan=np.inf).max(initial=0.0))
