"""Checks of what callers pass in, one function per rule (a check written twice drifts).

Each raises :class:`ConfigurationError` (a ``ValueError``) whose message names the argument,
what was given and what to pass instead. ``bool`` is never a number here, although Python
says it is an ``int``: ``timeout=True`` is a mistake, not one second.
"""

from __future__ import annotations

import math
from typing import TypeGuard

from ._errors import ConfigurationError


def is_number(value: object) -> TypeGuard[int | float]:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def seconds(name: str, value: object, *, positive: bool = False, hint: str = "") -> float:
    """A finite number of seconds, ``> 0`` with ``positive`` (else ``>= 0``)."""
    if not is_number(value) or not math.isfinite(value):
        kind = "positive, finite" if positive else "finite"
        raise ConfigurationError(f"{name} must be a {kind} number of seconds, got {value!r}{hint}")
    number = float(value)
    if number < 0 or (positive and number == 0):
        raise ConfigurationError(
            f"{name} must be {'> 0' if positive else '>= 0'} seconds, got {value!r}{hint}"
        )
    return number


def count(name: str, value: object, *, minimum: int = 1, unit: str = "") -> int:
    """An ``int`` of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = f" ({unit})" if unit else ""
        raise ConfigurationError(f"{name} must be an int >= {minimum}{what}, got {value!r}")
    return value
