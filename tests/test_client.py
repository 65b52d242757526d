"""How AsyncClerkSessions behaves — read top to bottom as documentation of the client.

Every test talks to a real aiohttp.web server on 127.0.0.1 (the ``fapi`` fixture).
"""

from __future__ import annotations

import asyncio
import pickle
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web

import clerk_sessions
from clerk_sessions import (
    UNSET,
    APIConnectionError,
    APITimeoutError,
    AsyncClerkSessions,
    AuthenticationError,
    BadRequestError,
    ClerkAPIError,
    ClerkSessionsError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    Timeout,
    UnprocessableEntityError,
)
from clerk_sessions._runtime import Runtime
from clerk_sessions.testing import inspect

from . import payloads
from .conftest import CLIENT_TOKEN, FakeFrontendAPI, FakeSleep, MakeClerk

pytestmark = pytest.mark.anyio

KEY_DEV = "pk_test_YWxsb3dlZC1sZW1taW5nLTkuY2xlcmsuYWNjb3VudHMuZGV2JA"
KEY_LIVE = "pk_live_Y2xlcmsubW9paW8uY28k"


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "url"),
    [
        (KEY_DEV, "https://allowed-lemming-9.clerk.accounts.dev"),
        (KEY_LIVE, "https://clerk.moiio.co"),
        (f"  {KEY_LIVE}\n", "https://clerk.moiio.co"),  # pasted from a file or env with newline
    ],
)
async def test_publishable_key_decodes_to_the_frontend_api_host(key: str, url: str) -> None:
    async with AsyncClerkSessions(publishable_key=key) as clerk:
        assert clerk.frontend_api_url == url


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "missing"),
        ("sk_test_abc123", "secret key"),
        ("sk_live_abc123", "secret key"),
        ("pk_prod_Y2xlcmsubW9paW8uY28k", "start with pk_test_ or pk_live_"),
        ("test_Y2xlcmsubW9paW8uY28k", "start with pk_test_ or pk_live_"),
        ("pk_live_", "nothing follows"),
        ("pk_live_Y2xl_cmsubW9paW8uY28k", "without '_'"),
        ("pk_live_!!!notbase64", "failed to decode"),
        ("pk_live_Y2xlcmsubW9paW8uY28", "invalid format"),  # decodes without the trailing $
        ("pk_live_Y2xlcmskbW9paW8uY28k", "invalid format"),  # clerk$moiio.co$: two dollars
        ("pk_live_bG9jYWxob3N0JA", "not a host name"),  # localhost$: no dot
        ("pk_live_ZXZpbC5jb20vYXR0YWNrJA", "not a host name"),  # evil.com/attack$
    ],
)
def test_bad_publishable_keys_raise_configuration_error_saying_what_is_wrong(
    key: str, reason: str
) -> None:
    with pytest.raises(ConfigurationError, match=reason) as info:
        AsyncClerkSessions(publishable_key=key)
    assert isinstance(info.value, ValueError)  # ConfigurationError is also a ValueError
    assert info.value.__cause__ is None or not isinstance(info.value.__cause__, KeyError)


def test_no_configuration_at_all_says_how_to_configure() -> None:
    with pytest.raises(ConfigurationError, match="CLERK_PUBLISHABLE_KEY"):
        AsyncClerkSessions()


async def test_environment_variables_configure_the_client(
    monkeypatch: pytest.MonkeyPatch, fapi: FakeFrontendAPI
) -> None:
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", KEY_LIVE)
    monkeypatch.setenv("CLERK_CLIENT_TOKEN", "env-token")
    async with AsyncClerkSessions() as clerk:
        assert clerk.frontend_api_url == "https://clerk.moiio.co"
        assert clerk.client_token == "env-token"
    monkeypatch.setenv("CLERK_FRONTEND_API_URL", fapi.url)
    async with AsyncClerkSessions() as clerk:
        fapi.reply(json=payloads.token())
        await clerk.create_session_token("sess_1")
    assert fapi.last.headers["Authorization"] == "env-token"


