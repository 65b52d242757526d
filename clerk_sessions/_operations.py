"""The twelve Sessions operations, described once.

This table drives request building (``_wire``), the client's thin methods, the contract tests
(which check every row against the spec), the sync facade (through the client) and the
emulator's routes. Adding an operation is one row here plus one method.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

from .models import Client, Envelope, Session, SessionReverification, SignIn, Token

_PATH_PARAM = re.compile(r"{(\w+)}")


class CallResult(Protocol):
    """What every operation returns (an Envelope or a Token): it knows its retries."""

    retries_taken: int


R = TypeVar("R", bound=CallResult)


class Operation(Generic[R]):
    """One Frontend API operation: everything needed to call it and to read its answer.

    ``R`` is the type a successful call returns, so ``_call(GET_SESSION, ...)`` is typed.
    Read-only by convention (a plain slotted class: nothing to compile at import).
    """

    __slots__ = (
        "body",
        "ends_sessions",
        "form_fields",
        "headers",
        "method",
        "mints_session_token",
        "name",
        "operation_id",
        "path",
        "path_params",
        "protocol_body",
        "required_body",
        "response_type",
        "retry_safe",
        "secret_body",
    )

    def __init__(
        self,
        *,
        name: str,
        operation_id: str,
        method: str,
        path: str,
        response_type: type[R],
        retry_safe: bool,
        body: tuple[str, ...] = (),
        required_body: frozenset[str] = frozenset(),
        headers: Mapping[str, str] | None = None,
        ends_sessions: bool = False,
        protocol_body: tuple[str, ...] = (),
        mints_session_token: bool = False,
        secret_body: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        """Python method name: the spec's ``operationId`` in snake_case."""
        self.operation_id = operation_id
        self.method = method
        self.path = path
        """Path template below ``/v1``'s parent, e.g. ``/v1/client/sessions/{session_id}``."""
        self.path_params: tuple[str, ...] = tuple(_PATH_PARAM.findall(path))
        self.response_type = response_type
        self.retry_safe = retry_safe
        """Safe to repeat after a failure that may have reached the server (5xx, dropped reply)."""
        self.body = body
        """Form fields of the spec, in the order they are sent (the method's keywords)."""
        self.form_fields = body + protocol_body
        """What may be sent: the spec's fields, then fields the SDK fills in itself because
        Clerk's protocol asks for them but the spec does not list them (``fapi-protocol.md``)."""
        self.protocol_body = frozenset(protocol_body)
        """The SDK's own fields among them (the only ones that may be booleans)."""
        self.required_body = required_body
        self.headers: Mapping[str, str] = headers or {}
        """Header parameters: Python keyword → HTTP header name."""
        self.ends_sessions = ends_sessions
        """Success signs a session out: cached tokens for it must go."""
        self.secret_body = secret_body
        """Form fields whose values are credentials: redacted wherever an answer echoes them."""
        self.mints_session_token = mints_session_token
        """Clerk's 2026 minting protocol applies (§7b): the previous token in the body with the
        Session Minter, ``?expired_token=`` after a 422 ``missing_expired_token``."""

    def __repr__(self) -> str:
        return f"Operation(name={self.name!r}, method={self.method!r}, path={self.path!r})"


_SESSION = "/v1/client/sessions/{session_id}"
_FIRST_FACTOR_HEADERS = {"origin": "Origin"}

REMOVE_CLIENT_SESSIONS_AND_RETAIN_COOKIE = Operation(
    name="remove_client_sessions_and_retain_cookie",
    operation_id="removeClientSessionsAndRetainCookie",
    method="DELETE",
    path="/v1/client/sessions",
    response_type=Envelope[Client | None],
    retry_safe=True,
    ends_sessions=True,
)

GET_SESSION = Operation(
    name="get_session",
    operation_id="getSession",
    method="GET",
    path=_SESSION,
    response_type=Envelope[Session],
    retry_safe=True,
)

TOUCH_SESSION = Operation(
    name="touch_session",
    operation_id="touchSession",
    method="POST",
    path=f"{_SESSION}/touch",
    response_type=Envelope[Session],
    retry_safe=True,
    body=("active_organization_id", "intent"),
)

END_SESSION = Operation(
    name="end_session",
    operation_id="endSession",
    method="POST",
    path=f"{_SESSION}/end",
    response_type=Envelope[Session],
    retry_safe=True,
    ends_sessions=True,
)

REMOVE_SESSION = Operation(
    name="remove_session",
    operation_id="removeSession",
    method="POST",
    path=f"{_SESSION}/remove",
    response_type=Envelope[Session],
    retry_safe=True,
    ends_sessions=True,
)

