"""Batch token refresh: many sessions, many clients, bounded concurrency, lazy input.

``concurrency`` workers pull requests one at a time from the caller's (async) iterable, so a
million ids never sit in memory as tasks; results come out as they finish; a failure is a
result, never the end of the batch. A 429 with ``Retry-After`` closes a shared gate: no worker
starts its next request until the server's wait is over.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import TYPE_CHECKING, Any

import attrs

from . import _constants
from ._errors import ConfigurationError
from ._types import UNSET, Unset

if TYPE_CHECKING:
    from ._client import AsyncClerkSessions

ProgressCallback = Callable[[int, int, "int | None"], None]
"""``callback(done, failed, total)``; ``total`` is None when the input has no length."""


@attrs.frozen
class TokenRequest:
    """One token to mint: a session of the client whose token is ``client_token``.

    ``client_token=None`` means the batch client's own token.
    """

    session_id: str
    client_token: str | None = attrs.field(default=None, repr=False)
    template: str | None = None
    organization_id: str | Unset | None = UNSET


@attrs.frozen
class TokenResult:
    """The outcome of one :class:`TokenRequest`: a token or the error, never both."""

    request: TokenRequest
    token: str | None = attrs.field(repr=False)
    error: Exception | None
    retries_taken: int

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.frozen
class BatchSummary:
    """What a batch did: counts by outcome, and how long it took."""

    ok: int
    failed: dict[str, int]
    """Failures by error class name, e.g. ``{"NotFoundError": 3}``."""
    elapsed: float
    """Seconds from the first request to the last result."""

    @property
    def total(self) -> int:
        return self.ok + sum(self.failed.values())


class PauseGate:
    """A shared "not before" time: rate limiting for the whole batch."""

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]):
        self._clock = clock
        self._sleep = sleep
        self._until = 0.0

    def pause(self, seconds: float) -> None:
        self._until = max(self._until, self._clock() + seconds)

    def paused(self) -> bool:
        return self._until > self._clock()

    async def wait(self) -> None:
        while (delay := self._until - self._clock()) > 0:
            await self._sleep(delay)


_DONE: Any = object()


async def refresh_tokens(
    client: AsyncClerkSessions,
    requests: Iterable[str | TokenRequest] | AsyncIterable[str | TokenRequest],
    *,
    concurrency: int,
    template: str | None,
    organization_id: str | Unset | None,
    on_progress: ProgressCallback | None,
) -> AsyncIterator[TokenResult]:
    """See :meth:`AsyncClerkSessions.refresh_tokens`."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
    total = len(requests) if hasattr(requests, "__len__") else None  # type: ignore[arg-type]
    # A plain iterable is read without awaiting, so workers need no lock to share it; an async
    # one is read under a lock (an async generator refuses a second concurrent anext).
    plain: Iterator[str | TokenRequest] | None = None
    source: AsyncIterator[str | TokenRequest] | None = None
    if isinstance(requests, AsyncIterable):
        source = aiter(requests)
    else:
        plain = iter(requests)
    source_lock = asyncio.Lock()
    results: asyncio.Queue[TokenResult | BaseException | object] = asyncio.Queue(concurrency)
    gate = PauseGate(client._clock, client._sleep)
    own = client._batch_view(gate)
    # Views for other clients' tokens, recently used first out last: a batch across a million
    # devices must not keep a million views. A view is cheap to rebuild (same pool).
    others: OrderedDict[str, AsyncClerkSessions] = OrderedDict()
    counts = {"done": 0, "failed": 0}

    def client_for(token: str) -> AsyncClerkSessions:
        view = others.get(token)
        if view is None:
            view = others[token] = client.with_client_token(token)._batch_view(gate)
            if len(others) > _constants.MAX_BATCH_CLIENT_VIEWS:
                others.popitem(last=False)
        else:
            others.move_to_end(token)
        return view

    async def one(item: str | TokenRequest) -> TokenResult:
        request = (
            item
            if isinstance(item, TokenRequest)
            else TokenRequest(item, template=template, organization_id=organization_id)
        )
        try:
            if request.client_token is None:  # this client's own sessions: cache them too
                token = await own._fetch_token(
                    request.session_id, request.template, request.organization_id
                )
            else:  # a batch-only view: its cache entries could never be looked up again
                token = await client_for(request.client_token)._mint(
                    request.session_id, request.template, request.organization_id
                )
        except Exception as exc:  # one failure never stops the batch
            return TokenResult(request, None, exc, getattr(exc, "retries_taken", 0))
        return TokenResult(request, token.jwt, None, token.retries_taken)

    async def worker() -> None:
        try:
            while True:
                if plain is not None:
                    item = next(plain, _DONE)
                else:
                    assert source is not None
                    async with source_lock:
                        item = await anext(source, _DONE)
                if item is _DONE:
                    break
                if gate.paused():
                    await gate.wait()
                result = await one(item)
                counts["done"] += 1
                counts["failed"] += not result.ok
                if on_progress is not None:
                    on_progress(counts["done"], counts["failed"], total)
                await results.put(result)
        except Exception as exc:  # the input itself failed: end the batch with its error
            await results.put(exc)
        await results.put(_DONE)  # not in a finally: a cancelled worker must not block here

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    finished = 0
    try:
        while finished < len(workers):
            result = await results.get()
            if result is _DONE:
                finished += 1
            elif isinstance(result, BaseException):
                raise result
            else:
                assert isinstance(result, TokenResult)
                yield result
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def summarize(
    results: AsyncIterator[TokenResult], clock: Callable[[], float]
) -> BatchSummary:
    started = clock()
    ok = 0
    failed: dict[str, int] = {}
    async for result in results:
        if result.error is None:
            ok += 1
        else:
            name = type(result.error).__name__
            failed[name] = failed.get(name, 0) + 1
    return BatchSummary(ok, failed, clock() - started)
