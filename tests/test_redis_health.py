"""RedisStore's health on a real redis-server: slow is not down.

A loopback proxy (``tests/redis_proxy.py``) adds round-trip latency or holds replies; the server
itself is frozen (SIGSTOP), killed or served over TLS. The tests assert behaviour (mints, the
store's state, log records, keys in Redis), never durations, and wait on events, never on the
clock: the proxy says when it holds a reply, the log says when the store went down or came back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from clerk_sessions._devices import device_key
from clerk_sessions._jwt import TokenKey
from clerk_sessions._types import UNSET
from clerk_sessions.testing import FrontendAPIEmulator, RedisServer
from clerk_sessions.testing._redis_server import RedisServerNotInstalled, running_redis

from .redis_logs import LogWatcher, logs_fixture  # noqa: F401 - the fixture
from .redis_proxy import RedisProxy, redis_proxy
from .test_redis_store import DEVICE, HOST, NO_HANG, FakeClock, key, mints, token
from .worker_process import Worker

redis = pytest.importorskip("redis", reason="pip install 'clerk-sessions[redis]'")
from clerk_sessions import redis as redis_module  # noqa: E402 - after the skip without redis-py
from clerk_sessions.redis import RedisStore  # noqa: E402

pytestmark = pytest.mark.anyio

# A round trip as to a Redis in another zone (the proxy adds it to every reply).
REMOTE_ROUND_TRIP = 0.015

# -- helpers --------------------------------------------------------------------------------


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[RedisProxy]:
    """The real server behind a loopback proxy that adds nothing until told to hold replies."""
    with redis_proxy(redis_server.port) as made:
        yield made


@pytest.fixture
def slow_link(redis_server: RedisServer) -> Iterator[RedisProxy]:
    """The real server behind a loopback proxy adding REMOTE_ROUND_TRIP to every reply."""
    with redis_proxy(redis_server.port, delay=REMOTE_ROUND_TRIP) as made:
        yield made


@pytest.fixture
def inspect(redis_server: RedisServer) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def emulator() -> AsyncIterator[FrontendAPIEmulator]:
    async with FrontendAPIEmulator() as fapi:
        yield fapi


def busy_wait(seconds: float) -> None:
    """Keep this thread (the event loop's) busy for ``seconds`` of CPU: a blocked loop."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def suffix(k: TokenKey) -> str:
    """``H:D:S:active`` of a token key (the default template and organization)."""
    h = hashlib.sha256(k[0].encode()).hexdigest()[:16]
    return f"{h}:{k[1]}:{k[2]}:active"


def lock_name(k: TokenKey) -> str:
    return f"clerk_sessions:lock:{suffix(k)}"


async def wait_in_thread(event: Any) -> None:
    """Wait for a threading.Event set by the proxy, letting this loop run meanwhile."""
    assert await anyio.to_thread.run_sync(event.wait, NO_HANG), "the proxy saw nothing"


async def preload_scripts(store: RedisStore) -> None:
    """Run begin_mint/end_mint once, so the server has their scripts (EVALSHA then runs them
    in one round trip: a held reply is then the script's own)."""
    warm = key(session="sess_preload")
    assert await store.begin_mint(warm, 30.0)
    await store.end_mint(warm, None, 0.0)


# -- (a) a 15 ms round trip: one mint, never down -------------------------------------------


@pytest.mark.serial
def test_fresh_worker_processes_over_a_15_ms_link_mint_once_and_never_go_down(
    redis_server: RedisServer, slow_link: RedisProxy
) -> None:
    """Three fresh processes (their first Redis call races their first connection), 20 callers
    each, every reply 15 ms late: one mint, and no process takes Redis for down."""
    with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        workers = [
            Worker(fapi.url, slow_link.url, device.client_token, budget="default") for _ in range(3)
        ]
        try:
            for worker in workers:
                worker.send(op="get_token", session_id=device.session_id, n=20)
            answers = [worker.read() for worker in workers]
            for worker in workers:
                worker.send(op="health")
            health = [worker.read() for worker in workers]
        finally:
            for worker in workers:
                worker.close()
        assert all("jwts" in answer for answer in answers), answers
        assert len({jwt for answer in answers for jwt in answer["jwts"]}) == 1
        assert mints(fapi) == 1
    assert [h["available"] for h in health] == [True, True, True]
    assert [h["warnings"] for h in health] == [[], [], []]
    assert slow_link.connections >= 3  # every worker went through the slow link


@pytest.mark.serial
async def test_three_clients_over_a_15_ms_link_mint_once_and_never_go_down(
    slow_link: RedisProxy, emulator: FrontendAPIEmulator, logs: LogWatcher
) -> None:
    device = emulator.sign_in()
    stores = [RedisStore(slow_link.url) for _ in range(3)]  # the default budgets
    results: list[str] = []
    try:
        async with (
            emulator.async_client(device, store=stores[0]) as one,
            emulator.async_client(device, store=stores[1]) as two,
            emulator.async_client(device, store=stores[2]) as three,
        ):

            async def get(clerk: Any) -> None:
                results.append(await clerk.get_token(device.session_id))

            with anyio.fail_after(NO_HANG):
                async with anyio.create_task_group() as tg:
                    for n in range(60):
                        tg.start_soon(get, (one, two, three)[n % 3])
            assert [store.available for store in stores] == [True, True, True]
    finally:
        for store in stores:
            await store.aclose()
    assert len(results) == 60
    assert len(set(results)) == 1
    assert mints(emulator) == 1
    assert logs.at(logging.WARNING) == []


# -- (b) one slow answer is not an outage; (c) three failures in a row are -------------------


@pytest.mark.serial
async def test_one_slow_answer_does_not_mark_redis_down(
    proxy: RedisProxy, logs: LogWatcher
) -> None:
    store = RedisStore(proxy.url)
    kept = token(1_700_000_000, marker="kept")
    try:
        await store.put(key(), kept, 60)
        proxy.hold_reply_to(b"HGET")
        assert await store.get(key()) is None  # no answer within the budget: answered here
        assert proxy.hold_engaged.is_set()
        proxy.release()
        assert store.available
        assert "1 of 3 consecutive failures" in await logs.wait_for(logging.DEBUG, "1 of 3")
        await logs.wait_for(logging.DEBUG, "answered its health probe")  # slow, not down
        got = await store.get(key())  # Redis again
        assert got is not None
        assert got.jwt == kept.jwt
        assert store.available
        assert logs.at(logging.WARNING) == []
    finally:
        proxy.release()
        await store.aclose()


async def test_three_consecutive_failures_mark_redis_down(
    proxy: RedisProxy, logs: LogWatcher
) -> None:
    # A connect budget (and so a health probe) far longer than the test: only the count decides.
    store = RedisStore(proxy.url, connect_timeout=NO_HANG)
    try:
        await store.put(key(), token(1_700_000_000), 60)
        proxy.hold_all()
        with anyio.fail_after(NO_HANG):
            assert await store.get(key()) is None
            assert store.available  # one failure
            assert await store.get(key()) is None
            assert store.available  # two
            assert await store.get(key()) is None
        assert not store.available  # three in a row
        (warning,) = logs.at(logging.WARNING)
        assert "Redis is unavailable (3 consecutive failures" in warning
    finally:
        proxy.release()
        await store.aclose()


async def test_a_failed_health_probe_marks_redis_down(proxy: RedisProxy, logs: LogWatcher) -> None:
    store = RedisStore(proxy.url, connect_timeout=0.5)
    try:
        await store.put(key(), token(1_700_000_000), 60)
        proxy.hold_all()
        assert await store.get(key()) is None  # one failure: a PING goes out ...
        assert store.available
        warning = await logs.wait_for(logging.WARNING, "Redis is unavailable")  # ... unanswered
        assert "its health probe failed" in warning
        assert not store.available
    finally:
        proxy.release()
        await store.aclose()


async def test_a_refused_connection_marks_redis_down_at_once(
    unused_tcp_port: int, logs: LogWatcher
) -> None:
    store = RedisStore(f"redis://127.0.0.1:{unused_tcp_port}/0")
    try:
        assert await store.get(key()) is None
        assert not store.available
        (warning,) = logs.at(logging.WARNING)
        assert "Redis is unavailable (connection refused)" in warning
    finally:
        await store.aclose()


# -- (d) frozen: bounded calls, down with a warning, back with an info ----------------------


async def test_frozen_redis_goes_down_with_a_warning_and_comes_back_with_an_info(
    redis_server: RedisServer, inspect: Any, logs: LogWatcher
) -> None:
    clock = FakeClock()
    store = RedisStore(redis_server.url, _clock=clock)
    kept = token(1_700_000_000, marker="kept")
    try:
        await store.put(key(), kept, 60)
        redis_server.pause()
        with anyio.fail_after(NO_HANG):  # each call ends within its budget: Redis is frozen
            for _ in range(10):
                assert await store.get(key()) is None  # nothing kept in this process yet
                if not store.available:
                    break
        assert redis_server.paused
        assert not store.available
        (warning,) = logs.at(logging.WARNING)
        assert "consecutive failures" in warning or "health probe failed" in warning
        assert "try Redis again in 1 s" in warning

        redis_server.resume()
        clock.advance(1.0)
        await store.get(key())  # the back-off passed: a probe goes out
        assert "Redis is back" in await logs.wait_for(logging.INFO, "Redis is back")
        assert store.available
        got = await store.get(key())
        assert got is not None
        assert got.jwt == kept.jwt  # Redis's own copy again
        await store.put(key(session="sess_2"), kept, 60)
        assert inspect.exists(f"clerk_sessions:tok:{suffix(key('sess_2'))}") == 1
        assert len(logs.at(logging.WARNING)) == 1
    finally:
        if redis_server.paused:
            redis_server.resume()
        await store.aclose()


async def test_redis_restarted_after_a_freeze_comes_back(
    redis_server: RedisServer, logs: LogWatcher
) -> None:
    clock = FakeClock()
    store = RedisStore(redis_server.url, _clock=clock)
    try:
        await store.put(key(), token(1_700_000_000), 60)
        redis_server.pause()
        with anyio.fail_after(NO_HANG):
            while store.available:
                await store.get(key())
        redis_server.restart()  # SIGCONT, SIGTERM, a fresh (empty) server on the same port
        clock.advance(1.0)
        await store.get(key())
        await logs.wait_for(logging.INFO, "Redis is back")
        assert store.available
        assert await store.get(key()) is None  # the new server is empty
    finally:
        await store.aclose()


# -- (e) TLS on loopback is not taken for down ----------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[RedisServer]:
    from .tls_certs import make_tls_files

    files = make_tls_files(tmp_path)
    directory = tmp_path / "redis"
    directory.mkdir()
    try:
        with running_redis(directory, tls=files) as server:
            yield server
    except RedisServerNotInstalled as missing:
        pytest.skip(str(missing))
    except RuntimeError as failed:
        if "tls" in str(failed).lower():
            pytest.skip(f"this redis-server was built without TLS support: {failed}")
        raise


@pytest.mark.serial
async def test_a_rediss_store_on_loopback_works_and_is_not_taken_for_down(
    tls_server: RedisServer, emulator: FrontendAPIEmulator, logs: LogWatcher
) -> None:
    device = emulator.sign_in()
    stores = [RedisStore(tls_server.tls_url) for _ in range(3)]  # fresh, default budgets
    results: list[str] = []
    try:
        async with (
            emulator.async_client(device, store=stores[0]) as one,
            emulator.async_client(device, store=stores[1]) as two,
            emulator.async_client(device, store=stores[2]) as three,
        ):

            async def get(clerk: Any) -> None:
                results.append(await clerk.get_token(device.session_id))

            with anyio.fail_after(NO_HANG):
                async with anyio.create_task_group() as tg:
                    for n in range(30):
                        tg.start_soon(get, (one, two, three)[n % 3])
        assert [store.available for store in stores] == [True, True, True]
        kept = await stores[0].get(
            (emulator.url, device_key(f"id:{device.client_id}"), device.session_id, None, UNSET)
        )
    finally:
        for store in stores:
            await store.aclose()
    assert len(set(results)) == 1
    assert mints(emulator) == 1
    assert kept is not None  # read back over TLS from Redis
    assert logs.at(logging.WARNING) == []


# -- (f) a blocked event loop is not a Redis failure ----------------------------------------


@pytest.mark.serial
async def test_a_call_timed_out_by_a_blocked_event_loop_is_not_counted(
    proxy: RedisProxy, logs: LogWatcher
) -> None:
    store = RedisStore(proxy.url)
    kept = token(1_700_000_000, marker="kept")
    try:
        await store.put(key(), kept, 60)
        for n in range(1, 4):  # three in a row: counted, they would mark Redis down
            proxy.hold_reply_to(b"HGET")
            call = asyncio.ensure_future(store.get(key()))
            await wait_in_thread(proxy.hold_engaged)  # the call is in flight ...
            busy_wait(4 * store.timeout)  # ... and this loop is busy past its deadline
            assert await call is None  # it answered from this process
            proxy.release()
            assert logs.count(logging.DEBUG, "event loop was blocked") == n
        assert store.available
        assert logs.at(logging.WARNING) == []
        assert logs.count(logging.DEBUG, "consecutive failures") == 0  # none was counted
        got = await store.get(key())
        assert got is not None
        assert got.jwt == kept.jwt
    finally:
        proxy.release()
        await store.aclose()


# -- unknown outcome = possibly applied: a lease whose answer was lost ----------------------


async def test_a_lease_whose_answer_was_lost_is_released_when_the_mint_ends(
    redis_server: RedisServer, proxy: RedisProxy, inspect: Any, logs: LogWatcher
) -> None:
    slow, other = RedisStore(proxy.url), RedisStore(redis_server.url)
    minted = token(1_700_000_000, marker="minted")
    try:
        await preload_scripts(slow)
        proxy.hold_reply_to(lock_name(key()).encode())
        assert await slow.begin_mint(key(), 30.0)  # no answer in time: it mints on its own
        await wait_in_thread(proxy.reply_held)  # Redis did run it: the lease is taken ...
        proxy.release()
        assert inspect.exists(lock_name(key())) == 1
        assert 0 < inspect.pttl(lock_name(key())) <= 2000  # ... and unconfirmed: short-lived
        assert not await other.begin_mint(key(), 30.0)  # held while the mint runs

        await slow.end_mint(key(), minted, 60)
        assert inspect.exists(lock_name(key())) == 0  # released: compare-and-delete
        got = await other.get(key())
        assert got is not None
        assert got.jwt == minted.jwt  # kept: the sign-out counter was read from the lease
        assert await other.begin_mint(key(), 30.0)  # nobody is blocked by it
        await other.end_mint(key(), None, 0.0)
        assert slow.available  # one late answer
        assert logs.at(logging.WARNING) == []
    finally:
        proxy.release()
        await slow.aclose()
        await other.aclose()


async def test_a_lost_lease_cannot_outlive_a_short_expiry_when_redis_stays_unreachable(
    redis_server: RedisServer, proxy: RedisProxy, inspect: Any
) -> None:
    slow, other = RedisStore(proxy.url), RedisStore(redis_server.url)
    try:
        await preload_scripts(slow)
        proxy.hold_reply_to(lock_name(key()).encode())
        assert await slow.begin_mint(key(), 30.0)
        await wait_in_thread(proxy.reply_held)
        proxy.partition()  # from now on this process cannot reach Redis at all
        await slow.end_mint(key(), token(1_700_000_000), 60)  # cannot release it
        assert inspect.exists(lock_name(key())) == 1
        assert slow._pending_releases  # kept, to release when Redis answers
        assert 0 < inspect.pttl(lock_name(key())) <= 2000  # but it expires by itself soon
        with anyio.fail_after(NO_HANG):  # the other process waits for that expiry, no longer
            assert await other.wait_mint(key(), 30.0) is None
            assert await other.begin_mint(key(), 30.0)
    finally:
        proxy.release()
        await slow.aclose()
        await other.aclose()


async def test_through_the_sdk_a_lost_lease_answer_costs_no_second_mint(
    redis_server: RedisServer, proxy: RedisProxy, emulator: FrontendAPIEmulator
) -> None:
    device = emulator.sign_in()
    slow, other = RedisStore(proxy.url), RedisStore(redis_server.url)
    try:
        async with (
            emulator.async_client(device, store=slow) as one,
            emulator.async_client(device, store=other) as two,
        ):
            await preload_scripts(slow)
            proxy.hold_reply_to(redis_module._SHA[redis_module._BEGIN].encode())  # begin_mint
            with anyio.fail_after(NO_HANG):
                first = await one.get_token(device.session_id)  # its lease's answer was lost
                proxy.release()
                second = await two.get_token(device.session_id)  # not blocked, no new mint
            assert proxy.hold_engaged.is_set()
            assert first == second
            assert mints(emulator) == 1
    finally:
        proxy.release()
        await slow.aclose()
        await other.aclose()


async def test_a_rotation_whose_answer_was_lost_is_sent_again(
    redis_server: RedisServer, proxy: RedisProxy, logs: LogWatcher
) -> None:
    slow, other = RedisStore(proxy.url), RedisStore(redis_server.url)
    try:
        assert await other.client_token(HOST, DEVICE, "t1") == "t1"
        await slow.swap_client_token(HOST, "another-device", None, "x")  # the script is loaded
        proxy.hold_reply_to(b"t2")
        assert await slow.swap_client_token(HOST, DEVICE, "t1", "t2") == "t2"
        await wait_in_thread(proxy.reply_held)  # Redis answered; the answer was lost
        proxy.release()
        # Not assumed applied: its compare-and-set is sent again, in the background.
        assert "kept write" in await logs.wait_for(logging.DEBUG, "kept write")
        assert not slow._pending_rotations
        assert await other.client_token(HOST, DEVICE, None) == "t2"
        # Applied once or twice, the device moved past t1: an answer repeating it is ignored.
        assert await other.swap_client_token(HOST, DEVICE, "t2", "t1") == "t2"
        assert slow.available
    finally:
        proxy.release()
        await slow.aclose()
        await other.aclose()


# -- proven client-token strings --------------------------------------------------------------


async def test_proofs_are_shared_between_stores(redis_server: RedisServer, inspect: Any) -> None:
    one, two = RedisStore(redis_server.url), RedisStore(redis_server.url)
    try:
        assert not await two.is_proven(HOST, DEVICE, "digest-1")
        await one.add_proven(HOST, DEVICE, ["digest-1", "digest-2"])
        assert await two.is_proven(HOST, DEVICE, "digest-1")
        assert await two.is_proven(HOST, DEVICE, "digest-2")
        assert not await two.is_proven(HOST, DEVICE, "digest-3")
        assert not await two.is_proven(HOST, device_key("id:client_other"), "digest-1")
        assert not await two.is_proven("https://other.example.test", DEVICE, "digest-1")
        (name,) = [n.decode() for n in inspect.scan_iter("clerk_sessions:prv:*")]
        assert name.endswith(f":{DEVICE}")
        assert inspect.type(name) == b"set"
        assert inspect.smembers(name) == {b"digest-1", b"digest-2"}
        assert 0 < inspect.pttl(name) <= 30 * 24 * 3600 * 1000
    finally:
        await one.aclose()
        await two.aclose()


async def test_proofs_while_down_answer_false_and_reach_redis_when_it_is_back(
    redis_server: RedisServer, logs: LogWatcher
) -> None:
    clock = FakeClock()
    store, other = RedisStore(redis_server.url, _clock=clock), RedisStore(redis_server.url)
    try:
        await store.add_proven(HOST, DEVICE, ["before"])
        assert await store.is_proven(HOST, DEVICE, "before")
        redis_server.kill()
        assert not await store.is_proven(HOST, DEVICE, "before")  # its connection dropped
        await logs.wait_for(logging.WARNING, "connection refused")  # the probe: refused
        assert not store.available
        assert not await store.is_proven(HOST, DEVICE, "before")  # down: False
        await store.add_proven(HOST, DEVICE, ["while-down"])  # kept for later
        assert not await store.is_proven(HOST, DEVICE, "while-down")  # remembered, not known
        redis_server.restart()  # empty
        clock.advance(1.0)
        await store.get(key())
        await logs.wait_for(logging.INFO, "Redis is back")
        assert await other.is_proven(HOST, DEVICE, "while-down")  # replayed
        assert not await other.is_proven(HOST, DEVICE, "before")  # lost with the old server
    finally:
        await store.aclose()
        await other.aclose()


def test_the_module_documents_the_proof_key_and_command() -> None:
    doc = redis_module.__doc__ or ""
    assert "``P:prv:H:D``" in doc
    assert "+sismember" in doc
