"""The only module that touches aiohttp: connection pool, timeouts, exception translation."""

from __future__ import annotations

import asyncio
import platform
import sys

import aiohttp
import attrs
from multidict import CIMultiDictProxy
from yarl import URL

from ._constants import DEFAULT_CONNECTION_LIMIT
from ._errors import APIConnectionError, APITimeoutError, ConfigurationError
from ._types import Timeout
from ._version import __version__
from ._wire import PreparedRequest

USER_AGENT = (
    f"clerk-sessions-python/{__version__} aiohttp/{aiohttp.__version__} "
    f"{platform.python_implementation()}/{'.'.join(map(str, sys.version_info[:3]))}"
)


@attrs.frozen
class RawResponse:
    status: int
    headers: CIMultiDictProxy[str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)


class Transport:
    """Sends :class:`PreparedRequest` objects over one shared aiohttp session.

    The session is created lazily inside the running loop (aiohttp binds it to that loop) unless
    the caller injects one, which then stays the caller's to close.
    """

    def __init__(
        self,
        http_session: aiohttp.ClientSession | None = None,
        *,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        proxy: str | None = None,
    ) -> None:
        self._session = http_session
        self._proxy = proxy
        self._owns_session = http_session is None
        self._connection_limit = connection_limit
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise APIConnectionError(
                "This client is closed; create a new one (or keep it open for its whole use)."
            )
        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit),
                auto_decompress=True,
            )
        elif session.closed:
            raise APIConnectionError("The aiohttp ClientSession given as http_session is closed.")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise ConfigurationError(
                "This AsyncClerkSessions is bound to the event loop it first ran on and cannot "
                "be used from another one. Create one client per event loop (e.g. inside your "
                "app's startup), or use ClerkSessions from synchronous code."
            )
        return session

    async def send(self, request: PreparedRequest, timeout: Timeout) -> RawResponse:
        session = self._get_session()
        client_timeout = aiohttp.ClientTimeout(total=timeout.total, connect=timeout.connect)
        try:
            async with session.request(
                request.method,
                URL(request.url, encoded=True),
                headers=request.headers,
                data=request.body,
                timeout=client_timeout,
                allow_redirects=False,  # a redirect must never carry the client token elsewhere
                proxy=self._proxy,
            ) as response:
                body = await response.read()
                return RawResponse(response.status, response.headers, body)
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise APITimeoutError(
                f"{request.operation.name}: no complete response within "
                f"{_describe_timeout(timeout)}. Raise timeout= (per call or per client) if the "
                "network is slow, or check that the Frontend API host is reachable."
            ) from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"{request.operation.name}: could not reach {URL(request.url).origin()} "
                f"({type(exc).__name__}: {_reason(exc)}). Check the network and the Frontend API "
                "URL; the request may or may not have reached the server."
            ) from exc

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()


def _describe_timeout(timeout: Timeout) -> str:
    if timeout.connect is None:
        return f"{timeout.total:g}s"
    return f"{timeout.total:g}s total ({timeout.connect:g}s to connect)"


def _reason(exc: BaseException) -> str:
    # aiohttp's messages name host and port, never headers; keep them short anyway.
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"
