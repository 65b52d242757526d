"""A worker process for the Redis health tests: ``tests/worker_process.py``'s commands, on a
``RedisStore`` with its default budgets (the worker of the multi-process tests gives it 2 s).

``python -m tests.redis_worker FRONTEND_API_URL REDIS_URL CLIENT_TOKEN`` prints
``{"ready": true}`` as soon as its client exists (before any Redis connection is open: the first
command races the store's warm-up, as in a freshly started web worker), then answers one JSON
line per command line; besides ``worker_process``'s commands:

- ``{"op": "health"}``: ``{"available": bool, "warnings": [...], "debug": [...]}``, the
  store's state and the clerk_sessions log records it emitted at WARNING and DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import orjson

from clerk_sessions import AsyncClerkSessions
from clerk_sessions.redis import RedisStore
from tests.worker_process import answer


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


async def main(frontend_api_url: str, redis_url: str, client_token: str) -> None:
    records = Records()
    log = logging.getLogger("clerk_sessions")
    log.addHandler(records)
    log.setLevel(logging.DEBUG)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    store = RedisStore(redis_url)  # the defaults under test
    async with AsyncClerkSessions(
        frontend_api_url=frontend_api_url, client_token=client_token, store=store, timeout=30.0
    ) as clerk:
        print(orjson.dumps({"ready": True}).decode(), flush=True)
        while line := await reader.readline():
            command = orjson.loads(line)
            if command["op"] == "quit":
                break
            if command["op"] == "health":
                result = {
                    "available": store.available,
                    "warnings": records.messages(logging.WARNING),
                    "debug": [m for m in records.messages(logging.DEBUG) if "Redis" in m],
                }
            else:
                result = await answer(clerk, command)
            print(orjson.dumps(result).decode(), flush=True)
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
