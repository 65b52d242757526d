"""RedisStore against a real redis-server: the Store contract, the key layout, single flight and
client tokens across processes (two stores stand for two processes), the SDK on top of it, and
Redis faults (killed, refusing, frozen, asleep) that must never hang or break a call."""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.to_thread
import orjson
import pytest

from clerk_sessions import ClerkSessionsError
from clerk_sessions._devices import device_key
from clerk_sessions._errors import ConfigurationError
from clerk_sessions._jwt import CachedToken, TokenKey, jwt_timing
from clerk_sessions._store import MemoryStore
from clerk_sessions._types import UNSET
from clerk_sessions.testing import FrontendAPIEmulator, RedisServer

from .redis_logs import LogWatcher, logs_fixture  # noqa: F401 - the fixture

redis = pytest.importorskip("redis", reason="pip install 'clerk-sessions[redis]'")
from clerk_sessions.redis import RedisStore  # noqa: E402 - after the skip without redis-py

pytestmark = pytest.mark.anyio

HOST = "https://clerk.example.test"
DEVICE = device_key("id:client_canary")
OTHER_DEVICE = device_key("id:client_other")
CANARY_CLIENT_TOKEN = "client.CANARY-CLIENT-TOKEN-5e1f"
CANARY_PASSWORD = "CANARY-PASSWORD-93b1"
# Redis budgets (RedisStore(timeout=...)). Opening a connection has its own budget (2 s) and a
# slow call alone never marks Redis down (tests/test_redis_health.py tests the defaults); tests
# where Redis must stay up under a loaded CI machine (python -X dev under coverage, threads)
# still give each call 2 s; tests that freeze or put Redis to sleep give each call the default
# 0.25 s, far below how long the fault lasts. Tests against a refused port keep the default.
PATIENT = 2.0
FAULTS = 0.25
# A safety net, never a measurement: a call that hangs fails its test instead of hanging it.
NO_HANG = 20.0


def make_jwt(iat: float, exp: float, oiat: float | None = None, marker: str = "") -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if oiat is not None:
        header["oiat"] = oiat
    payload = {"iat": iat, "exp": exp, "sid": "sess_1", "marker": marker}
    return f"{part(header)}.{part(payload)}.CANARYSIGNATURE{marker}"


def token(
    iat: float, oiat: float | None = None, life: float = 60.0, marker: str = ""
) -> CachedToken:
    jwt = make_jwt(iat, iat + life, oiat, marker)
    timing = jwt_timing(jwt)
    assert timing is not None
    return CachedToken(jwt, timing)


def key(
    session: str = "sess_1",
    template: str | None = None,
    org: Any = UNSET,
    device: str = DEVICE,
    host: str = HOST,
) -> TokenKey:
    return (host, device, session, template, org)


class FakeClock:
    """The back-off's clock, moved by the test (RedisStore(_clock=...))."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def inspect(redis_server: RedisServer) -> Iterator[Any]:
    """A plain blocking redis-py client, to look at what the store wrote."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        redis_server.url,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 2),  # reconnects after a restart
        retry_on_error=[redis.ConnectionError],
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def stores(redis_server: RedisServer) -> AsyncIterator[list[RedisStore]]:
    """Two stores on one Redis and prefix: two processes of one deployment."""
    made = [RedisStore(redis_server.url, timeout=PATIENT) for _ in range(2)]
    try:
        yield made
    finally:
        for store in made:
            await store.aclose()


@pytest.fixture
async def emulator() -> AsyncIterator[FrontendAPIEmulator]:
    async with FrontendAPIEmulator() as fapi:
        yield fapi


def mints(fapi: FrontendAPIEmulator) -> int:
    return sum(1 for r in fapi.requests if r.operation == "create_session_token")


def clerk_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "clerk_sessions" and r.levelno == level]


# -- the Store contract ---------------------------------------------------------------------


async def test_put_then_get_returns_the_token_and_its_timing(stores: list[RedisStore]) -> None:
    a, b = stores
    kept = token(1_700_000_000, oiat=1_699_999_990)
    await a.put(key(), kept, 60)
    got = await b.get(key())
    assert got is not None
    assert got.jwt == kept.jwt
    assert got.timing.freshness == kept.timing.freshness
    assert got.timing.expires_at == kept.timing.expires_at
    assert await b.get(key(template="tpl")) is None
    assert await b.get(key(session="sess_2")) is None


