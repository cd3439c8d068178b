"""Validation of the trainer's numeric arguments (messages name the argument, the expectation and the value)."""

from __future__ import annotations

import math
from typing import Any

import numpy


def positive_int(name: str, v: Any) -> int:
    """``v`` as an int >= 1 (bools rejected); ValueError otherwise."""
    if isinstance(v, bool) or not isinstance(v, (int, numpy.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def non_negative(name: str, v: Any) -> float:
    """``v`` as a finite float >= 0; TypeError for a non-number, ValueError otherwise."""
    try:
        f = float(v)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number, got {v!r}") from exc
    if not (f >= 0 and math.isfinite(f)):
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    return f


def positive(name: str, v: Any) -> float:
    """``v`` as a finite float > 0; TypeError for a non-number, ValueError otherwise."""
    f = non_negative(name, v)
    if f == 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return f
