"""Retries: the pure policy (table-tested) and the fault matrix over real HTTP.

The retry loop's sleep and clock are injected (``fake_sleep``, ``FakeClock``): tests assert
the delays the SDK chose, never wall time.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from typing import Any

import pytest
from aiohttp import web

from clerk_sessions import (
    UNSET,
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    ClerkAPIError,
    RateLimitError,
    ResponseValidationError,
    RetryEvent,
    ServerError,
    Timeout,
)
from clerk_sessions._errors import AuthenticationError, NotFoundError
from clerk_sessions._retry import (
    allowed_retries,
    backoff_delay,
    plan_retry,
    retry_reason,
)
from clerk_sessions._runtime import Runtime

from . import payloads
from .conftest import FakeFrontendAPI, FakeSleep, MakeClerk

pytestmark = pytest.mark.anyio


# -- the policy, as pure functions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "retry_safe", "reason"),
    [
        (408, None, True, "HTTP 408"),
        (429, None, True, "HTTP 429"),
        (502, None, True, "HTTP 502"),
        (503, None, False, "HTTP 503"),
        (504, None, True, "HTTP 504"),
        (500, None, True, "HTTP 500"),
        (500, None, False, None),  # the server may have acted: only safe operations repeat
        (400, None, True, None),
        (401, None, True, None),
        (403, None, True, None),
        (404, None, True, None),
        (409, None, True, None),  # a real conflict at Clerk, not a lock timeout
        (422, None, True, None),
        (501, None, True, None),
        (None, APITimeoutError("t"), True, "timeout"),
        (None, APIConnectionError("c"), False, "connection error"),
        (None, ResponseValidationError("v"), True, None),
    ],
)
def test_retry_reason(
    status: int | None, error: BaseException | None, retry_safe: bool, reason: str | None
) -> None:
    assert retry_reason(status, error, retry_safe=retry_safe) == reason


@pytest.mark.parametrize(
    ("retry_safe", "client_max", "call_max", "allowed"),
    [
        (True, 2, UNSET, 2),
        (True, 0, UNSET, 0),
        (True, 2, 5, 5),
        (True, 2, 0, 0),
        (False, 2, UNSET, 0),  # prepare_*/attempt_*: not unless the caller opts in
        (False, 2, 1, 1),
    ],
)
def test_allowed_retries(retry_safe: bool, client_max: int, call_max: Any, allowed: int) -> None:
    assert allowed_retries(retry_safe, client_max, call_max) == allowed


@pytest.mark.parametrize(
    ("retries_taken", "random_fraction", "delay"),
    [
        (0, 0.0, 0.5),
        (0, 0.999, 0.375125),
        (1, 0.0, 1.0),
        (3, 0.0, 4.0),
        (4, 0.0, 8.0),
        (9, 0.0, 8.0),
    ],
)
def test_backoff_is_exponential_with_jitter_and_a_cap(
    retries_taken: int, random_fraction: float, delay: float
) -> None:
    assert backoff_delay(retries_taken, random_fraction) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("kwargs", "delay"),
    [
        ({}, 0.5),
        ({"reason": None}, None),
        ({"retries_taken": 2}, None),  # used up
        ({"retry_after": 3.0}, 3.0),  # the server's wait wins over backoff
        ({"retry_after": 0.0}, 0.0),
        ({"retry_after": 60.0}, 60.0),
        ({"retry_after": 61.0}, None),  # above the cap: give up at once
        ({"retry_after": 3600.0, "remaining": 1e9}, None),
        ({"remaining": 0.4}, None),  # the wait would overrun the call's deadline
        ({"retry_after": 5.0, "remaining": 5.0}, None),
    ],
)
def test_plan_retry(kwargs: dict[str, Any], delay: float | None) -> None:
    arguments: dict[str, Any] = {
        "reason": "HTTP 503",
        "retries_taken": 0,
        "max_retries": 2,
        "retry_after": None,
        "remaining": 100.0,
        "random_fraction": 0.0,
    }
    assert plan_retry(**{**arguments, **kwargs}) == delay


def test_a_retry_event_reads_as_a_log_line() -> None:
    event = RetryEvent("get_session", 1, 2, "HTTP 503", 0.5)
    assert str(event) == "retrying get_session (1 of 2) after HTTP 503, in 0.50s"


# -- the fault matrix over real HTTP --------------------------------------------------------------


class FakeClock:
    """A monotonic clock that only moves when the retry loop sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