async def test_frontend_api_url_keeps_a_proxy_path_prefix(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    async with make_clerk(frontend_api_url=f"{fapi.url}/api/__clerk/", client_token="t") as clerk:
        fapi.reply(json=payloads.session_envelope())
        await clerk.get_session("sess_1")
    assert fapi.last.path == "/api/__clerk/v1/client/sessions/sess_1"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://clerk.example.com", "plain http"),
        ("ftp://clerk.example.com", "absolute http"),
        ("clerk.example.com", "absolute http"),
        ("https://user:pw@clerk.example.com", "credentials"),
        ("https://clerk.example.com/?x=1", "query"),
        ("https://clerk.example.com:99999", "not a valid URL"),
    ],
)
def test_bad_frontend_api_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        AsyncClerkSessions(frontend_api_url=url)


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:8080", "http://localhost:3000", "http://[::1]:9"]
)
def test_plain_http_is_allowed_for_loopback_only(host: str) -> None:
    assert AsyncClerkSessions(frontend_api_url=host).frontend_api_url == host


def test_a_secret_key_is_refused_even_when_a_url_is_given() -> None:
    with pytest.raises(ConfigurationError, match="secret key"):
        AsyncClerkSessions(
            publishable_key="sk_live_x", frontend_api_url="https://clerk.example.com"
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": None},
        {"timeout": 0},
        {"timeout": -1.0},
        {"timeout": "5"},
        {"max_retries": -1},
        {"max_retries": True},
        {"api_version": ""},
        {"client_token": "tok\r\nX-Injected: 1"},
        {"client_token": 42},
    ],
)
def test_bad_constructor_arguments_raise_configuration_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        AsyncClerkSessions(frontend_api_url="https://clerk.example.com", **kwargs)  # type: ignore[arg-type]


def test_timeout_object_validates_its_parts() -> None:
    with pytest.raises(ConfigurationError, match="connect"):
        Timeout(total=1, connect=0)


def test_repr_never_shows_the_client_token() -> None:
    clerk = AsyncClerkSessions(
        frontend_api_url="https://clerk.example.com", client_token=CLIENT_TOKEN
    )
    assert CLIENT_TOKEN not in repr(clerk)
    assert "client_token=<set>" in repr(clerk)


# -- headers and wire format ----------------------------------------------------------------


async def test_an_empty_client_token_is_sent_as_an_empty_authorization_header(
    fapi: FakeFrontendAPI,
    make_clerk: MakeClerk,
) -> None:
    async with make_clerk(frontend_api_url=fapi.url, client_token="") as clerk:
        fapi.reply(json=payloads.delete_sessions_envelope())
        await clerk.remove_client_sessions_and_retain_cookie()
    assert fapi.last.headers["Authorization"] == ""
    assert fapi.last.query == [("_is_native", "1")]


