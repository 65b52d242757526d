"""Retry decisions as pure functions of their inputs (no clock reads, no I/O, no randomness).

The client's call loop asks three questions after a failed attempt: is this failure worth
another attempt (:func:`retry_reason`), how many retries does this call allow
(:func:`allowed_retries`), and how long to wait, if at all (:func:`plan_retry`).

A connection that closed before any response (typically a pooled keep-alive connection the
server had just closed as idle) is retried at once the first time, on a new connection
(RFC 9112 §9.3.1): aiohttp's own hidden re-send of that case is switched off in ``_transport``
so that every attempt on the wire is one of ours, bounded by ``max_retries`` and counted in
``retries_taken``.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping

from ._constants import (
    RETRY_AFTER_CAP,
    RETRY_INITIAL_DELAY,
    RETRY_JITTER,
    RETRY_MAX_DELAY,
    RETRYABLE_STATUSES,
)
from ._errors import APIConnectionError, APITimeoutError
from ._types import Unset

DROPPED_CONNECTION = "connection dropped"
"""The reason of a retry after a connection closed before any response, for an operation safe
to repeat: :func:`plan_retry` sends the first such retry of a call at once."""

_DROPPED_FLAG = "_dropped_before_response"


def mark_dropped_before_response(error: APIConnectionError) -> APIConnectionError:
    """Flag ``error`` (and return it): the connection closed before any response arrived.

    Set by the transport; a flag rather than a subclass, so the error's class stays exactly
    ``APIConnectionError`` for callers.
    """
    setattr(error, _DROPPED_FLAG, True)
    return error


def dropped_before_response(error: BaseException | None) -> bool:
    """Whether ``error`` was flagged by :func:`mark_dropped_before_response`."""
    return getattr(error, _DROPPED_FLAG, False) is True


def retry_reason(
    status: int | None, error: BaseException | None, *, retry_safe: bool
) -> str | None:
    """Why this failure deserves another attempt, or ``None`` if it does not."""
    if status is None:
        if isinstance(error, APITimeoutError):
            return "timeout"
        if isinstance(error, APIConnectionError):
            if retry_safe and dropped_before_response(error):
                return DROPPED_CONNECTION
            return "connection error"
        return None
    if status in RETRYABLE_STATUSES or (status == 500 and retry_safe):
        return f"HTTP {status}"
    return None


def allowed_retries(retry_safe: bool, client_max: int, call_max: int | Unset) -> int:
    """A per-call ``max_retries`` wins; otherwise only operations safe to repeat retry.

    ``prepare_*``/``attempt_*`` send codes or use up attempts: they retry only when the caller
    opts in for that call.
    """
    if not isinstance(call_max, Unset):
        return call_max
    return client_max if retry_safe else 0


def backoff_delay(retries_taken: int, random_fraction: float) -> float:
    """Exponential backoff with jitter; ``random_fraction`` is in [0, 1)."""
    base = min(RETRY_MAX_DELAY, RETRY_INITIAL_DELAY * 2.0**retries_taken)
    return base * (1 - RETRY_JITTER * random_fraction)


def plan_retry(
    *,
    reason: str | None,
    retries_taken: int,
    max_retries: int,
    retry_after: float | None,
    remaining: float,
    random_fraction: float,
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` to give up now.

    Gives up when the failure is not retryable, the retries are used up, the server asks for a
    wait above ``RETRY_AFTER_CAP``, or the wait would overrun the call's deadline
    (``remaining`` seconds left). The call's first retry after :data:`DROPPED_CONNECTION` waits
    nothing (a stale pooled connection says nothing about the server's health; RFC 9112
    §9.3.1 lets an idempotent request go again at once on a new connection); any later retry
    backs off as usual.
    """
    if reason is None or retries_taken >= max_retries:
        return None
    if reason == DROPPED_CONNECTION and retries_taken == 0:
        delay = 0.0
    elif retry_after is not None:
        if retry_after > RETRY_AFTER_CAP:
            return None
        delay = retry_after
    else:
        delay = backoff_delay(retries_taken, random_fraction)
    return delay if delay < remaining else None


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``.

    ``Retry-After`` may be delta-seconds or an HTTP-date (RFC 9110 §10.2.3); ``now`` is the
    current Unix time, passed in so the function stays pure. Garbage yields ``None``.
    """
    millis = _get(headers, "retry-after-ms")
    if millis is not None:
        try:
            value = float(millis)
        except ValueError:
            pass
        else:
            if math.isfinite(value) and value >= 0:
                return value / 1000
    raw = _get(headers, "retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            return None
        return max(0.0, when.timestamp() - now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _get(headers: Mapping[str, str], name: str) -> str | None:
    # aiohttp's CIMultiDictProxy is case-insensitive; plain dicts (tests, callers) may not be.
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value
