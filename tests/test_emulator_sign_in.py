"""Signing in without a phone on ``FrontendAPIEmulator`` (issue #13 item 6, fapi-protocol §13).

The Backend API routes (create and revoke a sign-in token, behind ``fapi.secret_key``), the
ticket sign-in of the Frontend API (``POST /v1/client/sign_ins``, native auth), single use,
expiry on the emulator's clock, the ``native_api_disabled`` switch and the request log's
redaction of tickets and of the secret key. Requests go over real HTTP on 127.0.0.1, mostly raw
(aiohttp), so each rule is shown exactly as it is on the wire; a few go through the SDK.

The response shapes are checked against ``fapi-sign-in.yml`` and ``bapi-sign-in-tokens.yml`` in
``test_emulator_conformance.py``; here we check the behaviour.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
import attrs
import jwt
import pytest
from multidict import CIMultiDict

from clerk_sessions import BadRequestError, ClerkSessions
from clerk_sessions.testing import (
    STALE_CLIENT_TOKEN_GRACE,
    FrontendAPIEmulator,
    SignedIn,
    UserRecord,
)

pytestmark = pytest.mark.anyio

DAY = 86_400
SIGN_INS = "/v1/client/sign_ins"
CANARY_TICKET = "canary-TICKET-3c9d"
CANARY_KEY = "sk_test_canaryWRONGKEY0000000000000000000000000"


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[FrontendAPIEmulator]:
    """One emulator for tests that only add their own users, tickets and devices."""
    with FrontendAPIEmulator() as fapi:
        yield fapi


@attrs.frozen
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: Any

    @property
    def code(self) -> str | None:
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        return errors[0]["code"] if errors else None

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict)
        error: dict[str, Any] = self.body["errors"][0]
        return error


async def request(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    json: Any = None,
    data: bytes | None = None,
    method: str = "POST",
) -> Answer:
    """One request exactly as given (aiohttp adds no Authorization of its own)."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, url, headers=dict(headers or {}), data=form or data, json=json
        ) as response,
    ):
        if response.content_type == "application/json":
            body = await response.json()
        else:
            body = await response.text()
        return Answer(response.status, CIMultiDict(response.headers), body)


async def sign_in_raw(
    fapi: FrontendAPIEmulator,
    form: Mapping[str, str],
    *,
    authorization: str | None = "",
    query: str = "_is_native=1",
) -> Answer:
    """``POST /v1/client/sign_ins`` (``authorization=None``: no header at all)."""
    headers = {} if authorization is None else {"Authorization": authorization}
    url = f"{fapi.url}{SIGN_INS}?{query}" if query else f"{fapi.url}{SIGN_INS}"
    return await request(url, headers=headers, form=form)


