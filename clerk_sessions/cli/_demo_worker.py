"""One worker process of the demo's "many workers" step (``python -m`` this module).

``FRONTEND_API_URL REDIS_URL SESSION_ID`` and the client token on stdin: waits for a ``go`` line,
then makes 20 concurrent ``get_token`` calls through a ``RedisStore`` and prints the distinct
tokens it got, one per line (the demo checks that all workers got the same one).
"""

from __future__ import annotations

import asyncio
import sys

from clerk_sessions import AsyncClerkSessions
from clerk_sessions.redis import RedisStore

CALLERS = 20


async def main(frontend_api_url: str, redis_url: str, session_id: str) -> None:
    client_token = sys.stdin.readline().strip()  # never on a command line (ps would show it)
    store = RedisStore(redis_url, timeout=1.0)
    async with AsyncClerkSessions(
        frontend_api_url=frontend_api_url, client_token=client_token, store=store
    ) as clerk:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
        tokens = await asyncio.gather(*(clerk.get_token(session_id) for _ in range(CALLERS)))
    await store.aclose()
    for jwt in sorted(set(tokens)):
        print(jwt, flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
