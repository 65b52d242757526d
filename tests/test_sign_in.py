"""``sign_in_with_ticket`` on both clients (issue #13 item 4, fapi-protocol §13).

On the wire against the loopback ``fapi`` server (exact method, path, query, headers and form;
never retried; the answer's ``Authorization`` becomes the client token; Clerk's codes kept;
the ticket never echoed), then end to end against the emulator: a ticket from
``fapi.create_sign_in_token``, a signed-in device, and a session token for the new session.
Every test runs for the async client and for the blocking one (``make_clerk``).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

import jwt
import pytest

from clerk_sessions import (
    APIConnectionError,
    BadRequestError,
    RateLimitError,
    ServerError,
)
from clerk_sessions.testing import FrontendAPIEmulator
from tests import payloads
from tests.conftest import CLIENT_TOKEN, FakeFrontendAPI, MakeClerk

pytestmark = pytest.mark.anyio

TICKET = "canary-TICKET-5e1b-not-a-jwt"  # redacted by value: it is not JWT-shaped
NEW_TOKEN = "client_jwt.canary-NEW-CLIENT-TOKEN-91c2"
FORM = "application/x-www-form-urlencoded"


def sign_in_envelope(session_id: str = "sess_new", client_id: str = "client_new") -> Any:
    """A completed ticket sign-in, shaped like Clerk's (``Client.SignIn-2`` and the client)."""
    session = payloads.session(session_id)
    return {
        "response": {
            "object": "sign_in_attempt",
            "id": "sia_1",
            "status": "complete",
            "supported_identifiers": ["email_address"],
            "supported_first_factors": [],
            "supported_second_factors": [],
            "first_factor_verification": {
                "object": "verification_ticket",
                "status": "verified",
                "strategy": "ticket",
                "attempts": None,
                "expire_at": None,
            },
            "second_factor_verification": None,
            "identifier": "jane+clerk_test@example.com",
            "user_data": {"first_name": "Jane", "last_name": "Doe", "has_image": False},
            "created_session_id": session_id,
            "abandon_at": payloads.NOW_MS + 86_400_000,
        },
        "client": payloads.client(session, client_id=client_id),
    }


# -- on the wire -----------------------------------------------------------------------------------


