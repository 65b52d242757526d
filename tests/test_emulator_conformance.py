"""The emulator against Clerk's published spec: it must not drift from the documented shapes.

A tour drives every operation through the SDK (successes and Clerk's error cases, a few
transport-level mistakes sent raw) and records every exchange. Every request the emulator saw
and every JSON response it sent is then validated against ``../shared/spec/fapi-sessions.yml``.

A second tour does the same for signing in without a phone (``fapi-protocol.md`` §13): the ticket
sign-in against ``fapi-sign-in.yml`` (``createSignIn``) and the Backend API's sign-in-token routes
against ``bapi-sign-in-tokens.yml``, each with its own allow-list (``SIGN_IN_UNDOCUMENTED``,
``BAPI_UNDOCUMENTED``) of answers Clerk sends that the published document leaves out.

Where the emulator sends a status the spec does not list for an operation, its (status, error
code) must be one of ``UNDOCUMENTED`` below: each is an answer Clerk really sends
(``fapi-protocol.md`` §5, §7b) that the published document leaves out. Its body must still be a
valid ``ClerkErrors``. Likewise every query parameter and form field of a request the emulator
accepts is declared by the spec for its operation or is one of ``UNDOCUMENTED_PARAMETERS``.
"""

from __future__ import annotations

import copy
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import attrs
import orjson
import pytest
from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from clerk_sessions import ClerkAPIError, ClerkSessions
from clerk_sessions._operations import OPERATIONS, SIGN_IN_WITH_TICKET, Operation
from clerk_sessions.testing import FrontendAPIEmulator, SignedIn, UserRecord

from .conftest import spec_missing, spec_path
from .test_contract import SPEC_HOST, nullable_compositions

pytestmark = pytest.mark.spec

# (status, code) → why: answers the emulator may send although an operation's spec omits them.
UNDOCUMENTED: dict[tuple[int, str], str] = {
    (400, "origin_authorization_headers_conflict"): "transport rule, any route (§2, §3)",
    (400, "api_version_invalid"): "transport rule, any route (§2)",
    (400, "native_api_disabled"): (
        "transport rule, any native request while the instance's Native API is off in the "
        "dashboard (§3, §13; errors.json NativeAPIDisabled, 400)"
    ),
    (404, "resource_not_found"): "unknown session on the reverification routes",
    (415, "unsupported_content_type"): "a non-form body, any route (§4)",
    (422, "form_param_unknown"): "form rules, any route (§4)",
    (422, "form_param_duplicate"): "form rules, any route (§4)",
    (422, "form_param_missing"): "form rules, any route (§4)",
    (422, "missing_expired_token"): (
        "/tokens without the previous session JWT when the instance demands it: Clerk's 2026 "
        "incidents and Session Minter instances (§5 table, §7, §7b); a clerk-js code that "
        "errors.json and the spec leave out"
    ),
    (422, "form_param_value_invalid"): (
        "/tokens with a token / expired_token that is not a session JWT of that session, or a "
        "force_origin that is not true/false (§7b); the spec lists no 422 for /tokens"
    ),
    (429, "too_many_requests"): "rate limiting (injected fault)",
    (503, "service_unavailable"): "an unavailable backend (injected fault)",
}
# (operationId or "*" for any, "query" | "form", name) → why: request parts Clerk's clients send
# that the spec does not declare. Each must show up in the tour (stale entries fail a test).
UNDOCUMENTED_PARAMETERS: dict[tuple[str, str, str], str] = {
    ("*", "query", "_is_native"): "the native API marker, on every request (§2, §3)",
    ("createSessionToken", "query", "expired_token"): (
        "the previous session JWT, clerk-js's retry after 422 missing_expired_token (§7, §7b)"
    ),
    ("createSessionToken", "form", "token"): (
        "the previous session JWT, sent by clients of a Session Minter instance (§7, §7b)"
    ),
    ("createSessionToken", "form", "force_origin"): (
        "force_origin=true beside token on a skip-cache mint (§7, §7b)"
    ),
}
# The spec's Sessions subset lacks /v1/client; its envelope is DeleteSession's {response: Client}.
CLIENT_ROUTES_AS = "/v1/client/sessions"

