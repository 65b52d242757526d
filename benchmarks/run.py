"""Benchmark harness: our clients against raw aiohttp, and peers, on the same loopback server.

The server runs in its own process (as a real Frontend API would) and answers with pre-encoded
bodies (``payloads.py``: a 23 KB getSession envelope, a token, a reverification) in a few
microseconds, so every figure measures the client, not the server; the headline rows run again
against a plain ``aiohttp.web`` server in its own process (a realistic server). Every figure is
a ratio to a baseline measured in the same run: rounds are interleaved (every variant next to
its baseline, pairs in a shuffled order), and every ratio uses one estimator, ``compare``: the
geometric mean of the per-round ratios, which equals the quotient of the two geometric-mean rates
the table shows beside it; (min-max) is the spread of the per-round ratios.

    python benchmarks/run.py            # full: writes benchmarks/RESULTS.md and results.json
    python benchmarks/run.py --quick    # CI smoke: few rounds, writes benchmarks/results/quick/
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime
import json
import multiprocessing
import os
import platform
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from anyio.from_thread import start_blocking_portal

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks import payloads, peers  # noqa: E402
from clerk_sessions import AsyncClerkSessions, ClerkSessions, TokenRequest  # noqa: E402
from clerk_sessions import _operations as ops  # noqa: E402
from clerk_sessions._converter import structure  # noqa: E402
from clerk_sessions._wire import parse_success  # noqa: E402

CONCURRENCY = 64
# Ratios reported beyond each variant's own baseline.
EXTRA_PAIRS = [
    ("sync_get_session", "async_get_session"),
    # The request path alone: ours against the same decode + structure on raw aiohttp.
    ("async_get_session", "raw_get_parse"),
    ("async_get_session_c64", "raw_get_parse_c64"),
]
THREADS = 8
# The rows run again against a plain aiohttp.web server (``Bench(..., only=HEADLINE)``).
HEADLINE = (
    "raw_get_json",
    "raw_get_json_c64",
    "async_get_session",
    "async_get_session_c64",
    "raw_create_session_token",
    "async_create_session_token",
)
SESSION_PATH = "/v1/client/sessions/sess_0"
API_VERSION = "2026-05-12"


# --------------------------------------------------------------------------------------------
# The server: a minimal HTTP/1.1 keep-alive responder (aiohttp's own server, at ~3,800 req/s on
# this kind of machine, would be the bottleneck of the 64-in-flight rows and flatter every ratio)
# --------------------------------------------------------------------------------------------


def _route(method: bytes, target: bytes) -> str:
    path = target.split(b"?", 1)[0]
    if method == b"GET":
        return "bapi_session" if path.startswith(b"/v1/sessions/") else "session"
    if b"/tokens" in path:
        return "token"
    return "reverification" if path.endswith(b"/verify") else "session"  # .../touch


class _Responder(asyncio.Protocol):
    def __init__(self, responses: dict[str, bytes]) -> None:
        self.responses = responses
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            length = 0
            if (at := head.find(b"\r\ncontent-length:")) >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(self.buffer) < end + 4 + length:
                return  # the body is still on its way
            del self.buffer[: end + 4 + length]
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            assert self.transport is not None
            self.transport.write(self.responses[_route(method.upper(), target)])


def serve(bodies: dict[str, bytes], port_out: Connection) -> None:
    responses = {
        name: b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        for name, body in bodies.items()
    }

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Responder(responses), "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_aiohttp_web(bodies: dict[str, bytes], port_out: Connection) -> None:
    """The same answers from a plain aiohttp.web application (routing, request parsing, a
    ``Date`` header, no access log): a realistic server, much slower than the responder."""
    from aiohttp import web

    def answer(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        body = bodies[name]

        async def handler(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=body, content_type="application/json")

        return handler

    app = web.Application()
    session = "/v1/client/sessions/{session_id}"
    app.router.add_get(session, answer("session"))
    app.router.add_post(session + "/touch", answer("session"))
    app.router.add_post(session + "/tokens", answer("token"))

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_out.send(runner.addresses[0][1])  # (host, port) of the one socket
        await asyncio.Event().wait()

    asyncio.run(main())


def start_server(
    target: Callable[[dict[str, bytes], Connection], None], bodies: dict[str, bytes]
) -> tuple[multiprocessing.Process, str]:
    """A server process and its URL."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=target, args=(bodies, sender), daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{receiver.recv()}"


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


async def sequential(call: Callable[[], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - start) / calls


async def in_flight(call: Callable[[], Awaitable[object]], calls: int) -> float:
    """``calls`` calls, CONCURRENCY at a time (workers pulling from one counter)."""
    remaining = iter(range(calls))

    async def worker() -> None:
        for _ in remaining:
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.perf_counter() - start) / calls


