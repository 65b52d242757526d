"""A worker process for the multi-process tests: one ``AsyncClerkSessions`` on a ``RedisStore``,
and :class:`Worker`, which starts one and drives it.

``python -m tests.worker_process FRONTEND_API_URL REDIS_URL CLIENT_TOKEN [TIMEOUT [BUDGET]]``
prints ``{"ready": true}`` as soon as its client exists (before any Redis connection is open:
the first command races the store's warm-up, as in a freshly started web worker), then reads one
JSON command per line on stdin and answers with one JSON line on stdout, so the test drives
every worker step by step (no sleeps, no timing). ``BUDGET`` is the store's per-call budget in
seconds (default 2: under coverage on a busy CI machine a store marked down would make each
worker mint on its own, and the tests count mints), or ``default`` for ``RedisStore``'s own.

- ``{"op": "get_token", "session_id": S, "n": N}``: N concurrent ``get_token`` calls;
  answers ``{"jwts": [...]}`` (or ``{"error": "<class name>"}``);
- ``{"op": "get_session", "session_id": S}``: answers ``{"status": ...}``;
- ``{"op": "end_session", "session_id": S}``: answers ``{"status": ...}``;
- ``{"op": "refresh", "session_ids": [...]}``: ``refresh_tokens_summary``; answers ``{"ok": N}``;
- ``{"op": "health"}``: ``{"available": bool, "warnings": [...], "debug": [...]}``, the
  store's state and the clerk_sessions log records it emitted at WARNING and DEBUG;
- ``{"op": "quit"}``: closes the client and exits.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from clerk_sessions import AsyncClerkSessions, ClerkSessionsError
from clerk_sessions.redis import RedisStore

REPO = Path(__file__).resolve().parent.parent


class Worker:
    """One worker process, driven by JSON lines (``timeout``: its client's; ``budget``: its
    store's per-call budget, or ``"default"``)."""

    def __init__(
        self,
        frontend_api_url: str,
        redis_url: str,
        token: str,
        timeout: float = 30.0,
        budget: float | str = 2.0,
    ) -> None:
        command = [sys.executable, "-m", "tests.worker_process", frontend_api_url, redis_url]
        self.process = subprocess.Popen(
            [*command, token, str(timeout), str(budget)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.read() == {"ready": True}

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(command) + b"\n")
        self.process.stdin.flush()

    def read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the worker exited (code {self.process.poll()})"
        return orjson.loads(line)

    def ask(self, **command: Any) -> Any:
        self.send(**command)
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.send(op="quit")
            self.process.wait(timeout=30)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


async def answer(
    clerk: AsyncClerkSessions, store: RedisStore, records: Records, command: dict[str, Any]
) -> dict[str, Any]:
    op = command["op"]
    if op == "health":
        return {
            "available": store.available,
            "warnings": records.messages(logging.WARNING),
            "debug": [m for m in records.messages(logging.DEBUG) if "Redis" in m],
        }
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
    frontend_api_url: str,
    redis_url: str,
    client_token: str,
    timeout: str = "30",
    budget: str = "2.0",
) -> None:
    records = Records()
    log = logging.getLogger("clerk_sessions")
    log.addHandler(records)
    log.setLevel(logging.DEBUG)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    store = (
        RedisStore(redis_url)
        if budget == "default"
        else RedisStore(redis_url, timeout=float(budget))
    )
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
            print(orjson.dumps(await answer(clerk, store, records, command)).decode(), flush=True)
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
