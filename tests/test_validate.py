"""One rule per kind of input (``clerk_sessions._validate``), the same at every entry point:
a ``bool`` is never a number, NaN and infinity are never seconds, and the message names the
argument and what to pass instead."""

from __future__ import annotations

import math
from typing import Any

import pytest

from clerk_sessions import AsyncClerkSessions, ClerkSessions, ConfigurationError, Timeout
from clerk_sessions.redis import RedisStore

URL = "http://127.0.0.1:9"  # never contacted: every case fails in the constructor

NOT_SECONDS = [True, False, math.inf, -math.inf, math.nan, "1", -1]


@pytest.mark.parametrize("value", NOT_SECONDS)
@pytest.mark.parametrize(
    "make",
    [
        lambda v: Timeout(total=v),
        lambda v: Timeout(total=1, connect=v),
        lambda v: AsyncClerkSessions(frontend_api_url=URL, timeout=v),
        lambda v: ClerkSessions(frontend_api_url=URL, timeout=v),
        lambda v: AsyncClerkSessions(frontend_api_url=URL, token_leeway=v),
        lambda v: RedisStore("redis://127.0.0.1:9", timeout=v),
        lambda v: RedisStore("redis://127.0.0.1:9", connect_timeout=v),
    ],
    ids=["Timeout.total", "Timeout.connect", "timeout", "sync timeout", "leeway", "redis", "rc"],
)
def test_what_is_not_a_number_of_seconds_is_refused_everywhere(make: Any, value: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make(value)
    assert repr(value) in str(caught.value) or "Timeout" in str(caught.value)


@pytest.mark.parametrize("value", [True, -1, 1.0, "2", None])
@pytest.mark.parametrize("name", ["max_retries", "token_cache_size", "max_connections"])
def test_what_is_not_a_count_is_refused(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"{name} must be an int >= "):
        AsyncClerkSessions(frontend_api_url=URL, **{name: value})


@pytest.mark.parametrize("name", ["token_cache_size", "max_connections"])
def test_a_size_of_zero_is_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{name} must be an int >= 1, got 0"):
        AsyncClerkSessions(frontend_api_url=URL, **{name: 0})
