"""Session tokens: the cache behind ``get_token`` and batch refresh with ``refresh_tokens``.

A token server on 127.0.0.1 mints JWTs whose ``iat``/``exp`` (and its ``Date`` header) come from
a fake clock the test controls; clients get the same clock through ``_runtime``, so expiry is
exercised without waiting.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web

from clerk_sessions import (
    UNSET,
    AsyncClerkSessions,
    AuthenticationError,
    ClerkSessions,
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    TokenRequest,
    TokenResult,
)
from clerk_sessions._jwt import CachedToken, jwt_timing, token_key
from clerk_sessions._runtime import Runtime
from clerk_sessions._store import MemoryStore
from clerk_sessions.testing import inspect, settle

from . import payloads
from .conftest import MakeClerk

pytestmark = pytest.mark.anyio

LIFETIME = 60


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def make_jwt(sid: str, iat: float, *, exp: float | None = None, oiat: float | None = None) -> str:
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if oiat is not None:
        header["oiat"] = oiat
    claims = {"sid": sid, "iat": iat, "exp": iat + LIFETIME if exp is None else exp, "v": 2}
    return f"{b64(header)}.{b64(claims)}.c2lnbmF0dXJl"


class WallClock:
    def __init__(self) -> None:
        self.now = 1_764_000_000.0

    def __call__(self) -> float:
        return self.now

    def runtime(self, **overrides: Any) -> Runtime:
        """A client runtime on this clock (both its monotonic and its calendar clock)."""
        return Runtime(**{"monotonic": self, "wall": self, **overrides})


def kept(clerk: AsyncClerkSessions) -> int:
    """Tokens the client's store keeps."""
    kept_tokens = inspect(clerk).kept_tokens
    assert kept_tokens is not None  # the in-process store
    return kept_tokens