@pytest.fixture
def retry_events() -> list[RetryEvent]:
    return []


@pytest.fixture
async def retrying(
    fapi: FakeFrontendAPI,
    make_clerk: MakeClerk,
    fake_sleep: FakeSleep,
    retry_events: list[RetryEvent],
) -> Any:
    """A client with the default retry policy; its sleeps and retry events are recorded."""
    async with make_clerk(
        frontend_api_url=fapi.url,
        client_token="tok",
        on_retry=retry_events.append,
        _runtime=Runtime(sleep=fake_sleep),
    ) as client:
        yield client


async def test_503_twice_then_200_succeeds_after_two_retries(
    fapi: FakeFrontendAPI,
    retrying: Any,
    fake_sleep: FakeSleep,
    retry_events: list[RetryEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fapi.reply(503, payloads.clerk_errors("service_unavailable"))
    fapi.reply(503, payloads.clerk_errors("service_unavailable"))
    fapi.reply(json=payloads.session_envelope())
    with caplog.at_level(logging.INFO, logger="clerk_sessions"):
        envelope = await retrying.get_session("sess_1")
    assert envelope.response.id == "sess_1"
    assert envelope.retries_taken == 2
    assert len(fapi.requests) == 3
    assert len(fake_sleep.delays) == 2
    assert 0.375 <= fake_sleep.delays[0] <= 0.5
    assert 0.75 <= fake_sleep.delays[1] <= 1.0
    assert [(e.retry, e.max_retries, e.reason) for e in retry_events] == [
        (1, 2, "HTTP 503"),
        (2, 2, "HTTP 503"),
    ]
    assert "retrying get_session (1 of 2) after HTTP 503" in caplog.text


async def test_429_with_retry_after_waits_what_the_server_asks(
    fapi: FakeFrontendAPI, retrying: Any, fake_sleep: FakeSleep
) -> None:
    fapi.reply(429, payloads.clerk_errors("too_many_requests"), headers={"Retry-After": "1"})
    fapi.reply(json=payloads.token())
    token = await retrying.create_session_token("sess_1")
    assert token.retries_taken == 1
    assert fake_sleep.delays == [1.0]


async def test_a_dated_retry_after_is_counted_from_the_clients_own_wall_clock(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk, fake_sleep: FakeSleep
) -> None:
    """Retry-After as an HTTP date: the wait is that date minus the runtime's wall clock (an
    injected one here, far from the real time), for the sleep and for the error alike."""
    wall = 1_700_000_000.0
    date = email.utils.formatdate(wall + 7, usegmt=True)
    for _ in range(2):
        fapi.reply(429, payloads.clerk_errors("too_many_requests"), headers={"Retry-After": date})
    async with make_clerk(
        frontend_api_url=fapi.url,
        client_token="tok",
        max_retries=1,
        _runtime=Runtime(sleep=fake_sleep, wall=lambda: wall),
    ) as clerk:
        with pytest.raises(RateLimitError) as raised:
            await clerk.get_session("sess_1")
    assert fake_sleep.delays == [7.0]
    assert raised.value.retry_after == 7.0


async def test_429_with_a_retry_after_beyond_the_cap_fails_at_once(
    fapi: FakeFrontendAPI, retrying: Any, fake_sleep: FakeSleep
) -> None:
    fapi.reply(429, payloads.clerk_errors("too_many_requests"), headers={"Retry-After": "3600"})
    with pytest.raises(RateLimitError) as info:
        await retrying.create_session_token("sess_1")
    assert info.value.retry_after == 3600.0
    assert info.value.retries_taken == 0
    assert fake_sleep.delays == []
    assert len(fapi.requests) == 1


async def test_retries_used_up_give_the_last_error_with_its_count(
    fapi: FakeFrontendAPI, retrying: Any
) -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    for _ in range(3):
        fapi.reply(502, body=html, content_type="text/html")
    with pytest.raises(ServerError) as info:
        await retrying.touch_session("sess_1")
    assert info.value.retries_taken == 2
    assert "502 Bad Gateway" in (info.value.body_excerpt or "")
    assert "after 2 retries" in str(info.value)
    assert len(fapi.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_other_4xx_are_never_retried(
    status: int, fapi: FakeFrontendAPI, retrying: Any, fake_sleep: FakeSleep
) -> None:
    fapi.reply(status, payloads.clerk_errors("nope"))
    with pytest.raises(ClerkAPIError) as info:
        await retrying.end_session("sess_1")
    assert info.value.status == status
    assert info.value.retries_taken == 0
    assert len(fapi.requests) == 1
    assert fake_sleep.delays == []


async def test_408_and_504_are_retried(fapi: FakeFrontendAPI, retrying: Any) -> None:
    fapi.reply(408, body=b"")
    fapi.reply(504, payloads.clerk_errors("gateway_timeout"))
    fapi.reply(json=payloads.delete_sessions_envelope())
    result = await retrying.remove_client_sessions_and_retain_cookie()
    assert result.retries_taken == 2
    assert [r.method for r in fapi.requests] == ["DELETE"] * 3


async def test_500_is_retried_only_for_operations_safe_to_repeat(
    fapi: FakeFrontendAPI, retrying: Any
) -> None:
    fapi.reply(500, payloads.clerk_errors("internal_clerk_error"))
    fapi.reply(json=payloads.session_envelope())
    assert (await retrying.get_session("sess_1")).retries_taken == 1

    fapi.reply(500, payloads.clerk_errors("internal_clerk_error"))
    with pytest.raises(ServerError) as info:
        await retrying.attempt_session_reverification_first_factor(
            "sess_1", strategy="email_code", code="424242"
        )
    assert info.value.retries_taken == 0
    assert len(fapi.requests) == 3


async def test_reverification_steps_retry_only_when_the_caller_opts_in(
    fapi: FakeFrontendAPI, retrying: Any, fake_sleep: FakeSleep
) -> None:
    fapi.reply(503, payloads.clerk_errors("unavailable"))
    with pytest.raises(ServerError):
        await retrying.prepare_session_reverification_first_factor("sess_1", strategy="email_code")
    assert len(fapi.requests) == 1

    fapi.reply(503, payloads.clerk_errors("unavailable"))
    fapi.reply(json=payloads.reverification_envelope())
    result = await retrying.prepare_session_reverification_first_factor(
        "sess_1", strategy="email_code", max_retries=1
    )
    assert result.retries_taken == 1

    fapi.reply(500, payloads.clerk_errors("internal_clerk_error"))  # never repeated, even so
    with pytest.raises(ServerError):
        await retrying.attempt_session_reverification_second_factor(
            "sess_1", strategy="totp", code="123456", max_retries=3
        )
    assert len(fapi.requests) == 4


async def test_max_retries_per_call_overrides_the_client(
    fapi: FakeFrontendAPI, retrying: Any, fake_sleep: FakeSleep
) -> None:
    fapi.reply(503, payloads.clerk_errors("unavailable"))
    with pytest.raises(ServerError) as info:
        await retrying.get_session("sess_1", max_retries=0)
    assert info.value.retries_taken == 0
    for _ in range(4):
        fapi.reply(503, payloads.clerk_errors("unavailable"))
    fapi.reply(json=payloads.session_envelope())
    assert (await retrying.get_session("sess_1", max_retries=4)).retries_taken == 4


async def test_a_retry_carries_the_token_a_failed_attempt_rotated(
    fapi: FakeFrontendAPI, retrying: Any
) -> None:
    fapi.reply(503, payloads.clerk_errors("unavailable"), headers={"Authorization": "rotated"})
    fapi.reply(json=payloads.session_envelope())
    await retrying.get_session("sess_1")
    assert [r.headers["Authorization"] for r in fapi.requests] == ["tok", "rotated"]
    assert retrying.client_token == "rotated"


async def test_a_connection_reset_mid_body_is_retried_for_safe_operations(
    fapi: FakeFrontendAPI, retrying: Any
) -> None:
    async def reset_mid_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "5000"})
        await response.prepare(request)
        await response.write(b'{"response": {"id": "sess_1", "obj')
        assert request.transport is not None
        request.transport.abort()
        return response

    fapi.reply_with(reset_mid_body)
    fapi.reply(json=payloads.session_envelope())
    assert (await retrying.get_session("sess_1")).retries_taken == 1

    fapi.reply_with(reset_mid_body)
    with pytest.raises(APIConnectionError) as info:
        await retrying.attempt_session_reverification_first_factor(
            "sess_1", strategy="password", password="pw"
        )
    assert info.value.retries_taken == 0
    assert info.value.__cause__ is not None


async def test_truncated_json_is_not_retried(fapi: FakeFrontendAPI, retrying: Any) -> None:
    fapi.reply(200, body=b'{"response": {"id": "sess_1", "object": "sess')
    with pytest.raises(ResponseValidationError, match="not JSON") as info:
        await retrying.get_session("sess_1")
    assert info.value.retries_taken == 0
    assert len(fapi.requests) == 1


async def test_the_timeout_bounds_the_whole_call_including_retries(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    """timeout=1: the first 503 asks for 0.6 s (fits), the second for 0.6 s more (does not)."""
    clock = FakeClock()
    async with make_clerk(
        frontend_api_url=fapi.url,
        client_token="t",
        max_retries=5,
        _runtime=Runtime(monotonic=clock, sleep=clock.sleep),
    ) as clerk:
        for _ in range(3):
            fapi.reply(503, payloads.clerk_errors("unavailable"), headers={"Retry-After": "0.6"})
        with pytest.raises(ServerError) as info:
            await clerk.get_session("sess_1", timeout=1.0)
    assert clock.sleeps == [0.6]
    assert info.value.retries_taken == 1
    assert len(fapi.requests) == 2


async def test_a_server_that_never_answers_times_out(
    make_clerk: MakeClerk, fake_sleep: FakeSleep
) -> None:
    """It accepts the connection and says nothing; the call's timeout is its whole budget."""
    release = asyncio.Event()
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with make_clerk(
            frontend_api_url=f"http://127.0.0.1:{port}",
            client_token="t",
            _runtime=Runtime(sleep=fake_sleep),
        ) as c:
            with pytest.raises(APITimeoutError) as info:
                await c.get_session("sess_1", timeout=Timeout(total=0.3, connect=0.3))
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    assert info.value.retries_taken == 0  # no budget left for a retry
    assert fake_sleep.delays == []
    assert len(connections) == 1


async def test_errors_that_are_not_retried_keep_their_class(
    fapi: FakeFrontendAPI, retrying: Any
) -> None:
    fapi.reply(401, payloads.clerk_errors("authentication_invalid"))
    with pytest.raises(AuthenticationError):
        await retrying.get_session("sess_1")
    fapi.reply(404, payloads.clerk_errors("resource_not_found"))
    with pytest.raises(NotFoundError):
        await retrying.get_session("sess_1")
    fapi.reply(400, payloads.clerk_errors("invalid_action_for_session"))
    with pytest.raises(BadRequestError):
        await retrying.end_session("sess_1")