# createSignIn (fapi-sign-in.yml) declares 200, 307, 400, 403, 404, 409 and 422. The ticket
# errors are 400 (fapi-protocol.md §13: ticket_invalid, ticket_expired, ticket_already_used),
# form errors 422, both declared.
# (status, code) → why: what the emulator may answer on it although the spec omits the status.
# Each must show up in the tour (stale entries fail a test).
SIGN_IN_UNDOCUMENTED: dict[tuple[int, str], str] = {
    (401, "authentication_invalid"): (
        "an Authorization header that is not a client token of this instance, or a request "
        "without _is_native (§3; errors.json InvalidAuthentication, 401)"
    ),
    (401, "request_header_missing"): (
        "a native request without any Authorization header; an empty one is how a first "
        "request asks for a client (§3)"
    ),
    (415, "unsupported_content_type"): "a non-form body (§4)",
}
# The Backend API routes (bapi-sign-in-tokens.yml): create declares 200, 403, 404, 422; revoke
# declares 200, 400, 404.
BAPI_UNDOCUMENTED: dict[tuple[int, str], str] = {
    (401, "authorization_header_format_invalid"): (
        "no 'Authorization: Bearer <key>' header: Clerk answers 401 (errors.json "
        "InvalidAuthorizationHeaderFormat; seen live), while the spec lists only 403 "
        "AuthorizationInvalid"
    ),
    (401, "clerk_key_invalid"): (
        "a Bearer key that is not the instance's secret key: 401 (errors.json "
        "InvalidClerkSecretKey; clerk/clerk-sdk-python#26)"
    ),
    (400, "request_body_invalid"): (
        "a body that is not a JSON object, on create (errors.json InvalidRequestBody, 400)"
    ),
    (415, "unsupported_content_type"): "a body that is not JSON (errors.json, 415)",
}
SIGN_IN_UNDOCUMENTED_PARAMETERS: dict[tuple[str, str, str], str] = {
    ("createSignIn", "query", "_is_native"): (
        "the native API marker (§3): the spec has it only as the ProductionNativeFlag security "
        "scheme, which createSignIn's `security: [{}]` does not list"
    ),
}
BAPI_HOST = "https://api.clerk.com"
"""The Backend API spec's server is ``https://api.clerk.com/v1``: the emulator's ``/bapi`` is its
``https://api.clerk.com``."""


@attrs.frozen
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    content_type: str
    status: int
    response: bytes

    @property
    def operation(self) -> str | None:
        for op in OPERATIONS.values():
            pattern = "^" + re.sub(r"{\w+}", "[^/]+", op.path) + "$"
            if op.method == self.method and re.match(pattern, self.path):
                return op.name
        return None

    def __repr__(self) -> str:  # keep tokens out of assertion messages
        return f"<{self.method} {self.path} -> {self.status}>"


