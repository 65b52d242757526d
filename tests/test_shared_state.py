"""Shared state that cannot be fooled: proven devices, a single flight no caller owns, rows
that fail alone, callbacks that fail without losing a result, a client entered twice.

Every test talks to the emulator (or the small token server of ``test_token_failures``) on
127.0.0.1; Redis tests to a real ``redis-server``.
"""

# ruff: noqa: F401, F811 - the fixtures `clock` and `server` come from test_token_failures

from __future__ import annotations

import asyncio
import base64
import logging
import random
import threading
from typing import Any

import anyio.to_thread
import orjson
import pytest

from clerk_sessions import (
    APITimeoutError,
    AsyncClerkSessions,
    AuthenticationError,
    ClerkSessions,
    ClerkSessionsError,
    ConfigurationError,
    TokenRequest,
)
from clerk_sessions.testing import STALE_CLIENT_TOKEN_GRACE, FrontendAPIEmulator

from .test_token_failures import FakeClock, TokenServer, client_for, clock, server

pytestmark = pytest.mark.anyio


def forged(client_id: str) -> str:
    """What an attacker can write without any key: an unsigned JWT naming a victim's client."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'id': client_id})}.x"


def mints(fapi: FrontendAPIEmulator) -> int:
    return sum(r.operation == "create_session_token" for r in fapi.requests)


# -- proven devices ------------------------------------------------------------------------------


async def test_a_forged_client_token_never_reads_the_victims_cached_session_token() -> None:
    async with FrontendAPIEmulator(rotate_client_tokens=True) as fapi:
        victim = fapi.sign_in()
        async with AsyncClerkSessions(publishable_key=fapi.publishable_key) as clerk:
            own = clerk.with_client_token(victim.client_token)
            cached = await own.get_token(victim.session_id)
            victim_token = own.client_token
            attacker = clerk.with_client_token(forged(victim.client_id))
            with pytest.raises(AuthenticationError):
                await attacker.get_token(victim.session_id)
            assert attacker.client_token != victim_token  # it never became the device's
            # The victim is untouched: same cached token, same client token, still working.
            assert await own.get_token(victim.session_id) == cached
            assert own.client_token == victim_token
            await own.get_session(victim.session_id)
            again = clerk.with_client_token(victim.client_token)  # a later view of the victim
            assert await again.get_token(victim.session_id) == cached
    forged_requests = [r for r in fapi.requests if r.status == 401]
    assert len(forged_requests) == 1  # the forgery cost a request, and was refused there
    assert mints(fapi) == 2  # the victim's one mint, and the forger's refused one


async def test_a_forged_token_given_first_does_not_block_the_real_device() -> None:
    async with FrontendAPIEmulator() as fapi:
        victim = fapi.sign_in()
        async with AsyncClerkSessions(publishable_key=fapi.publishable_key) as clerk:
            attacker = clerk.with_client_token(forged(victim.client_id))
            with pytest.raises(AuthenticationError):
                await attacker.get_token(victim.session_id)
            own = clerk.with_client_token(victim.client_token)
            token = await own.get_token(victim.session_id)
            assert own.client_token == victim.client_token
            assert (
                await clerk.with_client_token(victim.client_token).get_token(victim.session_id)
                == token
            )


async def test_a_thousand_views_of_a_new_string_mint_once() -> None:
    """Unproven views of one string share among themselves (they hold the same credential)."""
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        async with AsyncClerkSessions(publishable_key=fapi.publishable_key) as clerk:
            views = [clerk.with_client_token(device.client_token) for _ in range(1000)]
            served = await asyncio.gather(*(v.get_token(device.session_id) for v in views))
    assert len(set(served)) == 1
    assert mints(fapi) == 1


async def test_a_proven_strings_first_answer_joins_the_device_and_its_result_is_shared() -> None:
    async with FrontendAPIEmulator(rotate_client_tokens=True) as fapi:
        device = fapi.sign_in()
        async with AsyncClerkSessions(publishable_key=fapi.publishable_key) as clerk:
            first = clerk.with_client_token(device.client_token)
            token = await first.get_token(device.session_id)  # proves it, and rotates
            rotated = first.client_token
            assert rotated != device.client_token
            later = clerk.with_client_token(rotated)  # issued by Clerk: proven already
            assert await later.get_token(device.session_id) == token
    assert mints(fapi) == 1


# -- single flight owned by the cache -------------------------------------------------------------


async def test_cancelling_a_joiner_leaves_the_leader_and_the_other_joiner_their_token(
    server: TokenServer, clock: FakeClock
) -> None:
    server.hold = asyncio.Event()
    async with client_for(server, clock) as clerk:
        leader = asyncio.ensure_future(clerk.get_token("sess_1"))
        joiners = [asyncio.ensure_future(clerk.get_token("sess_1")) for _ in range(2)]
        await server.until_requests(1)
        joiners[0].cancel()
        await asyncio.wait([joiners[0]])
        server.hold.set()
        results = await asyncio.gather(leader, joiners[1])
    assert joiners[0].cancelled()
    assert results[0] == results[1]
    assert server.requests == ["sess_1"]


async def test_one_callers_deadline_times_out_that_caller_only(
    server: TokenServer, clock: FakeClock
) -> None:
    server.hold = asyncio.Event()
    async with client_for(server, clock) as clerk:
        hurried = asyncio.ensure_future(clerk.get_token("sess_1", timeout=0.05))
        patient = [asyncio.ensure_future(clerk.get_token("sess_1")) for _ in range(3)]
        with pytest.raises(APITimeoutError, match="get_token"):
            await hurried
        server.hold.set()
        results = await asyncio.gather(*patient)
    assert len(set(results)) == 1
    assert server.requests == ["sess_1"]


@pytest.mark.parametrize("seed", range(6))
async def test_random_cancellations_and_deadlines_affect_only_their_callers(
    server: TokenServer, clock: FakeClock, seed: int
) -> None:
    """Seeded schedules: callers start, some are cancelled and some have short deadlines while
    the mint is held; every caller left alone gets the one token, nothing else escapes."""
    rng = random.Random(seed)
    server.hold = asyncio.Event()
    async with client_for(server, clock) as clerk:
        callers: list[tuple[str, asyncio.Future[str]]] = []
        for _ in range(12):
            fate = rng.choice(["wait", "cancel", "deadline"])
            timeout = 0.02 if fate == "deadline" else 30.0
            callers.append((fate, asyncio.ensure_future(clerk.get_token("s", timeout=timeout))))
        await server.until_requests(1)
        for fate, task in callers:
            if fate == "cancel":
                task.cancel()
        await asyncio.wait([t for fate, t in callers if fate != "wait"])
        server.hold.set()
        await asyncio.wait([t for _, t in callers])
    tokens = set()
    for fate, task in callers:
        if fate == "cancel":
            assert task.cancelled()
        elif fate == "deadline":
            assert isinstance(task.exception(), APITimeoutError)
        else:
            tokens.add(task.result())
    assert len(tokens) <= 1
    assert server.requests == ["s"]  # one mint, whoever left


async def test_blocking_callers_on_many_threads_get_their_token_and_a_timeout_is_theirs_alone(
    server: TokenServer, clock: FakeClock
) -> None:
    """The hurried thread led the mint on its own loop, which stops running when its call
    returns: the others lead anew on theirs, within their own timeouts."""
    server.hold = asyncio.Event()
    clerk = ClerkSessions(
        frontend_api_url=server.url,
        client_token="client-A",
        max_retries=0,
        _runtime=clock.runtime(),
    )
    outcomes: dict[str, str | BaseException] = {}

    def ask(name: str, timeout: float) -> None:
        try:
            outcomes[name] = clerk.get_token("sess_1", timeout=timeout)
        except ClerkSessionsError as exc:
            outcomes[name] = exc

    try:
        hurried = threading.Thread(target=ask, args=("hurried", 0.05))
        hurried.start()
        await server.until_requests(1)
        patient = [threading.Thread(target=ask, args=(f"p{i}", 30.0)) for i in range(3)]
        for thread in patient:
            thread.start()
        await anyio.to_thread.run_sync(hurried.join)
        server.hold.set()
        for thread in patient:
            await anyio.to_thread.run_sync(thread.join)
    finally:
        await anyio.to_thread.run_sync(clerk.close)
    assert isinstance(outcomes.pop("hurried"), APITimeoutError)
    assert all(isinstance(t, str) and t.count(".") == 2 for t in outcomes.values())
    # The hurried one's mint, abandoned, then the hand-over: the patient threads learn of it
    # one by one, and one that leads anew before another's new mint is registered mints too.
    assert 2 <= len(server.requests) <= 1 + len(outcomes)


# -- one bad row fails alone ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["tok\n", 5, "tökén", ""])
async def test_a_malformed_client_token_in_a_batch_row_fails_that_row_only(bad: object) -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            rows = [
                TokenRequest(device.session_id),
                TokenRequest(device.session_id, client_token=bad),  # type: ignore[arg-type]
                TokenRequest(device.session_id, client_token=device.client_token),
            ]
            results = [r async for r in clerk.refresh_tokens(rows, concurrency=1)]
            assert clerk.client_token == device.client_token
            await clerk.get_session(device.session_id)  # the client still works
    by_token = {id(r.request): r for r in results}
    bad_result = by_token[id(rows[1])]
    assert isinstance(bad_result.error, ConfigurationError)
    assert "client_token" in str(bad_result.error)
    assert by_token[id(rows[0])].ok
    assert by_token[id(rows[2])].ok


@pytest.mark.parametrize("header", ["tok\u00e9n", "tok\udcc3\udca9"])
async def test_a_rotation_header_that_is_not_a_token_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture, header: str
) -> None:
    from clerk_sessions._devices import Device

    seen: list[str | None] = []
    device = Device("token:t", "t", None)
    device.callback = seen.append
    with caplog.at_level(logging.WARNING, logger="clerk_sessions"):
        await device.apply_rotation({"Authorization": header}, "t")
    assert device.token == "t"
    assert seen == []
    assert "not a token" in caplog.text


# -- callbacks that fail -------------------------------------------------------------------------


async def test_a_failing_on_client_token_keeps_the_result_and_the_rotation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str | None] = []

    def disk_full(token: str | None) -> None:
        calls.append(token)
        raise OSError(f"No space left on device while writing {token}")

    async with FrontendAPIEmulator(rotate_client_tokens=True) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device, on_client_token=disk_full) as clerk:
            with caplog.at_level(logging.ERROR, logger="clerk_sessions"):
                envelope = await clerk.get_session(device.session_id)
                assert envelope.response.id == device.session_id
                rotated = clerk.client_token
                await clerk.get_session(device.session_id)  # called again on the next one
            current = fapi.client_record(device.client_id).current_token
    assert rotated != device.client_token
    assert clerk.client_token == current
    assert len(calls) == 2
    assert "on_client_token raised" in caplog.text
    assert "OSError" in caplog.text
    assert all(token not in caplog.text for token in calls if token)  # never the token


# -- a client entered twice ----------------------------------------------------------------------


async def test_a_client_entered_again_after_closing_works_like_new() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        clerk = fapi.async_client(device)
        for _ in range(2):  # a web app's lifespan, twice in one process
            async with clerk:
                await clerk.get_token(device.session_id, skip_cache=True)
        view = clerk.with_client_token(device.client_token)
        with pytest.raises(ConfigurationError, match="closed"):
            async with view:
                pass
    assert mints(fapi) == 2


async def test_a_failing_on_retry_and_on_progress_are_logged_and_the_work_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("callback bug")

    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fapi.fail("*/tokens", status=503, times=1)
        async with fapi.async_client(device, on_retry=broken) as clerk:
            with caplog.at_level(logging.ERROR, logger="clerk_sessions"):
                token = await clerk.get_token(device.session_id)  # retried after the 503
                summary = await clerk.refresh_tokens_summary(
                    [device.session_id] * 3, on_progress=broken
                )
    assert token
    assert summary.ok == 3
    assert "on_retry raised; the retry goes on" in caplog.text
    assert caplog.text.count("on_progress raised; the batch goes on") == 3


@pytest.mark.parametrize("status", [503, 429, 500])
async def test_an_answer_that_may_come_before_authentication_proves_nothing(status: int) -> None:
    """A proxy or the rate limiter answers 429/5xx without looking at the client token."""
    async with FrontendAPIEmulator() as fapi:
        victim = fapi.sign_in()
        async with AsyncClerkSessions(publishable_key=fapi.publishable_key, max_retries=0) as clerk:
            own = clerk.with_client_token(victim.client_token)
            cached = await own.get_token(victim.session_id)
            attacker = clerk.with_client_token(forged(victim.client_id))
            fapi.fail("*/sessions/*", status=status, times=1)
            with pytest.raises(ClerkSessionsError):
                await attacker.get_session(victim.session_id)
            with pytest.raises(AuthenticationError):  # still its own device: Clerk says 401
                await attacker.get_token(victim.session_id)
            assert await own.get_token(victim.session_id) == cached
            assert own.client_token == victim.client_token


async def test_a_batch_left_early_while_its_mint_is_shared_leaves_the_joiner_its_token(
    server: TokenServer, clock: FakeClock
) -> None:
    """A batch row runs its mint in its own worker (a task per row would cost a tenth of the
    batch); leaving the batch stops that mint, and a get_token caller that joined it leads a
    new one instead of failing or hanging."""
    server.hold = asyncio.Event()
    async with client_for(server, clock) as clerk:
        rows = clerk.refresh_tokens(["sess_1"], concurrency=1)
        first_row = asyncio.ensure_future(rows.__anext__())
        await server.until_requests(1)
        joiner = asyncio.ensure_future(clerk.get_token("sess_1"))
        first_row.cancel()
        await asyncio.wait([first_row])
        await rows.aclose()  # the consumer left the batch
        await server.until_requests(2)  # the joiner leads anew
        server.hold.set()
        token = await joiner
    assert token.count(".") == 2
    assert server.requests == ["sess_1", "sess_1"]


# -- rotations that cross in flight ---------------------------------------------------------------


async def _two_answers_to_one_token(
    fapi: FrontendAPIEmulator, first: AsyncClerkSessions, second: AsyncClerkSessions, sid: str
) -> None:
    """``first`` and ``second`` send the device's one token at once; ``first``'s answer is
    held until ``second``'s came back, so Clerk issues ``first``'s token last."""
    held = fapi.hold("GET /v1/client/sessions/*")
    pending = asyncio.ensure_future(first.get_session(sid))
    await anyio.to_thread.run_sync(held.hit.wait, 10)
    await second.get_session(sid)
    held.release()
    await pending


async def test_two_answers_to_one_client_token_leave_the_device_on_the_one_clerk_issued_last() -> (
    None
):
    """The soak's lost rotation: keeping the first answer's token strands the device on a
    token Clerk superseded, and its next call past the grace is signed out."""
    async with FrontendAPIEmulator(
        rotate_client_tokens=True, reject_stale_client_tokens=True
    ) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            one, two = (clerk.with_client_token(device.client_token) for _ in range(2))
            await _two_answers_to_one_token(fapi, one, two, device.session_id)
            assert clerk.client_token == fapi.client_record(device.client_id).current_token
            fapi.clock.advance(STALE_CLIENT_TOKEN_GRACE + 1)
            await clerk.get_session(device.session_id)
    assert [r.status for r in fapi.requests] == [200, 200, 200]


async def test_two_processes_answered_for_one_token_agree_on_the_one_clerk_issued_last(
    redis_server: Any,
) -> None:
    from clerk_sessions.redis import RedisStore

    async with FrontendAPIEmulator(
        rotate_client_tokens=True, reject_stale_client_tokens=True
    ) as fapi:
        device = fapi.sign_in()
        stores = [RedisStore(redis_server.url) for _ in range(2)]
        async with (
            fapi.async_client(device, store=stores[0]) as a,
            fapi.async_client(device, store=stores[1]) as b,
        ):
            await _two_answers_to_one_token(fapi, a, b, device.session_id)
            current = fapi.client_record(device.client_id).current_token
            fapi.clock.advance(STALE_CLIENT_TOKEN_GRACE + 1)
            await b.get_session(device.session_id)  # reads the device's token from Redis
            assert current in fapi.issued_client_tokens()
            await a.get_session(device.session_id)
        for store in stores:
            await store.aclose()
    assert [r.status for r in fapi.requests] == [200, 200, 200, 200]
