"""Failures without surprises: what the token cache and batches do when things go wrong.

- a failed background refresh keeps serving the still-valid token and is not retried in a
  hot loop;
- cancelling the caller that started a shared token request does not fail those that joined it;
- a dead server ends a batch fast (a breaker shared by the batch), and a probe closes it again;
- bad settings fail at construction; ``max_retries=0`` is one request on the wire.

Servers run on 127.0.0.1; time is a fake clock given through ``_runtime`` (the server's
``Date`` and its tokens' ``iat`` read the same clock), so "later" never means waiting.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Any

import jwt
import pytest
from aiohttp import web

from clerk_sessions import (
    APIConnectionError,
    AsyncClerkSessions,
    ClerkSessions,
    ConfigurationError,
    ServerError,
    Timeout,
    TokenRequest,
    TokenResult,
)
from clerk_sessions._constants import (
    BREAKER_COOL_DOWN,
    BREAKER_FAILURES,
    TOKEN_REFRESH_RETRY_DELAY,
)
from clerk_sessions._runtime import Runtime
from clerk_sessions.testing import FrontendAPIEmulator, settle

from . import payloads
from .conftest import FakeSleep

pytestmark = pytest.mark.anyio

SIGNING_KEY = "test-signing-key-for-fake-jwts-0123456789"
LIFETIME = 60


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def runtime(self, **overrides: Any) -> Runtime:
        return Runtime(**{"monotonic": self, "wall": self, **overrides})


class TokenServer:
    """Mints a JWT per ``POST .../tokens`` on the fake clock. ``failing`` answers 503;
    ``dropping`` closes the connection unanswered; ``hold`` parks requests until set."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.requests: list[str] = []  # session id of each request, in arrival order
        self.failing = False
        self.dropping = False
        self.hold: asyncio.Event | None = None
        self._waiters: list[tuple[int, asyncio.Event]] = []
        self.url = ""

    async def until_requests(self, count: int) -> None:
        """Returns once ``count`` requests have arrived (an event, not a poll)."""
        if len(self.requests) < count:
            event = asyncio.Event()
            self._waiters.append((count, event))
            await event.wait()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["sid"]
        self.requests.append(sid)
        for count, event in self._waiters:
            if len(self.requests) >= count:
                event.set()
        if self.dropping:
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if self.hold is not None:
            await self.hold.wait()
        date = {"Date": formatdate(self.clock(), usegmt=True)}
        if self.failing:
            return web.json_response(
                payloads.clerk_errors("service_unavailable"), status=503, headers=date
            )
        now = int(self.clock())
        token = jwt.encode(
            {"sid": sid, "iat": now, "exp": now + LIFETIME, "n": len(self.requests)},
            SIGNING_KEY,
            algorithm="HS256",
        )
        return web.json_response({"object": "token", "jwt": token}, headers=date)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[TokenServer]:
    token_server = TokenServer(clock)
    app = web.Application()
    app.router.add_post("/v1/client/sessions/{sid}/tokens", token_server.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    token_server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield token_server
    finally:
        if token_server.hold is not None:
            token_server.hold.set()
        await runner.cleanup()


def client_for(server: TokenServer, clock: FakeClock, **options: Any) -> AsyncClerkSessions:
    return AsyncClerkSessions(
        frontend_api_url=server.url,
        client_token="client-A",
        max_retries=0,
        _runtime=clock.runtime(),
        **options,
    )


async def background_done(clerk: AsyncClerkSessions) -> None:
    """Wait for the background refreshes the client started (there is no other way to know
    one finished)."""
    await settle(clerk)


# -- background refresh --------------------------------------------------------------------------


async def test_a_failed_background_refresh_keeps_serving_the_token_and_is_not_retried_at_once(
    server: TokenServer, clock: FakeClock
) -> None:
    async with client_for(server, clock) as clerk:
        first = await clerk.get_token("sess_1")
        clock.now += 47  # 13 s left: inside the refresh-ahead window, above the leeway
        server.failing = True
        assert await clerk.get_token("sess_1") == first  # ... and a refresh starts
        await background_done(clerk)
        assert len(server.requests) == 2  # it failed

        served = set()
        for _ in range(100):  # lookups right after the failure
            served.add(await clerk.get_token("sess_1"))
        clock.now += TOKEN_REFRESH_RETRY_DELAY / 2
        served.add(await clerk.get_token("sess_1"))
        await background_done(clerk)
        assert (served, len(server.requests)) == ({first}, 2)  # no hot loop

        clock.now += TOKEN_REFRESH_RETRY_DELAY / 2 + 0.01  # the delay is over
        server.failing = False
        assert await clerk.get_token("sess_1") == first  # served while the refresh runs
        await background_done(clerk)
        assert len(server.requests) == 3
        fresh = await clerk.get_token("sess_1")
    assert fresh != first
    assert len(server.requests) == 3


# -- single flight and cancellation --------------------------------------------------------------


async def test_cancelling_the_leader_of_a_shared_request_does_not_fail_those_that_joined(
    server: TokenServer, clock: FakeClock
) -> None:
    """The shared mint belongs to the cache, not to the caller that started it: cancelling
    that caller (its web client went away) ends its wait only; the mint goes on."""
    server.hold = asyncio.Event()
    async with client_for(server, clock) as clerk:
        # Started together: the first leads; the others' first steps join its request, before
        # that request can even reach the server (no I/O happens in between).
        leader = asyncio.ensure_future(clerk.get_token("sess_1"))
        joiners = [asyncio.ensure_future(clerk.get_token("sess_1")) for _ in range(3)]
        await server.until_requests(1)
        leader.cancel()  # e.g. the web request whose client went away
        await asyncio.wait([leader])
        server.hold.set()
        results = await asyncio.gather(*joiners)
    assert leader.cancelled()
    assert len(set(results)) == 1
    assert jwt.decode(results[0], options={"verify_signature": False})["n"] == 1
    assert server.requests == ["sess_1"]


# -- a dead server ends a batch fast ------------------------------------------------------------


async def test_a_batch_against_a_refused_port_stops_sending_and_every_item_gets_a_typed_error(
    unused_tcp_port: int, clock: FakeClock
) -> None:
    sleep = FakeSleep()
    async with AsyncClerkSessions(
        frontend_api_url=f"http://127.0.0.1:{unused_tcp_port}",
        client_token="client-A",
        _runtime=clock.runtime(sleep=sleep),  # a frozen clock: no probe is ever due
    ) as clerk:
        requests = (TokenRequest(f"sess_{i}") for i in range(5000))
        results = [r async for r in clerk.refresh_tokens(requests, concurrency=64)]
    assert len(results) == 5000
    assert all(isinstance(r.error, APIConnectionError) and r.token is None for r in results)
    tried = [r for r in results if "stopped sending" not in str(r.error)]
    assert len(tried) <= 64  # at most the first request of each worker went out
    assert all("the request did not reach the server" in str(r.error) for r in results)
    # Only the failures before the breaker opened were retried (after a back-off).
    assert len(sleep.delays) <= BREAKER_FAILURES - 1


@pytest.mark.serial
async def test_a_batch_against_a_server_that_hangs_up_makes_few_connection_attempts(
    clock: FakeClock,
) -> None:
    """A listener that accepts each connection and closes it at once counts exactly how many
    connections the batch opened."""
    accepted = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with AsyncClerkSessions(
            frontend_api_url=f"http://127.0.0.1:{port}",
            client_token="client-A",
            _runtime=clock.runtime(sleep=FakeSleep()),
        ) as clerk:
            summary = await clerk.refresh_tokens_summary(
                [TokenRequest(f"sess_{i}") for i in range(5000)], concurrency=64
            )
    finally:
        listener.close()
        await listener.wait_closed()
    assert summary.ok == 0
    assert sum(summary.failed.values()) == 5000
    # Hung up on (a connect the loaded machine was slow to finish may time out instead).
    assert set(summary.failed) <= {"APIConnectionError", "APITimeoutError"}
    # Each worker's first request, and a retry of the failures before the breaker opened.
    assert 64 <= accepted <= 64 + BREAKER_FAILURES - 1


async def test_the_breaker_opens_after_consecutive_failures_and_a_successful_probe_closes_it(
    server: TokenServer, clock: FakeClock
) -> None:
    server.dropping = True

    async def items() -> AsyncIterator[str]:  # read one at a time (concurrency 1)
        for i in range(BREAKER_FAILURES):
            yield f"dropped_{i}"
        yield "refused_while_open"
        clock.now += BREAKER_COOL_DOWN / 2
        yield "still_refused"
        server.dropping = False
        clock.now += BREAKER_COOL_DOWN / 2
        yield "probe"
        yield "after"

    async with client_for(server, clock) as clerk:
        results = [r async for r in clerk.refresh_tokens(items(), concurrency=1)]
    outcomes = {r.request.session_id: outcome(r) for r in results}
    assert outcomes == {
        **{f"dropped_{i}": "connection failed" for i in range(BREAKER_FAILURES)},
        "refused_while_open": "stopped sending",
        "still_refused": "stopped sending",
        "probe": "ok",
        "after": "ok",
    }
    assert server.requests == [*(f"dropped_{i}" for i in range(BREAKER_FAILURES)), "probe", "after"]


async def test_a_failed_probe_doubles_the_cool_down(server: TokenServer, clock: FakeClock) -> None:
    server.dropping = True

    async def items() -> AsyncIterator[str]:
        for i in range(BREAKER_FAILURES):
            yield f"dropped_{i}"
        clock.now += BREAKER_COOL_DOWN
        yield "failed_probe"
        clock.now += BREAKER_COOL_DOWN  # one cool-down later: not yet, it doubled
        yield "refused"
        clock.now += BREAKER_COOL_DOWN
        server.dropping = False
        yield "probe"

    async with client_for(server, clock) as clerk:
        results = [r async for r in clerk.refresh_tokens(items(), concurrency=1)]
    assert [outcome(r) for r in results][BREAKER_FAILURES:] == [
        "connection failed",
        "stopped sending",
        "ok",
    ]
    assert server.requests[BREAKER_FAILURES:] == ["failed_probe", "probe"]


def outcome(result: TokenResult) -> str:
    if result.ok:
        return "ok"
    assert isinstance(result.error, APIConnectionError), result.error
    return "stopped sending" if "stopped sending" in str(result.error) else "connection failed"


# -- bad settings fail at construction -----------------------------------------------------------


BAD_SETTINGS: dict[str, dict[str, Any]] = {
    "token_cache_size 0": {"token_cache_size": 0},
    "token_cache_size -1": {"token_cache_size": -1},
    "token_cache_size True": {"token_cache_size": True},
    "negative leeway": {"token_leeway": -1},
    "negative refresh-ahead": {"token_refresh_ahead": -1},
    "NaN leeway": {"token_leeway": math.nan},
    "infinite leeway": {"token_leeway": math.inf},
    "leeway above refresh-ahead": {"token_leeway": 20, "token_refresh_ahead": 15},
    "timeout NaN": {"timeout": math.nan},
    "timeout inf": {"timeout": math.inf},
    "timeout 0": {"timeout": 0},
    "timeout -1": {"timeout": -1},
    "max_connections 0": {"max_connections": 0},
}
CONTROL_CHARACTERS = ["\x00", "\t", "\n", "\x1f", "\x7f"]


@pytest.mark.parametrize("client_class", [AsyncClerkSessions, ClerkSessions])
@pytest.mark.parametrize("settings", BAD_SETTINGS.values(), ids=list(BAD_SETTINGS))
def test_bad_settings_fail_at_construction(
    client_class: type[Any], settings: dict[str, Any]
) -> None:
    made: list[Any] = []
    try:
        with pytest.raises(ConfigurationError):
            made.append(client_class(frontend_api_url="http://127.0.0.1:9", **settings))
    finally:
        for client in made:  # accepted after all: do not leak the blocking client's loop
            if isinstance(client, ClerkSessions):
                client.close()


def test_an_infinite_timeout_object_fails_at_construction() -> None:
    with pytest.raises(ConfigurationError):
        AsyncClerkSessions(frontend_api_url="http://127.0.0.1:9", timeout=Timeout(total=math.inf))


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
async def test_a_client_token_with_a_control_character_is_refused(char: str) -> None:
    token = f"client_token{char}rest"
    with pytest.raises(ConfigurationError, match="control character"):
        AsyncClerkSessions(frontend_api_url="http://127.0.0.1:9", client_token=token)
    async with AsyncClerkSessions(frontend_api_url="http://127.0.0.1:9") as clerk:
        with pytest.raises(ConfigurationError, match="control character"):
            clerk.with_client_token(token)
    with pytest.raises(ConfigurationError):
        ClerkSessions(frontend_api_url="http://127.0.0.1:9", client_token=token)


def test_a_client_token_from_the_environment_with_a_trailing_newline_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLERK_CLIENT_TOKEN", "client_token_read_from_a_file\n")
    with pytest.raises(ConfigurationError, match="control character"):
        AsyncClerkSessions(frontend_api_url="http://127.0.0.1:9")


# -- max_retries=0 -------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_retries", "sent"), [(0, 1), (2, 3)])
async def test_max_retries_is_the_number_of_extra_requests_on_the_wire(
    max_retries: int, sent: int, fake_sleep: FakeSleep
) -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fapi.fail("*/tokens", 503, times=None)
        async with fapi.async_client(
            device, max_retries=max_retries, _runtime=Runtime(sleep=fake_sleep)
        ) as clerk:
            with pytest.raises(ServerError) as raised:
                await clerk.create_session_token(device.session_id)
    assert [r.path.endswith("/tokens") for r in fapi.requests] == [True] * sent
    assert raised.value.retries_taken == max_retries
    assert len(fake_sleep.delays) == max_retries