async def sign_in_with(
    fapi: FrontendAPIEmulator, ticket: str, *, authorization: str = ""
) -> Answer:
    return await sign_in_raw(
        fapi, {"strategy": "ticket", "ticket": ticket}, authorization=authorization
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_token(
    fapi: FrontendAPIEmulator,
    body: Any,
    *,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """``POST {backend_api_url}/v1/sign_in_tokens`` with a JSON body (the secret key by default)."""
    return await request(
        f"{fapi.backend_api_url}/v1/sign_in_tokens",
        headers=bearer(fapi.secret_key) if headers is None else headers,
        json=body,
    )


async def revoke_token(
    fapi: FrontendAPIEmulator, token_id: str, *, headers: Mapping[str, str] | None = None
) -> Answer:
    return await request(
        f"{fapi.backend_api_url}/v1/sign_in_tokens/{token_id}/revoke",
        headers=bearer(fapi.secret_key) if headers is None else headers,
    )


async def get_client(fapi: FrontendAPIEmulator, client_token: str) -> Answer:
    """``GET /v1/client`` with ``client_token``: whether the token works, and its client."""
    return await request(
        f"{fapi.url}/v1/client?_is_native=1",
        headers={"Authorization": client_token},
        method="GET",
    )


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def session_ids(answer: Answer) -> list[str]:
    return [session["id"] for session in answer.body["client"]["sessions"]]


# -- the secret key and the Backend API's address --------------------------------------------------


def test_the_secret_key_is_a_random_sk_test_key_of_each_emulator() -> None:
    with FrontendAPIEmulator() as one, FrontendAPIEmulator() as other:
        assert re.fullmatch(r"sk_test_[A-Za-z0-9]{42}", one.secret_key)
        assert one.secret_key != other.secret_key
        assert one.secret_key not in repr(one)
        assert repr(one) == f"<FrontendAPIEmulator {one.url}>"


async def test_the_backend_api_lives_under_bapi_with_its_v1_routes_below(
    emulator: FrontendAPIEmulator,
) -> None:
    """``backend_api_url`` is Clerk's ``https://api.clerk.com``; ``clerk-backend-api`` takes
    ``server_url=backend_api_url + "/v1"`` and posts to ``{server_url}/sign_in_tokens``."""
    assert emulator.backend_api_url == f"{emulator.url}/bapi"
    user = emulator.create_user()
    answer = await create_token(emulator, {"user_id": user.id})
    assert answer.status == 200
    elsewhere = await request(
        f"{emulator.url}/v1/sign_in_tokens", headers=bearer(emulator.secret_key)
    )
    assert (elsewhere.status, elsewhere.code) == (404, "resource_not_found")


# -- creating a sign-in token ----------------------------------------------------------------------


async def test_creating_a_sign_in_token_answers_clerks_pending_token_object() -> None:
    async with FrontendAPIEmulator() as fapi:
        fapi.clock.freeze(1_800_000_000)
        user = fapi.create_user()
        answer = await create_token(fapi, {"user_id": user.id, "expires_in_seconds": 300})
        url = fapi.url

    assert answer.status == 200
    body = answer.body
    assert set(body) == {
        "object", "id", "status", "user_id", "token", "url", "created_at", "updated_at",
    }  # fmt: skip
    assert (body["object"], body["status"], body["user_id"]) == (
        "sign_in_token",
        "pending",
        user.id,
    )
    assert body["id"].startswith("sit_")
    assert body["created_at"] == body["updated_at"] == 1_800_000_000_000
    assert body["url"] == f"{url}/v1/tickets/accept?ticket={body['token']}"
    # Like Clerk's, the token is a JWT naming the sign-in token and its expiry.
    assert claims(body["token"]) == {
        "exp": 1_800_000_300,
        "iid": "ins_emulator",
        "sid": body["id"],
        "st": "sign_in_token",
    }
    record = fapi.sign_in_token(body["id"])
    assert (record.status, record.expire_at) == ("pending", 1_800_000_300)
    assert fapi.sign_in_token(body["token"]) is record


async def test_expires_in_seconds_defaults_to_thirty_days(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user()
    for body in ({"user_id": user.id}, {"user_id": user.id, "expires_in_seconds": None}):
        answer = await create_token(emulator, body)
        record = emulator.sign_in_token(answer.body["id"])
        assert record.expire_at - record.created_at == 30 * DAY


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "authorization_header_format_invalid"),
        ({"Authorization": ""}, "authorization_header_format_invalid"),
        ({"Authorization": "Bearer "}, "authorization_header_format_invalid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "authorization_header_format_invalid"),
        ({"Authorization": "SECRET"}, "authorization_header_format_invalid"),  # key, no Bearer
        (bearer(CANARY_KEY), "clerk_key_invalid"),
    ],
    ids=["absent", "empty", "bearer-only", "basic", "no-scheme", "wrong-key"],
)
async def test_the_backend_api_needs_bearer_and_this_emulators_secret_key(
    emulator: FrontendAPIEmulator, headers: dict[str, str], code: str
) -> None:
    user = emulator.create_user()
    if headers.get("Authorization") == "SECRET":
        headers = {"Authorization": emulator.secret_key}
    created = await create_token(emulator, {"user_id": user.id}, headers=headers)
    pending = emulator.sign_in_token(emulator.create_sign_in_token(user))
    revoked = await revoke_token(emulator, pending.id, headers=headers)

    for answer in (created, revoked):
        assert (answer.status, answer.code) == (401, code)
        assert set(answer.error) >= {"code", "message", "long_message"}
        assert answer.body["clerk_trace_id"]
    assert pending.status == "pending"  # nothing happened


async def test_the_publishable_key_is_not_a_secret_key(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user()
    answer = await create_token(
        emulator, {"user_id": user.id}, headers=bearer(emulator.publishable_key)
    )
    assert (answer.status, answer.code) == (401, "clerk_key_invalid")
    message = (
        "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key is correct."
    )
    assert answer.error["message"] == answer.error["long_message"] == message


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"user_id": "user_missing"}, 404, "resource_not_found", "user_id"),
        ({}, 422, "form_param_missing", "user_id"),
        ({"user_id": "USER", "expires_in_seconds": 0}, 422, "form_param_value_invalid", None),
        ({"user_id": "USER", "expires_in_seconds": "60"}, 422, "form_param_value_invalid", None),
        ({"user_id": "USER", "expires_in_seconds": True}, 422, "form_param_value_invalid", None),
        ({"user_id": 7}, 422, "form_param_value_invalid", "user_id"),
        ({"user_id": "USER", "expires_in": 60}, 422, "form_param_unknown", "expires_in"),
        ({"user_id": "USER", "org_id": "org_missing"}, 404, "resource_not_found", None),
        ({"user_id": "USER", "org_id": "OTHER"}, 403, "not_a_member_in_organization", None),
        ([{"user_id": "USER"}], 400, "request_body_invalid", None),
    ],
    ids=[
        "unknown-user",
        "no-user-id",
        "zero-lifetime",
        "lifetime-string",
        "lifetime-bool",
        "user-id-number",
        "unknown-field",
        "unknown-org",
        "not-a-member",
        "not-an-object",
    ],
)
async def test_creating_refuses_what_clerk_refuses(
    emulator: FrontendAPIEmulator,
    body: Any,
    status: int,
    code: str,
    param: str | None,
) -> None:
    user = emulator.create_user()
    other = emulator.create_organization(f"Other {user.id}")

    def fill(value: Any) -> Any:
        if isinstance(value, list):
            return [fill(item) for item in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return (
            {"USER": user.id, "OTHER": other.id}.get(value, value)
            if isinstance(value, str)
            else value
        )

    before = len(emulator.requests)
    answer = await create_token(emulator, fill(body))
    assert (answer.status, answer.code) == (status, code)
    if param is not None:
        assert answer.error["meta"]["param_name"] == param
    assert emulator.requests[before].operation == "create_sign_in_token"


async def test_a_body_that_is_not_json_is_unsupported_or_invalid(
    emulator: FrontendAPIEmulator,
) -> None:
    url = f"{emulator.backend_api_url}/v1/sign_in_tokens"
    key = bearer(emulator.secret_key)
    as_form = await request(url, headers=key, form={"user_id": "user_x"})
    assert (as_form.status, as_form.code) == (415, "unsupported_content_type")
    broken = await request(
        url, headers={**key, "Content-Type": "application/json"}, data=b'{"user_id": '
    )
    assert (broken.status, broken.code) == (400, "request_body_invalid")


async def test_a_token_made_for_an_organization_signs_in_to_it(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user()
    org = emulator.create_organization(f"Acme {user.id}", members={user.id: "org:member"})
    created = await create_token(emulator, {"user_id": user.id, "org_id": org.id})
    by_api = await sign_in_with(emulator, created.body["token"])
    by_helper = await sign_in_with(emulator, emulator.create_sign_in_token(user, org_id=org.slug))
    for answer in (by_api, by_helper):
        session_id = answer.body["response"]["created_session_id"]
        assert emulator.session(session_id).last_active_organization_id == org.id


# -- revoking --------------------------------------------------------------------------------------


async def test_revoking_a_pending_token_makes_it_unusable(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user()
    created = await create_token(emulator, {"user_id": user.id})
    token_id, ticket = created.body["id"], created.body["token"]

    revoked = await revoke_token(emulator, token_id)
    assert revoked.status == 200
    assert (revoked.body["id"], revoked.body["status"]) == (token_id, "revoked")
    assert "token" not in revoked.body  # the credential is handed out once, at creation
    assert emulator.sign_in_token(token_id).status == "revoked"

    refused = await sign_in_with(emulator, ticket)
    assert (refused.status, refused.code) == (400, "ticket_invalid")
    assert "Authorization" not in refused.headers
    again = await revoke_token(emulator, token_id)
    assert (again.status, again.code) == (400, "sign_in_token_cannot_be_revoked_code")
    assert "its status is revoked" in again.error["long_message"]


async def test_a_used_token_cannot_be_revoked_and_unknown_ones_are_404(
    emulator: FrontendAPIEmulator,
) -> None:
    ticket = emulator.create_sign_in_token(emulator.create_user())
    assert (await sign_in_with(emulator, ticket)).status == 200
    used = await revoke_token(emulator, emulator.sign_in_token(ticket).id)
    assert (used.status, used.code) == (400, "sign_in_token_cannot_be_revoked_code")
    assert "its status is accepted" in used.error["long_message"]
    assert emulator.sign_in_token(ticket).status == "accepted"
    missing = await revoke_token(emulator, "sit_missing")
    assert (missing.status, missing.code) == (404, "resource_not_found")


# -- the ticket sign-in ----------------------------------------------------------------------------


async def test_an_empty_authorization_signs_in_on_a_new_client(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user(first_name="Tia", email="tia+clerk_test@example.com")
    ticket = emulator.create_sign_in_token(user)

    answer = await sign_in_with(emulator, ticket)

    assert answer.status == 200
    sign_in, client = answer.body["response"], answer.body["client"]
    assert (sign_in["object"], sign_in["status"]) == ("sign_in_attempt", "complete")
    assert sign_in["identifier"] == "tia+clerk_test@example.com"
    assert sign_in["user_data"]["first_name"] == "Tia"
    assert sign_in["first_factor_verification"]["strategy"] == "ticket"
    session_id = sign_in["created_session_id"]
    assert session_ids(answer) == [session_id]
    assert client["last_active_session_id"] == session_id
    assert client["last_authentication_strategy"] == "ticket"
    assert client["sessions"][0]["user"]["id"] == user.id
    assert emulator.session(session_id).status == "active"
    assert emulator.sign_in_token(ticket).status == "accepted"
    # The new client's token arrives in the Authorization header, and it works.
    client_token = answer.headers["Authorization"]
    assert client_token
    mine = await get_client(emulator, client_token)
    assert (mine.status, mine.body["response"]["id"]) == (200, client["id"])
    assert emulator.client_record(client["id"]).current_token == client_token


async def test_a_client_token_signs_in_on_that_client_and_adds_a_session(
    emulator: FrontendAPIEmulator,
) -> None:
    """Multi-session: a second user on the same device, the first one stays signed in."""
    device = emulator.sign_in(emulator.create_user(first_name="First"))
    second = emulator.create_user(first_name="Second")

    answer = await sign_in_with(
        emulator, emulator.create_sign_in_token(second), authorization=device.client_token
    )

    assert answer.status == 200
    new_session = answer.body["response"]["created_session_id"]
    assert answer.body["client"]["id"] == device.client_id
    assert session_ids(answer) == [device.session_id, new_session]
    assert answer.body["client"]["last_active_session_id"] == new_session
    assert emulator.session(new_session).user_id == second.id
    assert emulator.session(device.session_id).status == "active"
    # The sign-in hands the device a new client token; the old one is only stale.
    rotated = answer.headers["Authorization"]
    assert rotated != device.client_token
    assert emulator.requests[-1].token_generation == 2
    for token in (rotated, device.client_token):
        assert (await get_client(emulator, token)).body["response"]["id"] == device.client_id


async def test_with_stale_tokens_rejected_the_token_before_the_sign_in_dies() -> None:
    async with FrontendAPIEmulator(reject_stale_client_tokens=True) as fapi:
        device = fapi.sign_in()
        answer = await sign_in_with(
            fapi, fapi.create_sign_in_token(fapi.create_user()), authorization=device.client_token
        )
        fapi.clock.advance(STALE_CLIENT_TOKEN_GRACE + 1)
        stale = await get_client(fapi, device.client_token)
        current = await get_client(fapi, answer.headers["Authorization"])
    assert (stale.status, stale.code) == (401, "authentication_invalid")
    assert current.status == 200


async def test_a_ticket_works_once(emulator: FrontendAPIEmulator) -> None:
    ticket = emulator.create_sign_in_token(emulator.create_user())
    first = await sign_in_with(emulator, ticket)
    device_token = first.headers["Authorization"]

    again_new = await sign_in_with(emulator, ticket)
    again_same = await sign_in_with(emulator, ticket, authorization=device_token)

    assert first.status == 200
    for answer in (again_new, again_same):
        assert (answer.status, answer.code) == (400, "ticket_already_used")
        assert answer.error["long_message"] == (
            "This sign in token has already been used. Each token can only be used once."
        )
        assert "Authorization" not in answer.headers  # no client made, no token rotated
    device = await get_client(emulator, device_token)
    assert len(device.body["response"]["sessions"]) == 1


async def test_a_ticket_expires_on_the_emulator_clock() -> None:
    async with FrontendAPIEmulator() as fapi:
        user = fapi.create_user()
        short = fapi.create_sign_in_token(user, 60)
        longer = fapi.create_sign_in_token(user, 61)
        fapi.clock.advance(60)
        expired = await sign_in_with(fapi, short)
        still_good = await sign_in_with(fapi, longer)
    assert (expired.status, expired.code) == (400, "ticket_expired")
    assert expired.error["long_message"] == "This ticket has expired and cannot be used anymore."
    assert fapi.sign_in_token(short).status == "pending"  # expired is not a status of its own
    assert still_good.status == 200


async def test_an_expired_token_made_over_the_backend_api_expires_too() -> None:
    async with FrontendAPIEmulator() as fapi:
        user = fapi.create_user()
        created = await create_token(fapi, {"user_id": user.id, "expires_in_seconds": 5})
        fapi.clock.advance(5)
        answer = await sign_in_with(fapi, created.body["token"])
    assert (answer.status, answer.code) == (400, "ticket_expired")


async def test_unknown_tickets_are_invalid(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in()
    session_jwt = emulator.session(device.session_id).last_active_token
    assert session_jwt is not None
    with FrontendAPIEmulator() as other:
        foreign = other.create_sign_in_token(other.create_user())
    for ticket in ("not-a-ticket", session_jwt, foreign, device.client_token):
        answer = await sign_in_with(emulator, ticket)
        assert (answer.status, answer.code) == (400, "ticket_invalid"), ticket[:12]
        assert answer.error["long_message"] == (
            "This ticket is invalid. Make sure you're using a valid ticket generated by Clerk."
        )


@pytest.mark.parametrize(
    ("form", "status", "code", "param"),
    [
        (
            {"strategy": "password", "identifier": "x@example.com", "password": "pw"},
            422,
            "form_param_value_invalid",
            "strategy",
        ),
        ({"strategy": "email_code", "identifier": "x@example.com"}, 422,
         "form_param_value_invalid", "strategy"),
        ({"ticket": "TICKET"}, 422, "form_param_missing", "strategy"),
        ({"strategy": "ticket"}, 422, "form_param_missing", "ticket"),
        ({"strategy": "ticket", "ticket": ""}, 422, "form_param_missing", "ticket"),
        ({"strategy": "ticket", "ticket": "TICKET", "remember": "1"}, 422,
         "form_param_unknown", "remember"),
    ],
    ids=["password", "email-code", "no-strategy", "no-ticket", "empty-ticket", "unknown-field"],
)  # fmt: skip
async def test_only_the_ticket_strategy_signs_in_and_forms_follow_clerks_rules(
    emulator: FrontendAPIEmulator,
    form: dict[str, str],
    status: int,
    code: str,
    param: str,
) -> None:
    ticket = emulator.create_sign_in_token(emulator.create_user())
    sent = {name: ticket if value == "TICKET" else value for name, value in form.items()}
    answer = await sign_in_raw(emulator, sent)
    assert (answer.status, answer.code, answer.error["meta"]["param_name"]) == (
        status,
        code,
        param,
    )
    assert emulator.sign_in_token(ticket).status == "pending"


@pytest.mark.parametrize(
    ("authorization", "query", "status", "code"),
    [
        (None, "_is_native=1", 401, "request_header_missing"),
        ("not-a-client-token", "_is_native=1", 401, "authentication_invalid"),
        ("", "", 401, "authentication_invalid"),  # not native: the emulator is native only
    ],
    ids=["no-authorization", "unknown-client-token", "not-native"],
)
async def test_the_sign_in_follows_the_native_rules(
    emulator: FrontendAPIEmulator,
    authorization: str | None,
    query: str,
    status: int,
    code: str,
) -> None:
    ticket = emulator.create_sign_in_token(emulator.create_user())
    answer = await sign_in_raw(
        emulator, {"strategy": "ticket", "ticket": ticket}, authorization=authorization, query=query
    )
    assert (answer.status, answer.code) == (status, code)
    assert emulator.sign_in_token(ticket).status == "pending"  # the ticket is not spent


async def test_a_second_factor_user_is_signed_in_completely_with_a_fresh_fva(
    emulator: FrontendAPIEmulator,
) -> None:
    """A ticket is made with the secret key: the emulator treats it as both factors."""
    user = emulator.create_user(phone="+12015550123", second_factors=("totp",))
    answer = await sign_in_with(emulator, emulator.create_sign_in_token(user))
    assert answer.body["response"]["status"] == "complete"
    assert answer.body["client"]["sessions"][0]["factor_verification_age"] == [0, 0]


# -- the helper, and the SDK on top ----------------------------------------------------------------


def test_create_sign_in_token_refuses_impossible_set_ups(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user()
    with pytest.raises(ValueError, match="no user"):
        emulator.create_sign_in_token("user_missing")
    with pytest.raises(ValueError, match="at least 1"):
        emulator.create_sign_in_token(user, 0)
    other = emulator.create_organization(f"Elsewhere {user.id}")
    with pytest.raises(ValueError, match="not a member"):
        emulator.create_sign_in_token(user, org_id=other.id)
    with pytest.raises(KeyError):
        emulator.sign_in_token("sit_missing")


def test_the_sdk_signs_a_new_device_in_with_a_helper_made_ticket(
    emulator: FrontendAPIEmulator,
) -> None:
    user: UserRecord = emulator.create_user()
    seen: list[str | None] = []
    with ClerkSessions(frontend_api_url=emulator.url, on_client_token=seen.append) as clerk:
        envelope = clerk.sign_in_with_ticket(emulator.create_sign_in_token(user, 300))
        session_id = envelope.response.created_session_id
        assert session_id is not None
        token = clerk.create_session_token(session_id)
        client_token = clerk.client_token
    assert claims(token.jwt)["sub"] == user.id
    assert client_token is not None
    assert seen[-1] == client_token
    assert emulator.client_record(emulator.session(session_id).client_id).current_token == (
        client_token
    )


def test_the_sdk_adds_a_session_to_its_device(emulator: FrontendAPIEmulator) -> None:
    device: SignedIn = emulator.sign_in()
    with emulator.sync_client(device) as clerk:
        envelope = clerk.sign_in_with_ticket(emulator.create_sign_in_token(emulator.create_user()))
        assert envelope.client is not None
        assert [s.id for s in envelope.client.sessions][:1] == [device.session_id]
        assert len(envelope.client.sessions) == 2
        assert clerk.client_token != device.client_token


# -- native_api_disabled ---------------------------------------------------------------------------


async def test_with_the_native_api_disabled_every_native_request_is_400() -> None:
    async with FrontendAPIEmulator(native_api_disabled=True) as fapi:
        assert fapi.native_api_disabled is True
        user = fapi.create_user()
        device = fapi.sign_in(user)
        ticket = fapi.create_sign_in_token(user)
        answers = [
            await sign_in_with(fapi, ticket),
            await sign_in_with(fapi, ticket, authorization=device.client_token),
            await get_client(fapi, device.client_token),
            await request(f"{fapi.url}/v1/client?_is_native=true", headers={"Authorization": ""}),
        ]
        async with fapi.async_client(device, max_retries=0) as clerk:
            with pytest.raises(BadRequestError) as caught:
                await clerk.get_session(device.session_id)
        # Not native requests: the JWKS and the Backend API still answer.
        jwks = await request(fapi.jwks_url, method="GET")
        created = await create_token(fapi, {"user_id": user.id})

    for answer in answers:
        assert (answer.status, answer.code) == (400, "native_api_disabled")
        assert answer.error["message"] == "Native API disabled"
        assert answer.error["long_message"] == (
            "The Native API is disabled for this instance. Visit the Clerk Dashboard to enable it."
        )
    assert (caught.value.status, caught.value.code) == (400, "native_api_disabled")
    assert fapi.sign_in_token(ticket).status == "pending"
    assert (jwks.status, created.status) == (200, 200)


async def test_native_api_disabled_is_an_attribute_a_test_flips() -> None:
    async with FrontendAPIEmulator() as fapi:
        ticket = fapi.create_sign_in_token(fapi.create_user())
        fapi.native_api_disabled = True
        off = await sign_in_with(fapi, ticket)
        fapi.native_api_disabled = False
        on = await sign_in_with(fapi, ticket)
    assert (off.status, off.code) == (400, "native_api_disabled")
    assert on.status == 200


# -- the request log: tickets and the secret key are credentials -----------------------------------


async def test_the_log_redacts_tickets_and_the_secret_key(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FrontendAPIEmulator() as fapi:
        user = fapi.create_user()
        created = await create_token(fapi, {"user_id": user.id})
        ticket = created.body["token"]
        await create_token(fapi, {"user_id": user.id}, headers=bearer(CANARY_KEY))
        signed_in = await sign_in_with(fapi, ticket)
        await sign_in_with(fapi, CANARY_TICKET)
        await request(f"{fapi.url}/v1/tickets/accept?ticket={ticket}", method="GET")
        await revoke_token(fapi, fapi.sign_in_token(fapi.create_sign_in_token(user)).id)
        secret_key = fapi.secret_key
        shown = repr(fapi) + repr(fapi.requests) + repr(fapi.sign_in_token(ticket))

    assert [(r.operation, r.status) for r in fapi.requests] == [
        ("create_sign_in_token", 200),
        ("create_sign_in_token", 401),
        ("sign_in_with_ticket", 200),
        ("sign_in_with_ticket", 400),
        (None, 404),
        ("revoke_sign_in_token", 200),
    ]
    assert fapi.requests[0].form == {"user_id": user.id}
    assert fapi.requests[0].headers["Authorization"] == "[redacted]"
    assert fapi.requests[2].form == {"strategy": "ticket", "ticket": "[redacted]"}
    assert fapi.requests[2].client_id == signed_in.body["client"]["id"]
    assert fapi.requests[3].form["ticket"] == "[redacted]"
    assert fapi.requests[4].query == {"ticket": "[redacted]"}
    output = capfd.readouterr()
    everything = shown + caplog.text + output.out + output.err
    for secret in (secret_key, CANARY_KEY, ticket, CANARY_TICKET):
        assert secret not in everything
