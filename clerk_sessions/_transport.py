"""The only module that touches aiohttp: connection pool, timeouts, exception translation."""

from __future__ import annotations

import asyncio
import contextlib
import platform
import sys

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._constants import DEFAULT_CONNECTION_LIMIT, MAX_RESPONSE_BYTES
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    ResponseValidationError,
)
from ._redact import redact_headers, redact_text
from ._retry import mark_dropped_before_response
from ._types import Timeout
from ._version import __version__
from ._wire import PreparedRequest

USER_AGENT = (
    f"clerk-sessions-python/{__version__} aiohttp/{aiohttp.__version__} "
    f"{platform.python_implementation()}/{'.'.join(map(str, sys.version_info[:3]))}"
)


class RawResponse:
    """A response, read and released (a plain slotted class: one per attempt)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:  # headers and body may hold secrets
        return f"RawResponse(status={self.status})"


class Transport:
    """Sends :class:`PreparedRequest` objects over aiohttp sessions it creates lazily.

    aiohttp binds a session to the loop that created it. The async client runs on one loop and
    gets one session (using it from another loop is an error with advice); the sync facade runs
    one loop per calling thread and switches on ``many_loops``: one session (one pool) per loop.
    An injected ``http_session`` stays the caller's to close.

    On the sessions it creates, aiohttp's hidden re-send of an idempotent request whose pooled
    connection dropped is off: every attempt on the wire is the SDK's own, bounded by
    ``max_retries`` and counted in ``retries_taken`` (see ``_retry``). An injected
    ``http_session`` is left as the caller configured it, so it keeps aiohttp's behaviour (by
    default one silent re-send of a GET/DELETE, not counted in ``retries_taken``).
    """

    def __init__(
        self,
        http_session: aiohttp.ClientSession | None = None,
        *,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        proxy: str | None = None,
    ) -> None:
        self._injected = http_session
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._proxy = proxy
        self._connection_limit = connection_limit
        self._many_loops = False
        self._closed = False
        # aiohttp timeouts of whole attempts, by Timeout (frozen, hashable): built once each.
        self._client_timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}
        # Base URL -> (scheme, authority, path prefix), parsed once.
        self._origins: dict[str, tuple[str, str, str]] = {}

    @property
    def owns_session(self) -> bool:
        """False when the caller injected the aiohttp session (and so must close it)."""
        return self._injected is None

    def allow_many_loops(self) -> None:
        """Serve several event loops, one session each (the sync facade's per-thread loops)."""
        self._many_loops = True

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is not None and not self._closed:
            return session
        if self._closed:
            raise APIConnectionError(
                "This client is closed; create a new one (or keep it open for its whole use)."
            )
        if self._sessions and not self._many_loops:
            raise ConfigurationError(
                "This AsyncClerkSessions is bound to the event loop it first ran on and cannot "
                "be used from another one. Create one client per event loop (e.g. inside your "
                "app's startup), or use ClerkSessions from synchronous code."
            )
        if self._injected is not None:
            if self._injected.closed:
                raise APIConnectionError(
                    "The aiohttp ClientSession given as http_session is closed."
                )
            session = self._injected
        else:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit),
                auto_decompress=True,
            )
            if hasattr(session, "_retry_connection"):  # private: absent from a future aiohttp?
                # Our retry loop re-sends (counted, bounded by max_retries); aiohttp must not.
                session._retry_connection = False
        self._sessions[loop] = session
        return session

    async def send(
        self, request: PreparedRequest, timeout: Timeout, remaining: float
    ) -> RawResponse:
        """One attempt, bounded by ``timeout`` and by the ``remaining`` seconds of the call.

        The response is read and released before this returns, so a retry never holds a
        connection of a failed attempt.
        """
        if remaining <= 0:
            raise APITimeoutError(
                f"{request.operation.name}: no complete response within "
                f"{_describe_timeout(timeout)} (the call's whole budget, retries included)."
            )
        session = self._get_session()
        url = self._url(request)
        answered = False  # a response (status line and headers) arrived
        try:
            async with session.request(
                request.method,
                url,
                headers=request.headers,
                data=request.body,
                timeout=self._attempt_timeout(timeout, remaining),
                allow_redirects=False,  # a redirect must never carry the client token elsewhere
                proxy=self._proxy,
            ) as response:
                answered = True
                length = response.content_length
                if (
                    length is not None
                    and length <= MAX_RESPONSE_BYTES
                    and "Content-Encoding" not in response.headers
                ):
                    body = await response.read()  # the usual reply: declared and small
                else:
                    body = await _read_limited(response, request)
                return RawResponse(response.status, response.headers, body)
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            error = _translated(exc, request, url, timeout, answered=answered)
            if isinstance(error, APITimeoutError) or not isinstance(exc, aiohttp.ClientError):
                raise error from exc
            raise error from _scrubbed(exc, request.secrets)

    def _attempt_timeout(self, timeout: Timeout, remaining: float) -> aiohttp.ClientTimeout:
        """aiohttp's timeout for one attempt. A first attempt has the call's whole budget: the
        same every time, built once per Timeout. A retry's is cut to what is left."""
        whole = remaining >= timeout.total
        client_timeout = self._client_timeouts.get(timeout) if whole else None
        if client_timeout is None:
            client_timeout = _client_timeout(timeout, remaining)
            if whole and len(self._client_timeouts) < 64:
                self._client_timeouts[timeout] = client_timeout
        return client_timeout

    def _url(self, request: PreparedRequest) -> URL:
        """The request's URL, built from parts: a third of the cost of parsing the whole
        string, which yarl caches only for repeated URLs (a batch sends each session's URL
        once)."""
        origin = self._origins.get(request.base_url)
        if origin is None:
            base = URL(request.base_url, encoded=True)
            origin = self._origins[request.base_url] = (
                base.scheme,
                base.raw_authority,
                base.raw_path.rstrip("/"),
            )
        return URL.build(
            scheme=origin[0],
            authority=origin[1],
            path=origin[2] + request.path,
            query_string=request.query,
            encoded=True,
        )

    @property
    def closed(self) -> bool:
        """Closed by :meth:`aclose`, until :meth:`reopen`."""
        return self._closed

    def reopen(self) -> None:
        """Serve requests again after :meth:`aclose`, on new sessions (the client was entered
        again). An injected ``http_session`` must still be open."""
        if self._injected is not None and self._injected.closed:
            raise ConfigurationError(
                "This client's http_session (the aiohttp ClientSession you gave it) is closed: "
                "give a new client an open one."
            )
        self._closed = False

    async def aclose(self) -> None:
        """Refuse further requests and close the session of the running loop.

        Sessions of other loops (sync facade) are closed by :meth:`aclose_loop`, run on each.
        """
        self._closed = True
        await self.aclose_loop()

    async def aclose_loop(self) -> None:
        """Close the session belonging to the running loop, if any (and if it is ours)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None and self._injected is None:
            await session.close()


def _client_timeout(timeout: Timeout, remaining: float) -> aiohttp.ClientTimeout:
    """aiohttp's timeout for one attempt: ``timeout``, cut to the ``remaining`` seconds."""
    connect = timeout.connect
    return aiohttp.ClientTimeout(
        total=min(timeout.total, remaining),
        connect=None if connect is None else min(connect, remaining),
    )


