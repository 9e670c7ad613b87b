"""The argument checks every boundary of jaxnn uses (configs, recipes, layers, the scripts' flags): each returns the
value or raises a ValueError that names the argument, its allowed range and the value given, in one line.

Bounds are PyTorch's or the machine's: a seed is a uint32 (``jax.random.key``), a step count fits the int32 step
counter of a train state and of optax, and sizes that would allocate more than the machine has are refused before
anything is allocated.

Example::

    iterations = checks.positive_int(iterations, "iterations", maximum=checks.MAX_STEPS)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_SEED = 2**32 - 1  # jax.random.key takes a uint32 (a larger Python int overflows in C)
MAX_STEPS = 2**31 - 1  # the int32 step counter of TrainState and optax's schedules
MAX_ITERATIONS = 10**7  # a compiled training loop keeps every step's loss (40 MB at this bound)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(value: Any, name: str, minimum: int | None = 0, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (None: unbounded on that side)."""
    if not _is_int(value) or (minimum is not None and value < minimum):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an int <= {maximum}, got {value!r}")
    return int(value)


def positive_int(value: Any, name: str, maximum: int | None = None) -> int:
    """``value`` as an int in ``[1, maximum]``."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return integer(value, name, 1, maximum)


def seed(value: Any, name: str = "seed") -> int:
    """A seed: an int in ``[0, 2**32)``."""
    if not _is_int(value) or not 0 <= value <= MAX_SEED:
        raise ValueError(f"{name} must be an int in [0, 2**32), got {value!r}")
    return int(value)


def finite(value: Any, name: str, minimum: float = 0.0, strict: bool = True, maximum: float | None = None) -> float:
    """``value`` as a finite float ``> minimum`` (``>= minimum`` unless ``strict``) and ``<= maximum``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    ok = ok and math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be a finite number <= {maximum:g}, got {value!r}")
    return float(value)


def fields(config: Any, ints: dict[str, int] | None = None, positive: tuple[str, ...] = ()) -> None:
    """A config dataclass's fields: each of ``ints`` an int at least its minimum (at most :data:`MAX_STEPS`),
    each of ``positive`` a finite number > 0; else a ValueError naming the field."""
    for name, minimum in (ints or {}).items():
        integer(getattr(config, name), name, minimum, MAX_STEPS)
    for name in positive:
        finite(getattr(config, name), name)
