"""Every attempt on the wire is the SDK's own: counted in ``retries_taken``, bounded by
``max_retries``.

aiohttp silently re-sends an idempotent request once when a reused keep-alive connection fails
(``ClientSession._retry_connection``); the SDK switches that off on the sessions it creates and
retries a connection dropped before any response itself: the first time at once, on a new
connection (RFC 9112 §9.3.1), later times with the usual back-off.

Over real HTTP on 127.0.0.1, a server that answers the first request of each connection with
keep-alive and aborts the connection when the next request arrives on it: what a client sees
when it reuses a pooled connection the server has just closed as idle.
"""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from clerk_sessions import APIConnectionError, APITimeoutError, AsyncClerkSessions, RetryEvent
from clerk_sessions._retry import (
    DROPPED_CONNECTION,
    backoff_delay,
    dropped_before_response,
    mark_dropped_before_response,
    plan_retry,
    retry_reason,
)
from clerk_sessions._runtime import Runtime
from clerk_sessions._transport import Transport

from . import payloads
from .conftest import CLIENT_TOKEN, FakeFrontendAPI, FakeSleep

pytestmark = pytest.mark.anyio


# -- the policy, as pure functions --------------------------------------------------------------


def dropped(message: str = "c") -> APIConnectionError:
    return mark_dropped_before_response(APIConnectionError(message))


@pytest.mark.parametrize(
    ("error", "retry_safe", "reason"),
    [
        (dropped(), True, DROPPED_CONNECTION),
        (dropped(), False, "connection error"),  # not safe to repeat: only with back-off
        (APIConnectionError("c"), True, "connection error"),  # not flagged: refused, TLS...
        (APITimeoutError("t"), True, "timeout"),
    ],
)
def test_retry_reason_names_a_connection_dropped_before_any_response(
    error: BaseException, retry_safe: bool, reason: str
) -> None:
    assert retry_reason(None, error, retry_safe=retry_safe) == reason


