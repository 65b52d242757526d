"""The emulator against Clerk's published spec: it must not drift from the documented shapes.

A tour drives every operation through the SDK (successes and Clerk's error cases, a few
transport-level mistakes sent raw) and records every exchange. Every request the emulator saw
and every JSON response it sent is then validated against ``../shared/spec/fapi-sessions.yml``.

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
from typing import Any
from urllib.parse import parse_qsl, urlencode

import attrs
import orjson
import pytest
from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from clerk_sessions import ClerkAPIError, ClerkSessions
from clerk_sessions._operations import OPERATIONS, Operation
from clerk_sessions.testing import FrontendAPIEmulator, SignedIn, UserRecord

from .test_contract import SPEC_HOST, nullable_compositions

pytestmark = pytest.mark.spec

# (status, code) → why: answers the emulator may send although an operation's spec omits them.
UNDOCUMENTED: dict[tuple[int, str], str] = {
    (400, "origin_authorization_headers_conflict"): "transport rule, any route (§2, §3)",
    (400, "api_version_invalid"): "transport rule, any route (§2)",
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


@pytest.fixture(scope="module")
def exchanges() -> list[Exchange]:
    recorded: list[Exchange] = []

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

    with FrontendAPIEmulator(seed=7) as fapi:
        fapi._exchange_hook = record
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