async def test_a_new_device_signs_in_with_an_empty_authorization(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    seen: list[str | None] = []
    fapi.reply(200, sign_in_envelope(), headers={"Authorization": NEW_TOKEN})
    async with make_clerk(frontend_api_url=fapi.url, on_client_token=seen.append) as clerk:
        assert clerk.client_token is None
        envelope = await clerk.sign_in_with_ticket(TICKET)
        assert clerk.client_token == NEW_TOKEN
    assert len(fapi.requests) == 1
    request = fapi.last
    assert request.method == "POST"
    assert request.path == "/v1/client/sign_ins"
    assert request.query == [("_is_native", "1")]
    assert request.headers.getall("Authorization") == [""]
    assert request.headers["Content-Type"] == FORM
    assert "Origin" not in request.headers
    assert "Cookie" not in request.headers
    assert request.form == [("strategy", "ticket"), ("ticket", TICKET)]
    assert envelope.response.status == "complete"
    assert envelope.response.created_session_id == "sess_new"
    assert envelope.client is not None
    assert envelope.client.id == "client_new"
    assert [s.id for s in envelope.client.sessions] == ["sess_new"]
    assert seen == [NEW_TOKEN]


async def test_a_signed_in_device_sends_its_token_and_takes_the_new_one(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    seen: list[str | None] = []
    fapi.reply(200, sign_in_envelope(), headers={"Authorization": NEW_TOKEN})
    async with make_clerk(
        frontend_api_url=fapi.url, client_token=CLIENT_TOKEN, on_client_token=seen.append
    ) as clerk:
        await clerk.sign_in_with_ticket(TICKET)
        assert clerk.client_token == NEW_TOKEN
    assert fapi.last.headers["Authorization"] == CLIENT_TOKEN
    assert seen == [NEW_TOKEN]


async def test_a_url_encoded_ticket_is_sent_intact(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    ticket = "eyJhbGciOiJSUzI1NiJ9.eyJzaWQiOiJzaXRfMSJ9.c2ln+/=&x"
    fapi.reply(200, sign_in_envelope(), headers={"Authorization": NEW_TOKEN})
    async with make_clerk(frontend_api_url=fapi.url) as clerk:
        await clerk.sign_in_with_ticket(ticket)
    assert fapi.last.form == [("strategy", "ticket"), ("ticket", ticket)]


def _reply_503(fapi: FakeFrontendAPI) -> None:
    fapi.reply(503, payloads.clerk_errors("service_unavailable"), headers={"Retry-After": "0"})


def _reply_500(fapi: FakeFrontendAPI) -> None:
    fapi.reply(500, payloads.clerk_errors("internal_clerk_error"))


def _reply_429(fapi: FakeFrontendAPI) -> None:
    fapi.reply(429, payloads.clerk_errors("too_many_requests"), headers={"Retry-After": "0"})


@pytest.mark.parametrize(
    ("script", "error_type"),
    [
        (_reply_503, ServerError),
        (_reply_500, ServerError),
        (_reply_429, RateLimitError),
        (FakeFrontendAPI.drop_connection, APIConnectionError),
    ],
    ids=["503", "500", "429", "dropped"],
)
async def test_never_retried_whatever_the_failure(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk, script: Any, error_type: type[Exception]
) -> None:
    """A ticket works once: a lost answer may mean it was used, so nothing is sent again."""
    script(fapi)
    for _ in range(3):  # what a retry would get
        fapi.reply(200, sign_in_envelope(), headers={"Authorization": NEW_TOKEN})
    async with make_clerk(frontend_api_url=fapi.url, max_retries=3) as clerk:
        with pytest.raises(error_type) as caught:
            await clerk.sign_in_with_ticket(TICKET)
        assert clerk.client_token is None
    assert len(fapi.requests) == 1
    assert caught.value.retries_taken == 0


@pytest.mark.parametrize(
    ("code", "long_message"),
    [
        ("ticket_expired", "This ticket has expired and cannot be used anymore."),
        ("ticket_invalid", "This ticket is invalid."),
        ("ticket_already_used", "This sign in token has already been used."),
        ("sign_in_token_revoked", "This sign in token has been revoked."),
    ],
)
async def test_clerk_codes_are_kept_on_typed_errors(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk, code: str, long_message: str
) -> None:
    fapi.reply(400, payloads.clerk_errors(code, "ticket problem", long_message))
    async with make_clerk(frontend_api_url=fapi.url) as clerk:
        with pytest.raises(BadRequestError) as caught:
            await clerk.sign_in_with_ticket(TICKET)
    error = caught.value
    assert (error.status, error.code, error.long_message) == (400, code, long_message)
    assert error.clerk_trace_id == "trace_abc123"
    assert code in str(error)
    assert "sign_in_with_ticket" in str(error)


async def test_native_api_disabled_says_how_to_fix_it(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    fapi.reply(
        400,
        payloads.clerk_errors(
            "native_api_disabled", "Native API disabled", "The Native API is disabled."
        ),
    )
    async with make_clerk(frontend_api_url=fapi.url) as clerk:
        with pytest.raises(BadRequestError) as caught:
            await clerk.sign_in_with_ticket(TICKET)
    assert caught.value.code == "native_api_disabled"
    text = str(caught.value)
    assert "enable the Native API" in text
    assert "Clerk dashboard" in text


@pytest.mark.parametrize("ticket", ["", "   ", "\t\n"])
async def test_an_empty_ticket_is_refused_before_any_request(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk, ticket: str
) -> None:
    async with make_clerk(frontend_api_url=fapi.url) as clerk:
        with pytest.raises(ValueError, match="ticket"):
            await clerk.sign_in_with_ticket(ticket)
        with pytest.raises(TypeError, match="ticket must be a str"):
            await clerk.sign_in_with_ticket(None)
    assert fapi.requests == []


async def test_the_ticket_never_appears_in_errors_reprs_or_logs(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk, caplog: pytest.LogCaptureFixture
) -> None:
    """Even when the server quotes it back (a proxy's error page, a verbose error)."""
    caplog.set_level(logging.DEBUG)
    fapi.reply(
        400,
        payloads.clerk_errors(
            "ticket_invalid",
            f"ticket {TICKET} is invalid",
            f"The ticket {TICKET} is invalid.",
            meta={"ticket": TICKET},
        ),
        headers={"X-Echo": TICKET},
    )
    fapi.reply(
        502, body=f"<html>bad gateway for ticket={TICKET}</html>".encode(), content_type="text/html"
    )
    fapi.reply(200, sign_in_envelope(), headers={"Authorization": NEW_TOKEN})
    texts: list[str] = []
    async with make_clerk(frontend_api_url=fapi.url) as clerk:
        for _ in range(2):
            with pytest.raises(Exception) as caught:  # noqa: PT011 - any error: its text counts
                await clerk.sign_in_with_ticket(TICKET)
            error = caught.value
            texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
            texts += [repr(getattr(error, "errors", "")), repr(getattr(error, "headers", ""))]
            texts += [repr(getattr(error, "meta", "")), repr(getattr(error, "body_excerpt", ""))]
        envelope = await clerk.sign_in_with_ticket(TICKET)
        texts += [repr(envelope), repr(clerk)]
    texts.append(caplog.text)
    assert len(fapi.requests) == 3
    for text in texts:
        assert TICKET not in text
        assert NEW_TOKEN not in text


# -- end to end, on the emulator -------------------------------------------------------------------


def _claims(fapi: FrontendAPIEmulator, token: str) -> dict[str, Any]:
    keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(fapi.jwks()).keys}
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["RS256"], issuer=fapi.url, options={"verify_aud": False}
    )
    return claims


async def test_from_a_ticket_to_a_session_token(make_clerk: MakeClerk) -> None:
    async with FrontendAPIEmulator() as fapi:
        user = fapi.create_user(email="jane+clerk_test@example.com")
        ticket = fapi.create_sign_in_token(user)
        async with make_clerk(publishable_key=fapi.publishable_key) as clerk:
            envelope = await clerk.sign_in_with_ticket(ticket)
            session_id = envelope.response.created_session_id
            assert session_id is not None
            token = await clerk.get_token(session_id)
            device_token = clerk.client_token
        claims = _claims(fapi, token)
        assert (claims["sid"], claims["sub"]) == (session_id, user.id)
        assert device_token
        assert fapi.session(session_id).status == "active"
        assert fapi.sign_in_token(ticket).status == "accepted"
        # The device's token is the one the emulator knows for the new client.
        assert envelope.client is not None
        assert fapi.client_record(envelope.client.id).current_token == device_token


async def test_a_second_session_on_the_same_device(make_clerk: MakeClerk) -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in(fapi.create_user(first_name="Ravi"))
        jane = fapi.create_user(first_name="Jane")
        async with make_clerk(frontend_api_url=fapi.url, client_token=device.client_token) as clerk:
            envelope = await clerk.sign_in_with_ticket(fapi.create_sign_in_token(jane))
            assert clerk.client_token != device.client_token  # a sign-in rotates it
            assert envelope.client is not None
            assert envelope.client.id == device.client_id
            assert {s.id for s in envelope.client.sessions} == {
                device.session_id,
                envelope.response.created_session_id,
            }


async def test_emulator_errors_keep_their_codes(make_clerk: MakeClerk) -> None:
    async with FrontendAPIEmulator() as fapi:
        user = fapi.create_user()
        used = fapi.create_sign_in_token(user)
        expiring = fapi.create_sign_in_token(user, expires_in_seconds=60)
        async with make_clerk(frontend_api_url=fapi.url) as clerk:
            await clerk.sign_in_with_ticket(used)
        fapi.clock.advance(61)
        for ticket, code in [
            (used, "ticket_already_used"),
            (expiring, "ticket_expired"),
            ("not-a-ticket", "ticket_invalid"),
        ]:
            async with make_clerk(frontend_api_url=fapi.url, max_retries=2) as clerk:
                with pytest.raises(BadRequestError) as caught:
                    await clerk.sign_in_with_ticket(ticket)
                assert clerk.client_token is None
            assert caught.value.code == code
        sign_ins = [r for r in fapi.requests if r.operation == "sign_in_with_ticket"]
        assert [r.status for r in sign_ins] == [200, 400, 400, 400]  # nothing retried


async def test_emulator_native_api_disabled(make_clerk: MakeClerk) -> None:
    async with FrontendAPIEmulator(native_api_disabled=True) as fapi:
        ticket = fapi.create_sign_in_token(fapi.create_user())
        async with make_clerk(frontend_api_url=fapi.url) as clerk:
            with pytest.raises(BadRequestError) as caught:
                await clerk.sign_in_with_ticket(ticket)
        assert caught.value.code == "native_api_disabled"
        assert "enable the Native API" in str(caught.value)
        assert fapi.sign_in_token(ticket).status == "pending"  # still usable once enabled