async def _read_limited(response: aiohttp.ClientResponse, request: PreparedRequest) -> bytes:
    """The body, or ResponseValidationError if it is larger than MAX_RESPONSE_BYTES.

    A declared size is checked before reading anything; an undeclared (chunked) or compressed
    body is read in chunks and abandoned as soon as it passes the limit.
    """
    length = response.content_length
    if length is not None and "Content-Encoding" not in response.headers:
        if length <= MAX_RESPONSE_BYTES:
            return await response.read()
        raise _too_large(response, request)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _too_large(response, request)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(
    response: aiohttp.ClientResponse, request: PreparedRequest
) -> ResponseValidationError:
    return ResponseValidationError(
        f"the response body is larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB; refused "
        "unread (a Frontend API response is a few KB)",
        status=response.status,
        operation=request.operation.name,
    )


def _scrubbed(exc: aiohttp.ClientError, secrets: tuple[str | None, ...]) -> aiohttp.ClientError:
    """The aiohttp exception, redacted in place (with its own causes), to chain as __cause__.

    Parser errors quote the offending header line (maybe a cookie or a token), and a
    ClientResponseError carries the request's headers (our Authorization) and URL (whose query
    may carry a previous session JWT, §7b) in ``request_info``.
    """
    seen: BaseException | None = exc
    for _ in range(8):  # the cause chain aiohttp builds is short; never loop forever
        if seen is None:
            break
        seen.args = tuple(redact_text(a, secrets) if isinstance(a, str) else a for a in seen.args)
        message = getattr(seen, "message", None)
        if isinstance(message, str):
            with contextlib.suppress(AttributeError):
                seen.message = redact_text(message, secrets)  # type: ignore[attr-defined]
        if isinstance(seen, aiohttp.ClientResponseError):
            info = seen.request_info
            headers = CIMultiDictProxy(CIMultiDict(redact_headers(info.headers.items())))
            seen.request_info = info._replace(
                url=info.url.with_query(None),
                headers=headers,
                real_url=info.real_url.with_query(None),
            )
            seen.headers = None  # the response's headers: Set-Cookie, Authorization
        seen = seen.__cause__ or seen.__context__
    return exc


