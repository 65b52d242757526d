"""Sign a device in without a phone: sign-in tokens ("tickets") of Clerk's Backend API.

Needs the ``admin`` extra (``pip install "clerk-sessions[admin]"``): the Backend API calls go
through Clerk's official Python SDK, ``clerk-backend-api``. Importing this module always works;
a function that calls the Backend API raises ``ImportError`` naming the extra when the package
is missing (``SignInToken`` and ``SignedInDevice`` need nothing).

From a secret key to a signed-in device and a session token (``../shared/docs/fapi-protocol.md``
§13; ``CLERK_SECRET_KEY`` and ``CLERK_PUBLISHABLE_KEY`` set)::

    device = sign_in_user_sync("user_2abc")
    with ClerkSessions(client_token=device.client_token) as clerk:
        jwt = clerk.get_token(device.session_id)

- :func:`create_sign_in_token` makes a single-use ticket for a user (``POST /v1/sign_in_tokens``);
  :func:`revoke_sign_in_token` revokes one that was not used;
- :func:`sign_in_user` does both ends: creates a ticket, signs a new device in with it
  (``sign_in_with_ticket``), revokes the ticket if that fails, and returns the device.

Each is a coroutine; the ``*_sync`` twins (:func:`create_sign_in_token_sync`,
:func:`revoke_sign_in_token_sync`, :func:`sign_in_user_sync`) block instead, for scripts, tests
and worker threads. They start no event loop of their own: they use ``clerk-backend-api``'s
blocking calls and :class:`ClerkSessions`. In async code, await the coroutines.

Configuration (an argument always beats the environment): ``secret_key`` or
``CLERK_SECRET_KEY`` (``sk_test_…``/``sk_live_…``; a publishable key is refused);
``backend_api_url`` or ``CLERK_BACKEND_API_URL``, default ``https://api.clerk.com`` (``/v1`` is
appended unless the URL already ends with it; the local emulator's ``backend_api_url`` works as
is). The secret key is never put in a message, a ``repr`` or a log line; ``clerk-backend-api``'s
debug logger (which prints request headers) is never switched on.

Errors are this package's: an HTTP error is the :class:`~clerk_sessions.ClerkAPIError` subclass
for its status (``AuthenticationError`` for a wrong key, ``NotFoundError`` for an unknown user,
…) with Clerk's code, message and trace id; a failed connection is ``APIConnectionError``
(``APITimeoutError`` past ``timeout``). Creating and revoking retry connection errors and
408/429/502/503/504 up to ``max_retries`` times (a duplicate pending ticket after a lost answer
is harmless: nobody holds it, and it expires); the ticket sign-in itself is never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote, urlsplit

import attrs

from ._client import AsyncClerkSessions
from ._config import _is_loopback
from ._constants import (
    DEFAULT_BACKEND_API_URL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_SIGN_IN_TOKEN_LIFETIME,
    DEFAULT_TIMEOUT,
    ENV_BACKEND_API_URL,
    ENV_PUBLISHABLE_KEY,
    ENV_SECRET_KEY,
)
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    ClerkAPIError,
    ClerkSessionsError,
    ConfigurationError,
    ResponseValidationError,
)
from ._logging import logger
from ._model_base import redacted_repr
from ._redact import excerpt, redact_text
from ._retry import parse_retry_after, plan_retry, retry_reason
from ._sync import ClerkSessions
from ._validate import count, seconds
from ._wire import CONTROL_CHARACTER, api_error
from .models import Envelope, SignIn

if TYPE_CHECKING:
    import ssl

    import httpx
    from clerk_backend_api import Clerk
    from clerk_backend_api.models import CreateSignInTokenRequestBodyTypedDict

__all__ = [
    "DEFAULT_BACKEND_API_URL",
    "DEFAULT_SIGN_IN_TOKEN_LIFETIME",
    "ENV_BACKEND_API_URL",
    "ENV_SECRET_KEY",
    "SignInToken",
    "SignedInDevice",
    "create_sign_in_token",
    "create_sign_in_token_sync",
    "revoke_sign_in_token",
    "revoke_sign_in_token_sync",
    "sign_in_user",
    "sign_in_user_sync",
]


_INSTALL_HINT: Final = (
    'clerk_sessions.admin needs the "admin" extra (Clerk\'s clerk-backend-api package): '
    'pip install "clerk-sessions[admin]"'
)
_KEY_HELP: Final = (
    "Copy the secret key from the API keys page of the Clerk dashboard, and keep it on "
    "servers and in CI secrets only: it acts for every user of the instance."
)

T = TypeVar("T")


# -- results ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SignInToken:
    """A sign-in token ("ticket") of the Backend API. ``token`` is the ticket to pass to
    ``sign_in_with_ticket``; ``url`` embeds it (Clerk's accept-ticket link). Both are
    credentials, masked in ``repr``. ``expires_in_seconds`` is the lifetime it was made with."""

    id: str
    token: str = attrs.field(repr=redacted_repr)
    url: str | None = attrs.field(repr=redacted_repr)
    status: str
    user_id: str
    expires_in_seconds: int


@attrs.frozen(kw_only=True)
class SignedInDevice:
    """A device (Clerk client) with a new session. Persist ``client_token`` (a credential,
    masked in ``repr``) to act as the device later, e.g. ``ClerkSessions(frontend_api_url=
    device.frontend_api_url, client_token=device.client_token)``."""

    client_token: str = attrs.field(repr=redacted_repr)
    session_id: str
    user_id: str
    client_id: str | None
    frontend_api_url: str

    @classmethod
    def from_sign_in(
        cls,
        envelope: Envelope[SignIn],
        *,
        client_token: str | None,
        frontend_api_url: str,
        user_id: str | None = None,
    ) -> SignedInDevice:
        """The device a ``sign_in_with_ticket`` answer describes (``client_token`` and
        ``frontend_api_url``: the signing-in client's, afterwards). Raises
        ``ClerkSessionsError`` if the sign-in did not complete with a session and a token."""
        sign_in = envelope.response
        session_id = sign_in.created_session_id
        if sign_in.status != "complete" or not session_id:
            raise ClerkSessionsError(
                f"The ticket sign-in did not complete: Clerk answered status {sign_in.status!s} "
                "without a session (does the instance ask for more than a ticket, such as a "
                "second factor?)."
            )
        if not client_token:
            raise ClerkSessionsError(
                "The ticket sign-in answered without a client token (no Authorization header): "
                "is the URL a Clerk Frontend API with the Native API enabled?"
            )
        owner = _session_user(envelope, session_id) or user_id
        if owner is None:
            raise ClerkSessionsError(
                f"The ticket sign-in's answer does not say whose session {session_id} is."
            )
        client = envelope.client
        return cls(
            client_token=client_token,
            session_id=session_id,
            user_id=owner,
            client_id=client.id if client is not None else None,
            frontend_api_url=frontend_api_url,
        )


# -- configuration ------------------------------------------------------------------------------


@attrs.frozen
class _Backend:
    """Where and how to call the Backend API, checked."""

    secret_key: str = attrs.field(repr=False)
    server_url: str  # ends with /v1: clerk-backend-api's ``server_url``
    timeout: float
    max_retries: int

    @property
    def loopback(self) -> bool:
        return _is_loopback(urlsplit(self.server_url).hostname or "")

    def for_cleanup(self) -> _Backend:
        """The same, for revoking the ticket of a failed sign-in: 10 s at the most."""
        return attrs.evolve(self, timeout=min(self.timeout, 10.0))


def _backend(
    secret_key: str | None, backend_api_url: str | None, timeout: float, max_retries: int
) -> _Backend:
    seconds_ = seconds("timeout", timeout, positive=True)
    count("max_retries", max_retries, minimum=0)
    return _Backend(
        _secret_key(secret_key),
        _server_url(backend_api_url),
        seconds_,
        max_retries,
    )


def _secret_key(secret_key: str | None) -> str:
    """The argument, else ``CLERK_SECRET_KEY``; never quoted in an error."""
    where = "secret_key"
    if secret_key is None:
        secret_key = os.environ.get(ENV_SECRET_KEY, "").strip() or None
        where = ENV_SECRET_KEY
        if secret_key is None:
            raise ConfigurationError(
                f"No secret key: pass secret_key='sk_…' or set {ENV_SECRET_KEY}. {_KEY_HELP}"
            )
    if not isinstance(secret_key, str):
        raise ConfigurationError(f"secret_key must be a str, got {type(secret_key).__name__}")
    key = secret_key.strip()
    if not key:
        raise ConfigurationError(f"The secret key ({where}) is empty. {_KEY_HELP}")
    if key.startswith("pk_"):
        raise ConfigurationError(
            f"A publishable key (pk_…) was given where a secret key (sk_…) is expected "
            f"({where}): creating sign-in tokens takes the instance's secret key. {_KEY_HELP}"
        )
    if not key.startswith("sk_") or CONTROL_CHARACTER.search(key) or " " in key:
        raise ConfigurationError(
            f"The secret key ({where}) is not valid: Clerk secret keys start with sk_test_ or "
            f"sk_live_ and hold no spaces or line breaks (the value is not shown). {_KEY_HELP}"
        )
    return key


def _server_url(backend_api_url: str | None) -> str:
    """The argument, else ``CLERK_BACKEND_API_URL``, else Clerk's; ``/v1`` appended once."""
    where = "backend_api_url"
    if backend_api_url is None:
        backend_api_url = os.environ.get(ENV_BACKEND_API_URL, "").strip() or None
        where = ENV_BACKEND_API_URL
    if backend_api_url is None:
        return DEFAULT_BACKEND_API_URL + "/v1"
    if not isinstance(backend_api_url, str):
        raise ConfigurationError(
            f"backend_api_url must be a str, got {type(backend_api_url).__name__}"
        )
    try:
        parts = urlsplit(backend_api_url.strip())
        parts.port  # noqa: B018 - parsed only to validate it
    except ValueError as exc:
        raise ConfigurationError(f"{where} is not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(
            f"{where} must be an absolute http(s) URL such as {DEFAULT_BACKEND_API_URL!r}."
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(f"{where} must not contain credentials (user:password@).")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{where} must not have a query string or fragment.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"{where} uses plain http for {parts.hostname!r}; the secret key would travel "
            "unencrypted. Use https (plain http is allowed only for loopback hosts)."
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def _check_user_id(user_id: object) -> str:
    if not isinstance(user_id, str):
        raise TypeError(f"user_id must be a str, got {type(user_id).__name__}")
    if not user_id.strip():
        raise ValueError("user_id must be a non-empty string (a user's id, user_…)")
    return user_id


def _check_expires(expires_in_seconds: object) -> int:
    return count("expires_in_seconds", expires_in_seconds)


def _token_id_segment(sign_in_token_id: object) -> str:
    """The id as one percent-encoded path segment (``a/../b`` never changes the path)."""
    if not isinstance(sign_in_token_id, str):
        raise TypeError(f"sign_in_token_id must be a str, got {type(sign_in_token_id).__name__}")
    if not sign_in_token_id.strip():
        raise ValueError("sign_in_token_id must be a non-empty string (a sign-in token's id)")
    segment = quote(sign_in_token_id, safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def _check_key_pair(secret_key: str, publishable_key: str | None, url: str | None) -> None:
    """A test secret key with a live publishable key (or the reverse) names two instances:
    the ticket could never work there, so say so before making one."""
    if publishable_key is None and url is None:
        publishable_key = os.environ.get(ENV_PUBLISHABLE_KEY, "").strip() or None
    if not isinstance(publishable_key, str):
        return
    for kind in ("test", "live"):
        other = "live" if kind == "test" else "test"
        if secret_key.startswith(f"sk_{kind}_") and publishable_key.startswith(f"pk_{other}_"):
            raise ConfigurationError(
                f"The secret key is a {kind} key and the publishable key a {other} key: they "
                "belong to different Clerk instances. Use the keys of one instance."
            )


# -- clerk-backend-api --------------------------------------------------------------------------


def _import_sdk() -> None:
    try:
        import clerk_backend_api  # noqa: F401
        import httpx  # noqa: F401
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every call: building one costs ~15-30 ms (the CA bundle), and
    ``Clerk()`` would otherwise build two per instance."""
    import httpx

    return httpx.create_ssl_context()


def _http_options(backend: _Backend) -> dict[str, Any]:
    # No redirects (the Authorization header must not follow one), no proxy for loopback
    # hosts (the local emulator), clerk-backend-api's retries off (ours count attempts).
    return {
        "follow_redirects": False,
        "trust_env": not backend.loopback,
        "verify": _ssl_context(),
    }


def _clerk(backend: _Backend, *, sync: httpx.Client, async_: httpx.AsyncClient) -> Clerk:
    from clerk_backend_api import Clerk

    # debug_logger stays the default no-op: Speakeasy's debug lines print request headers.
    return Clerk(
        bearer_auth=backend.secret_key,
        server_url=backend.server_url,
        client=sync,
        async_client=async_,
    )


def _translate(
    error: Exception, backend: _Backend, operation: str, retries: int
) -> ClerkSessionsError | None:
    """Our error for one of clerk-backend-api's or httpx's, or ``None`` (not an expected one)."""
    import httpx
    from clerk_backend_api import models

    secrets = (backend.secret_key,)
    where = backend.server_url
    result: ClerkSessionsError
    if isinstance(error, models.ClerkBaseError):
        body = (error.body or "").encode("utf-8", "replace")
        if error.status_code >= 400:
            result = api_error(
                operation, error.status_code, error.headers, body, secrets=secrets, now=time.time()
            )
        else:
            result = ResponseValidationError(
                "the Backend API's answer is not the documented sign-in token",
                status=error.status_code,
                body_excerpt=excerpt(body, secrets),
                operation=operation,
            )
    elif isinstance(error, httpx.TimeoutException):
        result = APITimeoutError(
            f"{operation}: the Backend API at {where} did not answer in time "
            f"({type(error).__name__}; timeout {backend.timeout:g} s)"
        )
    elif isinstance(error, httpx.TransportError | models.NoResponseError):
        reason = redact_text(str(error), secrets) or type(error).__name__
        result = APIConnectionError(
            f"{operation}: could not reach the Backend API at {where}: {reason}"
        )
    else:
        return None
    result.retries_taken = retries
    return result


def _next_delay(
    error: ClerkSessionsError, backend: _Backend, retries: int, left: float
) -> float | None:
    """Seconds to wait before another attempt after ``error``, or ``None``: no more attempts."""
    status = retry_after = None
    if isinstance(error, ClerkAPIError):  # Retry-After counts on a 503 as on a 429
        status, retry_after = error.status, parse_retry_after(error.headers, time.time())
    return plan_retry(
        reason=retry_reason(status, error, retry_safe=False),
        retries_taken=retries,
        max_retries=backend.max_retries,
        retry_after=retry_after,
        remaining=left,
        random_fraction=random.random(),
    )


def _outcome(error: ClerkSessionsError) -> str:
    if isinstance(error, ClerkAPIError):
        return f"HTTP {error.status}" + (f", code={error.code}" if error.code else "")
    return type(error).__name__


def _cause(error: Exception) -> Exception | None:
    """What our error is chained to: a transport error as is (its text names the failure, no
    request data); nothing for clerk-backend-api's HTTP errors, whose text quotes the raw
    response body (which could echo the key, and does carry a ticket)."""
    from clerk_backend_api import models

    return None if isinstance(error, models.ClerkBaseError) else error


class _Attempts:
    """The attempts of one Backend API call: its deadline, the retries so far, and what each
    attempt's outcome means (logged; the wait before the next attempt, or the error to raise).
    :func:`_call_async` and :func:`_call_sync` only make the call and sleep."""

    def __init__(self, backend: _Backend, operation: str) -> None:
        self.backend = backend
        self.operation = operation
        self.deadline = time.monotonic() + backend.timeout
        self.retries = 0
        self.started = 0.0

    def start(self) -> int:
        """An attempt begins: its timeout in milliseconds (what is left of the call's)."""
        self.started = time.monotonic()
        return max(1, int((self.deadline - self.started) * 1000))

    def succeeded(self, result: T) -> T:
        self._log("OK")
        return result

    def failed(self, exc: Exception) -> float:
        """Seconds to wait before the next attempt. Raises when none follows: our error for
        ``exc``, or ``exc`` itself when clerk-backend-api and httpx are not expected to raise
        it."""
        error = _translate(exc, self.backend, self.operation, self.retries)
        if error is None:
            raise exc
        self._log(_outcome(error))
        left = self.deadline - time.monotonic()
        delay = _next_delay(error, self.backend, self.retries, left)
        if delay is None:
            raise error from _cause(exc)
        self.retries += 1
        return delay

    def _log(self, outcome: str) -> None:
        if logger.isEnabledFor(logging.DEBUG):  # safe fields only (see _logging)
            logger.debug(
                "Backend API %s -> %s in %.1f ms (retries so far: %d)",
                self.operation,
                outcome,
                (time.monotonic() - self.started) * 1000,
                self.retries,
            )


async def _call_async(
    backend: _Backend, operation: str, call: Callable[[Clerk, int], Awaitable[T]]
) -> T:
    _import_sdk()  # an ImportError naming the extra
    import httpx

    attempts = _Attempts(backend, operation)
    options = _http_options(backend)
    with httpx.Client(**options) as unused:  # Clerk() makes one unless given one
        async with httpx.AsyncClient(**options) as http:
            clerk = _clerk(backend, sync=unused, async_=http)
            while True:
                try:
                    result = await call(clerk, attempts.start())
                except Exception as exc:
                    delay = attempts.failed(exc)  # raises when no attempt follows
                else:
                    return attempts.succeeded(result)
                await asyncio.sleep(delay)


def _call_sync(backend: _Backend, operation: str, call: Callable[[Clerk, int], T]) -> T:
    _import_sdk()  # an ImportError naming the extra
    import httpx

    attempts = _Attempts(backend, operation)
    options = _http_options(backend)
    with httpx.Client(**options) as http:
        # Clerk() makes an AsyncClient unless given one; this one never opens a connection.
        clerk = _clerk(backend, sync=http, async_=httpx.AsyncClient(**options))
        while True:
            try:
                result = call(clerk, attempts.start())
            except Exception as exc:
                delay = attempts.failed(exc)  # raises when no attempt follows
            else:
                return attempts.succeeded(result)
            time.sleep(delay)


# -- the two requests ---------------------------------------------------------------------------


@attrs.frozen
class _TicketRequest:
    """A sign-in token to create (``POST /v1/sign_in_tokens``), its arguments checked."""

    user_id: str
    expires_in_seconds: int
    org_id: str | None

    @classmethod
    def check(
        cls, user_id: object, expires_in_seconds: object, org_id: str | None
    ) -> _TicketRequest:
        return cls(_check_user_id(user_id), _check_expires(expires_in_seconds), org_id)

    def body(self) -> CreateSignInTokenRequestBodyTypedDict:
        body: CreateSignInTokenRequestBodyTypedDict = {
            "user_id": self.user_id,
            "expires_in_seconds": self.expires_in_seconds,
        }
        if self.org_id is not None:
            body["org_id"] = self.org_id
        return body


def _sign_in_token(result: Any, request: _TicketRequest) -> SignInToken:
    token = result.token
    if not isinstance(token, str) or not token:
        raise ResponseValidationError(
            "the Backend API created a sign-in token but did not return its token",
            status=200,
            operation="create_sign_in_token",
        )
    status = result.status
    return SignInToken(
        id=result.id,
        token=token,
        url=result.url if isinstance(result.url, str) else None,
        status=str(getattr(status, "value", status)),
        user_id=result.user_id,
        expires_in_seconds=request.expires_in_seconds,
    )


async def _create(backend: _Backend, request: _TicketRequest) -> SignInToken:
    result = await _call_async(
        backend,
        "create_sign_in_token",
        lambda clerk, ms: clerk.sign_in_tokens.create_async(
            request=request.body(), retries=None, timeout_ms=ms
        ),
    )
    return _sign_in_token(result, request)


def _create_sync(backend: _Backend, request: _TicketRequest) -> SignInToken:
    result = _call_sync(
        backend,
        "create_sign_in_token",
        lambda clerk, ms: clerk.sign_in_tokens.create(
            request=request.body(), retries=None, timeout_ms=ms
        ),
    )
    return _sign_in_token(result, request)


async def _revoke(backend: _Backend, token_id: str) -> None:
    await _call_async(
        backend,
        "revoke_sign_in_token",
        lambda clerk, ms: clerk.sign_in_tokens.revoke_async(
            sign_in_token_id=token_id, retries=None, timeout_ms=ms
        ),
    )


def _revoke_sync(backend: _Backend, token_id: str) -> None:
    _call_sync(
        backend,
        "revoke_sign_in_token",
        lambda clerk, ms: clerk.sign_in_tokens.revoke(
            sign_in_token_id=token_id, retries=None, timeout_ms=ms
        ),
    )


# -- create and revoke --------------------------------------------------------------------------


async def create_sign_in_token(
    user_id: str,
    *,
    secret_key: str | None = None,
    expires_in_seconds: int = DEFAULT_SIGN_IN_TOKEN_LIFETIME,
    org_id: str | None = None,
    backend_api_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT.total,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> SignInToken:
    """A single-use sign-in token for ``user_id`` (``POST /v1/sign_in_tokens``), valid for
    ``expires_in_seconds``; with ``org_id`` the session it makes starts in that organization.
    Sign a device in with ``clerk.sign_in_with_ticket(token.token)``."""
    request = _TicketRequest.check(user_id, expires_in_seconds, org_id)
    return await _create(_backend(secret_key, backend_api_url, timeout, max_retries), request)


def create_sign_in_token_sync(
    user_id: str,
    *,
    secret_key: str | None = None,
    expires_in_seconds: int = DEFAULT_SIGN_IN_TOKEN_LIFETIME,
    org_id: str | None = None,
    backend_api_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT.total,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> SignInToken:
    """:func:`create_sign_in_token`, blocking."""
    request = _TicketRequest.check(user_id, expires_in_seconds, org_id)
    return _create_sync(_backend(secret_key, backend_api_url, timeout, max_retries), request)


async def revoke_sign_in_token(
    sign_in_token_id: str,
    *,
    secret_key: str | None = None,
    backend_api_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT.total,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> None:
    """Revoke a pending sign-in token by its id (``SignInToken.id``); a used or revoked one is
    a ``BadRequestError`` (Clerk's code says it cannot be revoked), an unknown id a
    ``NotFoundError``."""
    token_id = _token_id_segment(sign_in_token_id)
    await _revoke(_backend(secret_key, backend_api_url, timeout, max_retries), token_id)


def revoke_sign_in_token_sync(
    sign_in_token_id: str,
    *,
    secret_key: str | None = None,
    backend_api_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT.total,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> None:
    """:func:`revoke_sign_in_token`, blocking."""
    token_id = _token_id_segment(sign_in_token_id)
    _revoke_sync(_backend(secret_key, backend_api_url, timeout, max_retries), token_id)


# -- sign a user in -----------------------------------------------------------------------------


async def sign_in_user(
    user_id: str,
    *,
    secret_key: str | None = None,
    publishable_key: str | None = None,
    frontend_api_url: str | None = None,
    org_id: str | None = None,
    backend_api_url: str | None = None,
    client_token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT.total,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> SignedInDevice:
    """Sign ``user_id`` in on a new device: create a ticket with the secret key, sign in with it
    on the Frontend API (``publishable_key``/``frontend_api_url``, else the environment, as for
    :class:`AsyncClerkSessions`), and return the device. If the sign-in fails, the ticket is
    revoked and the sign-in's error raised.

    ``client_token``: add the session to that device (multi-session instances) instead of a
    new one; ``CLERK_CLIENT_TOKEN`` is *not* read (a new device unless you say otherwise).
    ``timeout``/``max_retries`` apply to each Backend API call and to the Frontend API client.
    """
    request = _TicketRequest.check(user_id, DEFAULT_SIGN_IN_TOKEN_LIFETIME, org_id)
    backend = _backend(secret_key, backend_api_url, timeout, max_retries)
    _check_key_pair(backend.secret_key, publishable_key, frontend_api_url)
    _import_sdk()
    # The client first: a bad publishable key or URL must not cost a ticket. "" is "no token
    # yet" (an empty Authorization), where None would read CLERK_CLIENT_TOKEN.
    async with AsyncClerkSessions(
        publishable_key=publishable_key,
        frontend_api_url=frontend_api_url,
        client_token=client_token or "",
        timeout=timeout,
        max_retries=max_retries,
    ) as clerk:
        ticket = await _create(backend, request)
        try:
            envelope = await clerk.sign_in_with_ticket(ticket.token)
        except BaseException as error:
            with _revoking_unused(ticket, error):
                await _revoke(backend.for_cleanup(), _token_id_segment(ticket.id))
            raise
        return _signed_in(envelope, clerk, request)


def sign_in_user_sync(
    user_id: str,
    *,
    secret_key: str | None = None,
    publishable_key: str | None = None,
    frontend_api_url: str | None = None,
    org_id: str | None = None,
    backend_api_url: str | None = None,
    client_token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT.total,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> SignedInDevice:
    """:func:`sign_in_user`, blocking (with :class:`ClerkSessions`)."""
    request = _TicketRequest.check(user_id, DEFAULT_SIGN_IN_TOKEN_LIFETIME, org_id)
    backend = _backend(secret_key, backend_api_url, timeout, max_retries)
    _check_key_pair(backend.secret_key, publishable_key, frontend_api_url)
    _import_sdk()
    with ClerkSessions(
        publishable_key=publishable_key,
        frontend_api_url=frontend_api_url,
        client_token=client_token or "",
        timeout=timeout,
        max_retries=max_retries,
    ) as clerk:
        ticket = _create_sync(backend, request)
        try:
            envelope = clerk.sign_in_with_ticket(ticket.token)
        except BaseException as error:
            with _revoking_unused(ticket, error):
                _revoke_sync(backend.for_cleanup(), _token_id_segment(ticket.id))
            raise
        return _signed_in(envelope, clerk, request)


def _signed_in(
    envelope: Envelope[SignIn],
    clerk: AsyncClerkSessions | ClerkSessions,
    request: _TicketRequest,
) -> SignedInDevice:
    return SignedInDevice.from_sign_in(
        envelope,
        client_token=clerk.client_token,
        frontend_api_url=clerk.frontend_api_url,
        user_id=request.user_id,
    )


@contextlib.contextmanager
def _revoking_unused(ticket: SignInToken, cause: BaseException) -> Iterator[None]:
    """Around revoking the ticket of a sign-in that failed with ``cause``: logs how it went,
    and keeps a failure to revoke from hiding the sign-in's error (the one to raise)."""
    try:
        yield
    except Exception as error:
        # A sign-in that failed after the server took the ticket leaves nothing to revoke (400).
        level = (
            logging.DEBUG
            if isinstance(error, ClerkAPIError) and error.status == 400
            else logging.WARNING
        )
        logger.log(
            level,
            "the sign-in failed (%s) and its sign-in token %s could not be revoked: %s (it "
            "expires on its own in %d s)",
            type(cause).__name__,
            ticket.id,
            error,
            ticket.expires_in_seconds,
        )
    else:
        logger.debug("revoked the unused sign-in token %s", ticket.id)


def _session_user(envelope: Envelope[SignIn], session_id: str) -> str | None:
    client = envelope.client
    for session in client.sessions if client is not None else ():
        if session.id == session_id:
            if session.user is not None:
                return session.user.id
            if session.public_user_data is not None:
                return session.public_user_data.user_id
    return None
