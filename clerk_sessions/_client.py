"""``AsyncClerkSessions``: the async core and the source the sync facade is generated from.

Each operation method is one line over ``_call``: the operation's row in ``_operations`` says
how to build the request and what comes back; ``_wire`` builds and parses; ``_transport`` sends.

A client is a *view*: a small per-view part (its device, a batch's gate) over one
:class:`ClientState` that every view of the client shares (settings, pool, token cache, devices,
the server's clock). ``with_client_token`` and the sync facade make views; nothing else is
copied between them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from . import _operations as ops
from ._clock import ServerClock
from ._config import proxy_for, resolve_base_url
from ._constants import (
    DEFAULT_API_VERSION,
    DEFAULT_BATCH_CONCURRENCY,
    DEFAULT_CONNECTION_LIMIT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_CACHE_SIZE,
    DEFAULT_TOKEN_LEEWAY,
    DEFAULT_TOKEN_REFRESH_AHEAD,
    ENV_CLIENT_TOKEN,
    ENV_SESSION_MINTER,
    MAX_DEVICES,
)
from ._devices import ClientTokenCallback, Device, DeviceRegistry, device_key, token_digest
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    ClerkAPIError,
    ClerkSessionsError,
    ConfigurationError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableEntityError,
)
from ._jwt import TokenKey, token_key
from ._logging import log_callback_error, logger
from ._operations import R
from ._retry import allowed_retries, parse_retry_after, plan_retry, retry_reason
from ._runtime import DEFAULT_RUNTIME, Runtime, bounded
from ._store import MemoryStore, Store
from ._tokens import TokenCache
from ._transport import USER_AGENT, RawResponse, Transport
from ._types import (
    UNSET,
    FirstFactorAttemptStrategy,
    FirstFactorPrepareStrategy,
    ReverificationLevel,
    SecondFactorAttemptStrategy,
    SecondFactorPrepareStrategy,
    Timeout,
    TouchIntent,
    Unset,
)
from ._validate import api_version as validate_api_version
from ._validate import callback, count, is_number, seconds
from ._wire import (
    PreparedRequest,
    api_error,
    build_request,
    client_token_problem,
    parse_success,
)
from .models import Client, Envelope, Session, SessionReverification, SignIn, Token

if TYPE_CHECKING:  # batches and step-up are loaded by the methods that run them
    from ._batch import (
        BatchGate,
        BatchPort,
        BatchSummary,
        FreshMint,
        ProgressCallback,
        TokenRequest,
        TokenResult,
    )
    from ._retry_event import RetryEvent
    from ._reverify import CodesCallback

RetryCallback = Callable[["RetryEvent"], None]
"""Called before each retry with what failed and how long the SDK will wait."""

_NO_ARGS: Mapping[str, object] = {}

T = TypeVar("T")

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def _coerce_timeout(value: float | Timeout, name: str = "timeout") -> Timeout:
    if isinstance(value, Timeout):
        return value
    if not is_number(value):
        raise ConfigurationError(
            f"{name} must be a number of seconds or a clerk_sessions.Timeout, got {value!r} "
            "(there is no 'no timeout'; pass a large number if you really mean it)"
        )
    connect = DEFAULT_TIMEOUT.connect
    # Timeout itself refuses NaN, infinite, zero and negative values.
    return Timeout(total=value, connect=min(connect, value) if connect is not None else None)


def _check_max_retries(value: object) -> int:
    return count("max_retries", value, minimum=0)


def _check_client_token(token: object) -> str | None:
    if token is None:
        return None
    problem = client_token_problem(token)
    if problem is not None:
        raise ConfigurationError(f"client_token: {problem} (or pass None for no token).")
    assert isinstance(token, str)
    return token


def _session_minter_setting(value: bool | None) -> bool:
    """The argument if given, else env ``CLERK_SESSION_MINTER`` (1/true/yes/on), else False."""
    if value is not None:
        if not isinstance(value, bool):
            raise ConfigurationError(f"session_minter must be a bool, got {value!r}")
        return value
    raw = os.environ.get(ENV_SESSION_MINTER, "").strip().lower()
    if raw in _TRUE_WORDS:
        return True
    if raw in _FALSE_WORDS:
        return False
    raise ConfigurationError(
        f"{ENV_SESSION_MINTER}={raw!r} is not a boolean: use 1 or 0 (true/false, yes/no, on/off)."
    )


class ClientState:
    """Everything the views of one client share. Made once, by the client's constructor.

    Read-only after construction except where said: ``tokens`` and ``devices`` are thread-safe
    objects of their own, and ``background`` holds the async client's background tasks.
    """

    __slots__ = (
        "api_version",
        "background",
        "base_url",
        "clock",
        "devices",
        "headers",
        "max_retries",
        "on_retry",
        "owns_store",
        "rotation_store",
        "runtime",
        "session_minter",
        "store",
        "timeout",
        "tokens",
        "transport",
    )

    def __init__(
        self,
        *,
        base_url: str,
        api_version: str,
        timeout: Timeout,
        max_retries: int,
        on_retry: RetryCallback | None,
        session_minter: bool,
        transport: Transport,
        store: Store | None,
        runtime: Runtime,
        token_leeway: float,
        token_refresh_ahead: float,
        token_cache_size: int,
    ) -> None:
        self.base_url = base_url
        """Also the Frontend API's name in token keys: one clock and one key space per host."""
        self.api_version = api_version
        self.headers: Mapping[str, str] = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Clerk-API-Version": api_version,
        }
        self.timeout = timeout
        self.max_retries = max_retries
        self.on_retry = on_retry
        self.session_minter = session_minter
        self.transport = transport
        self.runtime = runtime
        self.clock = ServerClock(runtime)
        self.owns_store = store is None
        self.store: Store = store if store is not None else MemoryStore(token_cache_size)
        self.tokens = TokenCache(
            base_url,
            self.store,
            self.clock,
            runtime.monotonic,
            self.spawn_task,
            leeway=token_leeway,
            refresh_ahead=token_refresh_ahead,
            max_entries=token_cache_size,
            # A mint takes at most one call's budget; past that its process is presumed dead.
            mint_lease=timeout.total,
        )
        self.devices = DeviceRegistry(MAX_DEVICES)
        if self.store.shared:
            self.tokens.resolve = self._resolve_key
        # Where a rotation is decided across processes (None: this process alone).
        self.rotation_store = (base_url, self.store) if self.store.shared else None
        self.background: set[asyncio.Future[Any]] = set()

    # -- proven devices (``_devices``) ----------------------------------------------------------

    async def prove(self, device: Device) -> Device:
        """Clerk vouched for ``device``'s token string: join the device it claims, here and
        (with a shared store) for the other processes. Returns the proven device."""
        joined = self.devices.join(device)
        if joined is device:
            return joined
        announce = None
        if self.store.shared and device.token is not None:
            store, host, digests = (
                self.store,
                self.base_url,
                [token_digest(joined.key, device.token)],
            )

            def announce() -> Awaitable[None]:
                return store.add_proven(host, joined.key, digests)

        if self.tokens.joined(device.key, joined.key, announce) and announce is not None:
            await announce()
        return joined

    async def settle(self, device: Device) -> Device:
        """``device``, or the device it joins because another process sharing the store saw
        Clerk vouch for its string (no request needed)."""
        if device.claim is None or device.joined is not None or device.token is None:
            return device.resolve()
        if not self.store.shared:
            return device
        named = device_key(device.claim)
        if await self.store.is_proven(self.base_url, named, token_digest(named, device.token)):
            joined = self.devices.join(device)
            self.tokens.joined(device.key, joined.key)
            return joined
        return device

    async def _resolve_key(self, key: TokenKey) -> TokenKey:
        """The token cache's ``resolve``: ``key`` of the device its string joined, if it has."""
        device = self.devices.unproven(key[1])
        if device is None:
            return key
        settled = await self.settle(device)
        return key if settled is device else (key[0], settled.key, *key[2:])

    def spawn_task(self, coro: Coroutine[Any, Any, None]) -> None:
        """Background work of the async client: a task on the running loop."""
        task = asyncio.ensure_future(coro)
        self.background.add(task)  # a strong reference until it is done
        task.add_done_callback(self.background.discard)

    def run_background_on(self, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        """Where background token refreshes run (the sync facade: its portal's loop)."""
        self.tokens.spawn = spawn

    async def aclose(self) -> None:
        background = [task for task in self.background if not task.done()]
        background += self.tokens.stop()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self.transport.aclose()
        if self.owns_store:
            await self.store.aclose()


class AsyncClerkSessions:
    """Async client for the Sessions operations of Clerk's Frontend API, acting for one client.

    Use it as ``async with AsyncClerkSessions(...) as clerk:`` or call :meth:`aclose`. One
    instance serves many concurrent calls; :meth:`with_client_token` gives a client for another
    Clerk client (device) on the same connection pool.
    """

    _shared: ClientState
    _device: Device
    _gate: BatchGate | None
    _owner: bool
    _closed: bool

    def __init__(
        self,
        *,
        publishable_key: str | None = None,
        frontend_api_url: str | None = None,
        client_token: str | None = None,
        on_client_token: ClientTokenCallback | None = None,
        api_version: str = DEFAULT_API_VERSION,
        timeout: float | Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_session: aiohttp.ClientSession | None = None,
        on_retry: RetryCallback | None = None,
        max_connections: int = DEFAULT_CONNECTION_LIMIT,
        token_leeway: float = DEFAULT_TOKEN_LEEWAY,
        token_refresh_ahead: float = DEFAULT_TOKEN_REFRESH_AHEAD,
        token_cache_size: int = DEFAULT_TOKEN_CACHE_SIZE,
        session_minter: bool | None = None,
        store: Store | None = None,
        _runtime: Runtime = DEFAULT_RUNTIME,
    ) -> None:
        """``session_minter``: the instance uses Clerk's Session Minter (send the previous
        token when minting); ``None`` reads env ``CLERK_SESSION_MINTER``, else False.
        ``store``: where session tokens are kept (default: in this process). ``_runtime`` is
        for tests: the clocks, sleep and randomness (see ``_runtime``)."""
        leeway = seconds("token_leeway", token_leeway)
        refresh_ahead = seconds("token_refresh_ahead", token_refresh_ahead)
        if leeway > refresh_ahead:
            raise ConfigurationError(
                "token_leeway must not exceed token_refresh_ahead (a token is refreshed before "
                f"it becomes unusable), got {token_leeway!r} and {token_refresh_ahead!r}"
            )
        count("token_cache_size", token_cache_size)
        count("max_connections", max_connections)
        validate_api_version(api_version)
        callback("on_client_token", on_client_token)
        callback("on_retry", on_retry)
        if store is not None and not isinstance(store, Store):
            raise ConfigurationError(
                f"store must be a clerk_sessions Store, got {type(store).__name__}"
            )
        if client_token is None:
            client_token = os.environ.get(ENV_CLIENT_TOKEN)
        token = _check_client_token(client_token)
        base_url = resolve_base_url(publishable_key, frontend_api_url)
        shared = ClientState(
            base_url=base_url,
            api_version=api_version,
            timeout=_coerce_timeout(timeout),
            max_retries=_check_max_retries(max_retries),
            on_retry=on_retry,
            session_minter=_session_minter_setting(session_minter),
            # HTTP(S)_PROXY / NO_PROXY are honoured, as by every HTTP tool.
            transport=Transport(
                http_session, connection_limit=max_connections, proxy=proxy_for(base_url)
            ),
            store=store,
            runtime=_runtime,
            token_leeway=leeway,
            token_refresh_ahead=refresh_ahead,
            token_cache_size=token_cache_size,
        )
        device = shared.devices.device_for(token)
        if on_client_token is not None:
            device.callback = on_client_token
        self._init_view(shared, device, None, owner=True)

    def _init_view(
        self, shared: ClientState, device: Device, gate: BatchGate | None, *, owner: bool
    ) -> None:
        self._shared = shared
        self._device = device
        self._gate = gate  # a batch's 429 pause and connection breaker
        self._owner = owner  # closing the owner closes what the views share
        self._closed = False

    @classmethod
    def _view(
        cls, shared: ClientState, device: Device, gate: BatchGate | None = None
    ) -> AsyncClerkSessions:
        view = cls.__new__(cls)
        view._init_view(shared, device, gate, owner=False)
        return view

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncClerkSessions:
        """Enter the client; a client that was closed opens again with a new connection pool
        (a web app's lifespan may run twice in one process, e.g. in its tests)."""
        if self._closed or self._shared.transport.closed:
            if not self._owner:
                raise ConfigurationError(
                    "This client is a view (with_client_token) of a client that was closed; "
                    "enter the client it came from again, then make the view anew."
                )
            self._shared.transport.reopen()
            self._closed = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless it is shared with the client this came from)."""
        self._closed = True
        if self._owner:
            await self._shared.aclose()

    def _close_view(self) -> None:
        """:meth:`aclose` of a view (a client that owns nothing it uses), which needs no
        loop: it stops this client only. The sync facade's ``close`` of a derived client."""
        self._closed = True

    def with_client_token(
        self, client_token: str | None, *, on_client_token: ClientTokenCallback | None = None
    ) -> AsyncClerkSessions:
        """A client acting for another Clerk client (device), sharing this one's pool and config.

        Cheap: make one per request if you like. Views of the same device (same client-token
        JWT ``id``) share its cached session tokens and its current client token, so a rotation
        or a sign-out seen by one is seen by all. ``on_client_token`` is called for the
        device's rotations (the latest one given for a device wins); the parent's is not
        inherited, as it would persist another device's token. Closing the returned client
        does not close the shared pool; closing the parent does.
        """
        device = self._shared.devices.device_for(_check_client_token(client_token))
        callback("on_client_token", on_client_token)
        if on_client_token is not None:
            device.callback = on_client_token
        return self._view(self._shared, device)

    @property
    def client_token(self) -> str | None:
        """The current client token (after any rotation); persist it to resume later."""
        return self._current_device().token

    def _current_device(self) -> Device:
        """This view's device: its token's own until Clerk vouched for it, then the device it
        joined (every view of that string moves with it)."""
        device = self._device
        if device.joined is not None:
            device = self._device = device.resolve()
        return device

    async def _settled_device(self) -> Device:
        """:meth:`_current_device`, after asking a shared store whether another process saw
        Clerk vouch for this view's token string (then it joins without a request)."""
        device = self._device = await self._shared.settle(self._current_device())
        return device

    async def _prove(self, device: Device) -> Device:
        """Clerk answered a request carrying ``device``'s token string (not with 401)."""
        device = self._device = await self._shared.prove(device)
        return device

    @property
    def frontend_api_url(self) -> str:
        return self._shared.base_url

    @property
    def api_version(self) -> str:
        return self._shared.api_version

    @property
    def clock_skew(self) -> float | None:
        """Estimated seconds the Frontend API's clock is ahead of this machine's (negative:
        behind), from its answers; ``None`` before the first answer. Token lifetimes are
        judged on the server's clock, so a skewed local clock does not matter."""
        return self._shared.clock.skew

    def __repr__(self) -> str:
        token = "set" if self._current_device().token else "none"
        url = self._shared.base_url
        return f"{type(self).__name__}(frontend_api_url={url!r}, client_token=<{token}>)"

    # -- the one request path ----------------------------------------------------------------

    async def _call(
        self,
        operation: ops.Operation[R],
        path_args: Mapping[str, object],
        body_args: Mapping[str, object] = _NO_ARGS,
        header_args: Mapping[str, object] | None = None,
        *,
        timeout: float | Timeout | Unset,
        max_retries: int | Unset,
        extra_headers: Mapping[str, str] | None,
    ) -> R:
        """Send the operation, retrying per ``_retry``, within one deadline for the whole call."""
        shared = self._shared
        call_timeout = self._call_timeout(operation, timeout, max_retries)
        device, gate, runtime = self._device, self._gate, shared.runtime
        if device.claim is not None:
            device = await self._settled_device()
        monotonic = runtime.monotonic
        minting = operation.mints_session_token
        if minting and shared.session_minter:
            body_args = self._with_previous_token(path_args, body_args)
        query: Mapping[str, str] | None = None  # §7b: ?expired_token= after its 422
        generation = shared.tokens.generation
        deadline: float | None = None  # the budget starts when the first attempt is sent
        retries = 0
        while True:
            # Built per attempt: a retry carries the token a failed attempt may have rotated.
            if device.joined is not None or (shared.store.shared and device.claim is None):
                left = call_timeout.total if deadline is None else deadline - monotonic()
                device = await self._attempt_device(device, left)
            sent_token = device.token
            request = build_request(
                operation,
                shared.base_url,
                path_args,
                body_args,
                client_token=sent_token,
                headers=shared.headers,
                header_args=header_args,
                extra_headers=extra_headers,
                query_args=query,
            )
            if gate is not None:
                gate.before_attempt(operation.name, shared.base_url)
            started = monotonic()
            if deadline is None:
                deadline = started + call_timeout.total
            status: int | None = None
            retry_after: float | None = None
            try:
                raw = await shared.transport.send(request, call_timeout, deadline - started)
            except APIConnectionError as exc:
                failure: ClerkSessionsError = exc
                _log_failure(operation.method, operation.name, exc, monotonic() - started)
                if gate is not None:
                    gate.connection_failed()
            else:
                device = await self._answered(device, sent_token, raw)
                status = raw.status
                if 200 <= status < 300:
                    return await self._succeeded(
                        operation, raw, request, device, path_args, generation, retries, started
                    )
                error = self._refused(operation, raw, request, retries, started)
                if minting and query is None and _asks_for_expired_token(error):
                    # A protocol step, not a retry: sent at once, once per call (the query is
                    # set now), and not counted in max_retries, retries_taken or on_retry.
                    query = {"expired_token": await self._expired_token(path_args, error)}
                    continue
                failure, retry_after = error, self._retry_after(error, raw.headers)
            delay, retries_allowed, reason = self._retry_delay(
                operation, status, failure, retries, max_retries, retry_after, deadline
            )
            retries += 1
            await self._announce_retry(operation, retries, retries_allowed, reason, delay)

    # -- the steps of one attempt (``_call``) ---------------------------------------------------

    def _call_timeout(
        self, operation: ops.Operation[Any], timeout: float | Timeout | Unset, max_retries: object
    ) -> Timeout:
        """The call's timeout, once its options are checked and the client is open."""
        if self._closed or self._shared.transport.closed:  # it will not reopen by itself
            raise APIConnectionError(
                f"{operation.name}: this client is closed (enter it again with `async with`, "
                "or create a new one)."
            )
        if max_retries is not UNSET:
            _check_max_retries(max_retries)
        return self._shared.timeout if timeout is UNSET else _coerce_timeout(timeout)

    async def _attempt_device(self, device: Device, left: float) -> Device:
        """The device an attempt sends for: the one its string joined if another view's answer
        proved it meanwhile; with a shared store, the device's token as the store holds it
        (another process may have rotated it), looked up within what is left of the call."""
        shared = self._shared
        if device.joined is not None:
            device = self._current_device()
        if shared.store.shared and device.claim is None:
            lookup = shared.store.client_token(shared.base_url, device.key, device.token)
            device.take(await _within(lookup, left, device.token))
        return device

    async def _answered(self, device: Device, sent_token: str | None, raw: RawResponse) -> Device:
        """What any answer teaches, before its status is looked at: the server's clock, a
        proof of the string it carried, a rotation of the device's token."""
        if self._gate is not None:
            self._gate.answered()
        headers = raw.headers
        self._shared.clock.observe_date(headers.get("Date"))
        if device.claim is not None and device.joined is None:
            if raw.status in _PROVING_STATUSES and sent_token == device.token:
                device = await self._prove(device)  # Clerk accepted the string
        elif device.joined is not None:
            device = self._current_device()
        # Any response may rotate the client token, error responses included; never one of a
        # string Clerk did not vouch for (it has no device to rotate), nor a redirect (a proxy's
        # or another host's answer, not the Frontend API's).
        if "Authorization" in headers and device.claim is None and not 300 <= raw.status < 400:
            await device.apply_rotation(headers, sent_token, self._shared.rotation_store)
        return device

    async def _succeeded(
        self,
        operation: ops.Operation[R],
        raw: RawResponse,
        request: PreparedRequest,
        device: Device,
        path_args: Mapping[str, object],
        generation: int,
        retries: int,
        started: float,
    ) -> R:
        """A 2xx: the result, and what it changes in the token cache."""
        status = raw.status
        if logger.isEnabledFor(logging.DEBUG):  # no clock read when not logging
            elapsed = self._shared.runtime.monotonic() - started
            _log_response(operation, status, elapsed, retries, None)
        try:
            result = parse_success(operation, status, raw.body, secrets=request.secrets)
        except ResponseValidationError as exc:
            exc.retries_taken = retries
            raise
        result.retries_taken = retries
        if operation.ends_sessions or isinstance(result, Envelope):
            await self._update_token_cache(operation, path_args, result, generation)
        elif operation.mints_session_token:  # the session's last token seen, for the next mint
            session_id: Any = path_args["session_id"]
            self._shared.tokens.note_seen(device.key, session_id, result.jwt)  # type: ignore[attr-defined]
        return result

    def _refused(
        self,
        operation: ops.Operation[Any],
        raw: RawResponse,
        request: PreparedRequest,
        retries: int,
        started: float,
    ) -> ClerkAPIError:
        """A non-2xx: its typed error (logged)."""
        runtime = self._shared.runtime
        error = api_error(
            operation,
            raw.status,
            raw.headers,
            raw.body,
            secrets=request.secrets,
            now=runtime.wall(),
        )
        _log_response(operation, raw.status, runtime.monotonic() - started, retries, error)
        return error

    def _retry_after(self, error: ClerkAPIError, headers: Mapping[str, str]) -> float | None:
        """Seconds the server asked to wait; a 429 pauses the whole batch as long."""
        if isinstance(error, RateLimitError):  # api_error already read Retry-After
            if self._gate is not None:
                self._gate.pause(error.retry_after or 0.0)
            return error.retry_after
        return parse_retry_after(headers, self._shared.runtime.wall())

    def _retry_delay(
        self,
        operation: ops.Operation[Any],
        status: int | None,
        failure: ClerkSessionsError,
        retries: int,
        max_retries: int | Unset,
        retry_after: float | None,
        deadline: float,
    ) -> tuple[float, int, str]:
        """The wait before the next attempt, the retries allowed and why, or ``failure``
        raised (not retryable, retries used up, no time left, or the batch's breaker is open)."""
        shared = self._shared
        reason = retry_reason(status, failure, retry_safe=operation.retry_safe)
        retries_allowed = allowed_retries(operation.retry_safe, shared.max_retries, max_retries)
        delay = plan_retry(
            reason=reason,
            retries_taken=retries,
            max_retries=retries_allowed,
            retry_after=retry_after,
            remaining=deadline - shared.runtime.monotonic(),
            random_fraction=shared.runtime.random(),
        )
        gate = self._gate
        if delay is None or reason is None or (gate is not None and gate.is_open()):
            failure.retries_taken = retries
            raise failure
        return delay, retries_allowed, reason

    async def _announce_retry(
        self,
        operation: ops.Operation[Any],
        retry: int,
        retries_allowed: int,
        reason: str,
        delay: float,
    ) -> None:
        """Log the retry, tell ``on_retry`` (its failure is logged, the retry goes on), wait."""
        from ._retry_event import RetryEvent  # loaded by the first retry

        shared = self._shared
        event = RetryEvent(operation.name, retry, retries_allowed, reason, delay)
        logger.info("%s", event)
        if shared.on_retry is not None:
            try:
                shared.on_retry(event)
            except Exception as exc:
                log_callback_error("on_retry", exc, "the retry goes on", None)
        await shared.runtime.sleep(delay)

    # -- Clerk's 2026 minting protocol (fapi-protocol.md §7b) -----------------------------------

    def _with_previous_token(
        self, path_args: Mapping[str, object], body_args: Mapping[str, object]
    ) -> Mapping[str, object]:
        """Session Minter: the body carries the session's previous JWT whenever one is known."""
        session_id = path_args["session_id"]
        assert isinstance(session_id, str)
        shared = self._shared
        previous = shared.tokens.last_token(self._current_device().key, session_id)
        if previous is None or "token" in body_args:
            return body_args
        return {**body_args, "token": previous}

    async def _expired_token(self, path_args: Mapping[str, object], error: Exception) -> str:
        """The last token seen for the session (even expired), asking getSession for its
        ``last_active_token`` when none is known; else ``error`` (the 422) is raised."""
        session_id = path_args["session_id"]
        assert isinstance(session_id, str)
        shared = self._shared
        tokens, device = shared.tokens, self._current_device().key
        previous = tokens.last_token(device, session_id)
        if previous is None:
            try:
                await self.get_session(session_id)  # notes its last_active_token
            except ClerkSessionsError as exc:
                raise error from exc
            previous = tokens.last_token(device, session_id)
        if previous is None:
            raise error
        return previous

    # -- session tokens: cache and batches ------------------------------------------------------

    async def get_token(
        self,
        session_id: str,
        *,
        template: str | None = None,
        organization_id: str | Unset | None = UNSET,
        skip_cache: bool = False,
        timeout: float | Timeout | Unset = UNSET,
    ) -> str:
        """A session JWT, from the cache while it has more than ``token_leeway`` seconds left
        on the Frontend API's clock.

        Once fewer than ``token_refresh_ahead`` seconds remain, one background refresh starts
        and callers keep getting the cached token until the new one arrives. Concurrent callers
        for the same (device, session, template, organization) share one request, whichever
        view of the device they use. ``organization_id``: UNSET for the session's active
        organization, ``None``/``""`` for the personal account. ``skip_cache`` always mints a
        new token (and caches it). ``timeout`` (seconds or a :class:`Timeout`; default: the
        client's) bounds the whole call, waiting for a mint another caller or process started
        included (``APITimeoutError``); cancelling this call cancels only this caller's wait.
        """
        shared = self._shared
        device = self._device
        if device.claim is not None:
            device = await self._settled_device()
        seconds = (shared.timeout if timeout is UNSET else _coerce_timeout(timeout)).total
        key = token_key(shared.base_url, device.key, session_id, template, organization_id)
        if skip_cache:
            lookup = shared.tokens.fetch(key, self._mint, seconds, force=True)
            if shared.store.shared:  # a slow store must not hold the call past its timeout
                return (await _within(lookup, seconds, _TIMED_OUT)).jwt
            return (await lookup).jwt
        if shared.store.shared:
            return await _within(shared.tokens.get(key, self._mint, seconds), seconds, _TIMED_OUT)
        return await shared.tokens.get(key, self._mint, seconds)

    async def refresh_tokens(
        self,
        requests: Iterable[str | TokenRequest] | AsyncIterable[str | TokenRequest],
        *,
        concurrency: int = DEFAULT_BATCH_CONCURRENCY,
        template: str | None = None,
        organization_id: str | Unset | None = UNSET,
        on_progress: ProgressCallback | None = None,
    ) -> AsyncIterator[TokenResult]:
        """Mint fresh session tokens for many sessions (of many clients), as results finish.

        ``requests`` are session ids of this client (``template``/``organization_id`` apply to
        them) or :class:`TokenRequest` objects naming their own client token, template and
        organization. The input is read lazily; at most ``concurrency`` requests are in
        flight; each result holds the token or the error (one failure never stops the batch);
        a 429 pauses every worker for its ``Retry-After``, and connection failures in a row
        stop the batch from sending (each remaining item fails at once) until a probe gets an
        answer. Every token is also cached for :meth:`get_token` of its device. With a store
        shared by several processes (``store=RedisStore(...)``), a token another process minted
        for the same request since this batch began is taken instead of minting it again.
        ``on_progress(done, failed, total)`` is called after each result.
        """
        from . import _batch

        async for result in _batch.refresh_tokens(
            self._batch_port(),
            requests,
            concurrency=concurrency,
            template=template,
            organization_id=organization_id,
            on_progress=on_progress,
        ):
            yield result

    async def refresh_tokens_summary(
        self,
        requests: Iterable[str | TokenRequest] | AsyncIterable[str | TokenRequest],
        *,
        concurrency: int = DEFAULT_BATCH_CONCURRENCY,
        template: str | None = None,
        organization_id: str | Unset | None = UNSET,
        on_progress: ProgressCallback | None = None,
    ) -> BatchSummary:
        """Run :meth:`refresh_tokens` to the end and count the outcomes (ok, failed by class)."""
        from . import _batch

        return await _batch.summarize(
            self._batch_port(),
            requests,
            concurrency=concurrency,
            template=template,
            organization_id=organization_id,
            on_progress=on_progress,
        )

    def _batch_port(self) -> BatchPort:
        """What a batch may use of this client: its runtime, and per batch (per gate) one
        function that mints a fresh token for a session of any device and caches it."""
        from . import _batch

        shared = self._shared

        def minter(gate: BatchGate) -> FreshMint:
            own = self._view(shared, self._device, gate)
            seconds = shared.timeout.total
            # With a store shared by several processes, a token one of them minted since this
            # batch began (iat is whole seconds: one second of slack) is as fresh as a new one.
            since = shared.clock.now() - 1.0 if shared.store.shared else None

            async def mint_fresh(
                client_token: object,
                session_id: str,
                template: str | None,
                organization_id: str | Unset | None,
            ) -> Token:
                view = own
                if client_token is not None:  # a malformed one fails its own row only
                    if client_token == "":
                        raise ConfigurationError(
                            "TokenRequest.client_token is empty: pass None for the batch "
                            "client's own device, or the device's client token."
                        )
                    device = shared.devices.device_for(_check_client_token(client_token))
                    view = self._view(shared, device, gate)
                device = view._device
                if device.claim is not None:
                    device = await view._settled_device()
                key = token_key(shared.base_url, device.key, session_id, template, organization_id)
                return await shared.tokens.fetch(key, view._mint, seconds, since=since, inline=True)

            return mint_fresh

        return _batch.BatchPort(shared.runtime, minter)

    async def _mint(self, key: TokenKey, force: bool) -> Token:
        """The token cache's mint function, one token request for ``key``: with a template, or
        for an organization (never both); ``force`` is a skip-cache mint. It serves every
        caller waiting for it, so it has the client's timeout, not one caller's."""
        _host, _device, session_id, template, organization_id = key
        if template is None:
            body: Mapping[str, object] = {"organization_id": organization_id}
            if force and self._shared.session_minter:
                body = {"organization_id": organization_id, "force_origin": True}
            return await self._call(
                ops.CREATE_SESSION_TOKEN,
                {"session_id": session_id},
                body,
                timeout=UNSET,
                max_retries=UNSET,
                extra_headers=None,
            )
        if organization_id is not UNSET:
            raise ConfigurationError(
                "organization_id cannot be combined with template: Clerk's template "
                "endpoint takes no organization (use a template that reads the org)."
            )
        return await self._call(
            ops.CREATE_SESSION_TOKEN_WITH_TEMPLATE,
            {"session_id": session_id, "template_name": template},
            timeout=UNSET,
            max_retries=UNSET,
            extra_headers=None,
        )

    async def _update_token_cache(
        self,
        operation: ops.Operation[Any],
        path_args: Mapping[str, object],
        result: object,
        generation: int,
    ) -> None:
        """Sign-outs drop tokens; session payloads seed the cache with their last_active_token
        (the token of every payload that names a session is also its "last seen", §7b)."""
        shared = self._shared
        tokens, device = shared.tokens, self._current_device().key
        if operation.ends_sessions:
            session_id = path_args.get("session_id")
            await tokens.drop(device, session_id if isinstance(session_id, str) else None)
            return
        if not isinstance(result, Envelope):
            return
        client = result.client
        sessions: list[Any] = list(client.sessions) if client is not None else []
        if isinstance(result.response, Session):
            sessions.append(result.response)
        for session in sessions:
            token = session.last_active_token
            if token is None:
                continue
            if not tokens.seen(device, session.id, token.jwt):
                active = session.status == "active"
                await tokens.seed(
                    device, session.id, token.jwt, active=active, generation=generation
                )

    # -- the twelve operations (one line each; see _operations for the table) ------------------

    async def remove_client_sessions_and_retain_cookie(
        self,
        *,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[Client | None]:
        """Sign out every session of this client but keep the client (and its token).

        ``DELETE /v1/client/sessions``. ``response`` is the client afterwards (or ``None``).
        """
        return await self._call(
            ops.REMOVE_CLIENT_SESSIONS_AND_RETAIN_COOKIE,
            _NO_ARGS,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def get_session(
        self,
        session_id: str,
        *,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[Session]:
        """Fetch one session of this client. ``GET /v1/client/sessions/{session_id}``."""
        return await self._call(
            ops.GET_SESSION,
            {"session_id": session_id},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def touch_session(
        self,
        session_id: str,
        *,
        active_organization_id: str | Unset | None = UNSET,
        intent: TouchIntent | Unset | None = UNSET,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[Session]:
        """Make the session the client's active one and keep it alive; optionally switch org.

        ``active_organization_id`` takes an organization ID or slug; ``None`` selects the
        personal account. With ``intent="focus"`` the server skips the client (``client`` is
        ``None``). ``POST /v1/client/sessions/{session_id}/touch``.
        """
        return await self._call(
            ops.TOUCH_SESSION,
            {"session_id": session_id},
            {"active_organization_id": active_organization_id, "intent": intent},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def end_session(
        self,
        session_id: str,
        *,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[Session]:
        """Sign the session out; it stays in the client with status ``ended``.

        ``POST /v1/client/sessions/{session_id}/end``.
        """
        return await self._call(
            ops.END_SESSION,
            {"session_id": session_id},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def remove_session(
        self,
        session_id: str,
        *,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[Session]:
        """Sign the session out and remove it from the client (status ``removed``).

        ``POST /v1/client/sessions/{session_id}/remove``.
        """
        return await self._call(
            ops.REMOVE_SESSION,
            {"session_id": session_id},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def create_session_token(
        self,
        session_id: str,
        *,
        organization_id: str | Unset | None = UNSET,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Token:
        """Mint a short-lived session JWT.

        ``organization_id``: leave UNSET for the session's active organization, ``None`` for
        the personal account, or an organization ID. ``POST …/{session_id}/tokens``.
        """
        return await self._call(
            ops.CREATE_SESSION_TOKEN,
            {"session_id": session_id},
            {"organization_id": organization_id},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def create_session_token_with_template(
        self,
        session_id: str,
        template_name: str,
        *,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Token:
        """Mint a session JWT shaped by the named JWT template.

        ``POST /v1/client/sessions/{session_id}/tokens/{template_name}``.
        """
        return await self._call(
            ops.CREATE_SESSION_TOKEN_WITH_TEMPLATE,
            {"session_id": session_id, "template_name": template_name},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def start_session_reverification(
        self,
        session_id: str,
        *,
        level: ReverificationLevel,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[SessionReverification]:
        """Start step-up verification at ``level`` (falls back to first factor without MFA).

        ``POST /v1/client/sessions/{session_id}/verify``.
        """
        return await self._call(
            ops.START_SESSION_REVERIFICATION,
            {"session_id": session_id},
            {"level": level},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def prepare_session_reverification_first_factor(
        self,
        session_id: str,
        *,
        strategy: FirstFactorPrepareStrategy,
        email_address_id: str | Unset | None = UNSET,
        phone_number_id: str | Unset | None = UNSET,
        proof_token: str | Unset | None = UNSET,
        origin: str | Unset = UNSET,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[SessionReverification]:
        """Send the first-factor challenge (an email or SMS code for the ``*_code`` strategies).

        Not retried by default: each call sends a message. ``origin`` exists in the spec for
        browsers; a native client cannot send it (ConfigurationError).
        ``POST …/{session_id}/verify/prepare_first_factor``.
        """
        return await self._call(
            ops.PREPARE_SESSION_REVERIFICATION_FIRST_FACTOR,
            {"session_id": session_id},
            {
                "strategy": strategy,
                "email_address_id": email_address_id,
                "phone_number_id": phone_number_id,
                "proof_token": proof_token,
            },
            {"origin": origin},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def attempt_session_reverification_first_factor(
        self,
        session_id: str,
        *,
        strategy: FirstFactorAttemptStrategy,
        code: str | Unset | None = UNSET,
        password: str | Unset | None = UNSET,
        public_key_credential: str | Unset | None = UNSET,
        origin: str | Unset = UNSET,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[SessionReverification]:
        """Answer the first-factor challenge with a ``code``, ``password`` or passkey credential.

        Not retried by default: each call uses up an attempt.
        ``POST …/{session_id}/verify/attempt_first_factor``.
        """
        return await self._call(
            ops.ATTEMPT_SESSION_REVERIFICATION_FIRST_FACTOR,
            {"session_id": session_id},
            {
                "strategy": strategy,
                "code": code,
                "password": password,
                "public_key_credential": public_key_credential,
            },
            {"origin": origin},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def prepare_session_reverification_second_factor(
        self,
        session_id: str,
        *,
        strategy: SecondFactorPrepareStrategy | Unset | None = UNSET,
        phone_number_id: str | Unset | None = UNSET,
        proof_token: str | Unset | None = UNSET,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[SessionReverification]:
        """Send the second-factor challenge (an SMS code); needs status ``needs_second_factor``.

        ``POST …/{session_id}/verify/prepare_second_factor``.
        """
        return await self._call(
            ops.PREPARE_SESSION_REVERIFICATION_SECOND_FACTOR,
            {"session_id": session_id},
            {"strategy": strategy, "phone_number_id": phone_number_id, "proof_token": proof_token},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    async def attempt_session_reverification_second_factor(
        self,
        session_id: str,
        *,
        strategy: SecondFactorAttemptStrategy,
        code: str,
        timeout: float | Timeout | Unset = UNSET,
        max_retries: int | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[SessionReverification]:
        """Answer the second-factor challenge (SMS code, TOTP or backup code).

        ``POST …/{session_id}/verify/attempt_second_factor``.
        """
        return await self._call(
            ops.ATTEMPT_SESSION_REVERIFICATION_SECOND_FACTOR,
            {"session_id": session_id},
            {"strategy": strategy, "code": code},
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
        )

    # -- signing a device in (fapi-protocol.md §13) -------------------------------------------

    async def sign_in_with_ticket(
        self,
        ticket: str,
        *,
        timeout: float | Timeout | Unset = UNSET,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Envelope[SignIn]:
        """Sign this device in with a sign-in token ("ticket") made with the secret key.

        ``POST /v1/client/sign_ins`` with ``strategy=ticket``. A client without a token yet
        gets one: the answer's ``Authorization`` becomes :attr:`client_token` (and
        ``on_client_token`` is called). Never retried: a ticket works once. The new session is
        ``envelope.response.created_session_id``.
        """
        return await self._call(
            ops.SIGN_IN_WITH_TICKET,
            _NO_ARGS,
            {"strategy": "ticket", "ticket": _check_ticket(ticket)},
            timeout=timeout,
            max_retries=0,
            extra_headers=extra_headers,
        )

    # -- step-up in one call (fapi-protocol.md §9) -------------------------------------------

    async def reverify(
        self,
        session_id: str,
        *,
        level: ReverificationLevel = "first_factor",
        codes: CodesCallback,
        strategies: Sequence[str] | str | None = None,
        max_attempts: int = 3,
    ) -> Envelope[SessionReverification]:
        """Step the session up at ``level``: start, pick a factor (in ``strategies`` order),
        prepare when the strategy sends a code, attempt with ``codes(step)`` (sync or async;
        asked again after a wrong code, up to ``max_attempts``), and run the second stage when
        Clerk asks for it. On success the session's cached tokens (stale ``fva``) are dropped
        and the final envelope (status ``complete``) is returned."""
        from . import _reverify

        return await _reverify.reverify(
            self,
            session_id,
            level=level,
            codes=codes,
            strategies=strategies,
            max_attempts=max_attempts,
        )

    async def with_reverification(
        self,
        session_id: str,
        call: Callable[[], Awaitable[T]],
        *,
        codes: CodesCallback,
        level: ReverificationLevel = "second_factor",
        strategies: Sequence[str] | str | None = None,
        is_reverification_error: Callable[[BaseException], object] | None = None,
    ) -> T:
        """``await call()``; if it fails with a step-up demand (a ``PermissionDeniedError``
        with ``reverification_required``, or an exception ``is_reverification_error`` accepts),
        :meth:`reverify` at the level the demand names (else ``level``) and call once more.
        Any other exception passes through untouched."""
        from . import _reverify

        return await _reverify.with_reverification(
            self,
            session_id,
            call,
            codes=codes,
            level=level,
            strategies=strategies,
            is_reverification_error=is_reverification_error,
        )

    async def _drop_session_tokens(self, session_id: str) -> None:
        """Forget the session's cached tokens on every view of this device (after a step-up,
        their ``fva`` claim is stale)."""
        await self._shared.tokens.drop(self._current_device().key, session_id)


def _log_response(
    operation: ops.Operation[R],
    status: int,
    elapsed: float,
    retries: int,
    error: ClerkSessionsError | None,
) -> None:
    # Only safe fields: never the URL, headers or bodies (see _logging).
    if not logger.isEnabledFor(logging.DEBUG):
        return
    trace = getattr(error, "clerk_trace_id", None)
    code = getattr(error, "code", None)
    logger.debug(
        "%s %s -> HTTP %d in %.1f ms (retries so far: %d%s%s)",
        operation.method,
        operation.name,
        status,
        elapsed * 1000,
        retries,
        f", code={code}" if code else "",
        f", clerk_trace_id={trace}" if trace else "",
    )


def _log_failure(method: str, name: str, error: APIConnectionError, elapsed: float) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "%s %s -> %s after %.1f ms", method, name, type(error).__name__, elapsed * 1000
        )


def _check_ticket(ticket: object) -> str:
    if not isinstance(ticket, str):
        raise TypeError(f"ticket must be a str, got {type(ticket).__name__}")
    if not ticket.strip():
        raise ValueError("ticket must be a non-empty string (a sign-in token's `token`)")
    return ticket


# Answers Clerk gives only after accepting the request's client token: they prove the string
# (api-contract.md, "Device identity is proven"). Not 401, and not 429, 5xx or a dropped
# connection either: a proxy or the rate limiter may send those before any authentication.
_PROVING_STATUSES = frozenset({200, 201, 202, 204, 403, 404, 409, 422})

_TIMED_OUT: Any = object()


async def _within(work: Awaitable[T], seconds: float, default: Any) -> T:
    """``await work`` for at most ``seconds``: then ``default``, or ``APITimeoutError`` if the
    default is ``_TIMED_OUT`` (a shared store's calls are bounded by the caller's timeout)."""
    try:
        return await bounded(work, max(seconds, 0.0))
    except (asyncio.TimeoutError, TimeoutError):
        if default is _TIMED_OUT:
            raise APITimeoutError(
                f"get_token: no session token within {seconds:g} s (the shared store or the "
                "Frontend API is slow); pass a larger timeout."
            ) from None
        return default  # type: ignore[no-any-return]


def _asks_for_expired_token(error: ClerkSessionsError) -> bool:
    """FAPI's 2026 answer to a mint without the previous token (§7b)."""
    return isinstance(error, UnprocessableEntityError) and error.code == "missing_expired_token"


__all__ = ["AsyncClerkSessions", "ClientState", "ClientTokenCallback", "RetryCallback"]
