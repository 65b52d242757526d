"""A TCP proxy on loopback in front of a real redis-server, for RedisStore's health tests: it adds
latency to every reply, or holds replies (all of them, or those to one command) until the test
releases them. It runs its own event loop in a thread, so the process under test (or worker
processes) talk to it like to any Redis.

Latency is fault injection, not synchronisation: the tests wait on events (``hold_engaged``,
``reply_held``, ``command_seen``), never on the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

# Startup and shutdown of the proxy's own thread only (never a test's synchronisation).
_THREAD_SECONDS = 10.0


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self) -> None:
        self.held = False  # this connection's replies wait for release()


class RedisProxy:
    """``127.0.0.1:port`` forwards to ``127.0.0.1:upstream_port``; replies are delayed by
    ``delay`` seconds (each one, in order: about ``delay`` added to every round trip)."""

    def __init__(self, upstream_port: int, *, delay: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = 0
        self.connections = 0
        self.hold_engaged = threading.Event()
        """Set when a command carrying the armed marker passed (its replies are then held)."""
        self.reply_held = threading.Event()
        """Set when a reply arrived from Redis and was held: Redis ran the command."""
        self.command_seen = threading.Event()
        """Set when a command carrying the watched marker passed to Redis."""
        self._hold_all = False
        self._hold_requests = False
        self._marker: bytes | None = None
        self._watch: bytes | None = None
        self._loop = asyncio.new_event_loop()
        self._changed: asyncio.Condition | None = None
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._thread = threading.Thread(target=self._run, name="redis-proxy", daemon=True)
        self._started = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # -- the test's controls (any thread) ---------------------------------------------------

    def hold_all(self) -> None:
        """From now on no reply reaches any client (new connections too) until release()."""
        self._call(self._set_hold_all, True)

    def partition(self) -> None:
        """From now on nothing passes, either way (commands no longer reach Redis), until
        release(): Redis is unreachable for the clients of this proxy only."""
        self._call(self._set_partition)

    def hold_reply_to(self, marker: bytes) -> None:
        """The replies on the connection that next sends a command containing ``marker`` are
        held (from that command's on) until release()."""
        self.hold_engaged.clear()
        self.reply_held.clear()
        self._call(self._set_marker, marker)

    def watch(self, marker: bytes) -> None:
        """Set ``command_seen`` when a command containing ``marker`` is forwarded to Redis."""
        self.command_seen.clear()
        self._call(self._set_watch, marker)

    def release(self) -> None:
        """Held replies go on (in order); nothing is held any more."""
        self._call(self._release)

    # -- the proxy itself -------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(_THREAD_SECONDS):
            raise RuntimeError("the Redis proxy did not start")

    def close(self) -> None:
        if self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._stop(), self._loop)
            with contextlib.suppress(Exception):
                future.result(_THREAD_SECONDS)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_THREAD_SECONDS)
        if not self._loop.is_running():
            self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._started.set()
        self._loop.run_forever()

    async def _serve(self) -> None:
        self._changed = asyncio.Condition()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._release()
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()

    def _call(self, function: Any, *args: Any) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                function(*args)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        if not done.wait(_THREAD_SECONDS):
            raise RuntimeError("the Redis proxy did not answer")

    def _notify(self) -> None:
        assert self._changed is not None

        async def notify() -> None:
            assert self._changed is not None
            async with self._changed:
                self._changed.notify_all()

        self._loop.create_task(notify())

    def _set_hold_all(self, value: bool) -> None:
        self._hold_all = value
        self._notify()

    def _set_partition(self) -> None:
        self._hold_all = self._hold_requests = True
        self._notify()

    def _set_marker(self, marker: bytes) -> None:
        self._marker = marker

    def _set_watch(self, marker: bytes) -> None:
        self._watch = marker

    def _release(self) -> None:
        self._hold_all = self._hold_requests = False
        self._marker = None
        for link in self._links:
            link.held = False
        self._notify()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        link = _Link()
        self._links.add(link)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        replies: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        tasks = [
            asyncio.ensure_future(self._requests(link, reader, up_writer)),
            asyncio.ensure_future(self._read_replies(up_reader, replies)),
            asyncio.ensure_future(self._send_replies(link, replies, writer)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            self._links.discard(link)
            for stream in (writer, up_writer):
                with contextlib.suppress(Exception):
                    stream.close()

    async def _requests(
        self, link: _Link, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter
    ) -> None:
        assert self._changed is not None
        while data := await reader.read(65536):
            if self._hold_requests:
                async with self._changed:
                    await self._changed.wait_for(lambda: not self._hold_requests)
            if self._marker is not None and self._marker in data:
                self._marker = None
                link.held = True
                self.hold_engaged.set()
            up_writer.write(data)
            await up_writer.drain()
            if self._watch is not None and self._watch in data:
                self._watch = None
                self.command_seen.set()

    async def _read_replies(
        self, up_reader: asyncio.StreamReader, replies: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        loop = asyncio.get_running_loop()
        while data := await up_reader.read(65536):
            replies.put_nowait((loop.time() + self.delay, data))

    async def _send_replies(
        self, link: _Link, replies: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        assert self._changed is not None
        while True:
            due, data = await replies.get()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())  # the added latency
            if self._hold_all or link.held:
                self.reply_held.set()
                async with self._changed:
                    await self._changed.wait_for(lambda: not (self._hold_all or link.held))
            writer.write(data)
            await writer.drain()


@contextlib.contextmanager
def redis_proxy(upstream_port: int, *, delay: float = 0.0) -> Iterator[RedisProxy]:
    proxy = RedisProxy(upstream_port, delay=delay)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
