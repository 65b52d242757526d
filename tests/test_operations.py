"""Every operation over real HTTP: the exact request on the wire and the structured result.

``CALLS`` is the one table of example calls; test_contract.py replays the same table and
validates every request against the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from clerk_sessions import AsyncClerkSessions, Envelope, Session, Token
from clerk_sessions._operations import OPERATIONS
from clerk_sessions.models import Client, SessionReverification

from . import payloads
from .conftest import CLIENT_TOKEN, FakeFrontendAPI

pytestmark = pytest.mark.anyio


@attrs.frozen
class Call:
    """One example call: what the SDK is asked, what must go out, what the server answers."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    http: str
    path: str
    form: list[tuple[str, str]] | None
    reply: dict[str, Any]
    check: Callable[[Any], bool]

    @property
    def id(self) -> str:
        return f"{self.method}{'-' + '-'.join(self.kwargs) if self.kwargs else ''}"


S = "/v1/client/sessions/sess_1"

CALLS = [
    Call(
        "remove_client_sessions_and_retain_cookie",
        (),
        {},
        "DELETE",
        "/v1/client/sessions",
        [],
        payloads.delete_sessions_envelope(),
        lambda r: (
            isinstance(r.response, Client) and r.client is None and r.response.id == "client_1"
        ),
    ),
    Call(
        "get_session",
        ("sess_1",),
        {},
        "GET",
        S,
        None,
        payloads.session_envelope(),
        lambda r: (
            isinstance(r.response, Session)
            and r.response.status == "active"
            and r.response.user.email_addresses[0].email_address == "jane+clerk_test@example.com"
            and r.client.sessions[0].id == "sess_1"
        ),
    ),
    Call(
        "touch_session",
        ("sess_1",),
        {},
        "POST",
        f"{S}/touch",
        [],
        payloads.touch_envelope(),
        lambda r: r.response.id == "sess_1" and r.client.last_active_session_id == "sess_1",
    ),
    Call(
        "touch_session",
        ("sess_1",),
        {"active_organization_id": "org_1", "intent": "select_org"},
        "POST",
        f"{S}/touch",
        [("active_organization_id", "org_1"), ("intent", "select_org")],
        payloads.touch_envelope(),
        lambda r: r.response.id == "sess_1",
    ),
    Call(
        "touch_session",
        ("sess_1",),
        {"intent": "focus"},
        "POST",
        f"{S}/touch",
        [("intent", "focus")],
        payloads.touch_envelope(with_client=False),
        lambda r: r.client is None,
    ),
    Call(
        "end_session",
        ("sess_1",),
        {},
        "POST",
        f"{S}/end",
        [],
        payloads.session_envelope(status="ended"),
        lambda r: r.response.status == "ended",
    ),
    Call(
        "remove_session",
        ("sess_1",),
        {},
        "POST",
        f"{S}/remove",
        [],
        payloads.session_envelope(status="removed"),
        lambda r: r.response.status == "removed",
    ),
    Call(
        "create_session_token",
        ("sess_1",),
        {},
        "POST",
        f"{S}/tokens",
        [],
        payloads.token(),
        lambda r: isinstance(r, Token) and r.jwt.endswith(".c2lnbmF0dXJl") and r.object == "token",
    ),
    Call(
        "create_session_token",
        ("sess_1",),
        {"organization_id": None},
        "POST",
        f"{S}/tokens",
        [("organization_id", "")],
        payloads.token(),
        lambda r: isinstance(r, Token),
    ),
    Call(
        "create_session_token",
        ("sess_1",),
        {"organization_id": "org_1"},
        "POST",
        f"{S}/tokens",
        [("organization_id", "org_1")],
        payloads.token(),
        lambda r: isinstance(r, Token),
    ),
    Call(
        "create_session_token_with_template",
        ("sess_1", "hasura"),
        {},
        "POST",
        f"{S}/tokens/hasura",
        [],
        payloads.token(),
        lambda r: isinstance(r, Token),
    ),
    Call(
        "start_session_reverification",
        ("sess_1",),
        {"level": "multi_factor"},
        "POST",
        f"{S}/verify",
        [("level", "multi_factor")],
        payloads.reverification_envelope(level="multi_factor"),
        lambda r: (
            isinstance(r.response, SessionReverification)
            and r.response.status == "needs_first_factor"
            and r.response.session.id == "sess_1"
            and r.response.supported_first_factors[0].email_address_id == "idn_email_1"
        ),
    ),
    Call(
        "prepare_session_reverification_first_factor",
        ("sess_1",),
        {"strategy": "email_code", "email_address_id": "idn_email_1"},
        "POST",
        f"{S}/verify/prepare_first_factor",
        [("strategy", "email_code"), ("email_address_id", "idn_email_1")],
        payloads.reverification_envelope(),
        lambda r: r.response.level == "first_factor",
    ),
    Call(
        "attempt_session_reverification_first_factor",
        ("sess_1",),
        {"strategy": "email_code", "code": "424242"},
        "POST",
        f"{S}/verify/attempt_first_factor",
        [("strategy", "email_code"), ("code", "424242")],
        payloads.reverification_envelope(status="complete"),
        lambda r: r.response.status == "complete",
    ),
    Call(
        "attempt_session_reverification_first_factor",
        ("sess_1",),
        {"strategy": "password", "password": "pw d&=x"},
        "POST",
        f"{S}/verify/attempt_first_factor",
        [("strategy", "password"), ("password", "pw d&=x")],
        payloads.reverification_envelope(status="needs_second_factor"),
        lambda r: r.response.status == "needs_second_factor",
    ),
    Call(
        "prepare_session_reverification_second_factor",
        ("sess_1",),
        {"strategy": "phone_code", "phone_number_id": "idn_phone_1"},
        "POST",
        f"{S}/verify/prepare_second_factor",
        [("strategy", "phone_code"), ("phone_number_id", "idn_phone_1")],
        payloads.reverification_envelope(status="needs_second_factor"),
        lambda r: r.response.status == "needs_second_factor",
    ),
    Call(
        "prepare_session_reverification_second_factor",
        ("sess_1",),
        {},
        "POST",
        f"{S}/verify/prepare_second_factor",
        [],
        payloads.reverification_envelope(status="needs_second_factor"),
        lambda r: r.response.status == "needs_second_factor",
    ),
    Call(
        "attempt_session_reverification_second_factor",
        ("sess_1",),
        {"strategy": "totp", "code": "123456"},
        "POST",
        f"{S}/verify/attempt_second_factor",
        [("strategy", "totp"), ("code", "123456")],
        payloads.reverification_envelope(status="complete", level="multi_factor"),
        lambda r: r.response.status == "complete",
    ),
]


def test_every_operation_has_an_example_call() -> None:
    assert {call.method for call in CALLS} == set(OPERATIONS)


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.id)
async def test_request_on_the_wire_and_structured_result(
    call: Call, fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.reply(json=call.reply)

    result = await getattr(clerk, call.method)(*call.args, **call.kwargs)

    sent = fapi.last
    assert sent.method == call.http
    assert sent.path == call.path
    assert sent.query == [("_is_native", "1")]
    assert sent.headers["Authorization"] == CLIENT_TOKEN
    assert sent.headers["Clerk-API-Version"] == "2026-05-12"
    assert sent.headers["User-Agent"].startswith("clerk-sessions-python/")
    assert "Origin" not in sent.headers
    if call.form is None:
        assert sent.body == b""
        assert "Content-Type" not in sent.headers
    else:
        assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert sent.form == call.form
    assert call.check(result), result


async def test_envelope_is_generic_over_the_response(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.reply(json=payloads.session_envelope())
    envelope = await clerk.get_session("sess_1")
    assert isinstance(envelope, Envelope)
    assert envelope.response.public_user_data is not None
    assert envelope.response.public_user_data.identifier == "jane+clerk_test@example.com"
    assert envelope.response.factor_verification_age == [3, -1]
