"""Checks of what callers pass in, one function per rule (a check written twice drifts).

Each raises :class:`ConfigurationError` (a ``ValueError``) whose message names the argument,
what was given and what to pass instead. ``bool`` is never a number here, although Python
says it is an ``int``: ``timeout=True`` is a mistake, not one second.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TypeGuard

from ._errors import ConfigurationError


def is_number(value: object) -> TypeGuard[int | float]:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def seconds(name: str, value: object, *, positive: bool = False) -> float:
    """A finite number of seconds, ``> 0`` with ``positive`` (else ``>= 0``)."""
    if not is_number(value) or not math.isfinite(value):
        kind = "positive, finite" if positive else "finite"
        raise ConfigurationError(f"{name} must be a {kind} number of seconds, got {value!r}")
    number = float(value)
    if number < 0 or (positive and number == 0):
        raise ConfigurationError(
            f"{name} must be {'> 0' if positive else '>= 0'} seconds, got {value!r}"
        )
    return number


def count(name: str, value: object, *, minimum: int = 1, unit: str = "") -> int:
    """An ``int`` of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = f" ({unit})" if unit else ""
        raise ConfigurationError(f"{name} must be an int >= {minimum}{what}, got {value!r}")
    return value


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP field name (RFC 9110 §5.1)
# Control characters but horizontal tab, which a field value may hold (RFC 9110 §5.5); a
# client token is stricter (printable ASCII only: ``_wire.client_token_problem``).
_FIELD_VALUE_BREAK = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_value(name: str, value: object) -> str:
    """A header value: a ``str`` without CR, LF or other control characters (a CR/LF would
    end the header and let the rest forge another)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str, got {type(value).__name__}")
    found = _FIELD_VALUE_BREAK.search(value)
    if found:  # the value itself is not quoted: an extra header may carry a credential
        raise ConfigurationError(
            f"{name} must not contain CR, LF or other control characters (found "
            f"{found.group()!r} at position {found.start()})"
        )
    return value


def api_version(value: object) -> str:
    """The ``Clerk-API-Version`` header: a non-empty header-safe ``str`` (e.g. ``2026-05-12``)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"api_version must be a non-empty str such as '2026-05-12', got {value!r}"
        )
    return header_value("api_version", value)


def extra_headers(headers: object, reserved: frozenset[str]) -> dict[str, str]:
    """``extra_headers``: a mapping of header names to ``str`` values; a name the client sets
    itself (``reserved``, lower case) is refused, compared after strip and case-fold (so
    ``"Authorization "`` cannot travel beside the real one)."""
    if not isinstance(headers, Mapping):
        raise ConfigurationError(
            f"extra_headers must be a mapping of header names to values, got "
            f"{type(headers).__name__}"
        )
    checked: dict[str, str] = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            raise ConfigurationError(
                f"extra_headers: {key!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
            )
        if key.strip().casefold() in reserved:
            raise ConfigurationError(
                f"extra_headers may not set {key!r}: the client manages it "
                "(use with_client_token() for another client token)."
            )
        checked[key] = header_value(f"extra_headers[{key!r}]", value)
    return checked


def callback(name: str, value: object) -> None:
    """``None`` or something callable (refused at construction, not at the first rotation)."""
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name} must be a function (or None), got {type(value).__name__}")
