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


def _start(
    client: AsyncClerkSessions,
    requests: Iterable[str | TokenRequest] | AsyncIterable[str | TokenRequest],
    *,
    concurrency: int,
    template: str | None,
    organization_id: str | Unset | None,
    on_progress: ProgressCallback | None,
    deliver: Callable[[Any], Awaitable[None] | None],
    tally: Callable[[Exception | None], None] | None = None,
) -> list[asyncio.Future[None]]:
    """Start the workers. Each hands ``deliver`` its results, the input's exception if reading
    it fails, and ``_DONE`` when the input is exhausted. With ``tally``, a result is only the
    request's error (``None`` when it succeeded), handed to ``tally``: no TokenRequest or
    TokenResult is built for a batch that only counts."""
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
    gate = PauseGate(client._clock, client._sleep)
    own = client._batch_view(gate)
    # Views for other clients' tokens, recently used first out last: a batch across a million
    # devices must not keep a million views. A view is cheap to rebuild (same pool).
    others: OrderedDict[str, AsyncClerkSessions] = OrderedDict()
    done = failed = 0

    def client_for(token: str) -> AsyncClerkSessions:
        view = others.get(token)
        if view is None:
            view = others[token] = client.with_client_token(token)._batch_view(gate)
            if len(others) > _constants.MAX_BATCH_CLIENT_VIEWS:
                others.popitem(last=False)
        else:
            others.move_to_end(token)
        return view

    async def worker() -> None:
        nonlocal done, failed
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
                if isinstance(item, TokenRequest):
                    session_id, client_token = item.session_id, item.client_token
                    item_template, item_org = item.template, item.organization_id
                else:  # a session id of this client, with the batch's template and organization
                    session_id, client_token = item, None
                    item_template, item_org = template, organization_id
                jwt: str | None = None
                error: Exception | None = None
                try:
                    if client_token is None:  # this client's own sessions: cache them too
                        token = await own._fetch_token(session_id, item_template, item_org)
                    else:  # a batch-only view: its cache entries could never be looked up again
                        view = client_for(client_token)
                        token = await view._mint(session_id, item_template, item_org)
                    jwt, retries = token.jwt, token.retries_taken
                except Exception as exc:  # one failure never stops the batch
                    error, retries = exc, getattr(exc, "retries_taken", 0)
                done += 1
                if error is not None:
                    failed += 1
                if on_progress is not None:
                    on_progress(done, failed, total)
                if tally is not None:  # only counts wanted: no result objects
                    tally(error)
                    continue
                request = (
                    item
                    if isinstance(item, TokenRequest)
                    else TokenRequest(item, template=template, organization_id=organization_id)
                )
                if (delivered := deliver(TokenResult(request, jwt, error, retries))) is not None:
                    await delivered
        except Exception as exc:  # the input itself failed: end the batch with its error
            if (delivered := deliver(exc)) is not None:
                await delivered
        # Not in a finally: a cancelled worker must not block here.
        if (delivered := deliver(_DONE)) is not None:
            await delivered

    return [asyncio.ensure_future(worker()) for _ in range(concurrency)]


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
    results: asyncio.Queue[Any] = asyncio.Queue(concurrency)
    workers = _start(
        client,
        requests,
        concurrency=concurrency,
        template=template,
        organization_id=organization_id,
        on_progress=on_progress,
        deliver=results.put,
    )
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
        await _stop(workers)


async def summarize(
    client: AsyncClerkSessions,
    requests: Iterable[str | TokenRequest] | AsyncIterable[str | TokenRequest],
    *,
    concurrency: int,
    template: str | None,
    organization_id: str | Unset | None,
    on_progress: ProgressCallback | None,
) -> BatchSummary:
    """See :meth:`AsyncClerkSessions.refresh_tokens_summary`: the same batch, counted as the
    results come (no queue and no generator between the workers and the counts)."""
    started = client._clock()
    ok = 0
    failed: dict[str, int] = {}

    def count(error: Exception | None) -> None:
        nonlocal ok
        if error is None:
            ok += 1
        else:
            name = type(error).__name__
            failed[name] = failed.get(name, 0) + 1

    def finish(result: Any) -> None:
        if isinstance(result, BaseException):
            raise result  # the input failed: the worker ends with it, and so does the batch

    workers = _start(
        client,
        requests,
        concurrency=concurrency,
        template=template,
        organization_id=organization_id,
        on_progress=on_progress,
        deliver=finish,
        tally=count,
    )
    try:
        await asyncio.gather(*workers)
    finally:
        await _stop(workers)
    return BatchSummary(ok, failed, client._clock() - started)


async def _stop(workers: list[asyncio.Future[None]]) -> None:
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