def test_the_dropped_flag_keeps_the_public_class_and_survives_pickling() -> None:
    error = dropped("get_session: could not reach")
    assert type(error) is APIConnectionError
    assert dropped_before_response(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is APIConnectionError
    assert dropped_before_response(copy)
    assert str(copy) == "get_session: could not reach"
    assert not dropped_before_response(APIConnectionError("c"))
    assert not dropped_before_response(None)
    assert not dropped_before_response(ValueError("x"))


@pytest.mark.parametrize(
    ("kwargs", "delay"),
    [
        ({}, 0.0),  # the call's first retry: at once, on a new connection
        ({"random_fraction": 0.9}, 0.0),  # no jitter either: there is no wait to spread
        ({"retries_taken": 1}, backoff_delay(1, 0.0)),  # later ones back off as usual
        ({"retries_taken": 1, "random_fraction": 0.5}, backoff_delay(1, 0.5)),
        ({"retries_taken": 2}, None),  # used up
        ({"max_retries": 0}, None),  # max_retries=0: never another attempt
        ({"remaining": 0.0}, None),  # the call's deadline has passed
        ({"reason": "connection error"}, backoff_delay(0, 0.0)),  # refused etc.: back off
    ],
)
def test_plan_retry_sends_the_first_retry_after_a_dropped_connection_at_once(
    kwargs: dict[str, Any], delay: float | None
) -> None:
    arguments: dict[str, Any] = {
        "reason": DROPPED_CONNECTION,
        "retries_taken": 0,
        "max_retries": 2,
        "retry_after": None,
        "remaining": 100.0,
        "random_fraction": 0.0,
    }
    assert plan_retry(**{**arguments, **kwargs}) == delay


# -- aiohttp's hidden re-send is off on the SDK's own sessions ------------------------------------


def test_aiohttp_still_has_the_switch_the_transport_turns_off() -> None:
    """The transport sets this private attribute only if it exists; an aiohttp upgrade that
    renames it must fail here, not silently bring the hidden re-send back."""
    assert "_retry_connection" in aiohttp.ClientSession.ATTRS


async def test_the_sdk_turns_the_resend_off_on_its_own_session_only() -> None:
    own = Transport()
    try:
        assert own._get_session()._retry_connection is False
    finally:
        await own.aclose()
    async with aiohttp.ClientSession() as http:
        injected = Transport(http)
        assert injected._get_session() is http
        await injected.aclose()
        assert http._retry_connection is True  # the caller's session, the caller's settings


# -- over the wire --------------------------------------------------------------------------------


class StaleKeepAliveServer:
    """Answers the first request on a connection (kept alive); a request listed in ``drops``
    (connection number, request number on it, both from 0) has its connection aborted on
    arrival, before any response. By default the second request of the first connection."""

    def __init__(self) -> None:
        self.url = ""
        self.drops: set[tuple[int, int]] = {(0, 1)}
        self.body = orjson.dumps(payloads.session_envelope())
        self.requests: list[tuple[int, int, str]] = []  # (connection, nth on it, method)
        self._connections: dict[object, int] = {}
        self._counts: dict[int, int] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        connection = self._connections.setdefault(transport, len(self._connections))
        nth = self._counts.get(connection, 0)
        self._counts[connection] = nth + 1
        self.requests.append((connection, nth, request.method))
        if (connection, nth) in self.drops:
            transport.abort()  # abrupt close, nothing answered
            return web.Response(status=500)
        return web.Response(body=self.body, content_type="application/json")

    @property
    def connections(self) -> list[int]:
        """The connection each request arrived on, in order."""
        return [connection for connection, _, _ in self.requests]


@pytest.fixture
async def stale() -> AsyncIterator[StaleKeepAliveServer]:
    server = StaleKeepAliveServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


def idempotent_call(
    stale: StaleKeepAliveServer, method: str
) -> Callable[[AsyncClerkSessions], Awaitable[Any]]:
    """A GET or DELETE operation (what aiohttp would re-send), with the server's reply set."""
    if method == "GET":
        return lambda clerk: clerk.get_session("sess_1")
    stale.body = orjson.dumps(payloads.delete_sessions_envelope())
    return lambda clerk: clerk.remove_client_sessions_and_retain_cookie()


def runtime(sleep: FakeSleep) -> Runtime:
    return Runtime(sleep=sleep, random=lambda: 0.0)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_max_retries_0_puts_exactly_one_request_on_the_wire(
    stale: StaleKeepAliveServer, fake_sleep: FakeSleep, method: str
) -> None:
    call = idempotent_call(stale, method)
    async with AsyncClerkSessions(
        frontend_api_url=stale.url,
        client_token=CLIENT_TOKEN,
        max_retries=0,
        _runtime=runtime(fake_sleep),
    ) as clerk:
        await call(clerk)  # opens the connection, which stays in the pool
        assert stale.requests == [(0, 0, method)]
        with pytest.raises(APIConnectionError) as info:
            await call(clerk)  # on the pooled connection, which the server drops
    assert stale.requests == [(0, 0, method), (0, 1, method)]  # nothing re-sent
    assert info.value.retries_taken == 0
    assert not isinstance(info.value, APITimeoutError)
    assert isinstance(info.value.__cause__, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)
    assert "may or may not have reached the server" in str(info.value)
    assert fake_sleep.delays == []


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_stale_pooled_connection_is_retried_at_once_and_counted(
    stale: StaleKeepAliveServer, fake_sleep: FakeSleep, method: str
) -> None:
    call = idempotent_call(stale, method)
    events: list[RetryEvent] = []
    async with AsyncClerkSessions(
        frontend_api_url=stale.url,
        client_token=CLIENT_TOKEN,
        on_retry=events.append,
        _runtime=runtime(fake_sleep),
    ) as clerk:
        assert (await call(clerk)).retries_taken == 0
        result = await call(clerk)
    assert result.retries_taken == 1
    # The call's two attempts: the dropped one on the pooled connection, then a new connection.
    assert stale.requests[1:] == [(0, 1, method), (1, 0, method)]
    assert not any(fake_sleep.delays)  # no back-off before that first retry
    assert [(e.retry, e.reason, e.delay) for e in events] == [(1, DROPPED_CONNECTION, 0.0)]


async def test_a_second_drop_in_the_same_call_backs_off_as_usual(
    stale: StaleKeepAliveServer, fake_sleep: FakeSleep
) -> None:
    stale.drops = {(0, 1), (1, 0)}  # the pooled connection, then the new one too
    events: list[RetryEvent] = []
    async with AsyncClerkSessions(
        frontend_api_url=stale.url,
        client_token=CLIENT_TOKEN,
        on_retry=events.append,
        _runtime=runtime(fake_sleep),
    ) as clerk:
        await clerk.get_session("sess_1")
        result = await clerk.get_session("sess_1")
    assert result.retries_taken == 2
    assert stale.connections == [0, 0, 1, 2]
    assert [(e.reason, e.delay) for e in events] == [
        (DROPPED_CONNECTION, 0.0),
        (DROPPED_CONNECTION, backoff_delay(1, 0.0)),
    ]
    assert [d for d in fake_sleep.delays if d] == [backoff_delay(1, 0.0)]


async def test_an_operation_not_safe_to_repeat_backs_off_even_after_a_drop(
    stale: StaleKeepAliveServer, fake_sleep: FakeSleep
) -> None:
    stale.body = orjson.dumps(payloads.reverification_envelope())
    stale.drops = {(0, 0)}
    events: list[RetryEvent] = []
    async with AsyncClerkSessions(
        frontend_api_url=stale.url,
        client_token=CLIENT_TOKEN,
        on_retry=events.append,
        _runtime=runtime(fake_sleep),
    ) as clerk:
        result = await clerk.prepare_session_reverification_first_factor(
            "sess_1", strategy="email_code", max_retries=1
        )
    assert result.retries_taken == 1
    assert stale.connections == [0, 1]
    assert [(e.reason, e.delay) for e in events] == [("connection error", backoff_delay(0, 0.0))]


# -- what the error says about the request --------------------------------------------------------


async def test_connection_refused_says_the_request_did_not_reach_the_server(
    unused_tcp_port: int, fake_sleep: FakeSleep
) -> None:
    events: list[RetryEvent] = []
    async with AsyncClerkSessions(
        frontend_api_url=f"http://127.0.0.1:{unused_tcp_port}",
        client_token=CLIENT_TOKEN,
        max_retries=1,
        on_retry=events.append,
        _runtime=runtime(fake_sleep),
    ) as clerk:
        with pytest.raises(APIConnectionError) as info:
            await clerk.get_session("sess_1")
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
    assert "the request did not reach the server" in str(info.value)
    assert "may or may not" not in str(info.value)
    assert not dropped_before_response(info.value)  # a server down: back off, as usual
    assert [(e.reason, e.delay) for e in events] == [("connection error", backoff_delay(0, 0.0))]


async def test_a_reset_mid_body_says_the_request_reached_the_server(
    fapi: FakeFrontendAPI, fake_sleep: FakeSleep
) -> None:
    async def reset_mid_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "5000"})
        await response.prepare(request)
        await response.write(b'{"response": {"id": "sess_1", "obj')
        assert request.transport is not None
        request.transport.abort()
        return response

    fapi.reply_with(reset_mid_body)
    async with AsyncClerkSessions(
        frontend_api_url=fapi.url,
        client_token=CLIENT_TOKEN,
        max_retries=0,
        _runtime=runtime(fake_sleep),
    ) as clerk:
        with pytest.raises(APIConnectionError) as info:
            await clerk.get_session("sess_1")
    assert "The request reached the server" in str(info.value)
    assert "may or may not" not in str(info.value)
    assert not dropped_before_response(info.value)  # a response had begun: not a stale connection
    assert CLIENT_TOKEN not in str(info.value)