class TokenServer:
    """Mints a JWT per POST …/tokens[/{template}], timed by the shared fake wall clock.

    ``fail`` maps session ids to error statuses; ``hold`` parks requests until set;
    ``intercept`` may answer a request first. Tests wait on events, never on time.
    """

    def __init__(self, clock: WallClock) -> None:
        self.clock = clock
        self.requests: list[tuple[str, str, str]] = []  # (authorization, path, body)
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail: dict[str, int] = {}
        self.hold: asyncio.Event | None = None
        self.intercept: Any = None
        self.full_at: int | None = None  # set ``full`` once this many are in flight
        self.full = asyncio.Event()
        self._arrivals: list[tuple[int, asyncio.Event]] = []
        self.url = ""

    async def until_requests(self, count: int) -> None:
        if len(self.requests) < count:
            event = asyncio.Event()
            self._arrivals.append((count, event))
            await event.wait()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = (await request.read()).decode()
        self.requests.append((request.headers["Authorization"], request.path, body))
        for count, event in self._arrivals:
            if len(self.requests) >= count:
                event.set()
        if self.intercept is not None:
            response = await self.intercept(request)
            if response is not None:
                return response  # type: ignore[no-any-return]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.full_at is not None and self.in_flight >= self.full_at:
            self.full.set()
        try:
            if self.hold is not None:
                await self.hold.wait()
            sid = request.match_info["sid"]
            status = self.fail.get(sid)
            date = {"Date": formatdate(self.clock(), usegmt=True)}  # a server's own clock
            if status is not None:
                return web.json_response(
                    payloads.clerk_errors(f"error_{status}"), status=status, headers=date
                )
            return web.json_response(
                {"object": "token", "jwt": make_jwt(sid, self.clock(), oiat=self.clock())},
                headers=date,
            )
        finally:
            self.in_flight -= 1


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def tokens(wall_clock: WallClock) -> AsyncIterator[TokenServer]:
    server = TokenServer(wall_clock)
    app = web.Application()
    app.router.add_post("/v1/client/sessions/{sid}/tokens", server.handle)
    app.router.add_post("/v1/client/sessions/{sid}/tokens/{template}", server.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        if server.hold is not None:
            server.hold.set()
        await runner.cleanup()


@pytest.fixture
async def clerk(tokens: TokenServer, wall_clock: WallClock) -> AsyncIterator[AsyncClerkSessions]:
    async with AsyncClerkSessions(
        frontend_api_url=tokens.url,
        client_token="client-A",
        max_retries=0,
        _runtime=wall_clock.runtime(),
    ) as client:
        yield client


# -- the cache, pure ----------------------------------------------------------------------------


def test_jwt_timing_reads_iat_exp_and_oiat_without_verifying() -> None:
    timing = jwt_timing(make_jwt("s", 100, exp=160, oiat=90))
    assert timing is not None
    assert (timing.issued_at, timing.expires_at, timing.origin_issued_at) == (100, 160, 90)
    for unreadable in ["", "a.b", "a.b.c", f"{b64({})}.{b64({'iat': 'x', 'exp': 1})}.s"]:
        assert jwt_timing(unreadable) is None


def test_none_and_empty_organization_share_the_personal_account_key() -> None:
    assert token_key("h", "d", "s", None, None) == token_key("h", "d", "s", None, "")
    assert token_key("h", "d", "s", None, None) != token_key("h", "d", "s", None, UNSET)
    assert token_key("h", "d1", "s", None, "o") != token_key("h", "d2", "s", None, "o")


def cached(jwt: str) -> CachedToken:
    timing = jwt_timing(jwt)
    assert timing is not None
    return CachedToken(jwt, timing)


async def kept_jwt(store: MemoryStore, key: Any) -> str | None:
    token = await store.get(key)
    return None if token is None else token.jwt


async def test_freshness_never_goes_backwards() -> None:
    store = MemoryStore(max_entries=10)
    key = token_key("h", "d", "s", None, UNSET)
    newer = make_jwt("s", 1000, oiat=900)
    await store.put(key, cached(newer), ttl=60)
    await store.put(key, cached(make_jwt("s", 1010, oiat=800)), ttl=60)  # older state: ignored
    assert await kept_jwt(store, key) == newer
    await store.put(key, cached(make_jwt("s", 990)), ttl=60)  # no oiat loses
    assert await kept_jwt(store, key) == newer
    same_state_later = make_jwt("s", 1020, oiat=900)  # same oiat, later iat wins
    await store.put(key, cached(same_state_later), ttl=60)
    assert await kept_jwt(store, key) == same_state_later


async def test_the_store_is_bounded_least_recently_used_first() -> None:
    store = MemoryStore(max_entries=3)
    keys = [token_key("h", "d", f"s{i}", None, UNSET) for i in range(4)]
    for key in keys[:3]:
        await store.put(key, cached(make_jwt(key[2], 1000)), ttl=60)
    await store.get(keys[0])  # s0 is now the most recently used
    await store.put(keys[3], cached(make_jwt("s3", 1000)), ttl=60)
    assert len(store) == 3
    assert await store.get(keys[1]) is None  # s1 was the least recently used
    assert await store.get(keys[0]) is not None


async def test_expired_entries_are_swept_before_live_ones_are_evicted() -> None:
    store = MemoryStore(max_entries=2)
    await store.put(token_key("h", "d", "old", None, UNSET), cached(make_jwt("old", 1000)), 60)
    live, new = make_jwt("live", 1100), make_jwt("new", 1100)
    # ttl says the server's clock reads 1100: "old" (exp 1060) has expired
    await store.put(token_key("h", "d", "live", None, UNSET), cached(live), ttl=60)
    await store.put(token_key("h", "d", "new", None, UNSET), cached(new), ttl=60)
    assert await store.get(token_key("h", "d", "live", None, UNSET)) is not None
    assert await store.get(token_key("h", "d", "old", None, UNSET)) is None


async def test_a_sign_out_drops_one_session_or_one_device() -> None:
    store = MemoryStore(max_entries=10)
    for device, session, template in [
        ("d1", "s1", None),
        ("d1", "s1", "t"),
        ("d1", "s2", None),
        ("d2", "s1", None),
    ]:
        await store.put(
            token_key("h", device, session, template, UNSET), cached(make_jwt(session, 1000)), 60
        )
    await store.drop("h", "d1", "s1")  # every template and organization of s1 on d1
    assert len(store) == 2
    await store.drop("h", "d1", None)  # the rest of d1
    assert len(store) == 1
    assert await store.get(token_key("h", "d2", "s1", None, UNSET)) is not None


# -- get_token over HTTP ------------------------------------------------------------------------


async def test_a_cached_token_is_served_until_the_leeway(
    clerk: AsyncClerkSessions, tokens: TokenServer, wall_clock: WallClock
) -> None:
    first = await clerk.get_token("sess_1")
    assert jwt_timing(first) is not None
    wall_clock.now += 30
    assert await clerk.get_token("sess_1") == first  # 30 s left: a hit
    assert len(tokens.requests) == 1
    wall_clock.now += 21  # 9 s left: below the 10 s leeway, never handed out
    second = await clerk.get_token("sess_1")
    assert second != first
    assert len(tokens.requests) == 2


async def test_refresh_ahead_serves_the_old_token_until_the_new_one_arrives(
    clerk: AsyncClerkSessions, tokens: TokenServer, wall_clock: WallClock
) -> None:
    first = await clerk.get_token("sess_1")
    wall_clock.now += 47  # 13 s left: inside the 15 s refresh window
    tokens.hold = asyncio.Event()
    assert await clerk.get_token("sess_1") == first  # the refresh started in the background
    assert await clerk.get_token("sess_1") == first  # ... and only one of it
    await tokens.until_requests(2)  # the background refresh reached the server
    tokens.hold.set()
    await settle(clerk)
    fresh = await clerk.get_token("sess_1")
    assert fresh != first
    assert len(tokens.requests) == 2


async def test_100_concurrent_callers_share_one_request(
    clerk: AsyncClerkSessions, tokens: TokenServer
) -> None:
    results = await asyncio.gather(*(clerk.get_token("sess_1") for _ in range(100)))
    assert len(set(results)) == 1
    assert len(tokens.requests) == 1


async def test_concurrent_callers_share_one_error_and_it_is_not_cached(
    clerk: AsyncClerkSessions, tokens: TokenServer
) -> None:
    tokens.fail["sess_1"] = 404
    outcomes = await asyncio.gather(
        *(clerk.get_token("sess_1") for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, NotFoundError) for o in outcomes)
    assert len(tokens.requests) == 1
    del tokens.fail["sess_1"]
    await clerk.get_token("sess_1")
    assert len(tokens.requests) == 2


async def test_keys_separate_templates_organizations_and_clients(
    clerk: AsyncClerkSessions, tokens: TokenServer
) -> None:
    await clerk.get_token("sess_1")
    await clerk.get_token("sess_1", template="hasura")
    await clerk.get_token("sess_1", organization_id="org_1")
    await clerk.get_token("sess_1", organization_id=None)
    await clerk.get_token("sess_1", organization_id="")  # same key as None
    await clerk.with_client_token("client-B").get_token("sess_1")
    bodies = [(auth, path, body) for auth, path, body in tokens.requests]
    assert bodies == [
        ("client-A", "/v1/client/sessions/sess_1/tokens", ""),
        ("client-A", "/v1/client/sessions/sess_1/tokens/hasura", ""),
        ("client-A", "/v1/client/sessions/sess_1/tokens", "organization_id=org_1"),
        ("client-A", "/v1/client/sessions/sess_1/tokens", "organization_id="),
        ("client-B", "/v1/client/sessions/sess_1/tokens", ""),
    ]


async def test_skip_cache_always_mints(clerk: AsyncClerkSessions, tokens: TokenServer) -> None:
    await clerk.get_token("sess_1")
    await clerk.get_token("sess_1", skip_cache=True)
    assert len(tokens.requests) == 2


async def test_template_with_organization_is_refused(clerk: AsyncClerkSessions) -> None:
    with pytest.raises(ConfigurationError, match="template"):
        await clerk.get_token("sess_1", template="t", organization_id="org_1")


async def test_a_401_drops_the_entry_and_raises(
    clerk: AsyncClerkSessions, tokens: TokenServer, wall_clock: WallClock
) -> None:
    await clerk.get_token("sess_1")
    wall_clock.now += 55  # expired for our purposes
    tokens.fail["sess_1"] = 401
    with pytest.raises(AuthenticationError):
        await clerk.get_token("sess_1")
    assert kept(clerk) == 0


async def test_sign_outs_drop_the_affected_entries(
    tokens: TokenServer, wall_clock: WallClock
) -> None:
    async def sign_out(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            return web.json_response(payloads.delete_sessions_envelope())
        return web.json_response(payloads.session_envelope(request.match_info["sid"], "ended"))

    app = web.Application()
    app.router.add_post("/v1/client/sessions/{sid}/tokens", tokens.handle)
    app.router.add_post("/v1/client/sessions/{sid}/tokens/{template}", tokens.handle)
    app.router.add_post("/v1/client/sessions/{sid}/end", sign_out)
    app.router.add_post("/v1/client/sessions/{sid}/remove", sign_out)
    app.router.add_delete("/v1/client/sessions", sign_out)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with AsyncClerkSessions(
            frontend_api_url=url, client_token="A", _runtime=wall_clock.runtime()
        ) as clerk:
            other = clerk.with_client_token("B")
            for sid in ("s1", "s2", "s3"):
                await clerk.get_token(sid)
                await clerk.get_token(sid, template="t")
            await other.get_token("s1")
            assert kept(clerk) == 7
            await clerk.end_session("s1")  # every template/org of s1, this client only
            assert kept(clerk) == 5
            await clerk.remove_session("s2")
            assert kept(clerk) == 3
            await clerk.remove_client_sessions_and_retain_cookie()  # all of this client's
            assert kept(clerk) == 1  # the other client's token stays
    finally:
        await runner.cleanup()


async def test_a_session_response_seeds_the_cache_with_its_last_active_token(
    wall_clock: WallClock,
) -> None:
    jwt = make_jwt("sess_1", wall_clock())
    body = payloads.session_envelope()
    body["response"]["last_active_token"] = {"object": "token", "jwt": jwt}
    body["client"]["sessions"][0]["last_active_token"] = {"object": "token", "jwt": jwt}

    async def get_session(request: web.Request) -> web.Response:
        return web.json_response(body, headers={"Date": formatdate(wall_clock(), usegmt=True)})

    app = web.Application()
    app.router.add_get("/v1/client/sessions/{sid}", get_session)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with AsyncClerkSessions(
            frontend_api_url=url, client_token="A", _runtime=wall_clock.runtime()
        ) as clerk:
            await clerk.get_session("sess_1")
            assert await clerk.get_token("sess_1") == jwt  # no token request was needed
    finally:
        await runner.cleanup()


async def test_get_token_works_through_both_clients(
    tokens: TokenServer, make_clerk: MakeClerk, wall_clock: WallClock
) -> None:
    async with make_clerk(
        frontend_api_url=tokens.url, client_token="A", _runtime=wall_clock.runtime()
    ) as clerk:
        results = {await clerk.get_token("sess_1") for _ in range(3)}
    assert len(results) == 1
    assert len(tokens.requests) == 1


# -- refresh_tokens -------------------------------------------------------------------------------


async def collect(results: AsyncIterator[TokenResult]) -> list[TokenResult]:
    return [result async for result in results]


async def test_a_batch_across_three_clients_with_mixed_outcomes(
    clerk: AsyncClerkSessions, tokens: TokenServer
) -> None:
    tokens.fail.update({"gone": 404, "banned": 403})
    progress: list[tuple[int, int, int | None]] = []
    requests = [
        "sess_1",
        TokenRequest("sess_2", client_token="client-B"),
        TokenRequest("gone", client_token="client-C"),
        TokenRequest("sess_3", client_token="client-C", template="hasura"),
        TokenRequest("banned", client_token="client-B", organization_id=None),
    ]
    results = await collect(
        clerk.refresh_tokens(requests, concurrency=2, on_progress=lambda *p: progress.append(p))
    )
    by_session = {r.request.session_id: r for r in results}
    assert set(by_session) == {"sess_1", "sess_2", "gone", "sess_3", "banned"}
    assert by_session["sess_1"].ok
    assert by_session["sess_1"].token is not None
    assert isinstance(by_session["gone"].error, NotFoundError)
    assert by_session["banned"].error is not None
    assert not by_session["banned"].ok
    auth_by_path = {(path, auth) for auth, path, _ in tokens.requests}
    assert ("/v1/client/sessions/sess_2/tokens", "client-B") in auth_by_path
    assert ("/v1/client/sessions/sess_3/tokens/hasura", "client-C") in auth_by_path
    assert progress[-1] == (5, 2, 5)
    assert all(r.retries_taken == 0 for r in results)


async def test_concurrency_is_bounded_and_reached(
    clerk: AsyncClerkSessions, tokens: TokenServer
) -> None:
    concurrency = 4
    tokens.hold = asyncio.Event()
    tokens.full_at = concurrency

    async def release_when_full() -> None:
        await tokens.full.wait()
        tokens.hold.set()  # type: ignore[union-attr]

    releaser = asyncio.ensure_future(release_when_full())
    results = await collect(
        clerk.refresh_tokens([f"sess_{i}" for i in range(40)], concurrency=concurrency)
    )
    await releaser
    assert len(results) == 40
    assert all(r.ok for r in results)
    assert tokens.max_in_flight == concurrency


async def test_input_is_consumed_lazily(clerk: AsyncClerkSessions, tokens: TokenServer) -> None:
    pulled = 0

    def ids() -> Iterator[str]:
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield f"sess_{i}"

    concurrency = 8
    seen = 0
    batch = clerk.refresh_tokens(ids(), concurrency=concurrency)
    async for result in batch:
        assert result.ok
        seen += 1
        assert pulled <= seen + 2 * concurrency + 1  # never far ahead of the results
        if seen == 200:
            break
    await batch.aclose()  # type: ignore[attr-defined]
    assert pulled <= 200 + 2 * concurrency + 1


async def test_an_async_iterable_input_works(clerk: AsyncClerkSessions) -> None:
    async def ids() -> AsyncIterator[str]:
        for i in range(5):
            yield f"sess_{i}"

    summary = await clerk.refresh_tokens_summary(ids(), concurrency=2)
    assert (summary.ok, summary.failed, summary.total) == (5, {}, 5)


async def test_a_429_pauses_the_whole_batch(tokens: TokenServer, wall_clock: WallClock) -> None:
    """Once one request gets 429 + Retry-After, no worker starts another request until the
    wait is over; then the batch finishes (the rate-limited item succeeds on its retry)."""
    concurrency = 3
    now = [0.0]
    sleepers: list[tuple[asyncio.Task[Any] | None, float]] = []
    first_sleep, all_asleep, wake = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def sleep(delay: float) -> None:  # the clients' sleep: parks until the test wakes it
        sleepers.append((asyncio.current_task(), delay))
        first_sleep.set()
        if len(sleepers) == concurrency:
            all_asleep.set()
        await wake.wait()

    limited = False

    async def rate_limit_once(request: web.Request) -> web.StreamResponse | None:
        nonlocal limited
        if request.match_info["sid"] == "sess_429" and not limited:
            limited = True
            return web.json_response(
                payloads.clerk_errors("too_many_requests"), status=429, headers={"Retry-After": "5"}
            )
        await first_sleep.wait()  # the others are answered once the 429 has closed the gate
        return None

    tokens.intercept = rate_limit_once
    async with AsyncClerkSessions(
        frontend_api_url=tokens.url,
        client_token="A",
        _runtime=Runtime(monotonic=lambda: now[0], wall=wall_clock, sleep=sleep),
    ) as clerk:
        ids = ["sess_429"] + [f"sess_{i}" for i in range(8)]
        batch = asyncio.ensure_future(collect(clerk.refresh_tokens(ids, concurrency=concurrency)))
        await all_asleep.wait()
        requests_while_paused = len(tokens.requests)
        assert {delay for _, delay in sleepers} == {5.0}
        assert len({task for task, _ in sleepers}) == concurrency  # every worker waits
        now[0] += 5
        wake.set()
        results = await batch
    assert requests_while_paused == concurrency  # the 429 and the two already in flight
    assert len(results) == 9
    assert all(r.ok for r in results)
    assert [r.retries_taken for r in results if r.request.session_id == "sess_429"] == [1]


async def test_cancelling_the_consumer_stops_the_workers(
    clerk: AsyncClerkSessions, tokens: TokenServer
) -> None:
    tokens.hold = asyncio.Event()
    tokens.full_at = 5
    consumer = asyncio.ensure_future(
        collect(clerk.refresh_tokens([f"sess_{i}" for i in range(50)], concurrency=5))
    )
    await tokens.full.wait()
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    leftover = [
        t
        for t in asyncio.all_tasks()
        if "clerk_sessions" in str(getattr(t.get_coro(), "cr_code", ""))
    ]
    assert leftover == []
    tokens.hold.set()
    assert (await clerk.get_token("sess_x")) is not None  # the client still works


async def test_rate_limit_errors_are_results_not_crashes(
    clerk: AsyncClerkSessions, tokens: TokenServer
) -> None:
    tokens.fail["sess_1"] = 429
    results = await collect(clerk.refresh_tokens(["sess_1", "sess_2"], concurrency=2))
    errors = [r.error for r in results if r.error is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], RateLimitError)


async def test_bad_concurrency_is_refused(clerk: AsyncClerkSessions) -> None:
    with pytest.raises(ConfigurationError, match="concurrency"):
        await collect(clerk.refresh_tokens(["s"], concurrency=0))


async def test_the_sync_facade_iterates_results(tokens: TokenServer) -> None:
    def run() -> tuple[list[TokenResult], int]:
        with ClerkSessions(frontend_api_url=tokens.url, client_token="A") as clerk:
            results = list(clerk.refresh_tokens([f"sess_{i}" for i in range(10)], concurrency=3))
            summary = clerk.refresh_tokens_summary(["sess_a", "sess_b"], concurrency=2)
            return results, summary.ok

    results, ok = await anyio.to_thread.run_sync(run)
    assert len(results) == 10
    assert all(r.ok for r in results)
    assert ok == 2


async def test_summaries_count_failures_by_class(
    make_clerk: MakeClerk, tokens: TokenServer
) -> None:
    tokens.fail.update({"a": 404, "b": 404, "c": 403})
    async with make_clerk(frontend_api_url=tokens.url, client_token="A", max_retries=0) as clerk:
        summary = await clerk.refresh_tokens_summary(["a", "b", "c", "d"], concurrency=2)
    assert summary.ok == 1
    assert summary.failed == {"NotFoundError": 2, "PermissionDeniedError": 1}
    assert summary.elapsed >= 0


async def test_the_sync_facade_refreshes_ahead_on_its_portal(
    tokens: TokenServer, wall_clock: WallClock
) -> None:
    """A calling thread's loop only runs during its calls, so the background refresh of the
    sync facade runs on the client's portal thread; the caller still gets the old token."""
    stored = threading.Event()
    clerk = ClerkSessions(
        frontend_api_url=tokens.url, client_token="A", _runtime=wall_clock.runtime()
    )
    store = inspect(clerk).store
    original_put = store.put

    async def put(*args: Any) -> None:
        await original_put(*args)
        stored.set()

    store.put = put  # type: ignore[method-assign]
    try:
        first = await anyio.to_thread.run_sync(clerk.get_token, "sess_1")
        stored.clear()
        wall_clock.now += 47  # inside the refresh window
        assert await anyio.to_thread.run_sync(clerk.get_token, "sess_1") == first
        assert await anyio.to_thread.run_sync(stored.wait, 10)
        fresh = await anyio.to_thread.run_sync(clerk.get_token, "sess_1")
        assert fresh != first
        assert len(tokens.requests) == 2
    finally:
        await anyio.to_thread.run_sync(clerk.close)


async def test_a_batch_caches_every_devices_tokens_for_its_views(
    clerk: AsyncClerkSessions, tokens: TokenServer
) -> None:
    """A batch's tokens are kept per device: a later view of that device is served from them."""
    requests = [
        "own_1",
        "own_2",
        TokenRequest("x", client_token="B"),
        TokenRequest("y", client_token="C"),
    ]
    results = await collect(clerk.refresh_tokens(requests, concurrency=2))
    assert all(r.ok for r in results)
    assert kept(clerk) == 4
    minted = {r.request.session_id: r.token for r in results}
    assert await clerk.get_token("own_1") == minted["own_1"]
    assert await clerk.with_client_token("B").get_token("x") == minted["x"]
    await clerk.with_client_token("C").get_token("x")  # a session C has no token for
    assert len(tokens.requests) == 5  # only C's "x" was minted
    assert tokens.requests[-1][:2] == ("C", "/v1/client/sessions/x/tokens")


async def test_a_last_active_token_seen_again_is_not_decoded_again(
    clerk: AsyncClerkSessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every getSession repeats each session's last_active_token: decode it once."""
    import clerk_sessions._tokens as tokens_module

    decoded: list[str] = []
    original = tokens_module.jwt_timing

    def counting(jwt: str) -> Any:
        decoded.append(jwt)
        return original(jwt)

    monkeypatch.setattr(tokens_module, "jwt_timing", counting)
    cache = clerk._shared.tokens
    device = clerk._device.key
    stale = make_jwt("s", 1000)  # expired long ago
    for _ in range(3):
        if not cache.seen(device, "s", stale):
            await cache.seed(device, "s", stale, active=True, generation=cache.generation)
    assert decoded == [stale]
    assert cache.last_token(device, "s") == stale  # still the session's last token (§7b)
    assert kept(clerk) == 0
