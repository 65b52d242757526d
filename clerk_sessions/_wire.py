"""Pure request building and response parsing: bytes and dicts in, requests and models out.

Nothing here does I/O or keeps state, so every rule of the wire format is testable without a
server (gidgethub's ``sansio``, h11). ``_transport`` moves the bytes; ``_client`` glues the two.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from ._constants import BODY_EXCERPT_CHARS, FORM_CONTENT_TYPE
from ._converter import structure
from ._errors import (
    ClerkAPIError,
    ConfigurationError,
    RateLimitError,
    ResponseValidationError,
    error_class_for_status,
)
from ._logging import logger
from ._operations import Operation, R
from ._redact import excerpt, redact_headers, redact_text
from ._retry import parse_retry_after
from ._types import UNSET
from ._validate import extra_headers as validate_extra_headers
from .models import ClerkErrors

CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
"""No token, header value or credential contains one of these."""

# Characters quote(safe="") leaves alone, without "." (dot-segments need escaping).
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_~-]+")

# Headers the SDK owns: letting callers override them would bypass token rotation or produce
# a request FAPI rejects (Origin together with Authorization).
_RESERVED_HEADERS = frozenset({"authorization", "origin", "clerk-api-version", "content-type"})


class PreparedRequest:
    """A request ready to send; ``client_token`` is the token it carries (for rotation), and
    ``secrets`` every credential in it (the client token, a previous session JWT in the query
    or body), for redaction.

    Read-only by convention. A plain slotted class: one is built per attempt, and an attrs
    frozen class costs a compiled ``__init__`` at import and ``object.__setattr__`` per field.
    """

    __slots__ = (
        "base_url",
        "body",
        "client_token",
        "headers",
        "method",
        "operation",
        "path",
        "query",
        "secrets",
    )

    def __init__(
        self,
        operation: Operation[Any],
        method: str,
        base_url: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes | None,
        client_token: str | None,
        secrets: tuple[str | None, ...],
    ) -> None:
        self.operation = operation
        self.method = method
        self.base_url = base_url
        self.path = path
        """Below ``base_url``, percent-encoded (as ``query`` is): sent without re-encoding."""
        self.query = query
        self.headers = headers
        self.body = body
        self.client_token = client_token
        self.secrets = secrets

    @property
    def url(self) -> str:
        """The whole URL (its query may carry a credential, §7b: never log it)."""
        return f"{self.base_url}{self.path}?{self.query}"

    def __repr__(self) -> str:  # headers, body, token and query (§7b) may hold secrets
        name, method, url = self.operation.name, self.method, self.base_url + self.path
        return f"PreparedRequest(operation={name!r}, method={method!r}, url={url!r})"


def encode_path_segment(name: str, value: object) -> str:
    """One path parameter as exactly one path segment, or ValueError/TypeError before any I/O."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if _PLAIN_SEGMENT.fullmatch(value):  # sess_2b…, template names: nothing to escape
        return value
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    segment = quote(value, safe="")
    # "." and ".." are dot-segments that URL normalisation would resolve away.
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def encode_form_value(name: str, value: object, *, protocol: bool = False) -> str:
    """Form encoding as clerk-js does it: None → empty, booleans lowercase, enums by value.

    Every field a caller fills is text (an id, a strategy, a code): a bool or a number there
    is a mistake (``organization_id=True`` would be sent as ``true``), so only the SDK's own
    protocol fields (``force_origin``) may be booleans."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str):
        return value
    if protocol and isinstance(value, bool):
        return "true" if value else "false"
    raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")


def build_request(
    operation: Operation[Any],
    base_url: str,
    path_args: Mapping[str, object],
    body_args: Mapping[str, object],
    *,
    client_token: str | None,
    headers: Mapping[str, str],
    header_args: Mapping[str, object] | None = None,
    extra_headers: Mapping[str, str] | None = None,
    query_args: Mapping[str, str] | None = None,
) -> PreparedRequest:
    """Turn one call into a :class:`PreparedRequest` (native auth, form body, encoded path).

    ``headers`` are the client's constant headers (User-Agent, API version, Accept); UNSET body
    fields are left out, ``None`` is sent as ``key=``. ``query_args`` follow ``_is_native``.
    """
    path = operation.path
    for name in operation.path_params:
        path = path.replace("{" + name + "}", encode_path_segment(name, path_args[name]))

    if header_args is not None:
        for python_name in operation.headers:
            if header_args.get(python_name, UNSET) is not UNSET:
                raise ConfigurationError(
                    f"{operation.name}: {python_name!r} cannot be sent by a native client: "
                    "Clerk rejects a request carrying both Origin and Authorization "
                    "(origin_authorization_headers_conflict). Leave it unset."
                )

    request_headers = dict(headers)
    if extra_headers is not None:
        request_headers.update(validate_extra_headers(extra_headers, _RESERVED_HEADERS))
    # Native auth: always present, empty before the first client exists (FAPI then mints one).
    request_headers["Authorization"] = client_token or ""

    body: bytes | None = None
    secrets: tuple[str | None, ...] = (client_token,)
    method = operation.method
    if method != "GET":
        request_headers["Content-Type"] = FORM_CONTENT_TYPE
        fields = [
            (name, encode_form_value(name, given, protocol=name in operation.protocol_body))
            for name in operation.form_fields
            if (given := body_args.get(name, UNSET)) is not UNSET
        ]
        body = urlencode(fields).encode("ascii") if fields else b""
        if not operation.secret_body.isdisjoint(body_args):  # a previous JWT, a ticket, a code
            secret_values = (value for name, value in fields if name in operation.secret_body)
            secrets = (client_token, *secret_values)

    query = "_is_native=1"
    if query_args:
        query = f"{query}&{urlencode(query_args)}"
        secrets = (*secrets, *query_args.values())  # the query carries only credentials (§7b)
    return PreparedRequest(
        operation, method, base_url, path, query, request_headers, body, client_token, secrets
    )


def client_token_problem(value: object) -> str | None:
    """Why ``value`` cannot be a client token, or None if it can: the one check for every
    client-token string the SDK takes (constructor, views, batch rows, rotation headers).

    A token is sent back in a header exactly as stored, so it is printable ASCII: a control
    character (a trailing newline read from a file) or a non-ASCII one (a header decoded with
    lone surrogates) would be refused by aiohttp or mangled on the wire."""
    if not isinstance(value, str):
        return f"a client token must be a str, got {type(value).__name__}"
    if not _PRINTABLE_ASCII.fullmatch(value):
        if CONTROL_CHARACTER.search(value):
            return (
                "the client token contains a control character (a line break, tab or NUL, "
                "say); check how it was read (a trailing newline from a file?)"
            )
        return "the client token contains a character that is not printable ASCII"
    return None


def rotated_client_token(response_headers: Mapping[str, str]) -> tuple[bool, str | None]:
    """``(rotated, new_token)`` from a response's ``Authorization`` header (protocol §3).

    No header: no change. Empty or a bare ``Bearer``: the token is cleared (``None``). Anything
    else is the new token, kept exactly as received, if it can be a token at all (else: no
    change, and a warning).
    """
    value = response_headers.get("Authorization")
    if value is None:
        return False, None
    if value and client_token_problem(value) is not None:
        logger.warning(
            "ignored a client-token rotation whose Authorization header is not a token (%s)",
            "control or non-ASCII characters",
        )
        return False, None
    if value.strip().lower() in ("", "bearer"):
        return True, None
    return True, value


def parse_success(
    operation: Operation[R], status: int, body: bytes, *, secrets: tuple[str | None, ...] = ()
) -> R:
    """Decode and structure a 2xx body, or raise ResponseValidationError."""
    if status == 204 or not body:
        raise ResponseValidationError(
            "expected a JSON body, got an empty response", status=status, operation=operation.name
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ResponseValidationError(
            "the response body is not JSON",
            status=status,
            body_excerpt=excerpt(body, secrets, BODY_EXCERPT_CHARS),
            operation=operation.name,
        ) from exc
    return structure(data, operation.response_type, operation=operation.name, status=status)


def _redact_json(value: Any, secrets: tuple[str | None, ...]) -> Any:
    """A copy of ``value`` with credentials masked in every string it holds (error ``meta``).

    Iterative: a hostile body may nest as deep as the JSON parser allows (1,024 levels), past
    Python's recursion limit."""
    root = [value]
    pending: list[tuple[Any, Any]] = [(root, 0)]  # (container, key) of values still to redact
    while pending:
        container, key = pending.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = redact_text(item, secrets)
        elif isinstance(item, dict):
            copy = dict(item)
            container[key] = copy
            pending.extend((copy, name) for name in copy)
        elif isinstance(item, list):
            copy_list = list(item)
            container[key] = copy_list
            pending.extend((copy_list, index) for index in range(len(copy_list)))
    return root[0]


