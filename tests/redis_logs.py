"""The ``logs`` fixture of the Redis tests: clerk_sessions's log records, and a way to wait for
one (an event set by the logging handler, never the clock)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import anyio
import pytest

# A safety net, never a measurement: a record that never comes fails the test.
NO_HANG = 20.0


class LogWatcher(logging.Handler):
    """The clerk_sessions log records, and a way to wait for one (an event, not the clock)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        for loop, logged in list(self._waiting):
            loop.call_soon_threadsafe(logged.set)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]

    def count(self, level: int, text: str) -> int:
        return sum(1 for message in self.at(level) if text in message)

    async def wait_for(self, level: int, text: str, *, after: int = 0) -> str:
        """The message of the record at ``level`` containing ``text`` that follows the first
        ``after`` such records, waiting until it is logged."""
        logged = asyncio.Event()
        entry = (asyncio.get_running_loop(), logged)
        self._waiting.append(entry)
        try:
            with anyio.fail_after(NO_HANG):
                while True:
                    found = [message for message in self.at(level) if text in message]
                    if len(found) > after:
                        return found[after]
                    logged.clear()
                    await logged.wait()
        finally:
            self._waiting.remove(entry)


@pytest.fixture(name="logs")
def logs_fixture() -> Iterator[LogWatcher]:
    """clerk_sessions's log records, at every level, for the test."""
    watcher = LogWatcher()
    logger = logging.getLogger("clerk_sessions")
    level = logger.level
    logger.addHandler(watcher)
    logger.setLevel(logging.DEBUG)
    try:
        yield watcher
    finally:
        logger.removeHandler(watcher)
        logger.setLevel(level)
