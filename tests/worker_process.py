"""A worker process for the multi-process tests: one ``AsyncClerkSessions`` on a ``RedisStore``.

``python -m tests.worker_process FRONTEND_API_URL REDIS_URL CLIENT_TOKEN [TIMEOUT]`` prints
``{"ready": true}``
then reads one JSON command per line on stdin and answers with one JSON line on stdout, so the
test drives every worker step by step (no sleeps, no timing):

- ``{"op": "get_token", "session_id": S, "n": N}``: N concurrent ``get_token`` calls;
  answers ``{"jwts": [...]}`` (or ``{"error": "<class name>"}``);
- ``{"op": "get_session", "session_id": S}``: answers ``{"status": ...}``;
- ``{"op": "end_session", "session_id": S}``: answers ``{"status": ...}``;
- ``{"op": "refresh", "session_ids": [...]}``: ``refresh_tokens_summary``; answers ``{"ok": N}``;
- ``{"op": "quit"}``: closes the client and exits.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson

from clerk_sessions import AsyncClerkSessions, ClerkSessionsError
from clerk_sessions.redis import RedisStore


async def answer(clerk: AsyncClerkSessions, command: dict[str, Any]) -> dict[str, Any]:
    op = command["op"]
    try:
        if op == "get_token":
            calls = [clerk.get_token(command["session_id"]) for _ in range(command["n"])]
            return {"jwts": list(await asyncio.gather(*calls))}
        if op == "get_session":
            return {"status": (await clerk.get_session(command["session_id"])).response.status}
        if op == "end_session":
            return {"status": (await clerk.end_session(command["session_id"])).response.status}
        if op == "refresh":
            summary = await clerk.refresh_tokens_summary(command["session_ids"], concurrency=16)
            return {"ok": summary.ok, "failed": summary.failed}
    except ClerkSessionsError as error:
        return {"error": type(error).__name__}
    raise ValueError(f"unknown command {op!r}")


async def main(
    frontend_api_url: str, redis_url: str, client_token: str, timeout: str = "30"
) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # A generous budget: under coverage on a busy CI machine a connect can exceed 50 ms, and a
    # store marked down would make each worker mint on its own (the tests count mints).
    store = RedisStore(redis_url, timeout=2.0)
    async with AsyncClerkSessions(
        frontend_api_url=frontend_api_url,
        client_token=client_token,
        store=store,
        timeout=float(timeout),
    ) as clerk:
        print(orjson.dumps({"ready": True}).decode(), flush=True)
        while line := await reader.readline():
            command = orjson.loads(line)
            if command["op"] == "quit":
                break
            print(orjson.dumps(await answer(clerk, command)).decode(), flush=True)
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