async def test_freshness_never_goes_backwards_as_in_memory(stores: list[RedisStore]) -> None:
    """For every pair of tokens put one after the other, Redis keeps what MemoryStore keeps."""
    redis_store = stores[0]
    variants = [
        token(100, marker="a"),
        token(200, marker="b"),
        token(100, oiat=50, marker="c"),
        token(90, oiat=60, marker="d"),
        token(300, oiat=50, marker="e"),
        token(100, oiat=50, marker="f"),  # same freshness as c: the newer put wins
    ]
    for n, first in enumerate(variants):
        for m, second in enumerate(variants):
            k = key(session=f"sess_{n}_{m}")
            memory = MemoryStore(10)
            for store in (memory, redis_store):
                await store.put(k, first, 60)
                await store.put(k, second, 60)
            expected = await memory.get(k)
            got = await redis_store.get(k)
            assert expected is not None
            assert got is not None
            assert got.jwt == expected.jwt, (n, m)


async def test_entries_expire_with_the_ttl_given_never_later(
    stores: list[RedisStore], inspect: Any
) -> None:
    store = stores[0]
    await store.put(key(), token(1_700_000_000, life=3600), 42.5)  # the JWT's 3600 s is ignored
    await store.put(key(session="sess_2"), token(1_700_000_000), 7.0)
    names = sorted(n.decode() for n in inspect.scan_iter("clerk_sessions:tok:*"))
    assert len(names) == 2
    (index,) = list(inspect.scan_iter("clerk_sessions:idx:*"))
    with inspect.pipeline(transaction=True) as pipe:  # all read at one instant
        for name in [*names, index]:
            pipe.pttl(name)
        *token_ttls, index_ttl = pipe.execute()
    ttls = dict(zip((n.rsplit(":", 2)[1] for n in names), token_ttls, strict=True))
    assert 0 < ttls["sess_1"] <= 42_500
    assert 0 < ttls["sess_2"] <= 7_000
    assert ttls["sess_1"] <= index_ttl <= 42_500  # the longest member's life
    await store.put(key(session="sess_3"), token(1_700_000_000), 0.0)  # nothing left to keep
    assert await store.get(key(session="sess_3")) is None


async def test_drop_forgets_a_session_or_a_whole_device(stores: list[RedisStore]) -> None:
    a, b = stores
    kept = token(1_700_000_000)
    keys = [
        key("sess_1"),
        key("sess_1", template="tpl"),
        key("sess_1", org="org_1"),
        key("sess_1", org=None),
        key("sess_1x"),  # a session id that starts like sess_1
        key("sess_2"),
        key("sess_1", device=OTHER_DEVICE),
        key("sess_1", host="https://other.example.test"),
    ]
    for k in keys:
        await a.put(k, kept, 60)

    await b.drop(HOST, DEVICE, "sess_1")
    present = [k for k in keys if await a.get(k) is not None]
    assert present == [keys[4], keys[5], keys[6], keys[7]]

    await b.drop(HOST, DEVICE, None)
    present = [k for k in keys if await a.get(k) is not None]
    assert present == [keys[6], keys[7]]


async def test_ids_with_separators_never_share_a_key(stores: list[RedisStore]) -> None:
    store = stores[0]
    pairs = [
        (key("s:t=a"), key("s", template="a")),
        (key("s", template="a:b"), key("s", template="a", org="b")),
        (key("s%3A"), key("s:")),
        (key("s", org=""), key("s", org="%")),
    ]
    for n, (one, other) in enumerate(pairs):
        await store.put(one, token(100 + n, marker=f"one{n}"), 60)
        await store.put(other, token(100 + n, marker=f"other{n}"), 60)
        got_one, got_other = await store.get(one), await store.get(other)
        assert got_one is not None
        assert got_other is not None
        assert got_one.jwt != got_other.jwt, (one, other)


