"""The exception tree of the public contract.

Every error a public method raises is a :class:`ClerkSessionsError`. Messages say what happened
and what to do; they never carry a client token, a cookie or a JWT (see ``_redact``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._redact import redact_text

if TYPE_CHECKING:
    from .models import ClerkError

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClerkAPIError",
    "ClerkSessionsError",
    "ConfigurationError",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseValidationError",
    "ServerError",
    "UnprocessableEntityError",
]


class ClerkSessionsError(Exception):
    """Base class of every error raised by clerk_sessions."""

    retries_taken: int = 0
    """How many times the SDK retried the request before giving up with this error."""


class ConfigurationError(ClerkSessionsError, ValueError):
    """The client was configured or called in a way that can never work (bad key, bad URL...)."""


class ClerkAPIError(ClerkSessionsError):
    """The Frontend API answered with an error status.

    ``errors`` holds Clerk's structured errors (possibly empty when the body was not Clerk's JSON,
    e.g. an HTML page from a proxy); ``code``, ``message``, ``long_message`` and ``meta`` are those
    of the first error. ``headers`` are the response headers with credentials removed.
    """

    status: int
    errors: list[ClerkError]
    meta: Mapping[str, Any] | None
    clerk_trace_id: str | None
    headers: Mapping[str, str]
    retries_taken: int
    body_excerpt: str | None
    operation: str | None

    def __init__(
        self,
        status: int,
        errors: Sequence[ClerkError] = (),
        *,
        meta: Mapping[str, Any] | None = None,
        clerk_trace_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        retries_taken: int = 0,
        body_excerpt: str | None = None,
        operation: str | None = None,
    ) -> None:
        self.status = status
        self.errors = list(errors)
        self.meta = meta
        self.clerk_trace_id = clerk_trace_id
        self.headers = dict(headers or {})
        self.retries_taken = retries_taken
        self.body_excerpt = body_excerpt
        self.operation = operation
        super().__init__(self._describe())

    @property
    def code(self) -> str | None:
        """Clerk's machine-readable error code of the first error, e.g. ``resource_not_found``."""
        return self.errors[0].code if self.errors else None

    @property
    def message(self) -> str | None:
        return self.errors[0].message if self.errors else None

    @property
    def long_message(self) -> str | None:
        return self.errors[0].long_message if self.errors else None

    def _describe(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.operation:
            parts.append(f"from {self.operation}")
        if self.code:
            parts.append(f"[{self.code}]")
        text = self.long_message or self.message
        if text:
            parts.append(redact_text(text))
        elif self.body_excerpt:
            parts.append(f"(non-JSON body: {self.body_excerpt!r})")
        if len(self.errors) > 1:
            parts.append(f"(+{len(self.errors) - 1} more errors)")
        advice = _ADVICE.get(self.code or "")
        if advice:
            parts.append(f"({advice})")
        if 300 <= self.status < 400:
            parts.append(_redirect_advice(self.headers))
        if self.clerk_trace_id:
            parts.append(f"clerk_trace_id={self.clerk_trace_id}")
        if self.retries_taken:
            parts.append(f"after {self.retries_taken} retries")
        return " ".join(parts)

    def __str__(self) -> str:
        return self._describe()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only state does not survive the default Exception pickling.
        return (_rebuild_api_error, (type(self), self.status, self.__dict__))


# What to do about an error whose fix is outside the SDK, by Clerk's code.
_ADVICE = {
    "native_api_disabled": (
        "enable the Native API for this instance in the Clerk dashboard (Native applications); "
        "native clients cannot sign in without it"
    ),
}


def _rebuild_api_error(
    cls: type[ClerkAPIError], status: int, state: dict[str, Any]
) -> ClerkAPIError:
    error = cls.__new__(cls)
    Exception.__init__(error)
    error.__dict__.update(state)
    error.args = (error._describe(),)
    return error


class BadRequestError(ClerkAPIError):
    """HTTP 400."""


class AuthenticationError(ClerkAPIError):
    """HTTP 401: the client token is missing, invalid, or the session is not this client's."""


class PermissionDeniedError(ClerkAPIError):
    """HTTP 403. ``reverification_required`` is true when step-up verification is needed."""

    @property
    def reverification_required(self) -> bool:
        return any(
            e.code in ("session_reverification_required", "session_step_up_verification_required")
            for e in self.errors
        )


class NotFoundError(ClerkAPIError):
    """HTTP 404."""


class ConflictError(ClerkAPIError):
    """HTTP 409."""


class UnprocessableEntityError(ClerkAPIError):
    """HTTP 422."""


class RateLimitError(ClerkAPIError):
    """HTTP 429. ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one."""

    retry_after: float | None

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)


class ServerError(ClerkAPIError):
    """HTTP 5xx."""


STATUS_ERRORS: Mapping[int, type[ClerkAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_class_for_status(status: int) -> type[ClerkAPIError]:
    if status >= 500:
        return ServerError
    return STATUS_ERRORS.get(status, ClerkAPIError)


class APIConnectionError(ClerkSessionsError):
    """The request could not be completed: DNS, refused or dropped connection, TLS failure."""

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (after {self.retries_taken} retries)" if self.retries_taken else text


class APITimeoutError(APIConnectionError):
    """The request did not complete within its timeout (connect, pool wait, or total)."""


class ResponseValidationError(ClerkSessionsError):
    """A response body that is not JSON, or not the shape the operation documents.

    ``status`` is the HTTP status, ``body_excerpt`` a short redacted start of the raw body, and
    ``paths`` the cattrs-style locations of each problem (e.g. ``$.response.status``).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body_excerpt: str | None = None,
        paths: Sequence[str] = (),
        operation: str | None = None,
    ) -> None:
        self.status = status
        self.body_excerpt = body_excerpt
        self.paths = list(paths)
        self.operation = operation
        super().__init__(message)

    def __str__(self) -> str:
        text = str(self.args[0]) if self.args else "invalid response"
        if self.operation:
            text = f"{self.operation}: {text}"
        if self.status is not None:
            text = f"HTTP {self.status} {text}"
        if self.body_excerpt:
            text += f" (body starts: {self.body_excerpt!r})"
        if self.retries_taken:
            text += f" (after {self.retries_taken} retries)"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_validation_error, (type(self), self.__dict__, self.args))


def _rebuild_validation_error(
    cls: type[ResponseValidationError], state: dict[str, Any], args: tuple[Any, ...]
) -> ResponseValidationError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


def _redirect_advice(headers: Mapping[str, str]) -> str:
    """Why a 3xx is an error here: the origin it points to (never its path or query, which may
    carry credentials) and what to do."""
    from urllib.parse import urlsplit

    location = next((v for k, v in headers.items() if k.lower() == "location"), "")
    parts = urlsplit(location)
    where = f" to {parts.scheme}://{parts.hostname}" if parts.scheme and parts.hostname else ""
    return (
        f"(a redirect{where}: the SDK never follows one, as it would carry the client token "
        "elsewhere; set frontend_api_url to the address that answers)"
    )
