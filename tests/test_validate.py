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


# -- headers, callbacks, api_version ------------------------------------------------------------


@pytest.mark.parametrize("value", ["2026\r\nX: y", "2026\n", "", "  ", 2026, None])
def test_an_api_version_that_is_not_a_header_value_is_refused_at_construction(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="api_version"):
        AsyncClerkSessions(frontend_api_url=URL, api_version=value)


@pytest.mark.parametrize("name", ["on_client_token", "on_retry"])
@pytest.mark.parametrize("value", ["x", 5, object()])
def test_a_callback_that_cannot_be_called_is_refused_at_construction(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"{name} must be a function"):
        AsyncClerkSessions(frontend_api_url=URL, **{name: value})


def test_a_views_callback_is_checked_too() -> None:
    clerk = AsyncClerkSessions(frontend_api_url=URL)
    with pytest.raises(ConfigurationError, match="on_client_token must be a function"):
        clerk.with_client_token("other", on_client_token="save")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({"X-Trace": "a\r\nInjected: 1"}, "must not contain CR, LF"),
        ({"X-Trace": 5}, "must be a str"),
        ({"Bad Name": "x"}, "is not a header name"),
        ({"X\r\nY": "x"}, "is not a header name"),
        ({"Authorization ": "x"}, "is not a header name"),  # not beside the real one
        ({"authorization": "x"}, "may not set"),
        ({"CLERK-API-VERSION": "x"}, "may not set"),
        ([("X-Trace", "1")], "must be a mapping"),
    ],
)
@pytest.mark.anyio
async def test_extra_headers_that_could_forge_or_break_a_request_are_refused_before_sending(
    headers: Any, match: str
) -> None:
    async with AsyncClerkSessions(frontend_api_url=URL, max_retries=0) as clerk:
        with pytest.raises(ConfigurationError, match=match):
            await clerk.get_session("sess_1", extra_headers=headers)


@pytest.mark.anyio
async def test_a_refused_header_value_is_not_quoted_in_the_error() -> None:
    """An extra header may carry a credential of the caller's: the message says where the
    bad character is, never the value."""
    canary = "canary-credential-1234"
    async with AsyncClerkSessions(frontend_api_url=URL, max_retries=0) as clerk:
        with pytest.raises(ConfigurationError) as caught:
            await clerk.get_session("sess_1", extra_headers={"X-Key": f"{canary}\r\nX: y"})
    assert canary not in str(caught.value)
    assert "position 22" in str(caught.value)


# -- hosts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:3000", "http://[::1]"])
def test_plain_http_is_allowed_for_literal_loopback_hosts(url: str) -> None:
    assert AsyncClerkSessions(frontend_api_url=url).frontend_api_url == url


@pytest.mark.parametrize("url", ["http://evil.localhost", "http://app.localhost:3000"])
def test_a_name_under_localhost_is_not_loopback_it_may_resolve_anywhere(url: str) -> None:
    with pytest.raises(ConfigurationError, match="plain http"):
        AsyncClerkSessions(frontend_api_url=url)


# -- batches --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_batch_given_one_session_id_as_a_string_is_refused() -> None:
    """Not one request per character."""
    async with AsyncClerkSessions(frontend_api_url=URL) as clerk:
        with pytest.raises(TypeError, match=r"pass \['sess_x'\] for a single session"):
            await clerk.refresh_tokens_summary("sess_x")  # type: ignore[arg-type]