def _raw(
    fapi: FrontendAPIEmulator,
    method: str,
    path: str,
    *,
    query: str = "_is_native=1",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> int:
    """Send what the SDK refuses to send (the emulator must still answer per the spec)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        f"{fapi.url}{path}?{query}", data=body, method=method, headers=headers or {}
    )
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def _expect_error(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClerkAPIError) as caught:
        call(*args, **kwargs)
    return str(caught.value.code)


def _tour(fapi: FrontendAPIEmulator) -> None:
    jane = fapi.create_user(
        email="jane+clerk_test@example.com",
        phone="+12015550100",
        password="correct-horse",
        second_factors=("phone_code", "totp", "backup_code"),
    )
    solo = fapi.create_user(first_name="Solo", email="solo@example.com", password="pw")
    acme = fapi.create_organization("Acme", slug="acme", members={jane.id: "org:admin"})
    fapi.create_organization("Other", slug="other")
    fapi.create_jwt_template(
        "supabase", {"role": "authenticated", "email": "{{user.primary_email_address}}"}
    )
    device = fapi.sign_in(jane, active_organization_id=acme.id)
    second = fapi.sign_in(jane, device=device)
    stranger = fapi.sign_in(solo)
    with fapi.sync_client(device, max_retries=0) as clerk:
        sid = device.session_id
        clerk.get_session(sid)
        assert _expect_error(clerk.get_session, "sess_missing") == "resource_not_found"
        assert _expect_error(clerk.get_session, stranger.session_id) == (
            "action_for_session_not_authorized"
        )
        clerk.touch_session(sid, active_organization_id="acme", intent="select_org")
        clerk.touch_session(sid, intent="focus")
        clerk.touch_session(sid, active_organization_id=None)
        clerk.touch_session(sid, active_organization_id=acme.id)
        assert _expect_error(clerk.touch_session, sid, active_organization_id="other") == (
            "not_a_member_in_organization"
        )
        assert _expect_error(clerk.touch_session, sid, active_organization_id="nope") == (
            "organization_not_found_or_unauthorized"
        )
        assert _expect_error(clerk.touch_session, sid, intent="sideways") == (
            "form_param_value_invalid"
        )
        clerk.create_session_token(sid)
        clerk.create_session_token(sid, organization_id=None)
        clerk.create_session_token(sid, organization_id=acme.id)
        assert _expect_error(clerk.create_session_token, sid, organization_id="other") == (
            "not_a_member_in_organization"
        )
        assert _expect_error(clerk.create_session_token, "sess_missing") == "resource_not_found"
        clerk.create_session_token_with_template(sid, "supabase")
        assert _expect_error(clerk.create_session_token_with_template, sid, "nope") == (
            "resource_not_found"
        )
        _reverification_tour(fapi, clerk, sid, jane)
        clerk.end_session(second.session_id)
        assert _expect_error(clerk.end_session, second.session_id) == "invalid_action_for_session"
        assert _expect_error(clerk.touch_session, second.session_id) == (
            "invalid_action_for_session"
        )
        assert _expect_error(clerk.create_session_token, second.session_id) == (
            "authentication_invalid"
        )
        assert _expect_error(
            clerk.start_session_reverification, second.session_id, level="first_factor"
        ) == ("authentication_invalid")
        clerk.remove_session(second.session_id)
        assert _expect_error(clerk.remove_session, second.session_id) == "resource_not_found"
        clerk.remove_client_sessions_and_retain_cookie()
        fapi.rate_limit("GET /v1/client/sessions/*", retry_after=3)
        assert _expect_error(clerk.get_session, sid) == "too_many_requests"
        fapi.fail("*/tokens", 503)
        assert _expect_error(clerk.create_session_token, sid) == "service_unavailable"
    with ClerkSessions(frontend_api_url=fapi.url, max_retries=0) as signed_out:
        assert _expect_error(signed_out.get_session, sid) == "signed_out"
        assert _expect_error(signed_out.remove_client_sessions_and_retain_cookie) == "signed_out"
    _transport_tour(fapi, device)
    _minting_tour(fapi)


def _reverification_tour(
    fapi: FrontendAPIEmulator, clerk: ClerkSessions, sid: str, user: UserRecord
) -> None:
    assert (
        _expect_error(clerk.prepare_session_reverification_first_factor, sid, strategy="email_code")
        == "session_reverification_missing"
    )
    assert _expect_error(clerk.start_session_reverification, sid, level="everything") == (
        "form_param_value_invalid"
    )
    assert _expect_error(
        clerk.start_session_reverification, "sess_missing", level="first_factor"
    ) == ("resource_not_found")
    clerk.start_session_reverification(sid, level="multi_factor")
    assert (
        _expect_error(
            clerk.prepare_session_reverification_second_factor, sid, strategy="phone_code"
        )
        == "invalid_action_for_session_reverification"
    )
    clerk.prepare_session_reverification_first_factor(sid, strategy="email_code")
    assert (
        _expect_error(
            clerk.attempt_session_reverification_first_factor,
            sid,
            strategy="email_code",
            code="000000",
        )
        == "form_code_incorrect"
    )
    clerk.attempt_session_reverification_first_factor(sid, strategy="email_code", code="424242")
    clerk.prepare_session_reverification_second_factor(sid, strategy="phone_code")
    clerk.attempt_session_reverification_second_factor(sid, strategy="phone_code", code="424242")
    clerk.start_session_reverification(sid, level="first_factor")
    assert (
        _expect_error(
            clerk.attempt_session_reverification_first_factor,
            sid,
            strategy="password",
            password="x",
        )
        == "form_password_incorrect"
    )
    clerk.attempt_session_reverification_first_factor(
        sid, strategy="password", password="correct-horse"
    )
    clerk.start_session_reverification(sid, level="second_factor")
    assert (
        _expect_error(
            clerk.attempt_session_reverification_second_factor, sid, strategy="totp", code="000000"
        )
        == "form_code_incorrect"
    )
    clerk.attempt_session_reverification_second_factor(
        sid, strategy="totp", code=fapi.totp_code(user)
    )
    clerk.start_session_reverification(sid, level="second_factor")
    clerk.attempt_session_reverification_second_factor(
        sid, strategy="backup_code", code=user.backup_codes[0]
    )


def _transport_tour(fapi: FrontendAPIEmulator, device: SignedIn) -> None:
    path = f"/v1/client/sessions/{device.session_id}"
    auth = {"Authorization": device.client_token}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _raw(fapi, "GET", path, headers={**auth, "Origin": "https://app.example"}) == 400
    assert _raw(fapi, "GET", path, query="", headers=auth) == 401
    assert _raw(fapi, "GET", path) == 401  # no Authorization header at all
    assert _raw(fapi, "GET", path, headers={**auth, "Authorization": "not-a-token"}) == 401
    assert _raw(fapi, "POST", f"{path}/end", headers={**auth, **form}, body=b"bogus=1") == 422
    assert (
        _raw(
            fapi,
            "POST",
            f"{path}/touch",
            headers={**auth, **form},
            body=b"intent=focus&intent=focus",
        )
        == 422
    )
    assert _raw(fapi, "POST", f"{path}/verify", headers={**auth, **form}, body=b"") == 422
    assert (
        _raw(
            fapi,
            "POST",
            f"{path}/tokens",
            headers={**auth, "Content-Type": "application/json"},
            body=b"{}",
        )
        == 415
    )
    assert _raw(fapi, "POST", "/v1/client", headers={"Authorization": ""}) == 200
    assert _raw(fapi, "GET", "/v1/client", headers={"Authorization": ""}) == 200
    fapi.native_api_disabled = True
    assert _raw(fapi, "GET", path, headers=auth) == 400
    fapi.native_api_disabled = False


def _minting_tour(fapi: FrontendAPIEmulator) -> None:
    """Clerk's 2026 minting protocol (§7b), sent raw: what the SDK sends depends on its settings
    and its retries; this tour needs each exchange exactly once."""
    device = fapi.sign_in(fapi.create_user(first_name="Mint"))
    tokens = f"/v1/client/sessions/{device.session_id}/tokens"
    auth = {"Authorization": device.client_token}
    form = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
    previous = fapi.session(device.session_id).last_active_token
    assert previous is not None
    fapi.clock.advance(120)  # the seed is usually an expired token
    fapi.require_expired_token = True
    assert _raw(fapi, "POST", tokens, headers=auth) == 422  # missing_expired_token
    seeded_query = urlencode({"_is_native": "1", "expired_token": previous})
    assert _raw(fapi, "POST", tokens, query=seeded_query, headers=auth) == 200
    fapi.require_expired_token = False
    fapi.session_minter = True
    seeded_body = urlencode({"token": previous, "force_origin": "true"}).encode()
    assert _raw(fapi, "POST", tokens, headers=form, body=seeded_body) == 200
    foreign = urlencode({"token": "not-a-session-token"}).encode()
    assert _raw(fapi, "POST", tokens, headers=form, body=foreign) == 422
    fapi.session_minter = False


def _recorder(recorded: list[Exchange]) -> Callable[[web.Request, bytes, web.Response], None]:
    def record(request: web.Request, body: bytes, response: web.Response) -> None:
        assert isinstance(response.body, bytes)
        recorded.append(
            Exchange(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                body,
                request.headers.get("Content-Type", ""),
                response.status,
                response.body,
            )
        )

    return record


@pytest.fixture(scope="module")
def exchanges() -> list[Exchange]:
    recorded: list[Exchange] = []
    with FrontendAPIEmulator(seed=7, on_exchange=_recorder(recorded)) as fapi:
        _tour(fapi)
    return recorded


@pytest.fixture(scope="module")
def documented(spec: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_dict(nullable_compositions(spec))


@pytest.fixture(scope="module")
def widened(spec: dict[str, Any]) -> OpenAPI:
    """The spec plus the ``UNDOCUMENTED`` statuses, each answering ``ClerkErrors``."""
    extended = copy.deepcopy(spec)
    for item in extended["paths"].values():
        for op in item.values():
            for status in sorted({status for status, _ in UNDOCUMENTED}):
                op["responses"].setdefault(
                    str(status), {"$ref": "#/components/responses/ClerkErrors"}
                )
    return OpenAPI.from_dict(nullable_compositions(extended))


def _mock_request(exchange: Exchange) -> MockRequest:
    path = CLIENT_ROUTES_AS if exchange.path == "/v1/client" else exchange.path
    method = "delete" if exchange.path == "/v1/client" else exchange.method.lower()
    return MockRequest(
        SPEC_HOST,
        method,
        path,
        args=exchange.query,
        headers=exchange.headers,
        data=exchange.body or None,
        content_type=exchange.content_type or "application/json",
    )


def test_the_tour_covers_every_operation_with_a_success_and_an_error(
    exchanges: list[Exchange],
) -> None:
    statuses: dict[str | None, set[int]] = {}
    for exchange in exchanges:
        statuses.setdefault(exchange.operation, set()).add(exchange.status)
    for name in OPERATIONS:
        assert 200 in statuses.get(name, set()), f"{name} never succeeded in the tour"
        assert any(s >= 400 for s in statuses[name]), f"{name} never failed in the tour"


def test_every_response_the_emulator_sends_matches_the_spec(
    exchanges: list[Exchange], widened: OpenAPI, documented: OpenAPI, spec: dict[str, Any]
) -> None:
    undocumented_seen: set[tuple[int, str]] = set()
    for exchange in exchanges:
        request = _mock_request(exchange)
        response = MockResponse(
            exchange.response, status_code=exchange.status, content_type="application/json"
        )
        try:
            documented.validate_response(request, response)
        except Exception:
            # Not as documented: an allowed (status, code) with a valid ClerkErrors body.
            widened.validate_response(request, response)
            answer = (exchange.status, _error_code(exchange))
            assert answer in UNDOCUMENTED, f"{exchange!r}: {answer} invalid and not allowed"
            undocumented_seen.add(answer)
    assert {(422, "missing_expired_token"), (422, "form_param_value_invalid")} <= (
        undocumented_seen
    )


def _error_code(exchange: Exchange) -> str:
    return str(orjson.loads(exchange.response)["errors"][0]["code"])


def _declared(spec: dict[str, Any], op: Operation[Any]) -> dict[str, set[str]]:
    """The query parameters and form fields the spec declares for ``op``."""
    item = spec["paths"][op.path]
    described = item[op.method.lower()]
    parameters = [*item.get("parameters", []), *described.get("parameters", [])]
    body = described.get("requestBody", {}).get("content", {})
    form_schema = body.get("application/x-www-form-urlencoded", {}).get("schema", {})
    return {
        "query": {p["name"] for p in parameters if p.get("in") == "query"},
        "form": set(form_schema.get("properties", {})),
    }


def test_every_parameter_the_emulator_accepts_is_in_the_spec_or_allowed(
    exchanges: list[Exchange], spec: dict[str, Any]
) -> None:
    """openapi-core lets unknown query parameters and form fields through: check them here."""
    allowed_seen: set[tuple[str, str, str]] = set()
    for exchange in exchanges:
        if exchange.operation is None or exchange.status >= 400:
            continue
        op = OPERATIONS[exchange.operation]
        declared = _declared(spec, op)
        sent = [("query", name) for name in exchange.query]
        sent += [
            ("form", name) for name, _ in parse_qsl(exchange.body.decode(), keep_blank_values=True)
        ]
        for where, name in sent:
            if name in declared[where]:
                continue
            entry = next(
                (
                    key
                    for key in ((op.operation_id, where, name), ("*", where, name))
                    if key in UNDOCUMENTED_PARAMETERS
                ),
                None,
            )
            assert entry is not None, f"{exchange!r}: {where} {name!r} not in the spec nor allowed"
            allowed_seen.add(entry)
    assert allowed_seen == set(UNDOCUMENTED_PARAMETERS)


def test_the_tour_mints_with_each_of_clerks_2026_seeds(exchanges: list[Exchange]) -> None:
    """The minting exchanges of the tour really happened, with the answers they should get."""
    minted = [e for e in exchanges if e.operation == "create_session_token"]
    codes = {(e.status, _error_code(e)) for e in minted if e.status >= 400}
    assert (422, "missing_expired_token") in codes
    assert any(e.status == 200 and "expired_token" in e.query for e in minted)
    assert any(e.status == 200 and b"force_origin=true" in e.body for e in minted)


def test_every_request_the_emulator_accepts_matches_the_spec(
    exchanges: list[Exchange], documented: OpenAPI
) -> None:
    accepted = [e for e in exchanges if e.status == 200 and e.path != "/v1/client"]
    assert len(accepted) > 20
    for exchange in accepted:
        documented.validate_request(_mock_request(exchange))


def test_the_emulator_rejects_requests_the_spec_rejects(
    exchanges: list[Exchange], documented: OpenAPI
) -> None:
    """Invalid form values the spec forbids are answered with an error, never accepted."""
    invalid = [e for e in exchanges if e.operation is not None and b"level=everything" in e.body]
    assert invalid
    for exchange in invalid:
        with pytest.raises(Exception, match="not valid"):
            documented.validate_request(_mock_request(exchange))
        assert exchange.status == 422


def test_the_check_catches_drift(exchanges: list[Exchange], documented: OpenAPI) -> None:
    """The validation above has teeth: one wrong type deep in a user fails it."""
    exchange = next(e for e in exchanges if e.operation == "get_session" and e.status == 200)
    body = orjson.loads(exchange.response)
    body["response"]["user"]["email_addresses"][0]["verification"]["status"] = 5
    drifted = MockResponse(orjson.dumps(body), status_code=200, content_type="application/json")
    with pytest.raises(Exception, match="not valid"):
        documented.validate_response(_mock_request(exchange), drifted)


# -- signing in without a phone: fapi-sign-in.yml and bapi-sign-in-tokens.yml ------------------


SIGN_INS = SIGN_IN_WITH_TICKET.path
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _sign_in_raw(
    fapi: FrontendAPIEmulator, form: dict[str, str], *, authorization: str | None = ""
) -> int:
    headers = {**FORM} if authorization is None else {**FORM, "Authorization": authorization}
    return _raw(fapi, "POST", SIGN_INS, headers=headers, body=urlencode(form).encode())


def _bapi_raw(
    fapi: FrontendAPIEmulator,
    path: str,
    body: bytes | None = None,
    *,
    key: str | None = None,
    content_type: str = "application/json",
) -> int:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return _raw(fapi, "POST", f"/bapi/v1{path}", query="", headers=headers, body=body)


def _sign_in_tour(fapi: FrontendAPIEmulator) -> None:
    jane = fapi.create_user(
        email="jane+clerk_test@example.com", phone="+12015550100", second_factors=("totp",)
    )
    acme = fapi.create_organization("Acme", slug="acme", members={jane.id: "org:admin"})
    fapi.create_organization("Other", slug="other")
    key = fapi.secret_key
    created = orjson.dumps({"user_id": jane.id, "expires_in_seconds": 600})
    # The Backend API: create (with and without an organization), revoke, and its errors.
    assert _bapi_raw(fapi, "/sign_in_tokens", created, key=key) == 200
    assert _bapi_raw(fapi, "/sign_in_tokens", orjson.dumps({"user_id": jane.id}), key=key) == 200
    in_acme = orjson.dumps({"user_id": jane.id, "org_id": acme.id})
    assert _bapi_raw(fapi, "/sign_in_tokens", in_acme, key=key) == 200
    assert _bapi_raw(fapi, "/sign_in_tokens", created) == 401
    assert _bapi_raw(fapi, "/sign_in_tokens", created, key="sk_test_not-this-one") == 401
    unknown_user = orjson.dumps({"user_id": "user_missing"})
    assert _bapi_raw(fapi, "/sign_in_tokens", unknown_user, key=key) == 404
    not_member = orjson.dumps({"user_id": jane.id, "org_id": "org_missing"})
    assert _bapi_raw(fapi, "/sign_in_tokens", not_member, key=key) == 404
    assert _bapi_raw(fapi, "/sign_in_tokens", b"{}", key=key) == 422  # user_id missing
    short = orjson.dumps({"user_id": jane.id, "expires_in_seconds": 0})
    assert _bapi_raw(fapi, "/sign_in_tokens", short, key=key) == 422
    assert _bapi_raw(fapi, "/sign_in_tokens", b"[1]", key=key) == 400
    as_form = b"user_id=x"
    form_type = FORM["Content-Type"]
    assert _bapi_raw(fapi, "/sign_in_tokens", as_form, key=key, content_type=form_type) == 415
    revocable = fapi.sign_in_token(fapi.create_sign_in_token(jane))
    assert _bapi_raw(fapi, f"/sign_in_tokens/{revocable.id}/revoke", key=key) == 200
    assert _bapi_raw(fapi, f"/sign_in_tokens/{revocable.id}/revoke", key=key) == 400
    assert _bapi_raw(fapi, "/sign_in_tokens/sit_missing/revoke", key=key) == 404
    assert _bapi_raw(fapi, f"/sign_in_tokens/{revocable.id}/revoke") == 401
    # FAPI: the ticket sign-in, new device then the same device again, and its errors.
    with ClerkSessions(frontend_api_url=fapi.url, max_retries=0) as clerk:
        ticket = fapi.create_sign_in_token(jane, org_id="acme")
        clerk.sign_in_with_ticket(ticket)
        clerk.sign_in_with_ticket(fapi.create_sign_in_token(jane))
        assert _expect_error(clerk.sign_in_with_ticket, ticket) == ("ticket_already_used")
        assert _expect_error(clerk.sign_in_with_ticket, "not-a-ticket") == "ticket_invalid"
        device_token = clerk.client_token
    assert device_token is not None
    expiring = fapi.create_sign_in_token(jane, 60)
    fapi.clock.advance(61)
    assert _sign_in_raw(fapi, {"strategy": "ticket", "ticket": expiring}) == 400
    assert _sign_in_raw(fapi, {"strategy": "ticket", "ticket": revocable.token}) == 400
    password = {"strategy": "password", "identifier": "jane", "password": "x"}
    assert _sign_in_raw(fapi, password) == 422
    assert _sign_in_raw(fapi, {"strategy": "ticket"}) == 422
    assert _sign_in_raw(fapi, {"ticket": "t"}) == 422
    assert _sign_in_raw(fapi, {"strategy": "ticket", "bogus": "1"}) == 422
    fresh = fapi.create_sign_in_token(jane)
    assert _sign_in_raw(fapi, {"strategy": "ticket", "ticket": fresh}, authorization="x") == 401
    assert _sign_in_raw(fapi, {"strategy": "ticket", "ticket": fresh}, authorization=None) == 401
    assert (
        _raw(
            fapi,
            "POST",
            SIGN_INS,
            headers={"Authorization": "", "Content-Type": "application/json"},
            body=b"{}",
        )
        == 415
    )
    fapi.native_api_disabled = True
    assert _sign_in_raw(fapi, {"strategy": "ticket", "ticket": fresh}) == 400
    fapi.native_api_disabled = False
    with_device = {"strategy": "ticket", "ticket": fresh}
    assert _sign_in_raw(fapi, with_device, authorization=device_token) == 200


def _sibling_spec(name: str) -> dict[str, Any]:
    path = spec_path().with_name(name)
    if not Path(path).is_file():
        spec_missing(f"{name} not found beside {spec_path()}")
    import yaml

    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def sign_in_spec() -> dict[str, Any]:
    return _sibling_spec("fapi-sign-in.yml")


@pytest.fixture(scope="module")
def bapi_spec() -> dict[str, Any]:
    return _sibling_spec("bapi-sign-in-tokens.yml")


@pytest.fixture(scope="module")
def sign_in_exchanges() -> list[Exchange]:
    recorded: list[Exchange] = []
    with FrontendAPIEmulator(seed=11, on_exchange=_recorder(recorded)) as fapi:
        _sign_in_tour(fapi)
    return recorded


def _is_bapi(exchange: Exchange) -> bool:
    return exchange.path.startswith("/bapi/")


def _sign_in_mock_request(exchange: Exchange) -> MockRequest:
    if _is_bapi(exchange):
        host, path = BAPI_HOST, exchange.path.removeprefix("/bapi")
    else:
        host, path = SPEC_HOST, exchange.path
    return MockRequest(
        host,
        exchange.method.lower(),
        path,
        args=exchange.query,
        headers=exchange.headers,
        data=exchange.body or None,
        content_type=exchange.content_type or "application/json",
    )


def _widen(spec: dict[str, Any], allowed: dict[tuple[int, str], str]) -> OpenAPI:
    extended = copy.deepcopy(spec)
    for item in extended["paths"].values():
        for op in item.values():
            for status in sorted({status for status, _ in allowed}):
                op["responses"].setdefault(
                    str(status),
                    {
                        "description": "allowed by the conformance test",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ClerkErrors"}
                            }
                        },
                    },
                )
    return OpenAPI.from_dict(nullable_compositions(extended))


def test_the_sign_in_tour_covers_each_route_with_successes_and_errors(
    sign_in_exchanges: list[Exchange],
) -> None:
    def answers(kind: str) -> set[tuple[int, str | None]]:
        found = set()
        for e in sign_in_exchanges:
            if kind in e.path:
                found.add((e.status, _error_code(e) if e.status >= 400 else None))
        return found

    assert answers("/v1/client/sign_ins") >= {
        (200, None),
        (400, "ticket_invalid"),
        (400, "ticket_expired"),
        (400, "ticket_already_used"),
        (400, "native_api_disabled"),
        (422, "form_param_value_invalid"),
        (422, "form_param_missing"),
        (422, "form_param_unknown"),
    }
    assert answers("/sign_in_tokens") >= {
        (200, None),
        (401, "authorization_header_format_invalid"),
        (401, "clerk_key_invalid"),
        (404, "resource_not_found"),
        (422, "form_param_missing"),
        (422, "form_param_value_invalid"),
    }
    assert answers("/revoke") >= {
        (200, None),
        (400, "sign_in_token_cannot_be_revoked_code"),
        (404, "resource_not_found"),
    }


def test_every_sign_in_and_backend_answer_matches_its_spec(
    sign_in_exchanges: list[Exchange], sign_in_spec: dict[str, Any], bapi_spec: dict[str, Any]
) -> None:
    checks = {
        True: (
            OpenAPI.from_dict(nullable_compositions(bapi_spec)),
            _widen(bapi_spec, BAPI_UNDOCUMENTED),
            BAPI_UNDOCUMENTED,
        ),
        False: (
            OpenAPI.from_dict(nullable_compositions(sign_in_spec)),
            _widen(sign_in_spec, SIGN_IN_UNDOCUMENTED),
            SIGN_IN_UNDOCUMENTED,
        ),
    }
    seen: set[tuple[int, str]] = set()
    for exchange in sign_in_exchanges:
        documented, widened, allowed = checks[_is_bapi(exchange)]
        request = _sign_in_mock_request(exchange)
        response = MockResponse(
            exchange.response, status_code=exchange.status, content_type="application/json"
        )
        try:
            documented.validate_response(request, response)
        except Exception:
            widened.validate_response(request, response)
            answer = (exchange.status, _error_code(exchange))
            assert answer in allowed, f"{exchange!r}: {answer} invalid and not allowed"
            seen.add(answer)
    assert seen == set(SIGN_IN_UNDOCUMENTED) | set(BAPI_UNDOCUMENTED)


def test_every_sign_in_and_backend_request_accepted_matches_its_spec(
    sign_in_exchanges: list[Exchange], sign_in_spec: dict[str, Any], bapi_spec: dict[str, Any]
) -> None:
    sign_in = OpenAPI.from_dict(nullable_compositions(sign_in_spec))
    bapi = OpenAPI.from_dict(nullable_compositions(bapi_spec))
    accepted = [e for e in sign_in_exchanges if e.status == 200]
    assert len(accepted) == 7  # 3 creates, 1 revoke, 3 sign-ins
    allowed_seen: set[tuple[str, str, str]] = set()
    for exchange in accepted:
        request = _sign_in_mock_request(exchange)
        (bapi if _is_bapi(exchange) else sign_in).validate_request(request)
        if _is_bapi(exchange):
            continue
        declared = _declared(sign_in_spec, SIGN_IN_WITH_TICKET)
        for name in exchange.query:
            if name not in declared["query"]:
                entry = ("createSignIn", "query", name)
                assert entry in SIGN_IN_UNDOCUMENTED_PARAMETERS, f"{exchange!r}: query {name!r}"
                allowed_seen.add(entry)
        for name, _ in parse_qsl(exchange.body.decode(), keep_blank_values=True):
            assert name in declared["form"], f"{exchange!r}: form {name!r} not in the spec"
    assert allowed_seen == set(SIGN_IN_UNDOCUMENTED_PARAMETERS)


def test_the_emulator_accepts_every_form_field_of_create_sign_in_and_no_other(
    sign_in_spec: dict[str, Any],
) -> None:
    """Only the ticket strategy signs in, but a field the spec declares is never "unknown"."""
    from clerk_sessions.testing._emulator import _SIGN_IN_FORM_FIELDS

    assert _declared(sign_in_spec, SIGN_IN_WITH_TICKET)["form"] == _SIGN_IN_FORM_FIELDS


def test_a_completed_ticket_sign_in_has_the_spec_shape_with_the_new_session(
    sign_in_exchanges: list[Exchange],
) -> None:
    first = next(e for e in sign_in_exchanges if "sign_ins" in e.path and e.status == 200)
    body = orjson.loads(first.response)
    sign_in, client = body["response"], body["client"]
    assert (sign_in["object"], sign_in["status"]) == ("sign_in_attempt", "complete")
    assert sign_in["first_factor_verification"]["strategy"] == "ticket"
    assert [s["id"] for s in client["sessions"]] == [sign_in["created_session_id"]]
    assert client["last_active_session_id"] == sign_in["created_session_id"]
    assert client["last_authentication_strategy"] == "ticket"
    assert client["sign_in"] is None


def test_the_sign_in_check_catches_drift(
    sign_in_exchanges: list[Exchange], sign_in_spec: dict[str, Any], bapi_spec: dict[str, Any]
) -> None:
    """One wrong value in each answer fails its validation: the checks above have teeth."""
    sign_in = next(e for e in sign_in_exchanges if "sign_ins" in e.path and e.status == 200)
    body = orjson.loads(sign_in.response)
    body["response"]["status"] = "signed_in"
    with pytest.raises(Exception, match="not valid"):
        OpenAPI.from_dict(nullable_compositions(sign_in_spec)).validate_response(
            _sign_in_mock_request(sign_in),
            MockResponse(orjson.dumps(body), status_code=200, content_type="application/json"),
        )
    created = next(e for e in sign_in_exchanges if _is_bapi(e) and e.status == 200)
    token = orjson.loads(created.response)
    token["status"] = "used"
    with pytest.raises(Exception, match="not valid"):
        OpenAPI.from_dict(nullable_compositions(bapi_spec)).validate_response(
            _sign_in_mock_request(created),
            MockResponse(orjson.dumps(token), status_code=200, content_type="application/json"),
        )
