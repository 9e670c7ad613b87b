"""Checks shared by the recipes' config dataclasses: each value is checked once, in its config's __post_init__."""

from __future__ import annotations

import math


def check_ints(config, minimums: dict[str, int]) -> None:
    """Every field named in ``minimums`` is an int (not a bool) at least its minimum; else a ValueError naming it."""
    for name, minimum in minimums.items():
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_positive(config, *names: str) -> None:
    """Every named field is a finite number > 0 (a learning rate, say); else a ValueError naming it."""
    for name in names:
        value = getattr(config, name)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
