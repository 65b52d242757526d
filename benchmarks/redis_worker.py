"""A worker process of the Redis benchmark (``python benchmarks/redis_worker.py URL REDIS_URL``).

Reads the client token, then a JSON list of session ids, on stdin; prints ``ready``; on a ``go``
line runs ``refresh_tokens_summary`` over the ids through a ``RedisStore`` and prints the number
of tokens it got.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clerk_sessions import AsyncClerkSessions
from clerk_sessions.redis import RedisStore


async def main(frontend_api_url: str, redis_url: str) -> None:
    client_token = sys.stdin.readline().strip()
    session_ids = orjson.loads(sys.stdin.readline())
    store = RedisStore(redis_url, timeout=1.0)
    async with AsyncClerkSessions(
        frontend_api_url=frontend_api_url, client_token=client_token, store=store
    ) as clerk:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
        summary = await clerk.refresh_tokens_summary(session_ids, concurrency=32)
    await store.aclose()
    print(summary.ok, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