async def test_key_layout_as_documented(stores: list[RedisStore], inspect: Any) -> None:
    store = stores[0]
    kept = token(1_700_000_000, oiat=1_699_999_000)
    await store.put(key("sess_1"), kept, 60)
    await store.put(key("sess_1", org=None), kept, 60)
    await store.put(key("sess_1", org="org_9"), kept, 60)
    await store.put(key("sess_1", template="tpl"), kept, 60)
    await store.client_token(HOST, DEVICE, CANARY_CLIENT_TOKEN)
    assert await store.begin_mint(key("sess_2"), 30)
    await store.add_proven(HOST, DEVICE, ["a-digest"])

    h = hashlib.sha256(HOST.encode()).hexdigest()[:16]
    p = f"clerk_sessions:tok:{h}:{DEVICE}:sess_1"
    names = {n.decode(): inspect.type(n).decode() for n in inspect.scan_iter("*")}
    assert names == {
        f"{p}:active": "hash",
        f"{p}:o=": "hash",
        f"{p}:o=org_9": "hash",
        f"{p}:t=tpl": "hash",
        f"clerk_sessions:idx:{h}:{DEVICE}": "set",
        f"clerk_sessions:dev:{h}:{DEVICE}": "string",
        f"clerk_sessions:lock:{h}:{DEVICE}:sess_2:active": "string",
        f"clerk_sessions:prv:{h}:{DEVICE}": "set",
    }
    assert inspect.hgetall(f"{p}:active") == {
        b"jwt": kept.jwt.encode(),
        b"iat": b"1700000000.0",
        b"oiat": b"1699999000.0",
    }
    assert inspect.get(f"clerk_sessions:dev:{h}:{DEVICE}") == CANARY_CLIENT_TOKEN.encode()


async def test_sign_outs_are_announced_on_the_events_channel(
    stores: list[RedisStore], inspect: Any
) -> None:
    pubsub = inspect.pubsub()
    try:
        pubsub.subscribe("clerk_sessions:events")
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        await stores[0].drop(HOST, DEVICE, "sess:1")
        await stores[1].drop(HOST, DEVICE, None)
        received = [pubsub.get_message(timeout=5)["data"] for _ in range(2)]
    finally:
        pubsub.close()
    h = hashlib.sha256(HOST.encode()).hexdigest()[:16]
    assert received == [f"drop {h}:{DEVICE}:sess%3A1".encode(), f"drop {h}:{DEVICE}".encode()]


async def test_no_key_holds_a_credential(stores: list[RedisStore], inspect: Any) -> None:
    a, b = stores
    kept = token(1_700_000_000, oiat=1_699_999_000, marker="CANARYJWT")
    await a.put(key(), kept, 60)
    await a.client_token(HOST, DEVICE, CANARY_CLIENT_TOKEN)
    await a.swap_client_token(HOST, DEVICE, CANARY_CLIENT_TOKEN, CANARY_CLIENT_TOKEN + "-2")
    assert await a.begin_mint(key(session="sess_2"), 30)
    assert not await b.begin_mint(key(session="sess_2"), 30)
    await a.end_mint(key(session="sess_2"), kept, 60)
    await a.drop(HOST, OTHER_DEVICE, None)
    names = [n.decode() for n in inspect.scan_iter("*")]
    assert len(names) >= 4
    for name in names:
        assert name.startswith("clerk_sessions:")
        assert CANARY_CLIENT_TOKEN not in name
        assert "CANARY" not in name
        for segment in kept.jwt.split("."):
            assert segment not in name
        assert HOST not in name
        assert "example" not in name


async def test_prefixes_keep_deployments_apart(redis_server: RedisServer) -> None:
    one, two = (
        RedisStore(redis_server.url, prefix="app1", timeout=PATIENT),
        RedisStore(redis_server.url, prefix="app2", timeout=PATIENT),
    )
    try:
        await one.put(key(), token(1_700_000_000), 60)
        await one.client_token(HOST, DEVICE, CANARY_CLIENT_TOKEN)
        assert await one.begin_mint(key("sess_2"), 30)
        assert await two.get(key()) is None
        assert await two.client_token(HOST, DEVICE, "its own token") == "its own token"
        assert await two.begin_mint(key("sess_2"), 30)  # app1's lease is not app2's
    finally:
        await one.aclose()
        await two.aclose()


# -- single flight across processes ---------------------------------------------------------


