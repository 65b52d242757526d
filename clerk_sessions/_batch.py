"""Batch token refresh: many sessions, many clients, bounded concurrency, lazy input.

``concurrency`` workers pull requests one at a time from the caller's (async) iterable, so a
million ids never sit in memory as tasks; results come out as they finish; a failure is a
result, never the end of the batch. A 429 with ``Retry-After`` closes a shared gate: no worker
starts its next request until the server's wait is over; connection failures in a row open the
same gate's breaker, so a dead server ends a batch in moments instead of retries per item.
"""

from __future__ import annotations

import asyncio
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
from ._errors import APIConnectionError
from ._logging import log_callback_error
from ._runtime import Runtime
from ._types import UNSET, Unset
from ._validate import count

if TYPE_CHECKING:
    from .models import Token

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


class BatchGate:
    """What the requests of one batch share: the 429 pause and the connection breaker.

    - A 429 with ``Retry-After`` sets a "not before" time: no worker starts its next request
      until the server's wait is over.
    - ``BREAKER_FAILURES`` connection failures in a row (nothing answered: refused, reset,
      timed out) open the breaker: requests fail at once with :class:`APIConnectionError`
      instead of each waiting out its retries against a dead server. After a cool-down one
      request goes as a probe; any answer closes the breaker, another failure doubles the
      cool-down (up to ``BREAKER_MAX_COOL_DOWN``).
    """

    def __init__(self, runtime: Runtime) -> None:
        self._monotonic = runtime.monotonic
        self._sleep = runtime.sleep
        self._until = 0.0
        self._failures = 0
        self._cool_down = _constants.BREAKER_COOL_DOWN
        self._probe_at = 0.0
        self._probing = False

    # -- 429 --------------------------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        self._until = max(self._until, self._monotonic() + seconds)

    def paused(self) -> bool:
        return self._until > self._monotonic()

    async def wait(self) -> None:
        while (delay := self._until - self._monotonic()) > 0:
            await self._sleep(delay)

    # -- connection breaker -----------------------------------------------------------------

    def is_open(self) -> bool:
        return self._failures >= _constants.BREAKER_FAILURES

    def before_attempt(self, operation: str, base_url: str) -> None:
        """Raise instead of sending while the breaker is open (except for the one probe)."""
        if not self.is_open():
            return
        if not self._probing and self._monotonic() >= self._probe_at:
            self._probing = True  # this request is the probe
            return
        raise APIConnectionError(
            f"{operation}: not sent: the last {self._failures} requests of this batch could not "
            f"reach {base_url}, so the batch stopped sending (one probe request goes every "
            f"{self._cool_down:g}s until the Frontend API answers). Check the network and the "
            "Frontend API URL; the request did not reach the server."
        )

    def connection_failed(self) -> None:
        self._failures += 1
        if self._probing:  # the probe failed: wait longer before the next one
            self._probing = False
            self._cool_down = min(self._cool_down * 2, _constants.BREAKER_MAX_COOL_DOWN)
            self._probe_at = self._monotonic() + self._cool_down
        elif self._failures == _constants.BREAKER_FAILURES:
            self._probe_at = self._monotonic() + self._cool_down

    def answered(self) -> None:
        """Any HTTP answer, even an error status: the server is reachable."""
        if self._failures:
            self._failures = 0
            self._probing = False
            self._cool_down = _constants.BREAKER_COOL_DOWN


FreshMint = Callable[["str | None", str, "str | None", "str | Unset | None"], Awaitable["Token"]]
"""``mint(client_token, session_id, template, organization_id)``: a new token, kept in the
client's token cache for that device; ``client_token=None`` is the batch client's own."""


class BatchPort:
    """All a batch uses of its client: the runtime (clock, sleep), and ``minter(gate)``, the
    mint function of one batch, whose requests share that gate."""

    __slots__ = ("minter", "runtime")

    def __init__(self, runtime: Runtime, minter: Callable[[BatchGate], FreshMint]) -> None:
        self.runtime = runtime
        self.minter = minter


_DONE: Any = object()


def _start(
    port: BatchPort,
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
    count("concurrency", concurrency)
    if isinstance(requests, str | bytes):  # iterable, one character per "session id"
        raise TypeError(
            "requests must be an iterable of session ids or TokenRequests, not one "
            f"{type(requests).__name__}: pass [{requests!r}] for a single session"
        )
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
    gate = BatchGate(port.runtime)
    mint_fresh = port.minter(gate)
    done = failed = 0

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
                    token = await mint_fresh(client_token, session_id, item_template, item_org)
                    jwt, retries = token.jwt, token.retries_taken
                except Exception as exc:  # one failure never stops the batch
                    error, retries = exc, getattr(exc, "retries_taken", 0)
                done += 1
                if error is not None:
                    failed += 1
                if on_progress is not None:
                    try:
                        on_progress(done, failed, total)
                    except Exception as exc:
                        log_callback_error("on_progress", exc, "the batch goes on", None)
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
    port: BatchPort,
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
        port,
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
    port: BatchPort,
    requests: Iterable[str | TokenRequest] | AsyncIterable[str | TokenRequest],
    *,
    concurrency: int,
    template: str | None,
    organization_id: str | Unset | None,
    on_progress: ProgressCallback | None,
) -> BatchSummary:
    """See :meth:`AsyncClerkSessions.refresh_tokens_summary`: the same batch, counted as the
    results come (no queue and no generator between the workers and the counts)."""
    started = port.runtime.monotonic()
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
        port,
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
    return BatchSummary(ok, failed, port.runtime.monotonic() - started)


async def _stop(workers: list[asyncio.Future[None]]) -> None:
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