async def test_api_version_is_a_header_and_never_a_query_parameter(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    async with make_clerk(
        frontend_api_url=fapi.url, client_token="t", api_version="2025-11-10"
    ) as clerk:
        fapi.reply(json=payloads.session_envelope())
        await clerk.get_session("sess_1")
    assert fapi.last.headers["Clerk-API-Version"] == "2025-11-10"
    assert "__clerk_api_version" not in fapi.last.raw_path


async def test_user_agent_names_the_sdk_and_version(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.reply(json=payloads.session_envelope())
    await clerk.get_session("sess_1")
    assert f"clerk-sessions-python/{clerk_sessions.__version__}" in fapi.last.headers["User-Agent"]


async def test_optional_fields_have_three_states(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    for value, expected in [
        (UNSET, []),
        (None, [("organization_id", "")]),
        ("org_9", [("organization_id", "org_9")]),
    ]:
        fapi.reply(json=payloads.token())
        await clerk.create_session_token("sess_1", organization_id=value)
        assert fapi.last.form == expected


async def test_form_values_are_percent_encoded(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.reply(json=payloads.reverification_envelope())
    await clerk.attempt_session_reverification_first_factor(
        "sess_1", strategy="password", password="a&b=c d+é"
    )
    assert fapi.last.form == [("strategy", "password"), ("password", "a&b=c d+é")]
    assert b"a%26b%3Dc+d%2B%C3%A9" in fapi.last.body


@pytest.mark.parametrize(
    ("session_id", "raw_segment"),
    [
        ("../x", "..%2Fx"),
        ("a/b", "a%2Fb"),
        ("a?b#c", "a%3Fb%23c"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("sess 1", "sess%201"),
        ("sess_ü", "sess_%C3%BC"),
    ],
)
async def test_path_parameters_are_always_exactly_one_segment(
    session_id: str, raw_segment: str, fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.reply(json=payloads.token())
    await clerk.create_session_token_with_template(session_id, "tmpl")
    assert fapi.last.raw_path == f"/v1/client/sessions/{raw_segment}/tokens/tmpl?_is_native=1"


@pytest.mark.parametrize("bad", ["", "   ", "\t\n"])
async def test_empty_ids_raise_value_error_before_any_request(
    bad: str, fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    with pytest.raises(ValueError, match="session_id must be a non-empty string"):
        await clerk.get_session(bad)
    with pytest.raises(ValueError, match="template_name must be a non-empty string"):
        await clerk.create_session_token_with_template("sess_1", bad)
    assert fapi.requests == []


async def test_non_string_ids_raise_type_error(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    with pytest.raises(TypeError, match="session_id must be a str, got int"):
        await clerk.get_session(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="organization_id must be a str or None, got list"):
        await clerk.create_session_token("sess_1", organization_id=["org"])  # type: ignore[arg-type]
    assert fapi.requests == []


async def test_origin_is_refused_because_clerk_rejects_it_with_authorization(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    with pytest.raises(ConfigurationError, match="origin_authorization_headers_conflict"):
        await clerk.prepare_session_reverification_first_factor(
            "sess_1", strategy="passkey", origin="https://app.example.com"
        )
    with pytest.raises(ConfigurationError, match="may not set 'origin'"):
        await clerk.get_session("sess_1", extra_headers={"origin": "https://app.example.com"})
    with pytest.raises(ConfigurationError, match="with_client_token"):
        await clerk.get_session("sess_1", extra_headers={"Authorization": "other"})
    assert fapi.requests == []


async def test_extra_headers_are_sent(fapi: FakeFrontendAPI, clerk: AsyncClerkSessions) -> None:
    fapi.reply(json=payloads.session_envelope())
    await clerk.get_session("sess_1", extra_headers={"X-Request-Id": "req-1"})
    assert fapi.last.headers["X-Request-Id"] == "req-1"


async def test_redirects_are_not_followed(fapi: FakeFrontendAPI, clerk: AsyncClerkSessions) -> None:
    """A redirect would carry the client token elsewhere: it is an error saying so (the origin
    only, never the path or query), and its Authorization header is not a rotation."""
    before = clerk.client_token
    fapi.reply(
        302,
        body=b"",
        headers={
            "Location": "https://elsewhere.example.com/steal?token=secret-in-query",
            "Authorization": "not-a-rotation",
        },
    )
    with pytest.raises(ClerkAPIError) as info:
        await clerk.get_session("sess_1")
    assert info.value.status == 302
    assert "a redirect to https://elsewhere.example.com" in str(info.value)
    assert "never follows" in str(info.value)
    assert "secret-in-query" not in str(info.value)
    assert "/steal" not in str(info.value)
    assert clerk.client_token == before
    assert len(fapi.requests) == 1


# -- client token rotation (protocol §3) -------------------------------------------------------


async def test_a_rotated_token_replaces_the_stored_one_and_is_reported(
    fapi: FakeFrontendAPI,
    make_clerk: MakeClerk,
) -> None:
    seen: list[str | None] = []
    async with make_clerk(
        frontend_api_url=fapi.url, client_token="old", on_client_token=seen.append
    ) as clerk:
        fapi.reply(
            json=payloads.session_envelope(), headers={"Authorization": "Bearer new.jwt.value"}
        )
        await clerk.get_session("sess_1")
        assert clerk.client_token == "Bearer new.jwt.value"  # stored exactly as received
        fapi.reply(json=payloads.session_envelope())
        await clerk.get_session("sess_1")
    assert fapi.last.headers["Authorization"] == "Bearer new.jwt.value"
    assert seen == ["Bearer new.jwt.value"]


@pytest.mark.parametrize("cleared", ["", "Bearer", "  bearer  "])
async def test_an_empty_or_bare_bearer_header_clears_the_token(
    cleared: str, fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    seen: list[str | None] = []
    async with make_clerk(
        frontend_api_url=fapi.url, client_token="old", on_client_token=seen.append
    ) as clerk:
        fapi.reply(json=payloads.delete_sessions_envelope(), headers={"Authorization": cleared})
        await clerk.remove_client_sessions_and_retain_cookie()
        assert clerk.client_token is None
        fapi.reply(json=payloads.delete_sessions_envelope())
        await clerk.remove_client_sessions_and_retain_cookie()
    assert fapi.last.headers["Authorization"] == ""
    assert seen == [None]


async def test_error_responses_rotate_the_token_too(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    async with make_clerk(frontend_api_url=fapi.url, client_token="old") as clerk:
        fapi.reply(
            401, payloads.clerk_errors("authentication_invalid"), headers={"Authorization": "fresh"}
        )
        with pytest.raises(AuthenticationError):
            await clerk.get_session("sess_1")
        assert clerk.client_token == "fresh"


async def test_the_first_request_with_an_empty_token_adopts_the_minted_one(
    fapi: FakeFrontendAPI,
    make_clerk: MakeClerk,
) -> None:
    async def persist(token: str | None) -> None:  # async callbacks are awaited
        stored.append(token)

    stored: list[str | None] = []
    async with make_clerk(
        frontend_api_url=fapi.url, client_token="", on_client_token=persist
    ) as clerk:
        fapi.reply(json=payloads.delete_sessions_envelope(), headers={"Authorization": "minted"})
        await clerk.remove_client_sessions_and_retain_cookie()
    assert stored == ["minted"]


async def test_of_two_answers_to_one_token_the_one_that_arrives_last_wins(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    """Two requests leave with token A; the first reply rotates to B; the slower reply, which
    Clerk produced after B (superseding it), rotates to C. A reply that repeats a token the
    client moved past is ignored (tests/test_devices.py)."""
    first_arrived, release_slow = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        first_arrived.set()
        await release_slow.wait()
        return web.json_response(payloads.session_envelope(), headers={"Authorization": "C"})

    async def fast(request: web.Request) -> web.StreamResponse:
        return web.json_response(payloads.session_envelope(), headers={"Authorization": "B"})

    seen: list[str | None] = []
    async with make_clerk(
        frontend_api_url=fapi.url, client_token="A", on_client_token=seen.append
    ) as clerk:
        fapi.reply_with(slow)
        fapi.reply_with(fast)
        slow_call = asyncio.ensure_future(clerk.get_session("sess_1"))
        await first_arrived.wait()
        await clerk.get_session("sess_1")
        assert clerk.client_token == "B"
        release_slow.set()
        await slow_call
        assert clerk.client_token == "C"
    assert seen == ["B", "C"]
    assert [r.headers["Authorization"] for r in fapi.requests] == ["A", "A"]


# -- clients for other Clerk clients ------------------------------------------------------------


async def test_with_client_token_shares_the_pool_but_not_the_token(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    parent_seen: list[str | None] = []
    async with make_clerk(
        frontend_api_url=fapi.url, client_token="parent", on_client_token=parent_seen.append
    ) as clerk:
        other = clerk.with_client_token("other")
        # One pool, one token cache, one server clock.
        assert inspect(other).shares_state_with(inspect(clerk))
        fapi.reply(json=payloads.session_envelope(), headers={"Authorization": "other-rotated"})
        await other.get_session("sess_1")
        assert fapi.last.headers["Authorization"] == "other"
        assert other.client_token == "other-rotated"
        assert clerk.client_token == "parent"
        assert parent_seen == []  # the parent's callback is not inherited
        await other.aclose()  # closing the child leaves the shared pool open
        fapi.reply(json=payloads.session_envelope())
        await clerk.get_session("sess_1")
        with pytest.raises(APIConnectionError, match="closed"):
            await other.get_session("sess_1")


# -- lifecycle -----------------------------------------------------------------------------------


async def test_a_closed_client_refuses_calls_clearly(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk
) -> None:
    async with make_clerk(frontend_api_url=fapi.url, client_token="t") as clerk:
        pass
    with pytest.raises(APIConnectionError, match="closed"):
        await clerk.get_session("sess_1")
    assert fapi.requests == []


async def test_an_injected_aiohttp_session_is_used_and_left_open(fapi: FakeFrontendAPI) -> None:
    async with aiohttp.ClientSession() as session:
        async with AsyncClerkSessions(
            frontend_api_url=fapi.url, client_token="t", http_session=session
        ) as clerk:
            fapi.reply(json=payloads.session_envelope())
            await clerk.get_session("sess_1")
        assert not session.closed


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
        (418, ClerkAPIError),
    ],
)
async def test_error_statuses_map_to_typed_errors_with_clerks_fields(
    status: int, cls: type[ClerkAPIError], fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    body = payloads.clerk_errors(
        "some_code", "short", "A longer message.", meta={"param_name": "x"}
    )
    body["meta"] = {"client": None}
    fapi.reply(status, body, headers={"X-Clerk-Trace": "t"})
    with pytest.raises(cls) as info:
        await clerk.get_session("sess_1")
    error = info.value
    assert type(error) is cls
    assert isinstance(error, ClerkSessionsError)
    assert (error.status, error.code, error.message, error.long_message) == (
        status,
        "some_code",
        "short",
        "A longer message.",
    )
    assert error.errors[0].meta == {"param_name": "x"}
    assert error.meta == {"client": None}
    assert error.clerk_trace_id == "trace_abc123"
    assert error.headers["X-Clerk-Trace"] == "t"
    assert error.retries_taken == 0
    assert (
        str(error) == f"HTTP {status} from get_session [some_code] A longer message. "
        "clerk_trace_id=trace_abc123"
    )


async def test_reverification_required_is_flagged(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.reply(
        403,
        payloads.clerk_errors(
            "session_reverification_required", "needs step-up", "Additional verification"
        ),
    )
    with pytest.raises(PermissionDeniedError) as info:
        await clerk.touch_session("sess_1")
    assert info.value.reverification_required
    fapi.reply(403, payloads.clerk_errors("user_banned"))
    with pytest.raises(PermissionDeniedError) as info:
        await clerk.touch_session("sess_1")
    assert not info.value.reverification_required


async def test_rate_limit_reads_retry_after_in_seconds_or_as_a_date(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.reply(429, payloads.clerk_errors("too_many_requests"), headers={"Retry-After": "7"})
    with pytest.raises(RateLimitError) as info:
        await clerk.create_session_token("sess_1")
    assert info.value.retry_after == 7.0

    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    fapi.reply(
        429,
        payloads.clerk_errors("too_many_requests"),
        headers={"Retry-After": format_datetime(when, usegmt=True)},
    )
    with pytest.raises(RateLimitError) as info:
        await clerk.create_session_token("sess_1")
    assert info.value.retry_after is not None
    assert 100 < info.value.retry_after <= 120

    fapi.reply(429, payloads.clerk_errors("too_many_requests"))
    with pytest.raises(RateLimitError) as info:
        await clerk.create_session_token("sess_1")
    assert info.value.retry_after is None


async def test_an_html_502_from_a_proxy_still_gives_the_right_class(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    html = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>"
    fapi.reply(502, body=html, content_type="text/html")
    with pytest.raises(ServerError) as info:
        await clerk.get_session("sess_1")
    assert info.value.errors == []
    assert info.value.code is None
    assert "502 Bad Gateway" in (info.value.body_excerpt or "")
    assert "non-JSON body" in str(info.value)


async def test_error_bodies_without_long_message_or_errors_are_accepted(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.reply(400, {"errors": [{"code": "x", "message": "m"}]})
    with pytest.raises(BadRequestError) as info:
        await clerk.get_session("sess_1")
    assert (info.value.code, info.value.long_message) == ("x", None)
    fapi.reply(404, {"errors": [], "meta": {"k": 1}})
    with pytest.raises(NotFoundError) as info:
        await clerk.get_session("sess_1")
    assert info.value.code is None
    assert info.value.meta == {"k": 1}


async def test_a_non_json_success_body_is_a_response_validation_error(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.reply(200, body=b"<html>maintenance</html>", content_type="text/html")
    with pytest.raises(ResponseValidationError, match="not JSON") as info:
        await clerk.get_session("sess_1")
    assert info.value.status == 200
    assert info.value.body_excerpt == "<html>maintenance</html>"
    assert info.value.__cause__ is not None


async def test_an_empty_success_body_is_a_response_validation_error(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.reply(200, body=b"")
    with pytest.raises(ResponseValidationError, match="empty"):
        await clerk.get_session("sess_1")


async def test_a_misshaped_success_body_names_the_field(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    body = payloads.session_envelope()
    body["response"]["user"]["email_addresses"][0]["reserved"] = "no"
    fapi.reply(json=body)
    with pytest.raises(ResponseValidationError) as info:
        await clerk.get_session("sess_1")
    assert any("$.response.user.email_addresses[0].reserved" in path for path in info.value.paths)
    assert "$.response.user.email_addresses[0].reserved" in str(info.value)

    fapi.reply(json=[1, 2, 3])
    with pytest.raises(ResponseValidationError):
        await clerk.get_session("sess_1")


async def test_connection_refused_is_an_api_connection_error(
    unused_tcp_port: int, make_clerk: MakeClerk, fake_sleep: FakeSleep
) -> None:
    async with make_clerk(
        frontend_api_url=f"http://127.0.0.1:{unused_tcp_port}",
        client_token=CLIENT_TOKEN,
        _runtime=Runtime(sleep=fake_sleep),
    ) as clerk:
        with pytest.raises(APIConnectionError) as info:
            await clerk.get_session("sess_1")
    assert not isinstance(info.value, APITimeoutError)
    assert isinstance(info.value.__cause__, aiohttp.ClientError)
    assert info.value.retries_taken == 2  # connection errors are retried (default 2)
    assert len(fake_sleep.delays) == 2
    assert "after 2 retries" in str(info.value)
    assert CLIENT_TOKEN not in str(info.value)


async def test_a_dropped_connection_is_an_api_connection_error(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.drop_connection()
    with pytest.raises(APIConnectionError) as info:
        await clerk.end_session("sess_1")
    assert isinstance(info.value.__cause__, aiohttp.ClientError)
    assert len(fapi.requests) == 1  # a POST is never resent behind the caller's back
    fapi.reply(json=payloads.session_envelope())  # the pool recovers
    assert (await clerk.get_session("sess_1")).response.id == "sess_1"


async def test_a_hanging_server_is_an_api_timeout_error(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    fapi.hang()
    with pytest.raises(APITimeoutError, match=r"within 0\.2s") as info:
        await clerk.get_session("sess_1", timeout=0.2)
    assert isinstance(info.value, APIConnectionError)
    assert info.value.__cause__ is not None


async def test_errors_never_contain_the_client_token(
    fapi: FakeFrontendAPI, clerk: AsyncClerkSessions
) -> None:
    echo = (
        f"token was {CLIENT_TOKEN} and jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEifQ.c2lnbmF0dXJl"
    )
    fapi.reply(
        500,
        body=echo.encode(),
        headers={"Authorization": "rotated-SECRET", "Set-Cookie": "__client=SECRET"},
    )
    with pytest.raises(ServerError) as info:
        await clerk.get_session("sess_1")
    error = info.value
    for text in (str(error), repr(error), str(error.headers), error.body_excerpt or ""):
        assert CLIENT_TOKEN not in text
        assert "SECRET" not in text
        assert "eyJzdWIiOiJ1c2VyXzEifQ" not in text
    fapi.reply(400, payloads.clerk_errors("x", "m", f"bad token {CLIENT_TOKEN}.x.y"))
    with pytest.raises(BadRequestError) as info:
        await clerk.get_session("sess_1")
    assert CLIENT_TOKEN not in str(info.value)


def test_errors_survive_pickling() -> None:
    error = RateLimitError(429, retry_after=3.0, clerk_trace_id="tr", operation="get_session")
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is RateLimitError
    assert (clone.status, clone.retry_after, clone.clerk_trace_id, str(clone)) == (
        429,
        3.0,
        "tr",
        str(error),
    )
    invalid = ResponseValidationError("bad", status=200, paths=["$.x"], operation="get_session")
    clone2 = pickle.loads(pickle.dumps(invalid))
    assert (clone2.paths, str(clone2)) == (["$.x"], str(invalid))
