"""Benchmark harness: our clients against raw aiohttp on the same loopback server.

The server runs in its own process (as a real Frontend API would), serving a pre-encoded
getSession body. Every figure is a ratio to a baseline measured in the same run, round by round
interleaved, medians over rounds, so machine noise hits all variants alike.

    python benchmarks/run.py            # full: more rounds
    python benchmarks/run.py --quick    # CI smoke: proves the harness runs
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from anyio.from_thread import start_blocking_portal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clerk_sessions import AsyncClerkSessions, ClerkSessions
from clerk_sessions._converter import structure
from clerk_sessions.models import Envelope, Session
from tests import payloads


def session_payload() -> bytes:
    """A getSession envelope whose client holds three sessions with full users."""
    sessions = [payloads.session(f"sess_{i}") for i in range(3)]
    return orjson.dumps({"response": sessions[0], "client": payloads.client(*sessions)})


def token_payload() -> bytes:
    """A token response whose JWT is valid for a day (so cache hits stay hits)."""

    def segment(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sid": "sess_0", "sub": "user_0", "iat": now, "exp": now + 86_400, "v": 2}
    jwt = f"{segment({'alg': 'RS256'})}.{segment(claims)}.{'s' * 342}"
    return orjson.dumps({"object": "token", "jwt": jwt})


def serve(body: bytes, port_out: Connection) -> None:
    """The server process: answers every GET with ``body``, every POST with a token."""
    token = token_payload()

    async def main() -> None:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        async def mint(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=token, content_type="application/json")

        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        app.router.add_post("/{tail:.*}", mint)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port_out.send(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


async def async_seconds_per_call(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


async def _noop() -> None:
    return None


def main(quick: bool) -> dict[str, float]:
    body = session_payload()
    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=serve, args=(body, sender), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{receiver.recv()}"
    target = f"{url}/v1/client/sessions/sess_0?_is_native=1"
    rounds, calls = (3, 50) if quick else (15, 300)
    loop = asyncio.new_event_loop()  # one loop for every async variant, across rounds

    async def open_clients() -> tuple[aiohttp.ClientSession, AsyncClerkSessions]:
        return aiohttp.ClientSession(), AsyncClerkSessions(frontend_api_url=url, client_token="b")

    http, aclerk = loop.run_until_complete(open_clients())
    sclerk = ClerkSessions(frontend_api_url=url, client_token="b")

    async def raw_json() -> object:
        async with http.get(target) as response:
            return json.loads(await response.read())

    async def raw_orjson() -> object:
        async with http.get(target) as response:
            return orjson.loads(await response.read())

    async def async_get_session() -> object:
        return await aclerk.get_session("sess_0")

    def sync_get_session() -> object:
        return sclerk.get_session("sess_0")

    async_variants = {
        "raw_aiohttp_json": raw_json,
        "raw_aiohttp_orjson": raw_orjson,
        "async_get_session": async_get_session,
    }
    results: dict[str, list[float]] = {name: [] for name in [*async_variants, "sync_get_session"]}
    medians: dict[str, float] = {}
    try:
        for fn in async_variants.values():  # warm up pools and cattrs hooks
            loop.run_until_complete(async_seconds_per_call(fn, 10))
        seconds_per_call(sync_get_session, 10)
        for _ in range(rounds):
            for name, fn in async_variants.items():
                results[name].append(loop.run_until_complete(async_seconds_per_call(fn, calls)))
            results["sync_get_session"].append(seconds_per_call(sync_get_session, calls))
        medians.update(loop.run_until_complete(token_benchmarks(http, aclerk, url, quick)))
    finally:
        sclerk.close()
        loop.run_until_complete(aclerk.aclose())
        loop.run_until_complete(http.close())
        loop.close()
        server.kill()

    medians.update({name: statistics.median(values) for name, values in results.items()})
    data = orjson.loads(body)
    cpu_calls = 200 if quick else 2000
    medians["cpu_json_loads"] = seconds_per_call(lambda: json.loads(body), cpu_calls)
    medians["cpu_orjson_loads"] = seconds_per_call(lambda: orjson.loads(body), cpu_calls)
    medians["cpu_structure"] = seconds_per_call(
        lambda: structure(data, Envelope[Session]), cpu_calls
    )
    medians.update(hop_costs(200 if quick else 3000))

    base = medians["raw_aiohttp_json"]
    print(f"payload: {len(body):,} bytes; rounds={rounds} calls/round={calls}")
    print(f"{'variant':<22}{'calls/s':>10}{'vs raw aiohttp+json':>22}{'vs async client':>18}")
    for name in results:
        print(
            f"{name:<22}{1 / medians[name]:>10.0f}{base / medians[name]:>21.2f}x"
            f"{medians['async_get_session'] / medians[name]:>17.2f}x"
        )
    for name in [key for key in medians if key.startswith(("cpu_", "hop_"))]:
        print(f"{name:<22}{medians[name] * 1e6:>9.1f} µs")
    print(
        f"batch refresh: {medians['batch_tokens_per_s']:.0f} tokens/s vs raw concurrent POSTs "
        f"{medians['raw_posts_per_s']:.0f}/s = "
        f"{medians['batch_tokens_per_s'] / medians['raw_posts_per_s']:.2f}x "
        f"(concurrency 64, {int(medians['batch_size'])} tokens)"
    )
    print(
        f"batch of {int(medians['rss_batch_size']):,} requests: peak RSS grew "
        f"{medians['rss_growth_mb']:.1f} MB"
    )
    print(f"cached get_token hit: {medians['get_token_hit'] * 1e6:.2f} µs")
    return medians


async def token_benchmarks(
    http: aiohttp.ClientSession, clerk: AsyncClerkSessions, url: str, quick: bool
) -> dict[str, float]:
    """Batch refresh against raw concurrent POSTs (same concurrency, same server), the
    memory a long batch needs, and the cost of a cached get_token."""
    concurrency, size = 64, (2_000 if quick else 20_000)
    # The same requests the batch sends: one session id each (URL caches on either side
    # would flatter a baseline that repeats one URL), and the same headers.
    headers = {
        "User-Agent": "bench",
        "Accept": "application/json",
        "Clerk-API-Version": "2026-05-12",
        "Authorization": "b",
        "Content-Type": "application/x-www-form-urlencoded",
    }

    async def raw_posts(count: int) -> float:
        remaining = iter(range(count))

        async def worker() -> None:
            for i in remaining:
                target = f"{url}/v1/client/sessions/sess_{i}/tokens?_is_native=1"
                async with http.post(target, data=b"", headers=headers) as response:
                    orjson.loads(await response.read())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - start)

    async def batch(count: int) -> float:
        ids = (f"sess_{i}" for i in range(count))
        start = time.perf_counter()
        summary = await clerk.refresh_tokens_summary(ids, concurrency=concurrency)
        assert summary.ok == count, summary
        return count / (time.perf_counter() - start)

    await raw_posts(500)  # warm up the pool on both sides
    await batch(500)
    rounds = 3 if quick else 5
    raw, ours = [], []
    for _ in range(rounds):
        raw.append(await raw_posts(size))
        ours.append(await batch(size))

    rss_size = 5_000 if quick else 200_000
    clerk._tokens.max_entries = 1_000  # a long batch must not grow the cache without bound
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await batch(rss_size)
    growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before

    await clerk.get_token("sess_hit")
    hits = 20_000
    start = time.perf_counter()
    for _ in range(hits):
        await clerk.get_token("sess_hit")
    hit = (time.perf_counter() - start) / hits
    return {
        "raw_posts_per_s": statistics.median(raw),
        "batch_tokens_per_s": statistics.median(ours),
        "batch_size": float(size),
        "rss_growth_mb": growth_kb / 1024,
        "rss_batch_size": float(rss_size),
        "get_token_hit": hit,
    }


def hop_costs(calls: int) -> dict[str, float]:
    """What a hop to a shared loop thread would cost per call (a no-op coroutine), two ways.

    The sync facade avoids the hop by running each calling thread's own loop (``_bridge``).
    """
    costs = {}
    with start_blocking_portal("asyncio") as portal:
        costs["hop_portal_call"] = seconds_per_call(lambda: portal.call(_noop), calls)
        loop = portal.call(asyncio.get_running_loop)
        costs["hop_run_coroutine_threadsafe"] = seconds_per_call(
            lambda: asyncio.run_coroutine_threadsafe(_noop(), loop).result(), calls
        )
    return costs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI smoke: few rounds")
    main(parser.parse_args().quick)