class SignallingRedis(redis.asyncio.Redis):  # type: ignore[misc]
    """Says when its PTTL has answered: a waiter then certainly waits for the mint's end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.looked = anyio.Event()
        self.looks = 0

    async def pttl(self, name: Any) -> Any:
        answer = await super().pttl(name)
        self.looks += 1
        self.looked.set()
        return answer


async def test_a_waiter_wakes_when_the_leader_ends_its_mint(
    redis_server: RedisServer, inspect: Any
) -> None:
    client = SignallingRedis.from_url(redis_server.url)
    leader, waiter = (
        RedisStore(redis_server.url, timeout=PATIENT),
        RedisStore(client, timeout=PATIENT),
    )
    minted = token(1_700_000_000, marker="minted")
    try:
        assert await leader.begin_mint(key(), 30.0)
        assert not await waiter.begin_mint(key(), 30.0)
        with anyio.fail_after(NO_HANG):  # the lease is 30 s: only the leader's message wakes it
            async with anyio.create_task_group() as tg:
                results: list[CachedToken | None] = []

                async def wait() -> None:
                    results.append(await waiter.wait_mint(key(), 30.0))

                tg.start_soon(wait)
                await client.looked.wait()  # the waiter is subscribed and found the lease held
                await leader.end_mint(key(), minted, 60)
        assert results[0] is not None
        assert results[0].jwt == minted.jwt
        assert client.looks == 1  # it waited for the message: no polling
        assert inspect.exists(f"clerk_sessions:lock:{key_suffix(key())}") == 0
        assert await waiter.begin_mint(key(), 30.0)  # the lease is free again
    finally:
        await leader.aclose()
        await waiter.aclose()
        await client.aclose()


def key_suffix(k: TokenKey) -> str:
    h = hashlib.sha256(k[0].encode()).hexdigest()[:16]
    return f"{h}:{k[1]}:{k[2]}:active"


async def test_a_failed_mint_wakes_the_waiter_who_may_then_lead(stores: list[RedisStore]) -> None:
    leader, waiter = stores
    assert await leader.begin_mint(key(), 30.0)
    with anyio.fail_after(NO_HANG):
        async with anyio.create_task_group() as tg:
            results: list[CachedToken | None] = []

            async def wait() -> None:
                results.append(await waiter.wait_mint(key(), 30.0))

            tg.start_soon(wait)
            await leader.end_mint(key(), None, 0.0)
    assert results == [None]
    assert await waiter.begin_mint(key(), 30.0)


async def test_a_dead_leaders_lease_expires_and_a_waiter_leads(stores: list[RedisStore]) -> None:
    dead, waiter = stores
    assert await dead.begin_mint(key(), 0.2)  # ... and never ends it
    assert not await waiter.begin_mint(key(), 0.2)
    with anyio.fail_after(NO_HANG):  # bounded by the lease, not by wait_mint's 30 s
        assert await waiter.wait_mint(key(), 30.0) is None
        while not await waiter.begin_mint(key(), 0.2):  # at most a few ms past the expiry
            assert await waiter.wait_mint(key(), 30.0) is None


async def test_a_sign_out_during_a_mint_keeps_its_token_out(stores: list[RedisStore]) -> None:
    leader, other = stores
    assert await leader.begin_mint(key(), 30.0)
    await other.drop(HOST, DEVICE, "sess_1")  # signed out while the mint was in flight
    await leader.end_mint(key(), token(1_700_000_000), 60)
    assert await other.get(key()) is None
    assert await leader.begin_mint(key(), 30.0)  # the lease was released all the same


# -- devices' client tokens -----------------------------------------------------------------


async def test_client_token_is_shared_and_the_answer_that_arrives_last_wins(
    stores: list[RedisStore],
) -> None:
    a, b = stores
    assert await a.client_token(HOST, DEVICE, None) is None
    assert await a.client_token(HOST, DEVICE, "t1") == "t1"  # the first known becomes current
    assert await b.client_token(HOST, DEVICE, "t0-older") == "t1"
    assert await b.swap_client_token(HOST, DEVICE, "t1", "t2") == "t2"
    # A second answer to a request sent with t1 came later: Clerk issued it after t2.
    assert await a.swap_client_token(HOST, DEVICE, "t1", "t3") == "t3"
    assert await b.client_token(HOST, DEVICE, "t2") == "t3"
    # An answer repeating a token the device moved past never takes it back.
    assert await a.swap_client_token(HOST, DEVICE, "t1", "t2") == "t3"
    # Nor does an answer to a request sent with a token the device never had.
    assert await a.swap_client_token(HOST, DEVICE, "stranger", "t9") == "t3"
    assert await a.swap_client_token(HOST, DEVICE, "t3", None) is None  # cleared
    assert await b.client_token(HOST, DEVICE, None) is None
    # Nothing stored (new device, or Redis lost it): the rotation is taken.
    assert await a.swap_client_token(HOST, OTHER_DEVICE, "u1", "u2") == "u2"
    assert await b.client_token(HOST, OTHER_DEVICE, "u1") == "u2"


async def test_client_tokens_are_forgotten_after_a_long_idle(
    stores: list[RedisStore], inspect: Any
) -> None:
    await stores[0].client_token(HOST, DEVICE, "t1")
    (name,) = list(inspect.scan_iter("clerk_sessions:dev:*"))
    assert 0 < inspect.pttl(name) <= 30 * 24 * 3600 * 1000


# -- configuration and secrecy --------------------------------------------------------------


async def test_bad_configuration_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisStore(f"http://user:{CANARY_PASSWORD}@localhost:6379")
    with pytest.raises(ConfigurationError) as caught:
        RedisStore(f"redis://user:{CANARY_PASSWORD}@localhost:notaport/0")
    assert CANARY_PASSWORD not in str(caught.value)
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio\.Redis"):
        RedisStore(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio\.Redis"):
        RedisStore(redis.Redis())  # the blocking client cannot serve async calls
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisStore("redis://localhost", prefix="")
    with pytest.raises(ConfigurationError, match="timeout"):
        RedisStore("redis://localhost", timeout=0)
    with pytest.raises(ConfigurationError, match="connect_timeout"):
        RedisStore("redis://localhost", connect_timeout=float("nan"))


async def test_repr_never_shows_a_password(redis_server: RedisServer) -> None:
    store = RedisStore(f"redis://app:{CANARY_PASSWORD}@127.0.0.1:{redis_server.port}/3")
    client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port, password=CANARY_PASSWORD)
    try:
        assert CANARY_PASSWORD not in repr(store)
        assert "app" not in repr(store)
        assert repr(store) == (
            f"RedisStore(redis://***@127.0.0.1:{redis_server.port}/3, prefix='clerk_sessions', "
            "redis=up)"
        )
        assert CANARY_PASSWORD not in repr(RedisStore(client))
    finally:
        await store.aclose()
        await client.aclose()


# -- through the SDK: two clients stand for two processes -----------------------------------


async def test_twenty_concurrent_get_token_on_two_clients_mint_once(
    redis_server: RedisServer, emulator: FrontendAPIEmulator
) -> None:
    device = emulator.sign_in()
    stores = [
        RedisStore(redis_server.url, timeout=PATIENT),
        RedisStore(redis_server.url, timeout=PATIENT),
    ]
    results: list[str] = []
    try:
        async with (
            emulator.async_client(device, store=stores[0]) as one,
            emulator.async_client(device, store=stores[1]) as two,
        ):

            async def get(clerk: Any) -> None:
                results.append(await clerk.get_token(device.session_id))

            with anyio.fail_after(NO_HANG):
                async with anyio.create_task_group() as tg:
                    for n in range(20):
                        tg.start_soon(get, (one, two)[n % 2])
    finally:
        for store in stores:
            await store.aclose()
    assert len(results) == 20
    assert len(set(results)) == 1
    assert mints(emulator) == 1


async def test_a_rotation_seen_by_one_client_is_sent_by_the_other(
    redis_server: RedisServer,
) -> None:
    stores = [
        RedisStore(redis_server.url, timeout=PATIENT),
        RedisStore(redis_server.url, timeout=PATIENT),
    ]
    async with FrontendAPIEmulator(
        rotate_client_tokens=True, reject_stale_client_tokens=True
    ) as fapi:
        device = fapi.sign_in()
        try:
            async with (
                fapi.async_client(device, store=stores[0]) as one,
                fapi.async_client(device, store=stores[1]) as two,
            ):
                await one.get_session(device.session_id)  # answered with generation 2
                assert fapi.requests[-1].token_generation == 1
                await two.get_session(device.session_id)  # two never saw generation 2 itself
                assert fapi.requests[-1].token_generation == 2
                assert fapi.requests[-1].status == 200
                await one.get_session(device.session_id)
                assert fapi.requests[-1].token_generation == 3
        finally:
            for store in stores:
                await store.aclose()


async def test_a_sign_out_in_one_client_is_seen_by_the_other(
    redis_server: RedisServer, emulator: FrontendAPIEmulator, inspect: Any
) -> None:
    device = emulator.sign_in()
    stores = [
        RedisStore(redis_server.url, timeout=PATIENT),
        RedisStore(redis_server.url, timeout=PATIENT),
    ]
    try:
        async with (
            emulator.async_client(device, store=stores[0]) as one,
            emulator.async_client(device, store=stores[1]) as two,
        ):
            jwt = await two.get_token(device.session_id)
            assert await one.get_token(device.session_id) == jwt  # two's token, no mint
            assert mints(emulator) == 1
            await one.end_session(device.session_id)
            assert list(inspect.scan_iter("clerk_sessions:tok:*")) == []
            with pytest.raises(ClerkSessionsError):
                await two.get_token(device.session_id)  # not the cached token: the session ended
            assert mints(emulator) == 2
    finally:
        for store in stores:
            await store.aclose()


async def test_blocking_clients_on_many_threads_share_one_mint(
    redis_server: RedisServer, emulator: FrontendAPIEmulator
) -> None:
    device = emulator.sign_in()
    stores = [
        RedisStore(redis_server.url, timeout=PATIENT),
        RedisStore(redis_server.url, timeout=PATIENT),
    ]
    clients = [emulator.sync_client(device, store=store) for store in stores]
    threads = 6
    barrier = threading.Barrier(threads)
    results: list[str] = []

    def work(n: int) -> None:
        clerk = clients[n % 2]
        barrier.wait(timeout=NO_HANG)
        results.append(clerk.get_token(device.session_id))

    try:
        with anyio.fail_after(NO_HANG):
            async with anyio.create_task_group() as tg:
                for n in range(threads):
                    tg.start_soon(anyio.to_thread.run_sync, work, n)
    finally:
        for clerk in clients:
            await anyio.to_thread.run_sync(clerk.close)
        for store in stores:
            await store.aclose()
    assert len(results) == threads
    assert len(set(results)) == 1
    assert mints(emulator) == 1


# -- faults: Redis must never hang or break a call ------------------------------------------


async def test_redis_killed_mid_run_then_restarted(
    redis_server: RedisServer,
    emulator: FrontendAPIEmulator,
    inspect: Any,
    caplog: pytest.LogCaptureFixture,
    logs: LogWatcher,
) -> None:
    caplog.set_level(logging.DEBUG, logger="clerk_sessions")
    clock = FakeClock()
    device = emulator.sign_in()
    store = RedisStore(redis_server.url, timeout=FAULTS, _clock=clock)
    try:
        async with emulator.async_client(device, store=store) as clerk:
            await clerk.get_token(device.session_id)
            assert store.available
            assert mints(emulator) == 1

            redis_server.kill()
            with anyio.fail_after(NO_HANG):
                for _ in range(3):  # minted here once, then cached here
                    assert await clerk.get_token(device.session_id) != ""
                await clerk.get_session(device.session_id)
            assert mints(emulator) == 2
            assert not store.available
            (warning,) = clerk_records(caplog, logging.WARNING)
            assert "Redis is unavailable" in warning.getMessage()
            assert "try" in warning.getMessage()
            assert "process" in warning.getMessage()

            redis_server.restart()
            before = inspect.info("stats")["total_commands_processed"]
            await clerk.get_token(device.session_id)  # within the back-off: Redis left alone
            after = inspect.info("stats")["total_commands_processed"]
            assert after == before + 1  # only the INFO above
            assert not store.available

            clock.advance(1.0)
            await clerk.get_token(device.session_id)  # tries again (in the background) ...
            await logs.wait_for(logging.INFO, "Redis is back")  # ... and Redis is back
            assert store.available
            (_info,) = [
                r for r in clerk_records(caplog, logging.INFO) if "Redis is back" in r.getMessage()
            ]
            await clerk.get_token(device.session_id)  # from Redis (it may have been the one above)
            assert mints(emulator) == 3  # the restarted Redis was empty
            assert len(list(inspect.scan_iter("clerk_sessions:tok:*"))) == 1  # shared again
            assert len(clerk_records(caplog, logging.WARNING)) == 1
    finally:
        await store.aclose()


async def test_back_off_doubles_while_redis_stays_down(
    unused_tcp_port: int, caplog: pytest.LogCaptureFixture, logs: LogWatcher
) -> None:
    caplog.set_level(logging.DEBUG, logger="clerk_sessions")
    clock = FakeClock()
    store = RedisStore(f"redis://127.0.0.1:{unused_tcp_port}/0", _clock=clock)
    try:
        assert await store.get(key()) is None
        for n in range(7):
            clock.advance(100.0)
            await store.get(key())  # the back-off passed: one probe (refused again)
            await logs.wait_for(logging.DEBUG, "still unavailable", after=n)
        waits = [
            r.args[-1]
            for r in caplog.records
            if r.name == "clerk_sessions" and "unavailable" in r.getMessage()
        ]
        assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
        assert len(clerk_records(caplog, logging.WARNING)) == 1
    finally:
        await store.aclose()


async def test_while_down_it_answers_like_the_in_process_store(unused_tcp_port: int) -> None:
    """Redis refusing: each method answers at once as MemoryStore would (tokens kept here)."""
    store = RedisStore(f"redis://127.0.0.1:{unused_tcp_port}/0", _clock=FakeClock())
    kept, fresher = token(1_700_000_000, marker="kept"), token(1_700_000_100, marker="fresher")
    try:
        with anyio.fail_after(NO_HANG):
            await store.put(key(), kept, 60)  # fails: Redis is down from here on
            assert not store.available
            got = await store.get(key())
            assert got is not None
            assert got.jwt == kept.jwt
            await store.put(key(), token(1_699_999_000), 60)  # older: not kept
            assert (await store.get(key())).jwt == kept.jwt  # type: ignore[union-attr]
            assert await store.begin_mint(key(), 30.0)  # this process mints
            await store.end_mint(key(), fresher, 60)
            assert (await store.wait_mint(key(), 30.0)).jwt == fresher.jwt  # type: ignore[union-attr]
            assert await store.client_token(HOST, DEVICE, "t1") == "t1"
            assert await store.swap_client_token(HOST, DEVICE, "t1", "t2") == "t2"
            await store.drop(HOST, DEVICE, "sess_1")
            assert await store.get(key()) is None
    finally:
        await store.aclose()


async def test_refused_from_the_start_works_in_process(
    unused_tcp_port: int, emulator: FrontendAPIEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    device = emulator.sign_in()
    store = RedisStore(f"redis://app:{CANARY_PASSWORD}@127.0.0.1:{unused_tcp_port}/0")
    try:
        async with emulator.async_client(device, store=store) as clerk:
            with anyio.fail_after(NO_HANG):
                first = await clerk.get_token(device.session_id)
                assert await clerk.get_token(device.session_id) == first  # cached here
                await clerk.get_session(device.session_id)
            assert mints(emulator) == 1
        assert len(clerk_records(caplog, logging.WARNING)) == 1
        assert CANARY_PASSWORD not in caplog.text
        assert CANARY_PASSWORD not in repr(store)
    finally:
        await store.aclose()


async def test_frozen_redis_never_holds_a_call(
    redis_server: RedisServer, emulator: FrontendAPIEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    device = emulator.sign_in()
    store = RedisStore(redis_server.url, timeout=FAULTS)
    try:
        async with emulator.async_client(device, store=store) as clerk:
            await clerk.get_token(device.session_id)
            redis_server.pause()
            with anyio.fail_after(NO_HANG):
                await clerk.get_token(device.session_id, skip_cache=True)
                await clerk.get_token(device.session_id)
                await clerk.get_session(device.session_id)
            assert redis_server.paused  # every call above finished while Redis was frozen
            assert not store.available
            assert len(clerk_records(caplog, logging.WARNING)) == 1
            redis_server.resume()
    finally:
        await store.aclose()


async def test_a_waiter_is_not_held_when_redis_freezes(
    redis_server: RedisServer, emulator: FrontendAPIEmulator
) -> None:
    device = emulator.sign_in()
    client = SignallingRedis.from_url(redis_server.url)
    leader, store = (
        RedisStore(redis_server.url, timeout=PATIENT),
        RedisStore(client, timeout=FAULTS),
    )
    try:
        async with emulator.async_client(device, store=store) as clerk:
            await clerk.get_session(device.session_id)  # proves its token: a claim is no proof
            k = (emulator.url, device_key(f"id:{device.client_id}"), device.session_id, None, UNSET)
            assert await leader.begin_mint(k, 30.0)  # a lease that outlives the test
            with anyio.fail_after(NO_HANG):
                async with anyio.create_task_group() as tg:
                    tokens: list[str] = []

                    async def get() -> None:  # a mint (the session's token is cached)
                        tokens.append(await clerk.get_token(device.session_id, skip_cache=True))

                    tg.start_soon(get)
                    await client.looked.wait()  # it waits for the leader's mint ...
                    redis_server.pause()  # ... which Redis will never announce
            assert redis_server.paused
            assert len(tokens) == 1
            assert mints(emulator) == 1
            assert not store.available
            redis_server.resume()
    finally:
        await leader.aclose()
        await store.aclose()
        await client.aclose()


async def test_sleeping_redis_never_holds_a_call(
    redis_server: RedisServer, emulator: FrontendAPIEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    device = emulator.sign_in()
    store = RedisStore(redis_server.url, timeout=FAULTS)
    try:
        async with emulator.async_client(device, store=store) as clerk:
            await clerk.get_token(device.session_id)
            with redis_server.debug_sleep(1.5) as sleeping:
                with anyio.fail_after(NO_HANG):
                    await clerk.get_token(device.session_id)
                    await clerk.get_session(device.session_id)
                assert sleeping.still_sleeping()  # the calls did not wait for Redis
            assert not store.available
            assert len(clerk_records(caplog, logging.WARNING)) == 1
    finally:
        await store.aclose()


async def test_sign_outs_and_rotations_while_down_reach_redis_when_it_is_back(
    redis_server: RedisServer, inspect: Any, logs: LogWatcher
) -> None:
    clock = FakeClock()
    other = RedisStore(redis_server.url, timeout=PATIENT)
    store = RedisStore(redis_server.url, timeout=FAULTS, _clock=clock)
    try:
        await other.put(key(), token(1_700_000_000), 60)
        await other.client_token(HOST, DEVICE, "t1")
        redis_server.pause()
        await store.drop(HOST, DEVICE, "sess_1")  # Redis frozen: kept for later
        await store.swap_client_token(HOST, DEVICE, "t1", "t2")
        await store.swap_client_token(HOST, DEVICE, "t2", "t3")
        assert not store.available
        redis_server.resume()
        assert await other.get(key()) is not None  # not yet written
        clock.advance(1.0)
        assert await store.get(key("sess_other")) is None  # tries Redis: replays, then reads
        await logs.wait_for(logging.INFO, "Redis is back")
        assert store.available
        assert await other.get(key()) is None
        assert await other.client_token(HOST, DEVICE, "t1") == "t3"
    finally:
        await other.aclose()
        await store.aclose()


async def test_a_rotation_kept_while_down_never_replaces_a_newer_one_on_its_return(
    redis_server: RedisServer, logs: LogWatcher
) -> None:
    """A rotation written late (this process could not reach Redis) is not "the answer that
    arrived last": it replaces only the token its request carried."""
    clock = FakeClock()
    other = RedisStore(redis_server.url, timeout=PATIENT)
    store = RedisStore(redis_server.url, timeout=FAULTS, _clock=clock)
    try:
        await other.client_token(HOST, DEVICE, "t1")
        redis_server.pause()
        for sent, rotated in (("t1", "t2"), ("t2", "t3"), ("t3", "t4")):  # kept as t1 -> t4
            await store.swap_client_token(HOST, DEVICE, sent, rotated)
        assert not store.available
        redis_server.resume()
        assert await other.swap_client_token(HOST, DEVICE, "t1", "t5") == "t5"  # meanwhile
        clock.advance(1.0)
        assert await store.get(key("sess_other")) is None  # tries Redis: replays, then reads
        await logs.wait_for(logging.INFO, "Redis is back")
        assert await other.client_token(HOST, DEVICE, None) == "t5"
    finally:
        await other.aclose()
        await store.aclose()


