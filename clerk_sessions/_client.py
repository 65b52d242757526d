"""``AsyncClerkSessions``: the async core and the source the sync facade is generated from.

Each operation method is one line over ``_call``: the operation's row in ``_operations`` says
how to build the request and what comes back; ``_wire`` builds and parses; ``_transport`` sends.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import random
import threading
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
)
from types import TracebackType
from typing import Any

import aiohttp

from . import _batch
from . import _operations as ops
from ._batch import BatchSummary, PauseGate, ProgressCallback, TokenRequest, TokenResult
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
)
from ._errors import (
    APIConnectionError,
    AuthenticationError,
    ClerkSessionsError,
    ConfigurationError,
    RateLimitError,
    ResponseValidationError,
)
from ._logging import logger
from ._operations import R
from ._retry import RetryEvent, allowed_retries, parse_retry_after, plan_retry, retry_reason
from ._tokens import CacheKey, TokenCache, cache_key
from ._transport import USER_AGENT, Transport
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
from ._wire import api_error, build_request, parse_success, rotated_client_token
from .models import Client, Envelope, Session, SessionReverification, Token

ClientTokenCallback = Callable[[str | None], Awaitable[None] | None]
"""Called with the new client token (``None`` when cleared); may be sync or async."""

RetryCallback = Callable[[RetryEvent], None]
"""Called before each retry with what failed and how long the SDK will wait."""

_NO_ARGS: Mapping[str, object] = {}


def _coerce_timeout(value: float | Timeout, name: str = "timeout") -> Timeout:
    if isinstance(value, Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"{name} must be a number of seconds or a clerk_sessions.Timeout, got {value!r} "
            "(there is no 'no timeout'; pass a large number if you really mean it)"
        )
    connect = DEFAULT_TIMEOUT.connect
    return Timeout(total=value, connect=min(connect, value) if connect is not None else None)


def _check_max_retries(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"max_retries must be an int >= 0, got {value!r}")
    return value


def _check_client_token(token: object) -> str | None:
    if token is None:
        return None
    if not isinstance(token, str):
        raise ConfigurationError(f"client_token must be a str or None, got {type(token).__name__}")
    if any(ch in token for ch in "\r\n\0"):
        raise ConfigurationError("client_token contains a line break or NUL; it is not a token.")
    return token


class _ClientTokenState:
    """The current client token of one Clerk client, and the rotation rule (protocol §3).

    The sync facade uses one state from many threads, hence the lock around compare-and-set.
    """

    __slots__ = ("_lock", "callback", "identity", "token")

    _identities = itertools.count(1)

    def __init__(self, token: str | None, callback: ClientTokenCallback | None) -> None:
        self.token = token
        self.callback = callback
        self._lock = threading.Lock()
        # Names this Clerk client in the token cache; survives rotation, never reused.
        self.identity = next(self._identities)

    async def apply_rotation(self, response_headers: Mapping[str, str], sent: str | None) -> None:
        rotated, new_token = rotated_client_token(response_headers)
        if not rotated:
            return
        with self._lock:
            # A reply to a request made with an older token must not overwrite a newer one.
            if self.token != sent or new_token == self.token:
                return
            self.token = new_token
        if self.callback is not None:
            result = self.callback(new_token)
            if inspect.isawaitable(result):
                await result


class AsyncClerkSessions:
    """Async client for the Sessions operations of Clerk's Frontend API, acting for one client.

    Use it as ``async with AsyncClerkSessions(...) as clerk:`` or call :meth:`aclose`. One
    instance serves many concurrent calls; :meth:`with_client_token` gives a client for another
    Clerk client (device) on the same connection pool.
    """

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
    ) -> None:
        if not (0 <= token_leeway <= token_refresh_ahead):
            raise ConfigurationError(
                "token_leeway and token_refresh_ahead must satisfy 0 <= leeway <= refresh_ahead "
                f"(got {token_leeway!r} and {token_refresh_ahead!r})"
            )
        if isinstance(token_cache_size, bool) or not isinstance(token_cache_size, int):
            raise ConfigurationError(f"token_cache_size must be an int, got {token_cache_size!r}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ConfigurationError(f"max_connections must be an int, got {max_connections!r}")
        if max_connections < 1:
            raise ConfigurationError(f"max_connections must be >= 1, got {max_connections}")
        if not isinstance(api_version, str) or not api_version.strip():
            raise ConfigurationError(f"api_version must be a non-empty str, got {api_version!r}")
        if client_token is None:
            client_token = os.environ.get(ENV_CLIENT_TOKEN)
        self._base_url = resolve_base_url(publishable_key, frontend_api_url)
        self._api_version = api_version
        self._timeout = _coerce_timeout(timeout)
        self._max_retries = _check_max_retries(max_retries)
        self._headers: Mapping[str, str] = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Clerk-API-Version": api_version,
        }
        self._token = _ClientTokenState(_check_client_token(client_token), on_client_token)
        self._on_retry = on_retry
        # HTTP(S)_PROXY / NO_PROXY are honoured, as by every HTTP tool.
        self._transport = Transport(
            http_session, connection_limit=max_connections, proxy=proxy_for(self._base_url)
        )
        self._owns_transport = True
        self._closed = False
        self._tokens = TokenCache(
            leeway=token_leeway, refresh_ahead=token_refresh_ahead, max_entries=token_cache_size
        )
        self._background: set[asyncio.Future[Any]] = set()
        # How a background token refresh is started; the sync facade runs it on its portal.
        self._spawn: Callable[[Coroutine[Any, Any, None]], None] = self._spawn_task
        self._rate_limit_gate: PauseGate | None = None  # set on a batch's clients
        # Injectable for tests: the retry loop's clock, sleep and jitter, and the wall clock
        # that JWT iat/exp are compared with.
        self._clock: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._random: Callable[[], float] = random.random
        self._wall_clock: Callable[[], float] = time.time

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncClerkSessions:
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
        if self._owns_transport:
            background = [task for task in self._background if not task.done()]
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._transport.aclose()

    def with_client_token(
        self, client_token: str | None, *, on_client_token: ClientTokenCallback | None = None
    ) -> AsyncClerkSessions:
        """A client acting for another Clerk client (device), sharing this one's pool and config.

        The parent's ``on_client_token`` is deliberately not inherited: it would persist this
        client's rotated token under the wrong identity. Closing the returned client does not
        close the shared pool; closing the parent does.
        """
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other._token = _ClientTokenState(_check_client_token(client_token), on_client_token)
        other._owns_transport = False
        other._closed = False
        return other

    @property
    def client_token(self) -> str | None:
        """The current client token (after any rotation); persist it to resume later."""
        return self._token.token

    @property
    def frontend_api_url(self) -> str:
        return self._base_url

    @property
    def api_version(self) -> str:
        return self._api_version

    def __repr__(self) -> str:
        token = "set" if self._token.token else "none"
        return f"{type(self).__name__}(frontend_api_url={self._base_url!r}, client_token=<{token}>)"

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
        if self._closed:
            raise APIConnectionError(f"{operation.name}: this client is closed.")
        call_timeout = self._timeout if timeout is UNSET else _coerce_timeout(timeout)
        if max_retries is not UNSET:
            _check_max_retries(max_retries)
        retries_allowed = allowed_retries(operation.retry_safe, self._max_retries, max_retries)
        deadline: float | None = None  # the budget starts when the first attempt is sent
        retries = 0
        while True:
            # Built per attempt: a retry carries the token a failed attempt may have rotated.
            sent_token = self._token.token
            request = build_request(
                operation,
                self._base_url,
                path_args,
                body_args,
                client_token=sent_token,
                headers=self._headers,
                header_args=header_args,
                extra_headers=extra_headers,
            )
            started = self._clock()
            if deadline is None:
                deadline = started + call_timeout.total
            status: int | None = None
            retry_after: float | None = None
            try:
                raw = await self._transport.send(request, call_timeout, deadline - started)
            except APIConnectionError as exc:
                failure: ClerkSessionsError = exc
                _log_failure(operation.method, operation.name, exc, self._clock() - started)
            else:
                # Any response may rotate the client token, error responses included.
                if "Authorization" in raw.headers:
                    await self._token.apply_rotation(raw.headers, sent_token)
                status = raw.status
                if 200 <= status < 300:
                    if logger.isEnabledFor(logging.DEBUG):  # no clock read when not logging
                        _log_response(operation, status, self._clock() - started, retries, None)
                    try:
                        result = parse_success(operation, status, raw.body, secrets=(sent_token,))
                    except ResponseValidationError as exc:
                        exc.retries_taken = retries
                        raise
                    result.retries_taken = retries
                    if operation.ends_sessions or isinstance(result, Envelope):
                        self._update_token_cache(operation, path_args, result)
                    return result
                error = api_error(operation, status, raw.headers, raw.body, secrets=(sent_token,))
                _log_response(operation, status, self._clock() - started, retries, error)
                if isinstance(error, RateLimitError):  # api_error already read Retry-After
                    retry_after = error.retry_after
                    if self._rate_limit_gate is not None:
                        self._rate_limit_gate.pause(retry_after or 0.0)  # the whole batch waits
                else:
                    retry_after = parse_retry_after(raw.headers, time.time())
                failure = error
            reason = retry_reason(status, failure, retry_safe=operation.retry_safe)
            delay = plan_retry(
                reason=reason,
                retries_taken=retries,
                max_retries=retries_allowed,
                retry_after=retry_after,
                remaining=deadline - self._clock(),
                random_fraction=self._random(),
            )
            if delay is None or reason is None:
                failure.retries_taken = retries
                raise failure
            retries += 1
            event = RetryEvent(operation.name, retries, retries_allowed, reason, delay)
            logger.info("%s", event)
            if self._on_retry is not None:
                self._on_retry(event)
            await self._sleep(delay)

    # -- session tokens: cache and batches ------------------------------------------------------

    async def get_token(
        self,
        session_id: str,
        *,
        template: str | None = None,
        organization_id: str | Unset | None = UNSET,
        skip_cache: bool = False,
    ) -> str:
        """A session JWT, from the cache while it has more than ``token_leeway`` seconds left.

        Once fewer than ``token_refresh_ahead`` seconds remain, one background refresh starts
        and callers keep getting the cached token until the new one arrives. Concurrent callers
        for the same (client, session, template, organization) share one request.
        ``organization_id``: UNSET for the session's active organization, ``None``/``""`` for
        the personal account. ``skip_cache`` always mints a new token (and caches it).
        """
        key = cache_key(self._token.identity, session_id, template, organization_id)
        if not skip_cache:
            jwt, refresh = self._tokens.lookup(key, self._wall_clock())
            if jwt is not None:
                if refresh:
                    self._spawn(
                        self._refresh_in_background(key, session_id, template, organization_id)
                    )
                return jwt
        return (await self._fetch_token(session_id, template, organization_id, key)).jwt

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
        a 429 pauses every worker for its ``Retry-After``. Tokens of this client's own sessions
        are also cached for :meth:`get_token`. ``on_progress(done, failed, total)`` is called
        after each result.
        """
        async for result in _batch.refresh_tokens(
            self,
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
        return await _batch.summarize(
            self,
            requests,
            concurrency=concurrency,
            template=template,
            organization_id=organization_id,
            on_progress=on_progress,
        )

    async def _mint(
        self, session_id: str, template: str | None, organization_id: str | Unset | None
    ) -> Token:
        """One token request: with a template, or for an organization (never both).

        What ``create_session_token(_with_template)`` do, one coroutine frame fewer per token.
        """
        if template is None:
            return await self._call(
                ops.CREATE_SESSION_TOKEN,
                {"session_id": session_id},
                {"organization_id": organization_id},
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

    async def _fetch_token(
        self,
        session_id: str,
        template: str | None,
        organization_id: str | Unset | None,
        key: CacheKey | None = None,
    ) -> Token:
        """Mint a token and cache it, sharing the request with concurrent callers for the key."""
        if key is None:
            key = cache_key(self._token.identity, session_id, template, organization_id)
        joined = self._tokens.join_or_lead(key)
        if joined is not None:
            return await asyncio.wrap_future(joined)
        try:
            token = await self._mint(session_id, template, organization_id)
        except BaseException as exc:
            if isinstance(exc, AuthenticationError):
                self._tokens.drop(key)  # the session is gone or not ours: forget its token
            shared: BaseException = exc
            if isinstance(exc, asyncio.CancelledError):  # only the leader was cancelled
                shared = APIConnectionError("The token request was cancelled; try again.")
            self._tokens.finish(key, error=shared)
            raise
        self._tokens.store_and_finish(key, token.jwt, self._wall_clock(), token)
        return token

    async def _refresh_in_background(
        self,
        key: CacheKey,
        session_id: str,
        template: str | None,
        organization_id: str | Unset | None,
    ) -> None:
        try:
            await self._fetch_token(session_id, template, organization_id, key)
        except Exception as exc:  # the cached token stays valid; the next caller will retry
            self._tokens.refresh_failed(key)
            logger.debug("background token refresh failed: %s", type(exc).__name__)

    def _spawn_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)  # a strong reference until it is done
        task.add_done_callback(self._background.discard)

    def _update_token_cache(
        self, operation: ops.Operation[Any], path_args: Mapping[str, object], result: object
    ) -> None:
        """Sign-outs drop tokens; session responses seed it with their last_active_token."""
        identity = self._token.identity
        if operation.ends_sessions:
            session_id = path_args.get("session_id")
            self._tokens.drop_matching(
                identity, session_id if isinstance(session_id, str) else None
            )
            return
        if not isinstance(result, Envelope):
            return
        sessions = list(result.client.sessions) if result.client is not None else []
        if isinstance(result.response, Session):
            sessions.append(result.response)
        now = self._wall_clock()
        for session in sessions:
            token = session.last_active_token
            if token is not None and session.status == "active":
                self._tokens.store(cache_key(identity, session.id, None, UNSET), token.jwt, now)

    def _batch_view(self, gate: PauseGate) -> AsyncClerkSessions:
        """This client, for one batch: same token, cache and pool, plus the shared 429 gate."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._owns_transport = False
        view._closed = False
        view._rate_limit_gate = gate
        return view

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


__all__ = ["AsyncClerkSessions", "ClientTokenCallback", "RetryCallback"]