def _describe_timeout(timeout: Timeout) -> str:
    if timeout.connect is None:
        return f"{timeout.total:g}s"
    return f"{timeout.total:g}s total ({timeout.connect:g}s to connect)"


def _reason(exc: aiohttp.ClientError, secrets: tuple[str | None, ...]) -> str:
    """A short cause. Socket-level messages (host, port, errno) are quoted; a response that
    could not be parsed is only named, because aiohttp's message quotes the offending header
    line, which may be an Authorization or Set-Cookie value."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return f"{name}: the server's response was malformed or cut short"
    text = redact_text(str(exc), secrets) or name
    text = text if len(text) <= 200 else text[:199] + "…"
    return f"{name}: {text}"


def _translated(
    exc: BaseException, request: PreparedRequest, url: URL, timeout: Timeout, *, answered: bool
) -> APIConnectionError:
    """Our error for what aiohttp raised during one attempt, saying what happened, whether the
    request may have reached the server, and what to do."""
    name = request.operation.name
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError(
            f"{name}: no complete response within {_describe_timeout(timeout)} (connecting "
            "includes waiting for a free connection in the pool). Raise timeout= (per call or "
            "per client) if the network is slow, or check that the Frontend API host is "
            "reachable."
        )
    assert isinstance(exc, aiohttp.ClientError)
    reason = _reason(exc, request.secrets)
    if isinstance(exc, aiohttp.ClientConnectorError):  # no connection: nothing was sent
        return APIConnectionError(
            f"{name}: could not connect to {url.origin()} ({reason}). Check the network and "
            "the Frontend API URL; the request did not reach the server."
        )
    if answered:
        return APIConnectionError(
            f"{name}: the response from {url.origin()} failed ({reason}). The request reached "
            "the server, which may have acted on it."
        )
    error = APIConnectionError(
        f"{name}: could not reach {url.origin()} ({reason}). Check the network and the "
        "Frontend API URL; the request may or may not have reached the server."
    )
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        # Closed before any response: most often a pooled connection the server had just
        # closed as idle. _retry retries that at once, on a new connection.
        mark_dropped_before_response(error)
    return error
