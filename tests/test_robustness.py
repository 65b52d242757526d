"""Cancellation, pool limits and oversized bodies: nothing leaks, nothing hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from aiohttp import web

from clerk_sessions import (
    APITimeoutError,
    AsyncClerkSessions,
    ConfigurationError,
    ResponseValidationError,
    Timeout,
)
from clerk_sessions._constants import MAX_RESPONSE_BYTES
from clerk_sessions._runtime import Runtime

from . import payloads
from .conftest import FakeFrontendAPI

pytestmark = pytest.mark.anyio


def client_tasks() -> list[asyncio.Task[Any]]:
    """Tasks running client code (the fake server's own handler tasks do not count)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if "clerk_sessions" in filename or "aiohttp/client" in filename:
            found.append(task)
    return found


def checked_out(clerk: AsyncClerkSessions) -> int:
    """Connections currently lent out by the client's pool on this loop."""
    session = clerk._shared.transport._sessions[asyncio.get_running_loop()]
    return len(session.connector._acquired)  # type: ignore[union-attr]


@pytest.fixture
def hanging(fapi: FakeFrontendAPI) -> asyncio.Event:
    """Queue a reply that never comes; the event is set once the request has arrived."""
    return fapi.hang()


async def cancel_by_task(call: Callable[[], Awaitable[Any]], arrived: asyncio.Event) -> None:
    task = asyncio.ensure_future(call())
    await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def cancel_by_scope(call: Callable[[], Awaitable[Any]], arrived: asyncio.Event) -> None:
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            with anyio.CancelScope() as scope:
                cancel_scopes.append(scope)
                await call()

        cancel_scopes: list[anyio.CancelScope] = []
        tg.start_soon(run)
        await arrived.wait()
        cancel_scopes[0].cancel()
    assert cancel_scopes[0].cancelled_caught


async def cancel_by_wait_for(call: Callable[[], Awaitable[Any]], arrived: asyncio.Event) -> None:
    async def call_then_note() -> Any:
        return await call()

    waiter = asyncio.ensure_future(asyncio.wait_for(call_then_note(), timeout=60))
    await arrived.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


@pytest.mark.parametrize("cancel", [cancel_by_task, cancel_by_scope, cancel_by_wait_for])
async def test_cancelling_a_call_mid_request_leaks_nothing(
    cancel: Callable[[Callable[[], Awaitable[Any]], asyncio.Event], Awaitable[None]],
    fapi: FakeFrontendAPI,
    hanging: asyncio.Event,
) -> None:
    async with AsyncClerkSessions(frontend_api_url=fapi.url, client_token="t") as clerk:
        await cancel(lambda: clerk.get_session("sess_1"), hanging)
        assert checked_out(clerk) == 0
        assert client_tasks() == []
        fapi.reply(json=payloads.session_envelope())
        assert (await clerk.get_session("sess_1")).response.id == "sess_1"  # the next call works
        assert checked_out(clerk) == 0


async def test_a_timed_out_call_returns_its_connection(
    fapi: FakeFrontendAPI, hanging: asyncio.Event
) -> None:
    async with AsyncClerkSessions(
        frontend_api_url=fapi.url, client_token="t", max_retries=0
    ) as clerk:
        with pytest.raises(APITimeoutError):
            await clerk.get_session("sess_1", timeout=0.2)
        assert checked_out(clerk) == 0


async def test_pool_exhaustion_is_a_timeout_not_a_hang(
    fapi: FakeFrontendAPI, hanging: asyncio.Event
) -> None:
    async with AsyncClerkSessions(
        frontend_api_url=fapi.url, client_token="t", max_connections=1, max_retries=0
    ) as clerk:
        first = asyncio.ensure_future(clerk.get_session("sess_1"))
        await hanging.wait()
        with pytest.raises(APITimeoutError, match="free connection"):
            await clerk.get_session("sess_1", timeout=Timeout(total=5, connect=0.2))
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_max_connections_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_connections"):
        AsyncClerkSessions(frontend_api_url="https://clerk.example.com", max_connections=bad)


async def test_a_body_declared_too_large_is_refused_unread(fapi: FakeFrontendAPI) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(MAX_RESPONSE_BYTES + 1)})
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b"{")  # the client must not wait for the rest
        await fapi.release.wait()
        return response

    fapi.reply_with(huge)
    async with AsyncClerkSessions(
        frontend_api_url=fapi.url, client_token="t", max_retries=0
    ) as clerk:
        with pytest.raises(ResponseValidationError, match="larger than 10 MiB") as info:
            await clerk.get_session("sess_1")
        assert info.value.status == 200
        assert checked_out(clerk) == 0


async def test_an_undeclared_body_is_cut_off_at_the_limit(fapi: FakeFrontendAPI) -> None:
    sent: list[int] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length
        response.content_type = "application/json"
        await response.prepare(request)
        chunk = b" " * (1024 * 1024)
        try:
            while sum(sent) <= 2 * MAX_RESPONSE_BYTES:
                await response.write(chunk)
                sent.append(len(chunk))
        except (ConnectionResetError, ConnectionError):
            pass  # the client hung up, as it should
        return response

    fapi.reply_with(endless)
    async with AsyncClerkSessions(
        frontend_api_url=fapi.url, client_token="t", max_retries=0
    ) as clerk:
        with pytest.raises(ResponseValidationError, match="larger than 10 MiB"):
            await clerk.get_session("sess_1")
        assert checked_out(clerk) == 0
    assert sum(sent) < 2 * MAX_RESPONSE_BYTES  # it stopped reading; the server was cut off


async def test_a_failed_attempt_gives_its_connection_back_before_the_retry_waits(
    fapi: FakeFrontendAPI,
) -> None:
    lent_while_sleeping: list[int] = []
    clerk: AsyncClerkSessions

    async def sleep(delay: float) -> None:
        lent_while_sleeping.append(checked_out(clerk))

    async with AsyncClerkSessions(
        frontend_api_url=fapi.url, client_token="t", _runtime=Runtime(sleep=sleep)
    ) as clerk:
        fapi.reply(503, payloads.clerk_errors("unavailable"))
        fapi.reply(502, body=b"<html>bad gateway</html>", content_type="text/html")
        fapi.reply(json=payloads.session_envelope())
        assert (await clerk.get_session("sess_1")).retries_taken == 2
    assert lent_while_sleeping == [0, 0]
