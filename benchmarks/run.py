"""Benchmark harness (smoke version): our client against raw aiohttp on the same loopback server.

Every figure is a ratio to the raw-aiohttp baseline measured in the same run, interleaved
round by round so machine noise hits all variants alike.

    python benchmarks/run.py            # full: more rounds
    python benchmarks/run.py --quick    # CI smoke: proves the harness runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clerk_sessions import AsyncClerkSessions
from clerk_sessions._converter import structure
from clerk_sessions.models import Envelope, Session
from tests import payloads


def session_payload() -> bytes:
    """A getSession envelope whose client holds three sessions with full users (~realistic)."""
    sessions = [payloads.session(f"sess_{i}") for i in range(3)]
    return orjson.dumps({"response": sessions[0], "client": payloads.client(*sessions)})


async def start_server(body: bytes) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/client/sessions/{sid}", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def per_call_seconds(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls


def cpu_seconds(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


async def main(quick: bool) -> dict[str, float]:
    body = session_payload()
    runner, url = await start_server(body)
    rounds, calls = (3, 50) if quick else (15, 300)
    results: dict[str, list[float]] = {"raw_json": [], "raw_orjson": [], "sdk_get_session": []}
    try:
        async with (
            aiohttp.ClientSession() as http,
            AsyncClerkSessions(frontend_api_url=url, client_token="bench") as clerk,
        ):
            target = f"{url}/v1/client/sessions/sess_0?_is_native=1"

            async def raw_json() -> object:
                async with http.get(target) as response:
                    return json.loads(await response.read())

            async def raw_orjson() -> object:
                async with http.get(target) as response:
                    return orjson.loads(await response.read())

            async def sdk() -> object:
                return await clerk.get_session("sess_0")

            variants = {"raw_json": raw_json, "raw_orjson": raw_orjson, "sdk_get_session": sdk}
            for fn in variants.values():  # warm up pools and cattrs hooks
                await per_call_seconds(fn, 10)
            for _ in range(rounds):
                for name, fn in variants.items():
                    results[name].append(await per_call_seconds(fn, calls))
    finally:
        await runner.cleanup()

    medians = {name: statistics.median(values) for name, values in results.items()}
    data = orjson.loads(body)
    cpu_calls = 200 if quick else 2000
    medians["cpu_json_loads"] = cpu_seconds(lambda: json.loads(body), cpu_calls)
    medians["cpu_orjson_loads"] = cpu_seconds(lambda: orjson.loads(body), cpu_calls)
    medians["cpu_structure"] = cpu_seconds(lambda: structure(data, Envelope[Session]), cpu_calls)

    base = medians["raw_json"]
    print(f"payload: {len(body):,} bytes; rounds={rounds} calls/round={calls}")
    print(f"{'variant':<20}{'calls/s':>10}{'vs raw aiohttp+json':>22}")
    for name in ("raw_json", "raw_orjson", "sdk_get_session"):
        print(f"{name:<20}{1 / medians[name]:>10.0f}{base / medians[name]:>21.2f}x")
    for name in ("cpu_json_loads", "cpu_orjson_loads", "cpu_structure"):
        print(f"{name:<20}{medians[name] * 1e6:>9.1f} µs")
    return medians


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI smoke: few rounds")
    asyncio.run(main(parser.parse_args().quick))
