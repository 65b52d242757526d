"""Shared fixtures: a real Frontend API stand-in on 127.0.0.1 and a client pointed at it.

``fapi`` records every request exactly as it arrived on the socket (method, raw path, headers,
body) and answers from a script of queued responses, so tests read as "server says X; the
client sends Y and returns Z".
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

import anyio.to_thread
import attrs
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from clerk_sessions import AsyncClerkSessions, ClerkSessions
from tests.redis_server import redis_server  # noqa: F401 - the fixture: a real redis-server

CLIENT_TOKEN = "client_jwt.canary-CLIENT-TOKEN-7f3a"
REPO = Path(__file__).resolve().parent.parent


def spec_path() -> Path:
    """The sessions spec, found as the generator finds it: ``$CLERK_SESSIONS_SPEC`` (the file),
    else ``fapi-sessions.yml`` in ``$CLERK_SESSIONS_SPEC_DIR``, else in ``../shared/spec/``."""
    if os.environ.get("CLERK_SESSIONS_SPEC"):
        return Path(os.environ["CLERK_SESSIONS_SPEC"])
    directory = os.environ.get("CLERK_SESSIONS_SPEC_DIR") or REPO.parent / "shared" / "spec"
    return Path(directory) / "fapi-sessions.yml"


def spec_missing(message: str) -> NoReturn:
    """Skip without the specs, but fail in CI: there a missing spec is a broken checkout (a CI
    that lost ../shared/spec must not go green by skipping every contract test)."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: the spec tests must run, not skip)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    path = spec_path()
    if not path.is_file():
        spec_missing(
            f"spec not found at {path}: contract tests need ../shared/spec beside the repo"
        )
    import yaml

    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiohttp runs on asyncio only


@attrs.define
class RecordedRequest:
    method: str
    raw_path: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.raw_path).path

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.raw_path).query, keep_blank_values=True)

    @property
    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(
            self.body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(self.body)
        )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeFrontendAPI:
    """An aiohttp.web server that records requests and replays scripted responses."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._script: deque[Handler] = deque()
        self.url = ""
        self.release = asyncio.Event()  # set at teardown to free handlers that wait forever

    def reply(
        self,
        status: int = 200,
        json: Any = None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Queue one response. ``json`` is encoded; ``body`` is sent as raw bytes."""
        payload = orjson.dumps(json) if body is None else body

        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.Response(status=status, body=payload, headers=headers)
            response.content_type = content_type
            return response

        self._script.append(handler)

    def reply_with(self, handler: Handler) -> None:
        self._script.append(handler)

    def hang(self) -> asyncio.Event:
        """Queue a response that never comes (until teardown); the returned event is set
        once the request has arrived (for timeout, cancellation and close-in-flight tests)."""
        arrived = asyncio.Event()

        async def handler(request: web.Request) -> web.StreamResponse:
            arrived.set()
            await self.release.wait()
            return web.Response(status=503)

        self._script.append(handler)
        return arrived

    def drop_connection(self) -> None:
        """Queue a reply that closes the socket without answering."""

        async def handler(request: web.Request) -> web.StreamResponse:
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)

        self._script.append(handler)

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            RecordedRequest(
                request.method, request.raw_path, CIMultiDict(request.headers), await request.read()
            )
        )
        if not self._script:
            return web.json_response(
                {"errors": [{"code": "unscripted", "message": "no reply queued"}]}, status=599
            )
        return await self._script.popleft()(request)


@pytest.fixture
async def fapi() -> AsyncIterator[FakeFrontendAPI]:
    server = FakeFrontendAPI()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


class ThreadedSync:
    """Drives a :class:`ClerkSessions` from the async test suite, so every behaviour test of
    the async client proves the sync one too.

    Each blocking call runs in a worker thread (as it would in a thread pool): the test's own
    loop keeps serving the fake Frontend API meanwhile. Results, exceptions and properties are
    exactly what ClerkSessions gives.
    """

    def __init__(self, client: ClerkSessions) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, "close" if name == "aclose" else name)
        if not callable(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await anyio.to_thread.run_sync(functools.partial(attribute, *args, **kwargs))
            return ThreadedSync(result) if isinstance(result, ClerkSessions) else result

        if name == "with_client_token":  # not a request: no thread hop, same return wrapping
            return lambda *a, **k: ThreadedSync(attribute(*a, **k))
        return call

    def __repr__(self) -> str:
        return repr(self._client)


MakeClerk = Callable[..., AbstractAsyncContextManager[Any]]


def core_of(clerk: Any) -> AsyncClerkSessions:
    """The AsyncClerkSessions doing the work, behind either kind of client under test."""
    return clerk._client._async if isinstance(clerk, ThreadedSync) else clerk  # type: ignore[no-any-return]


class FakeSleep:
    """Records the retry loop's sleeps instead of sleeping (tests assert delays, not time)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture(params=["async", "sync"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_clerk(client_kind: str) -> MakeClerk:
    """``async with make_clerk(**constructor_kwargs) as clerk:`` for the client under test."""

    @asynccontextmanager
    async def make(**kwargs: Any) -> AsyncIterator[Any]:
        if client_kind == "async":
            async with AsyncClerkSessions(**kwargs) as client:
                yield client
            return
        sync = ClerkSessions(**kwargs)
        try:
            yield ThreadedSync(sync)
        finally:
            await anyio.to_thread.run_sync(sync.close)

    return make


@pytest.fixture
async def clerk(fapi: FakeFrontendAPI, make_clerk: MakeClerk) -> AsyncIterator[Any]:
    """A client without retries: each test sees exactly the response it scripted.
    Retries have their own tests (test_retries.py)."""
    async with make_clerk(
        frontend_api_url=fapi.url, client_token=CLIENT_TOKEN, max_retries=0
    ) as client:
        yield client


@pytest.fixture
def unused_tcp_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _UnclosedAiohttpObjects(logging.Handler):
    """aiohttp reports a session or connector garbage-collected while open through asyncio's
    exception handler (a log line, not a warning): collect those lines."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Unclosed" in message:
            self.messages.append(message)


_UNCLOSED = _UnclosedAiohttpObjects()
logging.getLogger("asyncio").addHandler(_UNCLOSED)


@pytest.fixture(autouse=True)
def _fail_on_unclosed_sessions() -> Iterator[None]:
    """Any "Unclosed client session/connector" during a test fails that test."""
    del _UNCLOSED.messages[:]
    yield
    assert not _UNCLOSED.messages, _UNCLOSED.messages


@pytest.fixture(scope="session", autouse=True)
def _fail_on_unclosed_sessions_found_late() -> Iterator[None]:
    yield
    gc.collect()  # objects that outlived their test are reported here
    assert not _UNCLOSED.messages, _UNCLOSED.messages


@pytest.fixture(autouse=True)
def _no_clerk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's real Clerk configuration: every ``CLERK_*`` variable
    (the SDK's, the CLI's, the admin helpers' and the log switch) is cleared, not a list that
    falls behind when a new one is added."""
    for name in [name for name in os.environ if name.startswith("CLERK_")]:
        monkeypatch.delenv(name)


# Hypothesis profiles. ``default`` runs on every test run (tests/test_fuzz.py scales its slower
# tests down from its max_examples); ``--hypothesis-profile=long`` fuzzes for depth.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("default", max_examples=200, deadline=None)
_hypothesis_settings.register_profile("long", max_examples=5000, deadline=None)