CREATE_SESSION_TOKEN = Operation(
    name="create_session_token",
    operation_id="createSessionToken",
    method="POST",
    path=f"{_SESSION}/tokens",
    response_type=Token,
    retry_safe=True,
    body=("organization_id",),
    # §7b: with the Session Minter, the previous JWT of the session (and force_origin on a
    # skip-cache mint); never from the caller, so not keywords of the method.
    protocol_body=("token", "force_origin"),
    mints_session_token=True,
    secret_body=frozenset({"token"}),
)

CREATE_SESSION_TOKEN_WITH_TEMPLATE = Operation(
    name="create_session_token_with_template",
    operation_id="createSessionTokenWithTemplate",
    method="POST",
    path=f"{_SESSION}/tokens/{{template_name}}",
    response_type=Token,
    retry_safe=True,
)

START_SESSION_REVERIFICATION = Operation(
    name="start_session_reverification",
    operation_id="startSessionReverification",
    method="POST",
    path=f"{_SESSION}/verify",
    response_type=Envelope[SessionReverification],
    retry_safe=True,
    body=("level",),
    required_body=frozenset({"level"}),
)

PREPARE_SESSION_REVERIFICATION_FIRST_FACTOR = Operation(
    name="prepare_session_reverification_first_factor",
    operation_id="prepareSessionReverificationFirstFactor",
    method="POST",
    path=f"{_SESSION}/verify/prepare_first_factor",
    response_type=Envelope[SessionReverification],
    retry_safe=False,  # sends an email or SMS each time
    body=("strategy", "email_address_id", "phone_number_id", "proof_token"),
    headers=_FIRST_FACTOR_HEADERS,
)

ATTEMPT_SESSION_REVERIFICATION_FIRST_FACTOR = Operation(
    name="attempt_session_reverification_first_factor",
    operation_id="attemptSessionReverificationFirstFactor",
    method="POST",
    path=f"{_SESSION}/verify/attempt_first_factor",
    response_type=Envelope[SessionReverification],
    retry_safe=False,  # burns a verification attempt each time
    body=("strategy", "code", "password", "public_key_credential"),
    required_body=frozenset({"strategy"}),
    secret_body=frozenset({"code", "password", "public_key_credential"}),
    headers=_FIRST_FACTOR_HEADERS,
)

PREPARE_SESSION_REVERIFICATION_SECOND_FACTOR = Operation(
    name="prepare_session_reverification_second_factor",
    operation_id="prepareSessionReverificationSecondFactor",
    method="POST",
    path=f"{_SESSION}/verify/prepare_second_factor",
    response_type=Envelope[SessionReverification],
    retry_safe=False,
    body=("strategy", "phone_number_id", "proof_token"),
)

ATTEMPT_SESSION_REVERIFICATION_SECOND_FACTOR = Operation(
    name="attempt_session_reverification_second_factor",
    operation_id="attemptSessionReverificationSecondFactor",
    method="POST",
    path=f"{_SESSION}/verify/attempt_second_factor",
    response_type=Envelope[SessionReverification],
    retry_safe=False,
    body=("strategy", "code"),
    secret_body=frozenset({"code"}),
)

OPERATIONS: Mapping[str, Operation[Any]] = {
    op.name: op
    for op in (
        REMOVE_CLIENT_SESSIONS_AND_RETAIN_COOKIE,
        GET_SESSION,
        TOUCH_SESSION,
        END_SESSION,
        REMOVE_SESSION,
        CREATE_SESSION_TOKEN,
        CREATE_SESSION_TOKEN_WITH_TEMPLATE,
        START_SESSION_REVERIFICATION,
        PREPARE_SESSION_REVERIFICATION_FIRST_FACTOR,
        ATTEMPT_SESSION_REVERIFICATION_FIRST_FACTOR,
        PREPARE_SESSION_REVERIFICATION_SECOND_FACTOR,
        ATTEMPT_SESSION_REVERIFICATION_SECOND_FACTOR,
    )
}


# -- beyond the twelve: signing a device in (``../shared/spec/fapi-sign-in.yml``) -------------

SIGN_IN_WITH_TICKET = Operation(
    name="sign_in_with_ticket",
    operation_id="createSignIn",
    method="POST",
    path="/v1/client/sign_ins",
    response_type=Envelope[SignIn],
    retry_safe=False,  # a ticket works once: a repeat after a lost answer would fail anyway
    # Of the spec's form fields, the ticket strategy (fapi-protocol.md §13) uses these two.
    body=("strategy", "ticket"),
    required_body=frozenset({"strategy"}),
    secret_body=frozenset({"ticket"}),
)