async def test_store_keeps_working_in_process_after_aclose(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, timeout=PATIENT)
    await store.put(key(), token(1_700_000_000), 60)
    await store.aclose()
    assert "closed" in repr(store)
    assert await store.get(key()) is None  # Redis is no longer used
    assert await store.begin_mint(key(), 30.0)
    assert await store.client_token(HOST, DEVICE, "t1") == "t1"


async def test_a_dead_workers_lease_is_never_waited_out(
    redis_server: RedisServer, emulator: FrontendAPIEmulator, inspect: Any
) -> None:
    """A worker SIGKILLed mid-mint leaves its 30 s lease. Another waits for it at most half of
    its own call budget, then mints itself: the lease is still there when its token arrives."""
    device = emulator.sign_in()
    dead, store = RedisStore(redis_server.url, timeout=PATIENT), RedisStore(redis_server.url)
    try:
        async with emulator.async_client(device, store=store, timeout=2.0) as clerk:
            await clerk.get_session(device.session_id)  # proves its token: a claim is no proof
            emulator.clock.advance(3600)  # the session's token it brought has expired
            k = (emulator.url, device_key(f"id:{device.client_id}"), device.session_id, None, UNSET)
            assert await dead.begin_mint(k, 30.0)  # and never ends it
            with anyio.fail_after(NO_HANG):
                token = await clerk.get_token(device.session_id)
            locks = list(inspect.scan_iter("clerk_sessions:lock:*"))
            assert len(locks) == 1
            assert inspect.pttl(locks[0]) > 20_000  # not waited out: most of it is left
    finally:
        await dead.aclose()
        await store.aclose()
    assert token.count(".") == 2
    assert mints(emulator) == 1