def api_error(
    operation: Operation[Any] | str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: tuple[str | None, ...] = (),
    now: float,
) -> ClerkAPIError:
    """The typed error for a non-2xx response; never fails, whatever the body holds.

    ``operation`` is a row of the operations table, or the name of a call outside it (the
    Backend API calls of ``clerk_sessions.admin``). ``now`` is the caller's wall clock (Unix
    time: a date-form ``Retry-After`` is counted from it); this module reads no clock."""
    errors: ClerkErrors | None = None
    try:
        data = orjson.loads(body) if body else None
        if isinstance(data, dict) and "errors" in data:
            errors = structure(data, ClerkErrors)
    except (orjson.JSONDecodeError, ResponseValidationError):
        errors = None
    kwargs: dict[str, Any] = {
        "headers": redact_headers(headers.items(), secrets),
        "operation": operation if isinstance(operation, str) else operation.name,
    }
    if errors is not None:
        for error in errors.errors:  # a server echoing the token must not put it in our text
            error.message = error.message and redact_text(error.message, secrets)
            error.long_message = error.long_message and redact_text(error.long_message, secrets)
            error.meta = _redact_json(error.meta, secrets)
        trace = errors.clerk_trace_id
        kwargs.update(
            errors=errors.errors,
            meta=_redact_json(errors.meta, secrets) or None,
            clerk_trace_id=trace and redact_text(trace, secrets),
        )
    elif body:
        kwargs["body_excerpt"] = excerpt(body, secrets, BODY_EXCERPT_CHARS)
    cls = error_class_for_status(status)
    if cls is RateLimitError:
        retry_after = parse_retry_after(headers, now)
        return RateLimitError(status, retry_after=retry_after, **kwargs)
    return cls(status, **kwargs)