def blocking(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def pooled(
    pool: concurrent.futures.ThreadPoolExecutor, call: Callable[[], object], calls: int
) -> float:
    """``calls`` blocking calls spread over the pool's THREADS threads."""
    share = calls // THREADS
    start = time.perf_counter()
    for future in [pool.submit(blocking, call, share) for _ in range(THREADS)]:
        future.result()
    return (time.perf_counter() - start) / (share * THREADS)


@dataclass
class Variant:
    name: str
    label: str
    baseline: str | None
    """The variant this one is a ratio to (throughput: baseline time / this time)."""
    run: Callable[[int], float]
    """Given a number of calls, the seconds per call."""
    calls: int
    samples: list[float] = field(default_factory=list)
    skipped: str | None = None


def compare(ours: list[float], theirs: list[float]) -> dict[str, float]:
    """The one estimator behind every ratio in RESULTS.md, from paired measurements of the same
    rounds (rates: calls/s, tokens/s; or, for import time, seconds).

    ``ratio`` is the geometric mean of the per-round ratios ``ours[i] / theirs[i]``, which is
    exactly the ratio of the two geometric means shown beside it (``ours``, ``theirs``); ``min``
    and ``max`` are the spread of the per-round ratios."""
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return {
        "ratio": statistics.geometric_mean(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "ours": statistics.geometric_mean(ours),
        "theirs": statistics.geometric_mean(theirs),
    }


# --------------------------------------------------------------------------------------------
# The variants
# --------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, url: str, quick: bool, only: tuple[str, ...] | None = None) -> None:
        self.url = url
        self.quick = quick
        self.only = only  # the variants to keep (None: all)
        self.calls: dict[str, Callable[[], Awaitable[object]]] = {}  # profiled after the rounds
        self.loop = asyncio.new_event_loop()  # every async variant, across rounds
        self.variants: dict[str, Variant] = {}
        self.pool = concurrent.futures.ThreadPoolExecutor(THREADS)
        self.closers: list[Callable[[], object]] = []
        # (variant, baseline) -> per round, (baseline seconds per call, variant seconds per call)
        self.pairs: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def add(
        self,
        name: str,
        label: str,
        baseline: str | None,
        run: Callable[[int], float] | None,
        calls: int,
        skipped: str | None = None,
    ) -> None:
        self.variants[name] = Variant(
            name, label, baseline, run or (lambda _: 0.0), calls, skipped=skipped
        )

    def aio(
        self, measure: Callable[..., Awaitable[float]], call: Callable[[], Awaitable[object]]
    ) -> Callable[[int], float]:
        return lambda calls: self.loop.run_until_complete(measure(call, calls))

    def build(self) -> None:
        seq, many = (30, 128) if self.quick else (200, 640)
        url = self.url
        headers = {
            "User-Agent": "bench",
            "Accept": "application/json",
            "Clerk-API-Version": API_VERSION,
            "Authorization": "client_jwt",
        }
        form = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        http: aiohttp.ClientSession = self.loop.run_until_complete(_open_aiohttp())
        aclerk = self.loop.run_until_complete(_open_clerk(url))
        minter = self.loop.run_until_complete(_open_clerk(url, session_minter=True))
        sclerk = ClerkSessions(frontend_api_url=url, client_token="client_jwt")
        self.closers += [
            lambda: self.loop.run_until_complete(http.close()),
            lambda: self.loop.run_until_complete(aclerk.aclose()),
            lambda: self.loop.run_until_complete(minter.aclose()),
            sclerk.close,
        ]
        self.clerk = aclerk

        def raw(
            method: str, path: str, decode: Callable[[bytes], object]
        ) -> Callable[[], Awaitable[object]]:
            target = f"{url}{path}?_is_native=1"
            sent = headers if method == "GET" else form
            body = None if method == "GET" else b""

            async def call() -> object:
                async with http.request(method, target, headers=sent, data=body) as response:
                    return decode(await response.read())

            return call

        # getSession (23 KB): raw, ours, peers.
        raw_get = raw("GET", SESSION_PATH, json.loads)
        self.add(
            "raw_get_json", "raw aiohttp + json.loads", None, self.aio(sequential, raw_get), seq
        )
        self.add(
            "raw_get_orjson",
            "raw aiohttp + orjson.loads",
            "raw_get_json",
            self.aio(sequential, raw("GET", SESSION_PATH, orjson.loads)),
            seq,
        )
        self.add(
            "raw_get_json_c64", "raw aiohttp + json.loads", None, self.aio(in_flight, raw_get), many
        )

        # Raw aiohttp with our decode + structure: what is left of the gap is the request path.
        raw_parse = raw("GET", SESSION_PATH, lambda body: parse_success(ops.GET_SESSION, 200, body))
        self.add(
            "raw_get_parse",
            "raw aiohttp + our decode and structure",
            "raw_get_json",
            self.aio(sequential, raw_parse),
            seq,
        )
        self.add(
            "raw_get_parse_c64",
            "raw aiohttp + our decode and structure",
            "raw_get_json_c64",
            self.aio(in_flight, raw_parse),
            many,
        )

        def get() -> Awaitable[object]:
            return aclerk.get_session("sess_0")

        self.calls = {"raw aiohttp + json.loads": raw_get, "async get_session": get}
        self.add(
            "async_get_session", "async get_session", "raw_get_json", self.aio(sequential, get), seq
        )
        self.add(
            "async_get_session_c64",
            "async get_session",
            "raw_get_json_c64",
            self.aio(in_flight, get),
            many,
        )
        sget = lambda: sclerk.get_session("sess_0")  # noqa: E731
        self.add(
            "sync_get_session", "sync get_session", "raw_get_json", lambda n: blocking(sget, n), seq
        )
        self.add(
            "sync_get_session_pool",
            f"sync get_session, {THREADS} threads",
            "raw_get_json",
            lambda n: pooled(self.pool, sget, n),
            seq,
        )

        # createSessionToken and touchSession: raw POST + json.loads, ours.
        for op, path, call_async, call_sync in (
            (
                "create_session_token",
                f"{SESSION_PATH}/tokens",
                lambda: aclerk.create_session_token("sess_0"),
                lambda: sclerk.create_session_token("sess_0"),
            ),
            (
                "touch_session",
                f"{SESSION_PATH}/touch",
                lambda: aclerk.touch_session("sess_0"),
                lambda: sclerk.touch_session("sess_0"),
            ),
        ):
            raw_post = raw("POST", path, json.loads)
            base = f"raw_{op}"
            self.add(
                base,
                f"raw aiohttp POST + json.loads ({op})",
                None,
                self.aio(sequential, raw_post),
                seq,
            )
            self.add(
                f"{base}_c64",
                f"raw aiohttp POST + json.loads ({op})",
                None,
                self.aio(in_flight, raw_post),
                many,
            )
            self.add(f"async_{op}", f"async {op}", base, self.aio(sequential, call_async), seq)
            self.add(
                f"async_{op}_c64",
                f"async {op}",
                f"{base}_c64",
                self.aio(in_flight, call_async),
                many,
            )
            if op == "create_session_token":  # Clerk's 2026 protocol: the previous JWT in the body
                self.add(
                    "async_create_session_token_minter",
                    "async create_session_token, Session Minter (previous token sent)",
                    base,
                    self.aio(sequential, lambda: minter.create_session_token("sess_0")),
                    seq,
                )
            self.add(f"sync_{op}", f"sync {op}", base, lambda n, c=call_sync: blocking(c, n), seq)
            self.add(
                f"sync_{op}_pool",
                f"sync {op}, {THREADS} threads",
                base,
                lambda n, c=call_sync: pooled(self.pool, c, n),
                seq,
            )

        self.add_peers(http, headers, seq, many)
        if self.only is not None:
            self.variants = {name: self.variants[name] for name in self.only}

    def add_peers(
        self, http: aiohttp.ClientSession, headers: dict[str, str], seq: int, many: int
    ) -> None:
        url = self.url
        target = f"{url}{SESSION_PATH}?_is_native=1"
        missing = peers.HTTPX_PYDANTIC_MISSING
        label_sync, label_async = "httpx + pydantic (sync)", "httpx + pydantic (async)"
        if missing is not None:
            for name, label, base in (
                ("aiohttp_pydantic", "raw aiohttp + pydantic", "raw_get_json"),
                ("httpx_sync_pydantic", label_sync, "raw_get_json"),
                ("httpx_async_pydantic", label_async, "raw_get_json"),
                ("httpx_async_pydantic_c64", label_async, "raw_get_json_c64"),
            ):
                self.add(name, label, base, None, 0, skipped=f"skipped: {missing}")
        else:
            model = peers.SessionEnvelope

            async def aiohttp_pydantic() -> object:
                async with http.get(target, headers=headers) as response:
                    return model.model_validate_json(await response.read())

            sync_client = peers.httpx.Client(trust_env=False, headers=headers)
            async_client = peers.httpx.AsyncClient(
                trust_env=False, headers=headers, limits=peers.httpx.Limits(max_connections=100)
            )
            self.closers += [
                sync_client.close,
                lambda: self.loop.run_until_complete(async_client.aclose()),
            ]

            def httpx_sync() -> object:
                return model.model_validate_json(sync_client.get(target).content)

            async def httpx_async() -> object:
                return model.model_validate_json((await async_client.get(target)).content)

            self.add(
                "aiohttp_pydantic",
                "raw aiohttp + pydantic",
                "raw_get_json",
                self.aio(sequential, aiohttp_pydantic),
                seq,
            )
            self.add(
                "httpx_sync_pydantic",
                label_sync,
                "raw_get_json",
                lambda n: blocking(httpx_sync, n),
                seq,
            )
            self.add(
                "httpx_async_pydantic",
                label_async,
                "raw_get_json",
                self.aio(sequential, httpx_async),
                seq,
            )
            self.add(
                "httpx_async_pydantic_c64",
                label_async,
                "raw_get_json_c64",
                self.aio(in_flight, httpx_async),
                many,
            )

        # Clerk's Backend API SDK reads a BAPI session (0.4 KB): its own raw baseline.
        bapi = f"{url}/v1/sessions/sess_0"

        async def raw_bapi() -> object:
            async with http.get(bapi, headers=headers) as response:
                return json.loads(await response.read())

        self.add(
            "raw_bapi_json",
            "raw aiohttp + json.loads (BAPI session)",
            None,
            self.aio(sequential, raw_bapi),
            seq,
        )
        self.add(
            "raw_bapi_json_c64",
            "raw aiohttp + json.loads (BAPI session)",
            None,
            self.aio(in_flight, raw_bapi),
            many,
        )
        rows = (
            ("clerk_backend_api_sync", "clerk-backend-api sessions.get (sync)", "raw_bapi_json"),
            ("clerk_backend_api_async", "clerk-backend-api sessions.get_async", "raw_bapi_json"),
            (
                "clerk_backend_api_async_c64",
                "clerk-backend-api sessions.get_async",
                "raw_bapi_json_c64",
            ),
        )
        missing = peers.CLERK_BACKEND_API_MISSING or peers.HTTPX_PYDANTIC_MISSING
        if missing is not None:
            for name, label, base in rows:
                self.add(name, label, base, None, 0, skipped=f"skipped: {missing}")
            return
        sdk = peers.clerk_backend_api(url)
        self.closers += [
            sdk.sdk_configuration.client.close,
            lambda: self.loop.run_until_complete(sdk.sdk_configuration.async_client.aclose()),
        ]
        get_sync = lambda: sdk.sessions.get(session_id="sess_0")  # noqa: E731
        get_async = lambda: sdk.sessions.get_async(session_id="sess_0")  # noqa: E731
        self.add(rows[0][0], rows[0][1], rows[0][2], lambda n: blocking(get_sync, n), seq)
        self.add(rows[1][0], rows[1][1], rows[1][2], self.aio(sequential, get_async), seq)
        self.add(rows[2][0], rows[2][1], rows[2][2], self.aio(in_flight, get_async), many)

    def run_rounds(self, rounds: int) -> None:
        """Each round times every variant right after (or before) its baseline, so a burst of
        load on the machine hits both sides of a ratio; pairs run in a shuffled order."""
        live = [v for v in self.variants.values() if v.skipped is None]
        for variant in live:  # warm up pools, hooks and each thread's loop
            variant.run(max(THREADS, variant.calls // 10))
        pairs = [(v.name, v.baseline) for v in live if v.baseline is not None]
        pairs += [
            pair
            for pair in EXTRA_PAIRS
            if all(n in self.variants and self.variants[n].skipped is None for n in pair)
        ]
        baselines = [v for v in live if v.baseline is None]
        for index in range(rounds):
            order: list[tuple[str, str | None]] = [*pairs, *((b.name, None) for b in baselines)]
            random.Random(index).shuffle(order)
            for name, baseline in order:
                variant = self.variants[name]
                if baseline is None:
                    variant.samples.append(variant.run(variant.calls))
                    continue
                base = self.variants[baseline]
                if index % 2:  # alternate which side goes first
                    ours, theirs = variant.run(variant.calls), base.run(base.calls)
                else:
                    theirs, ours = base.run(base.calls), variant.run(variant.calls)
                if baseline == variant.baseline:
                    variant.samples.append(ours)
                self.pairs.setdefault((name, baseline), []).append((theirs, ours))

    def ratio(self, name: str, baseline: str) -> dict[str, float]:
        """``name``'s throughput against ``baseline``'s, from the adjacent timings of each round
        (see :func:`compare`; ``ours``/``theirs`` are calls/s)."""
        pairs = self.pairs[(name, baseline)]
        return compare([1 / ours for _, ours in pairs], [1 / theirs for theirs, _ in pairs])

    def close(self) -> None:
        for close in reversed(self.closers):
            close()
        self.pool.shutdown()
        self.loop.close()


async def _open_aiohttp() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()


async def _open_clerk(url: str, **options: Any) -> AsyncClerkSessions:
    return AsyncClerkSessions(frontend_api_url=url, client_token="client_jwt", **options)


# --------------------------------------------------------------------------------------------
# Batch refresh, cached tokens, CPU-only costs, import time
# --------------------------------------------------------------------------------------------


async def refresh_comparison(clerk: AsyncClerkSessions, url: str, quick: bool) -> dict[str, Any]:
    """refresh_tokens against raw concurrent POSTs (same concurrency, same server, the same
    headers and one distinct session id per request), in alternating rounds.

    Many short rounds rather than a few long ones: each pair runs within a few seconds, so the
    machine's own drifts (other processes, CPU frequency) fall on both sides of it alike; the
    per-round ratios of 7 rounds of 20,000 spread from 0.64 to 0.94 on a busy machine."""
    size, rounds = (2_000, 3) if quick else (5_000, 24)
    headers = {
        "User-Agent": "bench",
        "Accept": "application/json",
        "Clerk-API-Version": API_VERSION,
        "Authorization": "client_jwt",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    http = aiohttp.ClientSession()

    async def raw_posts(count: int, batch_id: str) -> float:
        remaining = iter(range(count))

        async def worker() -> None:
            for i in remaining:
                target = f"{url}/v1/client/sessions/sess_{batch_id}_{i}/tokens?_is_native=1"
                async with http.post(target, data=b"", headers=headers) as response:
                    orjson.loads(await response.read())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - start)

    async def batch(count: int, batch_id: str) -> float:
        # New session ids each time: every token is stored as a new cache entry, as a real
        # refresh's new tokens are (the server answers every request with the same JWT).
        ids = (f"sess_{batch_id}_{i}" for i in range(count))
        start = time.perf_counter()
        result = await clerk.refresh_tokens_summary(ids, concurrency=CONCURRENCY)
        assert result.ok == count, result
        return count / (time.perf_counter() - start)

    try:
        await raw_posts(500, "warm")  # warm up the pool on both sides
        await batch(500, "warm")
        raw, ours = [], []
        for index in range(rounds):
            if index % 2:  # alternate which side goes first
                ours.append(await batch(size, f"r{index}"))
                raw.append(await raw_posts(size, f"r{index}"))
            else:
                raw.append(await raw_posts(size, f"r{index}"))
                ours.append(await batch(size, f"r{index}"))
    finally:
        await http.close()
    return {
        "raw_posts_per_s": raw,
        "batch_tokens_per_s": ours,
        "batch_ratio": compare(ours, raw),
        "batch_size": size,
        "batch_rounds": rounds,
    }


async def batch_benchmarks(clerk: AsyncClerkSessions, url: str, quick: bool) -> dict[str, Any]:
    """refresh_tokens against raw concurrent POSTs, the memory a long batch needs, a cached
    get_token, views, and a batch against a dead server."""
    refresh = await refresh_comparison(clerk, url, quick)
    rss_size = 5_000 if quick else 200_000
    # A long batch must not grow the cache without bound: a client whose cache holds 1,000.
    async with AsyncClerkSessions(
        frontend_api_url=url, client_token="client_jwt", token_cache_size=1_000
    ) as small:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        summary_rss = await small.refresh_tokens_summary(
            (f"sess_rss_{i}" for i in range(rss_size)), concurrency=CONCURRENCY
        )
        assert summary_rss.ok == rss_size, summary_rss
        growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before

    await clerk.get_token("sess_hit")
    # The README's web pattern: a with_client_token view per request, then a cached get_token.
    device_token = clerk.client_token

    async def view_hit() -> str:
        return await clerk.with_client_token(device_token).get_token("sess_hit")

    hits, view_hits = [], []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20_000):
            await clerk.get_token("sess_hit")
        hits.append((time.perf_counter() - start) / 20_000)
        start = time.perf_counter()
        for _ in range(20_000):
            await view_hit()
        view_hits.append((time.perf_counter() - start) / 20_000)
    devices_before = len(clerk._shared.devices)
    views = 100_000 if quick else 1_000_000
    device_tokens = [f"device_{i}" for i in range(1_000)]
    start = time.perf_counter()
    for i in range(views):
        clerk.with_client_token(device_tokens[i % 1_000])
    view_us = (time.perf_counter() - start) / views * 1e6
    devices = len(clerk._shared.devices) - devices_before
    return {
        "get_token_view_hit_us": min(view_hits) * 1e6,
        "views": views,
        "view_us": view_us,
        "view_devices": devices,
        **await dead_server_batch(quick),
        **refresh,
        "rss_batch_size": rss_size,
        "rss_growth_mb": growth_kb / 1024,
        "get_token_hit_us": min(hits) * 1e6,
    }


async def dead_server_batch(quick: bool) -> dict[str, Any]:
    """A batch against a refused port: the breaker ends it after a few failures. Baseline: the
    same number of raw aiohttp connection attempts (what a batch without a breaker would at
    least cost, before any retry back-off)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused
        items = 1_000 if quick else 5_000
        async with AsyncClerkSessions(frontend_api_url=dead, client_token="client_jwt") as clerk:
            requests = (TokenRequest(f"sess_{i}") for i in range(items))
            start = time.perf_counter()
            result = await clerk.refresh_tokens_summary(requests, concurrency=CONCURRENCY)
            ours = time.perf_counter() - start
        assert result.failed == {"APIConnectionError": items}, result
        async with aiohttp.ClientSession() as http:
            remaining = iter(range(items))

            async def worker() -> None:
                for _ in remaining:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.post(f"{dead}/v1/client/sessions/s/tokens"):
                            pass

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            raw = time.perf_counter() - start
    return {"dead_items": items, "dead_seconds": ours, "dead_raw_seconds": raw}


def redis_benchmarks(quick: bool) -> dict[str, Any]:
    """RedisStore on a real redis-server on loopback: a cached get_token (the p50 of single
    calls, next to the in-process store's), and 3 worker processes refreshing the same sessions
    through one Redis (the emulator counts the mints). Skipped without redis-server/redis-py."""
    try:
        from clerk_sessions.redis import RedisStore
        from clerk_sessions.testing import FrontendAPIEmulator, running_redis
    except ImportError as missing:
        return {"redis_skipped": f"{type(missing).__name__}: {missing}"}
    sessions = 200 if quick else 1_000
    try:
        with (
            tempfile.TemporaryDirectory() as directory,
            running_redis(Path(directory)) as server,
            FrontendAPIEmulator(token_lifetime=3600) as fapi,
        ):
            device = fapi.sign_in()
            ids = [device.session_id] + [
                fapi.sign_in(device=device).session_id for _ in range(sessions - 1)
            ]

            async def cached(store: Any) -> list[float]:
                async with AsyncClerkSessions(
                    frontend_api_url=fapi.url, client_token=device.client_token, store=store
                ) as clerk:
                    await clerk.get_token(device.session_id)
                    times = []
                    for _ in range(500 if quick else 5_000):
                        start = time.perf_counter()
                        await clerk.get_token(device.session_id)
                        times.append(time.perf_counter() - start)
                    return times

            async def redis_hits() -> list[float]:
                store = RedisStore(server.url, timeout=1.0)
                try:
                    return await cached(store)
                finally:
                    await store.aclose()

            redis_times = asyncio.run(redis_hits())
            memory_times = asyncio.run(cached(None))
            before = sum(1 for r in fapi.requests if r.operation == "create_session_token")
            start = time.perf_counter()
            oks = _refresh_in_processes(fapi.url, server.url, device.client_token, ids, 3)
            elapsed = time.perf_counter() - start
            mints = sum(1 for r in fapi.requests if r.operation == "create_session_token") - before
    except Exception as exc:  # redis-server missing (RedisServerNotInstalled) or failing
        return {"redis_skipped": f"{type(exc).__name__}: {exc}"}
    return {
        "redis_get_token_p50_us": statistics.median(redis_times) * 1e6,
        "redis_get_token_p99_us": sorted(redis_times)[int(len(redis_times) * 0.99)] * 1e6,
        "memory_get_token_p50_us": statistics.median(memory_times) * 1e6,
        "redis_refresh_sessions": len(ids),
        "redis_refresh_oks": oks,
        "redis_refresh_mints": mints,
        "redis_refresh_seconds": elapsed,
    }


def _refresh_in_processes(
    url: str, redis_url: str, client_token: str, ids: list[str], workers: int
) -> list[int]:
    """Start the workers, let them go at once, return each one's count of tokens."""
    command = [sys.executable, str(HERE / "redis_worker.py"), url, redis_url]
    processes = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    for process in processes:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(f"{client_token}\n{json.dumps(ids)}\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "ready"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.close()
    counts = []
    for process in processes:
        assert process.stdout is not None
        counts.append(int(process.stdout.read()))
        process.stdout.close()
        process.wait(timeout=600)
    return counts


# Where a profiled call's time goes, by the module each function belongs to (first match wins).
PROFILE_CATEGORIES = (
    ("decode (json.loads / orjson.loads)", ("json/", "parse_success")),
    ("structure (fast path, cattrs)", ("fast structure", "_converter", "cattrs", "_model_base")),
    ("request building (_wire)", ("clerk_sessions/_wire", "urllib/parse")),
    ("transport wrapper (_transport: timeouts, URL, body read)", ("_transport", "yarl")),
    ("call loop (_client._call, token-cache seeding, clock)", ("clerk_sessions",)),
    ("aiohttp call path", ("aiohttp", "multidict")),
    ("event loop and sockets", ("asyncio", "selectors", "socket", "select.", "epoll")),
)


def profile_paths(bench: Bench, calls: int) -> dict[str, dict[str, float]]:
    """Each headline call profiled (cProfile, sequential): µs per call by category. Built-in
    functions count in their Python caller (orjson.loads in parse_success). The profiler adds
    a fixed cost per Python call, so code of many small calls looks dearer than it is: read the
    figures as shares, and the timed rows as the truth."""
    import cProfile
    import pstats

    result: dict[str, dict[str, float]] = {}
    for label, call in bench.calls.items():
        profiler = cProfile.Profile(builtins=False)
        profiler.enable()
        bench.loop.run_until_complete(sequential(call, calls))
        profiler.disable()
        stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        shares: dict[str, float] = {}
        for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.items():
            where = f"{filename}:{function}"
            category = next(
                (name for name, marks in PROFILE_CATEGORIES if any(m in where for m in marks)),
                "other (the timing loop, Python itself)",
            )
            shares[category] = shares.get(category, 0.0) + tottime / calls * 1e6
        result[label] = shares
    return result


def web_server_benchmarks(
    bodies: dict[str, bytes], rounds: int, quick: bool
) -> tuple[Bench, dict[str, Any]]:
    """The headline rows again, against a plain aiohttp.web server in its own process."""
    server, url = start_server(serve_aiohttp_web, bodies)
    bench = Bench(url, quick, only=HEADLINE)
    try:
        bench.build()
        bench.run_rounds(rounds)
        refresh = bench.loop.run_until_complete(refresh_comparison(bench.clerk, url, quick))
    finally:
        bench.close()
        server.kill()
    return bench, refresh


def cpu_costs(bodies: dict[str, bytes], quick: bool) -> dict[str, float]:
    """Microseconds per call, decoding and structuring each body: the best of several repeats
    (as timeit advises: the fastest repeat is the one other processes disturbed least)."""
    repeats, calls = (3, 100) if quick else (15, 1000)

    def micro(fn: Callable[[], object]) -> float:
        fn()
        return min(blocking(fn, calls) for _ in range(repeats)) * 1e6

    costs: dict[str, float] = {}
    for name, op in (
        ("session", ops.GET_SESSION),
        ("token", ops.CREATE_SESSION_TOKEN),
        ("reverification", ops.START_SESSION_REVERIFICATION),
    ):
        body = bodies[name]
        data = orjson.loads(body)
        costs[f"{name}_json_loads"] = micro(lambda b=body: json.loads(b))
        costs[f"{name}_orjson_loads"] = micro(lambda b=body: orjson.loads(b))
        costs[f"{name}_structure"] = micro(lambda d=data, t=op.response_type: structure(d, t))
        costs[f"{name}_decode_and_structure"] = micro(lambda b=body, o=op: parse_success(o, 200, b))
    if peers.HTTPX_PYDANTIC_MISSING is None:
        body = bodies["session"]
        costs["session_pydantic_validate_json"] = micro(
            lambda: peers.SessionEnvelope.model_validate_json(body)
        )
    return costs


async def _noop() -> None:
    return None


def hop_costs(quick: bool) -> dict[str, float]:
    """What a hop to a shared loop thread would cost per call (a no-op coroutine), two ways.

    The sync facade avoids the hop by running each calling thread's own loop (``_bridge``).
    """
    calls = 200 if quick else 3000
    costs = {}
    with start_blocking_portal("asyncio") as portal:
        costs["hop_portal_call"] = blocking(lambda: portal.call(_noop), calls) * 1e6
        loop = portal.call(asyncio.get_running_loop)
        costs["hop_run_coroutine_threadsafe"] = (
            blocking(lambda: asyncio.run_coroutine_threadsafe(_noop(), loop).result(), calls) * 1e6
        )
    return costs


IMPORTS = {
    "import_clerk_sessions": "import clerk_sessions",
    # The blocking client (and anyio's portal) load on first use: this is the whole surface.
    "import_clerk_sessions_sync": "from clerk_sessions import ClerkSessions",
    "import_dependencies": "import aiohttp, attrs, cattrs, anyio",
}


def import_times(quick: bool) -> dict[str, Any]:
    """Seconds to import, each in a fresh interpreter (timed inside it, so interpreter start-up
    is left out), the two statements alternating, many times; ``compare`` of the pairs."""
    repeats = 5 if quick else 41
    # Compare like with like: the dependencies were byte-compiled when pip installed them, as a
    # wheel install of this package would be, so the package's bytecode is written first.
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(HERE.parent / "clerk_sessions")],
        env=env,
        check=True,
    )

    def once(statement: str) -> float:
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        return float(out.stdout)

    for statement in IMPORTS.values():
        once(statement)  # warm the file system cache
    times: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for index in range(repeats):
        for name in sorted(IMPORTS, reverse=index % 2 == 1):
            times[name].append(once(IMPORTS[name]))
    base = times["import_dependencies"]
    return {
        **{f"{name}_ms": statistics.geometric_mean(values) * 1e3 for name, values in times.items()},
        "import_ratio": compare(times["import_clerk_sessions"], base),
        "import_sync_ratio": compare(times["import_clerk_sessions_sync"], base),
    }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

TARGETS = [
    # (label, how it is computed, goal, at least / at most)
    (
        "async get_session vs raw aiohttp + json.loads, sequential",
        ("async_get_session", "raw_get_json"),
        0.85,
        ">=",
    ),
    (
        "async get_session vs raw aiohttp + json.loads, 64 in flight",
        ("async_get_session_c64", "raw_get_json_c64"),
        0.85,
        ">=",
    ),
    (
        "async create_session_token vs raw POST + json.loads",
        ("async_create_session_token", "raw_create_session_token"),
        0.9,
        ">=",
    ),
    (
        "sync get_session vs async get_session",
        ("sync_get_session", "async_get_session"),
        0.75,
        ">=",
    ),
    ("refresh_tokens vs raw concurrent POSTs (64)", "batch_ratio", 0.8, ">="),
    ("import clerk_sessions vs aiohttp + attrs + cattrs + anyio", "import_ratio", 1.15, "<="),
    ("structure the 23 KB getSession body (µs)", "session_structure", 80.0, "<="),
]


def environment() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in (
        "clerk-sessions",
        "aiohttp",
        "attrs",
        "cattrs",
        "anyio",
        "orjson",
        "httpx",
        "pydantic",
        "clerk-backend-api",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "packages": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


CPU_COLUMNS = ("json_loads", "orjson_loads", "structure", "decode_and_structure")


def fmt(ratio: dict[str, float]) -> str:
    return f"{ratio['ratio']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})"


def refresh_line(refresh: dict[str, Any]) -> str:
    """One :func:`refresh_comparison` as a line of RESULTS.md."""
    ratio = refresh["batch_ratio"]
    return (
        f"- `refresh_tokens` ({refresh['batch_rounds']} paired rounds of "
        f"{refresh['batch_size']:,} tokens, concurrency {CONCURRENCY}): {ratio['ours']:,.0f} "
        f"tokens/s vs raw concurrent POSTs {ratio['theirs']:,.0f}/s = {fmt(ratio)}"
    )


def soak_section(path: Path) -> list[str]:
    """The committed soak run (``python -m nox -s soak -- ... --json benchmarks/soak.json``),
    as a section: its checks are judged from the emulator's records, not timed here."""
    if not path.is_file():
        return []
    soak = orjson.loads(path.read_bytes())
    args = soak.get("args", {})
    kinds = Counter(f["kind"] for f in soak.get("faults", []))
    faults = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    lines = [
        "",
        f"## Soak ({args.get('duration', '?')} s, {args.get('workers', '?')} worker processes x "
        f"{args.get('devices', '?')} devices, seed {soak.get('seed', '?')})",
        "",
        "`python -m nox -s soak` on the emulator and a real redis-server, with "
        f"{len(soak.get('faults', []))} injected faults "
        f"({faults}); "
        f"{soak['calls']:,} calls and {soak['batch_items']:,} batch items, "
        f"{soak['calls_per_second']:.0f} calls/s sustained "
        f"({soak['peak_calls_per_second_5s']:.0f} in the busiest 5 s).",
        "",
        "| check | value | limit | status |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {row['check']} | {row['value']} | {row['limit']} | {row['status']} |"
        for row in soak["rows"]
    ]
    return lines


def report(
    bench: Bench,
    web: Bench,
    extra: dict[str, Any],
    args: argparse.Namespace,
    sizes: dict[str, int],
) -> str:
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{os.environ.get('BENCH_COMMAND', command)}`",
        "",
        f"Bodies: getSession {sizes['session']:,} bytes (a client of three sessions with full "
        f"users), token {sizes['token']:,} bytes, reverification {sizes['reverification']:,} "
        f"bytes, BAPI session {sizes['bapi_session']:,} bytes. {extra['rounds']} interleaved "
        "rounds; every variant is timed next to its baseline in each round. One estimator for "
        "every ratio: the geometric mean of the per-round ratios, which is exactly the quotient "
        "of the two rates shown beside it (their geometric means over the same rounds); "
        "(min-max) is the spread of the per-round ratios.",
        "",
        "## Targets",
        "",
        "| target | goal | measured | met |",
        "| --- | --- | --- | --- |",
    ]
    for label, source, goal, sense in TARGETS:
        if isinstance(source, tuple):
            ratio = bench.ratio(*source)
        elif source in extra:
            ratio = extra[source]
        else:
            value = extra["cpu"][source]
            ratio = {"ratio": value, "min": value, "max": value}
        met = ratio["ratio"] >= goal if sense == ">=" else ratio["ratio"] <= goal
        shown = f"{ratio['ratio']:.1f}" if source == "session_structure" else fmt(ratio)
        lines.append(f"| {label} | {sense} {goal:g} | {shown} | {'yes' if met else 'no'} |")
    lines += [
        "",
        "## HTTP calls (one loopback server, same run)",
        "",
        *http_table(bench),
    ]
    batch, web_refresh = extra["batch"], extra["web_refresh"]
    lines += ["", *accounting(bench, extra)]
    lines += [
        "",
        "## The headline rows against a plain aiohttp.web server (its own process, same run)",
        "",
        *http_table(web),
        "",
        refresh_line(web_refresh),
        "",
        "## Batch refresh and cached tokens",
        "",
        refresh_line(batch),
        f"- a batch of {batch['rss_batch_size']:,} requests grew peak RSS by "
        f"{batch['rss_growth_mb']:.1f} MB",
        f"- cached `get_token` hit: {batch['get_token_hit_us']:.2f} µs; through a new "
        f"`with_client_token` view per call (the README's web pattern): "
        f"{batch['get_token_view_hit_us']:.2f} µs",
        f"- {batch['views']:,} `with_client_token` calls over 1,000 devices: "
        f"{batch['view_us']:.2f} µs each, {batch['view_devices']:,} device records kept",
        f"- a batch of {batch['dead_items']:,} against a refused port: "
        f"{batch['dead_seconds']:.3f} s, every result an APIConnectionError (the breaker); "
        f"{batch['dead_items']:,} raw aiohttp connection attempts take "
        f"{batch['dead_raw_seconds']:.3f} s",
        *_redis_lines(extra["redis"]),
        "",
        "## CPU only (µs per call, best of repeats)",
        "",
        "| body | json.loads | orjson.loads | structure | decode + structure (ours) |",
        "| --- | --- | --- | --- | --- |",
    ]
    cpu = extra["cpu"]
    for name in ("session", "token", "reverification"):
        cells = [cpu[f"{name}_{what}"] for what in CPU_COLUMNS]
        lines.append(
            f"| {name} ({sizes[name]:,} B) | " + " | ".join(f"{c:.1f}" for c in cells) + " |"
        )
    if "session_pydantic_validate_json" in cpu:
        pydantic = cpu["session_pydantic_validate_json"]
        lines.append(f"\npydantic `model_validate_json` of the getSession body: {pydantic:.1f} µs")
    portal, threadsafe = cpu["hop_portal_call"], cpu["hop_run_coroutine_threadsafe"]
    lines.append(
        f"\nA hop to a shared loop thread (what the sync facade avoids): anyio portal "
        f"{portal:.0f} µs, run_coroutine_threadsafe {threadsafe:.0f} µs per call."
    )
    imports = extra["imports"]
    lines += [
        "",
        "## Import time (fresh interpreters, geometric means)",
        "",
        f"- `import clerk_sessions`: {imports['import_clerk_sessions_ms']:.1f} ms "
        f"({fmt(imports['import_ratio'])} of the dependencies)",
        f"- `from clerk_sessions import ClerkSessions` (adds the blocking client and anyio's "
        f"portal): {imports['import_clerk_sessions_sync_ms']:.1f} ms "
        f"({fmt(imports['import_sync_ratio'])})",
        f"- `import aiohttp, attrs, cattrs, anyio`: {imports['import_dependencies_ms']:.1f} ms",
    ]
    lines += soak_section(HERE / "soak.json")
    lines += [
        "",
        "## Environment",
        "",
    ]
    env = extra["environment"]
    lines += [
        f"- Python: {env['python']} on {env['platform']}",
        f"- CPU: {env['cpu']} ({env['cpus']} logical CPUs)",
    ]
    lines.append("- Packages: " + ", ".join(f"{k} {val}" for k, val in env["packages"].items()))
    lines.append(f"- Date: {env['date']}")
    lines.append(
        "- Server: a minimal HTTP/1.1 keep-alive responder in its own process on 127.0.0.1, "
        "answering with pre-encoded bodies."
    )
    return "\n".join(lines) + "\n"


def accounting(bench: Bench, extra: dict[str, Any]) -> list[str]:
    """getSession: where the microseconds between raw aiohttp + json.loads and ours go."""

    def per_call(name: str, baseline: str) -> tuple[float, float]:
        r = bench.ratio(name, baseline)
        return 1e6 / r["theirs"], 1e6 / r["ours"]

    cpu = extra["cpu"]
    decode_saved = cpu["session_json_loads"] - cpu["session_orjson_loads"]
    lines = [
        "## getSession: where the microseconds go (same run)",
        "",
        "Each step is a pair timed next to each other in every round (geometric means, µs per "
        "call); the steps come from different pairs, so they add up only roughly.",
        "",
        "| step | sequential | 64 in flight |",
        "| --- | --- | --- |",
    ]
    rows: list[list[str]] = [[], [], [], []]
    for suffix in ("", "_c64"):
        raw, parsed = per_call(f"raw_get_parse{suffix}", f"raw_get_json{suffix}")
        parsed_again, ours = per_call(f"async_get_session{suffix}", f"raw_get_parse{suffix}")
        raw_again, ours_again = per_call(f"async_get_session{suffix}", f"raw_get_json{suffix}")
        rows[0].append(f"{raw:.1f}")
        rows[1].append(f"{parsed - raw:+.1f}")
        rows[2].append(f"{ours - parsed_again:+.1f}")
        rows[3].append(f"{ours_again - raw_again:+.1f} ({ours_again:.1f} vs {raw_again:.1f})")
    labels = [
        "raw aiohttp + json.loads",
        "json.loads → orjson.loads + our structure (raw aiohttp + our decode and structure)",
        "our request path: the call loop, request building, transport wrapper (timeouts, URL, "
        "body read), rotation check, clock sample, token-cache seeding, two more coroutine layers",
        "= async get_session, against raw (its own pair)",
    ]
    lines += [f"| {label} | {a} | {b} |" for label, (a, b) in zip(labels, rows, strict=True)]
    lines += [
        "",
        f"CPU only: json.loads {cpu['session_json_loads']:.1f} µs, orjson.loads "
        f"{cpu['session_orjson_loads']:.1f} µs (saves {decode_saved:.1f}), structure "
        f"{cpu['session_structure']:.1f} µs: decoding and structuring cost "
        f"{cpu['session_structure'] - decode_saved:+.1f} µs against json.loads alone.",
        "",
        "Profiled (cProfile, sequential; µs per call by module, built-ins counted in their caller; "
        "the profiler's fixed cost per Python call inflates code of many small calls, so read "
        "these as shares):",
        "",
    ]
    profile = extra["profile"]
    names = list(profile)
    categories = [name for name, _ in PROFILE_CATEGORIES] + [
        "other (the timing loop, Python itself)"
    ]
    lines += [
        "| category | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for category in categories:
        cells = [f"{profile[n].get(category, 0.0):.1f}" for n in names]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    totals = [f"{sum(profile[n].values()):.1f}" for n in names]
    lines.append("| total under the profiler | " + " | ".join(totals) + " |")
    return lines


def http_table(bench: Bench) -> list[str]:
    """The HTTP calls of one Bench: each variant's rate and its baseline's in the same rounds
    (geometric means), and their ratio (the quotient of the two; see :func:`compare`)."""
    lines = [
        "| variant | calls/s | baseline calls/s, same rounds | ratio (min-max) | baseline |",
        "| --- | --- | --- | --- | --- |",
    ]

    def shaped(variant: Variant) -> str:
        return variant.label + (", 64 in flight" if variant.name.endswith("_c64") else "")

    def pair_row(name: str, baseline: str) -> str:
        r = bench.ratio(name, baseline)
        return (
            f"| {shaped(v[name])} | {r['ours']:,.0f} | {r['theirs']:,.0f} | {fmt(r)} "
            f"| {shaped(v[baseline])} |"
        )

    v = bench.variants
    for variant in v.values():
        if variant.skipped is not None:
            lines.append(f"| {variant.label} | {variant.skipped} | | | |")
        elif variant.baseline is None:
            per_s = statistics.geometric_mean([1 / t for t in variant.samples])
            lines.append(f"| **{shaped(variant)}** | {per_s:,.0f} | | 1.00x (baseline) | |")
        else:
            lines.append(pair_row(variant.name, variant.baseline))
    lines += [pair_row(*pair) for pair in EXTRA_PAIRS if pair in bench.pairs]
    return lines


def _redis_lines(redis: dict[str, Any]) -> list[str]:
    if "redis_skipped" in redis:
        return ["", "## Many workers on Redis", "", f"- skipped: {redis['redis_skipped']}"]
    return [
        "",
        "## Many workers on Redis (a real redis-server and the emulator, both on loopback)",
        "",
        f"- cached `get_token` with `RedisStore`: p50 {redis['redis_get_token_p50_us']:.0f} µs, "
        f"p99 {redis['redis_get_token_p99_us']:.0f} µs (one Redis round trip; target p50 <= "
        f"150 µs); in-process store: p50 {redis['memory_get_token_p50_us']:.1f} µs",
        f"- 3 worker processes refreshing the same {redis['redis_refresh_sessions']:,} sessions "
        f"with `refresh_tokens`: {sum(redis['redis_refresh_oks']):,} tokens delivered "
        f"({', '.join(f'{n:,}' for n in redis['redis_refresh_oks'])}), "
        f"{redis['redis_refresh_mints']:,} mints in total, {redis['redis_refresh_seconds']:.1f} s",
    ]


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke: few rounds, results not kept"
    )
    parser.add_argument("--output", type=Path, help="directory for RESULTS.md and results.json")
    args = parser.parse_args()
    output = args.output or (HERE / "results" / "quick" if args.quick else HERE)
    rounds = 3 if args.quick else 15

    bodies = payloads.encoded()
    server, url = start_server(serve, bodies)
    bench = Bench(url, args.quick)
    extra: dict[str, Any] = {"rounds": rounds}
    try:
        bench.build()
        bench.run_rounds(rounds)
        extra["profile"] = profile_paths(bench, 500 if args.quick else 3000)
        extra["batch"] = bench.loop.run_until_complete(
            batch_benchmarks(bench.clerk, url, args.quick)
        )
    finally:
        bench.close()
        server.kill()
    web, extra["web_refresh"] = web_server_benchmarks(bodies, rounds, args.quick)
    extra["redis"] = redis_benchmarks(args.quick)
    extra["cpu"] = {**cpu_costs(bodies, args.quick), **hop_costs(args.quick)}
    extra["imports"] = import_times(args.quick)
    extra["import_ratio"] = extra["imports"]["import_ratio"]
    extra["batch_ratio"] = extra["batch"]["batch_ratio"]
    extra["environment"] = environment()

    sizes = {name: len(body) for name, body in bodies.items()}
    text = report(bench, web, extra, args, sizes)
    results = {
        "variants": {
            name: {
                "label": var.label,
                "baseline": var.baseline,
                "seconds_per_call": var.samples,
                "skipped": var.skipped,
            }
            for name, var in bench.variants.items()
        },
        # Per round: (baseline seconds per call, variant seconds per call).
        "timings_per_round": {f"{a} / {b}": pairs for (a, b), pairs in bench.pairs.items()},
        "ratios": {f"{a} / {b}": bench.ratio(a, b) for a, b in bench.pairs},
        "aiohttp_web_ratios": {f"{a} / {b}": web.ratio(a, b) for a, b in web.pairs},
        "sizes": sizes,
        **extra,
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "RESULTS.md").write_text(text, encoding="utf-8")
    (output / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(text)
    print(f"written: {output / 'RESULTS.md'}, {output / 'results.json'}")
    return results


if __name__ == "__main__":
    main()
