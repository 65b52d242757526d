"""``clerk_sessions.admin``: sign-in tokens with the secret key, and a signed-in device in one call
(issue #13 item 5, fapi-protocol §13).

Against the emulator's Backend API routes (``fapi.backend_api_url``, ``fapi.secret_key``) through
Clerk's ``clerk-backend-api``; a few tests use the loopback ``fapi`` server of conftest as a
Backend API that misbehaves on purpose. Each behaviour is checked for the coroutines and for
their ``*_sync`` twins.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio.to_thread
import orjson
import pytest

from clerk_sessions import (
    APIConnectionError,
    AsyncClerkSessions,
    AuthenticationError,
    BadRequestError,
    ClerkAPIError,
    ClerkSessions,
    ClerkSessionsError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
    admin,
)
from clerk_sessions.admin import (
    SignedInDevice,
    SignInToken,
    create_sign_in_token,
    create_sign_in_token_sync,
    revoke_sign_in_token,
    revoke_sign_in_token_sync,
    sign_in_user,
    sign_in_user_sync,
)
from clerk_sessions.testing import Fault, FrontendAPIEmulator
from tests import payloads
from tests.conftest import FakeFrontendAPI

pytestmark = pytest.mark.anyio

WRONG_KEY = "sk_test_canaryWRONGsecretKEY00000000000000000000"
DEAD_URL = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _no_admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLERK_SECRET_KEY", "CLERK_BACKEND_API_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def emulator() -> Iterator[FrontendAPIEmulator]:
    """One emulator (on its own thread) for tests that only add users and tickets."""
    with FrontendAPIEmulator() as fapi:
        yield fapi


@pytest.fixture
def fresh() -> Iterator[FrontendAPIEmulator]:
    """An emulator of the test's own, for switches and faults."""
    with FrontendAPIEmulator() as fapi:
        yield fapi


@pytest.fixture(params=["async", "sync"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def backend(fapi: FrontendAPIEmulator) -> dict[str, str]:
    return {"secret_key": fapi.secret_key, "backend_api_url": fapi.backend_api_url}


Call = Callable[..., Awaitable[Any]]


@pytest.fixture
def call(kind: str) -> Callable[[str], Call]:
    """``await call("create_sign_in_token")(...)``: the coroutine, or its ``*_sync`` twin run in
    a worker thread (as blocking code would run it)."""

    def pick(name: str) -> Call:
        if kind == "async":
            function: Call = getattr(admin, name)
            return function
        blocking = getattr(admin, f"{name}_sync")

        async def run(*args: Any, **kwargs: Any) -> Any:
            return await anyio.to_thread.run_sync(lambda: blocking(*args, **kwargs))

        return run

    return pick


# -- create and revoke -----------------------------------------------------------------------------


async def test_create_a_sign_in_token(emulator: FrontendAPIEmulator, call: Any) -> None:
    user = emulator.create_user()
    token = await call("create_sign_in_token")(user.id, **backend(emulator))
    assert isinstance(token, SignInToken)
    assert token.status == "pending"
    assert token.user_id == user.id
    assert token.expires_in_seconds == 300  # @clerk/testing's lifetime, not the API's 30 days
    assert token.url is not None
    assert token.token in token.url
    record = emulator.sign_in_token(token.id)
    assert record.token == token.token
    assert record.expire_at - record.created_at == 300
    shown = repr(token)
    assert token.token not in shown
    assert "token='[redacted]'" in shown
    assert "url='[redacted]'" in shown
    assert token.id in shown


async def test_create_with_a_lifetime_and_an_organization(
    emulator: FrontendAPIEmulator, call: Any
) -> None:
    user = emulator.create_user()
    org = emulator.create_organization(
        "Acme", slug=f"acme-{user.id}", members={user.id: "org:admin"}
    )
    token = await call("create_sign_in_token")(
        user.id, expires_in_seconds=60, org_id=org.id, **backend(emulator)
    )
    assert token.expires_in_seconds == 60
    record = emulator.sign_in_token(token.id)
    assert record.expire_at - record.created_at == 60
    assert record.org_id == org.id


async def test_the_ticket_signs_a_device_in(emulator: FrontendAPIEmulator, call: Any) -> None:
    user = emulator.create_user()
    token = await call("create_sign_in_token")(user.id, **backend(emulator))
    async with AsyncClerkSessions(frontend_api_url=emulator.url) as clerk:
        envelope = await clerk.sign_in_with_ticket(token.token)
    assert envelope.response.status == "complete"
    assert emulator.sign_in_token(token.id).status == "accepted"


async def test_revoke(emulator: FrontendAPIEmulator, call: Any) -> None:
    token = await call("create_sign_in_token")(emulator.create_user().id, **backend(emulator))
    assert await call("revoke_sign_in_token")(token.id, **backend(emulator)) is None
    assert emulator.sign_in_token(token.id).status == "revoked"
    with pytest.raises(BadRequestError) as again:
        await call("revoke_sign_in_token")(token.id, **backend(emulator))
    assert again.value.code is not None
    assert again.value.code.startswith("sign_in_token_cannot_be_revoked")
    with pytest.raises(NotFoundError) as unknown:
        await call("revoke_sign_in_token")("sit_unknown", **backend(emulator))
    assert unknown.value.code == "resource_not_found"
    async with AsyncClerkSessions(frontend_api_url=emulator.url) as clerk:
        with pytest.raises(BadRequestError):
            await clerk.sign_in_with_ticket(token.token)


async def test_a_token_id_is_one_path_segment(fapi: FakeFrontendAPI, call: Any) -> None:
    revoked = {"object": "sign_in_token", "id": "x", "status": "revoked", "user_id": "u"}
    fapi.reply(200, {**revoked, "created_at": 1, "updated_at": 1})
    await call("revoke_sign_in_token")("a/../b?c", secret_key=WRONG_KEY, backend_api_url=fapi.url)
    assert fapi.last.raw_path == "/v1/sign_in_tokens/a%2F..%2Fb%3Fc/revoke"


async def test_the_request_on_the_wire(fapi: FakeFrontendAPI, call: Any) -> None:
    """What clerk-backend-api sends for us: JSON, the bearer key, Clerk's API version."""
    fapi.reply(
        200,
        {
            "object": "sign_in_token",
            "id": "sit_1",
            "status": "pending",
            "user_id": "user_1",
            "token": "eyJhbGciOiJSUzI1NiJ9.eyJzaWQiOiJzaXRfMSJ9.c2ln",
            "url": None,
            "created_at": 1,
            "updated_at": 1,
        },
    )
    token = await call("create_sign_in_token")(
        "user_1", secret_key=WRONG_KEY, backend_api_url=fapi.url + "/v1/", org_id="org_1"
    )
    assert token.url is None
    request = fapi.last
    assert (request.method, request.path) == ("POST", "/v1/sign_in_tokens")
    assert request.headers["Authorization"] == f"Bearer {WRONG_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Clerk-API-Version"]
    assert orjson.loads(request.body) == {
        "user_id": "user_1",
        "expires_in_seconds": 300,
        "org_id": "org_1",
    }


# -- configuration ---------------------------------------------------------------------------------


async def test_the_secret_key_and_url_come_from_the_environment(
    emulator: FrontendAPIEmulator, call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLERK_SECRET_KEY", emulator.secret_key + "\n")  # read from a file
    monkeypatch.setenv("CLERK_BACKEND_API_URL", emulator.backend_api_url)
    token = await call("create_sign_in_token")(emulator.create_user().id)
    assert token.status == "pending"


async def test_arguments_beat_the_environment(
    emulator: FrontendAPIEmulator, call: Any, monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int
) -> None:
    monkeypatch.setenv("CLERK_SECRET_KEY", WRONG_KEY)
    monkeypatch.setenv("CLERK_BACKEND_API_URL", f"http://127.0.0.1:{unused_tcp_port}")
    token = await call("create_sign_in_token")(emulator.create_user().id, **backend(emulator))
    assert token.status == "pending"


@pytest.mark.parametrize(
    ("key", "env", "message"),
    [
        (None, None, "No secret key: pass secret_key='sk_…' or set CLERK_SECRET_KEY"),
        (None, "  ", "No secret key"),
        ("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k", None, "publishable key (pk_…) was given where"),
        (None, "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k", "(CLERK_SECRET_KEY)"),
        ("", None, "is empty"),
        ("canary-not-a-key-6d1f", None, "start with sk_test_ or sk_live_"),
        ("sk_test_canary key-6d1f", None, "not valid"),
        ("sk_test_canary\nkey-6d1f", None, "not valid"),
    ],
)
async def test_secret_key_problems_are_configuration_errors(
    fapi: FakeFrontendAPI,
    call: Any,
    monkeypatch: pytest.MonkeyPatch,
    key: str | None,
    env: str | None,
    message: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("CLERK_SECRET_KEY", env)
    for name in ("create_sign_in_token", "sign_in_user"):
        with pytest.raises(ConfigurationError) as caught:
            await call(name)("user_1", secret_key=key, backend_api_url=fapi.url)
        assert message in str(caught.value)
        assert "dashboard" in str(caught.value)
        for value in (key, env):
            if value and value.strip():
                assert value.strip() not in str(caught.value)  # never echoed
    with pytest.raises(ConfigurationError):
        await call("revoke_sign_in_token")("sit_1", secret_key=key, backend_api_url=fapi.url)
    assert fapi.requests == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://api.example.com", "plain http"),
        ("ftp://127.0.0.1", "absolute http(s) URL"),
        ("https://user:pw@api.example.com", "credentials"),
        ("https://api.example.com/?x=1", "query string"),
        ("https://api.example.com:99999", "not a valid URL"),
    ],
)
async def test_bad_backend_api_urls(call: Any, url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match="backend_api_url") as caught:
        await call("create_sign_in_token")("user_1", secret_key=WRONG_KEY, backend_api_url=url)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("given", "server_url"),
    [
        (None, "https://api.clerk.com/v1"),
        ("https://api.clerk.com", "https://api.clerk.com/v1"),
        ("https://api.clerk.com/v1", "https://api.clerk.com/v1"),
        ("https://proxy.example.com/clerk/", "https://proxy.example.com/clerk/v1"),
        ("http://127.0.0.1:8787/bapi", "http://127.0.0.1:8787/bapi/v1"),
    ],
)
def test_backend_api_url_gets_v1_once(given: str | None, server_url: str) -> None:
    assert admin._server_url(given) == server_url


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"user_id": ""}, ValueError, "user_id"),
        ({"user_id": "  "}, ValueError, "user_id"),
        ({"user_id": None}, TypeError, "user_id"),
        ({"expires_in_seconds": 0}, ValueError, "expires_in_seconds"),
        ({"expires_in_seconds": True}, ValueError, "expires_in_seconds"),
        ({"expires_in_seconds": 1.5}, ValueError, "expires_in_seconds"),
        ({"timeout": 0}, ConfigurationError, "timeout"),
        ({"timeout": float("inf")}, ConfigurationError, "finite number of seconds"),
        ({"timeout": float("nan")}, ConfigurationError, "finite number of seconds"),
        ({"timeout": True}, ConfigurationError, "timeout"),
        ({"max_retries": -1}, ConfigurationError, "max_retries"),
        ({"max_retries": True}, ConfigurationError, "max_retries"),
    ],
)
async def test_bad_arguments_fail_before_any_request(
    fapi: FakeFrontendAPI, call: Any, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments = {"user_id": "user_1", "secret_key": WRONG_KEY, "backend_api_url": fapi.url}
    arguments.update(kwargs)
    user_id = arguments.pop("user_id")
    with pytest.raises(error, match=match):
        await call("create_sign_in_token")(user_id, **arguments)
    with pytest.raises(ValueError, match="sign_in_token_id"):
        await call("revoke_sign_in_token")(" ", secret_key=WRONG_KEY, backend_api_url=fapi.url)
    assert fapi.requests == []


async def test_sign_in_user_refuses_a_secret_key_as_publishable_key(
    emulator: FrontendAPIEmulator, call: Any
) -> None:
    before = len(emulator.requests)
    with pytest.raises(ConfigurationError, match="secret key") as caught:
        await call("sign_in_user")(
            emulator.create_user().id, publishable_key=emulator.secret_key, **backend(emulator)
        )
    assert emulator.secret_key not in str(caught.value)
    assert len(emulator.requests) == before  # no ticket was made for nothing


async def test_sign_in_user_refuses_keys_of_two_instances(
    emulator: FrontendAPIEmulator, call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = "pk_live_" + emulator.publishable_key.removeprefix("pk_test_")
    with pytest.raises(ConfigurationError, match="different Clerk instances"):
        await call("sign_in_user")("user_1", publishable_key=live, **backend(emulator))
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", live)
    with pytest.raises(ConfigurationError, match="different Clerk instances"):
        await call("sign_in_user")("user_1", **backend(emulator))


# -- errors ----------------------------------------------------------------------------------------


async def test_a_wrong_secret_key_is_an_authentication_error(
    emulator: FrontendAPIEmulator, call: Any
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await call("create_sign_in_token")(
            "user_1", secret_key=WRONG_KEY, backend_api_url=emulator.backend_api_url
        )
    error = caught.value
    assert (error.status, error.code) == (401, "clerk_key_invalid")
    assert error.clerk_trace_id is not None
    assert "The provided Clerk Secret Key is invalid" in str(error)
    assert "create_sign_in_token" in str(error)


async def test_an_unknown_user_is_not_found(emulator: FrontendAPIEmulator, call: Any) -> None:
    with pytest.raises(NotFoundError) as caught:
        await call("create_sign_in_token")("user_nobody", **backend(emulator))
    assert caught.value.code == "resource_not_found"
    assert caught.value.meta is None or isinstance(caught.value.meta, dict)
    assert "user_nobody" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, BadRequestError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
        (500, ServerError),
        (418, ClerkAPIError),
    ],
)
async def test_status_maps_to_the_error_class_with_clerks_code(
    fresh: FrontendAPIEmulator, call: Any, status: int, error_type: type[ClerkAPIError]
) -> None:
    fresh.fail("*/sign_in_tokens", status, code=f"code_{status}", message=f"Message {status}.")
    with pytest.raises(error_type) as caught:
        await call("create_sign_in_token")(fresh.create_user().id, **backend(fresh), max_retries=0)
    error = caught.value
    assert type(error) is error_type
    assert (error.status, error.code, error.long_message) == (
        status,
        f"code_{status}",
        f"Message {status}.",
    )
    assert error.clerk_trace_id is not None


async def test_an_html_error_page_keeps_the_status_and_an_excerpt(
    fresh: FrontendAPIEmulator, call: Any
) -> None:
    fresh.fail("*/sign_in_tokens", 502, html=True, times=None)
    with pytest.raises(ServerError) as caught:
        await call("create_sign_in_token")(fresh.create_user().id, **backend(fresh), max_retries=1)
    assert caught.value.status == 502
    assert caught.value.body_excerpt is not None
    assert "<html>" in caught.value.body_excerpt.lower()
    assert caught.value.retries_taken == 1


async def test_retries_after_503_and_429(fresh: FrontendAPIEmulator, call: Any) -> None:
    unavailable = fresh.inject(Fault("*/sign_in_tokens", 1, status=503, retry_after=0))
    limited = fresh.rate_limit("*/sign_in_tokens", retry_after=0)
    token = await call("create_sign_in_token")(fresh.create_user().id, **backend(fresh))
    assert token.status == "pending"
    assert (unavailable.hits, limited.hits) == (1, 1)
    creates = [r.status for r in fresh.requests if r.path.endswith("/sign_in_tokens")]
    assert creates == [503, 429, 200]


async def test_rate_limit_beyond_retries(fresh: FrontendAPIEmulator, call: Any) -> None:
    fresh.rate_limit("*/sign_in_tokens", retry_after=7, times=None)
    with pytest.raises(RateLimitError) as caught:
        await call("create_sign_in_token")(fresh.create_user().id, **backend(fresh), max_retries=0)
    assert caught.value.retry_after == 7


async def test_no_server_is_a_connection_error(call: Any, unused_tcp_port: int) -> None:
    with pytest.raises(APIConnectionError) as caught:
        await call("create_sign_in_token")(
            "user_1",
            secret_key=WRONG_KEY,
            backend_api_url=f"http://127.0.0.1:{unused_tcp_port}",
            max_retries=0,
        )
    assert f"127.0.0.1:{unused_tcp_port}" in str(caught.value)
    assert caught.value.__cause__ is not None  # the transport's error, for --debug


async def test_a_dropped_connection_is_retried(fresh: FrontendAPIEmulator, call: Any) -> None:
    fresh.drop_connection("*/sign_in_tokens")
    token = await call("create_sign_in_token")(fresh.create_user().id, **backend(fresh))
    assert token.status == "pending"


async def test_an_error_the_sdk_is_not_expected_to_raise_passes_through_untried(
    kind: str,
) -> None:
    """Only clerk-backend-api's and httpx's errors are ours to translate and retry."""
    attempts: list[int] = []

    def broken(clerk: Any, timeout_ms: int) -> None:
        attempts.append(timeout_ms)
        raise LookupError("a bug, not a Backend API failure")

    async def broken_async(clerk: Any, timeout_ms: int) -> None:
        broken(clerk, timeout_ms)

    async def send() -> None:
        config = admin._backend(WRONG_KEY, DEAD_URL, 5, 3)
        if kind == "async":
            await admin._call_async(config, "create_sign_in_token", broken_async)
        else:
            admin._call_sync(config, "create_sign_in_token", broken)

    with pytest.raises(LookupError, match="a bug") as caught:
        await send()
    assert len(attempts) == 1
    assert 0 < attempts[0] <= 5000  # the attempt's timeout: what is left of the call's
    assert caught.value.__context__ is None


async def test_a_slow_server_is_a_timeout(fresh: FrontendAPIEmulator, call: Any) -> None:
    from clerk_sessions import APITimeoutError

    fresh.delay("*/sign_in_tokens", 2.0, times=1)
    with pytest.raises(APITimeoutError, match="did not answer in time"):
        await call("create_sign_in_token")(
            fresh.create_user().id, **backend(fresh), timeout=0.2, max_retries=0
        )


async def test_the_secret_key_never_appears_in_errors_or_reprs(
    fapi: FakeFrontendAPI, emulator: FrontendAPIEmulator, call: Any, unused_tcp_port: int
) -> None:
    """Not even from a server that quotes it back, in any error path (tracebacks included)."""
    secret = WRONG_KEY
    fapi.reply(
        401,
        payloads.clerk_errors("clerk_key_invalid", f"bad key {secret}", f"Bearer {secret} no"),
        headers={"X-Echo": secret, "WWW-Authenticate": f"Bearer {secret}"},
    )
    fapi.reply(500, body=f"<html>{secret}</html>".encode(), content_type="text/html")
    fapi.reply(200, {"object": "sign_in_token", "id": 1, "status": secret})  # not the shape
    texts: list[str] = []
    for options in [
        {"backend_api_url": fapi.url, "max_retries": 0},
        {"backend_api_url": fapi.url, "max_retries": 0},
        {"backend_api_url": fapi.url, "max_retries": 0},
        {"backend_api_url": f"http://127.0.0.1:{unused_tcp_port}", "max_retries": 0},
        {"backend_api_url": emulator.backend_api_url},
    ]:
        with pytest.raises(Exception) as caught:  # noqa: PT011 - every kind of failure
            await call("create_sign_in_token")("user_nobody", secret_key=secret, **options)
        error = caught.value
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
        texts += [repr(vars(error))]
    assert len(fapi.requests) == 3
    assert "Traceback" in texts[2]  # the texts are the real ones
    token = await call("create_sign_in_token")(emulator.create_user().id, **backend(emulator))
    texts += [repr(token), str(token), repr(admin._backend(secret, None, 1, 0))]
    for text in texts:
        assert secret not in text
        assert emulator.secret_key not in text


async def test_the_secret_key_is_never_logged(
    fresh: FrontendAPIEmulator, call: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, for every logger (ours, httpx's, httpcore's): successes, HTTP errors, retries,
    a revoke after a failed sign-in."""
    caplog.set_level(logging.DEBUG)
    user = fresh.create_user()
    fresh.rate_limit("*/sign_in_tokens", retry_after=0)
    token = await call("create_sign_in_token")(user.id, **backend(fresh))
    await call("revoke_sign_in_token")(token.id, **backend(fresh))
    with pytest.raises(AuthenticationError):
        await call("create_sign_in_token")(
            user.id, secret_key=WRONG_KEY, backend_api_url=fresh.backend_api_url
        )
    fresh.native_api_disabled = True
    with pytest.raises(BadRequestError):
        await call("sign_in_user")(user.id, frontend_api_url=fresh.url, **backend(fresh))
    assert "Backend API create_sign_in_token -> HTTP 429" in caplog.text  # logging was on
    assert "revoked the unused sign-in token" in caplog.text
    for secret in (fresh.secret_key, WRONG_KEY, token.token):
        assert secret not in caplog.text


async def test_without_the_admin_extra_calls_say_what_to_install(
    call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "clerk_backend_api", None)  # makes the import fail
    hint = r'pip install "clerk-sessions\[admin\]"'
    with pytest.raises(ImportError, match=hint):
        await call("create_sign_in_token")("user_1", secret_key=WRONG_KEY)
    with pytest.raises(ImportError, match=hint):
        await call("revoke_sign_in_token")("sit_1", secret_key=WRONG_KEY)
    with pytest.raises(ImportError, match=hint):
        await call("sign_in_user")("user_1", secret_key=WRONG_KEY, frontend_api_url=DEAD_URL)


def test_importing_the_module_does_not_import_clerk_backend_api() -> None:
    code = (
        "import sys, clerk_sessions.admin as a; "
        "assert 'clerk_backend_api' not in sys.modules and 'httpx' not in sys.modules; "
        "print(a.SignedInDevice.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SignedInDevice"


# -- sign_in_user ----------------------------------------------------------------------------------


async def test_sign_in_user_makes_a_signed_in_device(
    emulator: FrontendAPIEmulator, call: Any
) -> None:
    user = emulator.create_user()
    device = await call("sign_in_user")(
        user.id, publishable_key=emulator.publishable_key, **backend(emulator)
    )
    assert isinstance(device, SignedInDevice)
    assert device.user_id == user.id
    assert device.frontend_api_url == emulator.url
    session = emulator.session(device.session_id)
    assert (session.status, session.user_id) == ("active", user.id)
    assert device.client_id is not None
    assert emulator.client_record(device.client_id).current_token == device.client_token
    assert device.client_token not in repr(device)
    assert "client_token='[redacted]'" in repr(device)
    tokens = [r for r in emulator.requests if r.operation == "create_sign_in_token"]
    assert tokens[-1].status == 200


async def test_sign_in_user_ignores_the_environments_client_token(
    emulator: FrontendAPIEmulator, call: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = emulator.sign_in(emulator.create_user())
    monkeypatch.setenv("CLERK_CLIENT_TOKEN", other.client_token)
    device = await call("sign_in_user")(
        emulator.create_user().id, frontend_api_url=emulator.url, **backend(emulator)
    )
    assert device.client_id != other.client_id  # a new device


async def test_sign_in_user_onto_an_existing_device(
    emulator: FrontendAPIEmulator, call: Any
) -> None:
    first = emulator.sign_in(emulator.create_user())
    device = await call("sign_in_user")(
        emulator.create_user().id,
        frontend_api_url=emulator.url,
        client_token=first.client_token,
        **backend(emulator),
    )
    assert device.client_id == first.client_id
    sessions = emulator.client_record(first.client_id).session_ids
    assert {first.session_id, device.session_id} <= set(sessions)


async def test_sign_in_user_into_an_organization(emulator: FrontendAPIEmulator, call: Any) -> None:
    user = emulator.create_user()
    org = emulator.create_organization(
        "Beta", slug=f"beta-{user.id.lower()}", members={user.id: "org:member"}
    )
    device = await call("sign_in_user")(
        user.id, frontend_api_url=emulator.url, org_id=org.id, **backend(emulator)
    )
    assert emulator.session(device.session_id).last_active_organization_id == org.id


async def test_a_failed_sign_in_revokes_the_ticket(fresh: FrontendAPIEmulator, call: Any) -> None:
    fresh.native_api_disabled = True
    with pytest.raises(BadRequestError) as caught:
        await call("sign_in_user")(
            fresh.create_user().id, frontend_api_url=fresh.url, **backend(fresh)
        )
    assert caught.value.code == "native_api_disabled"
    assert "enable the Native API" in str(caught.value)
    calls = [(r.operation, r.status) for r in fresh.requests]
    assert calls == [
        ("create_sign_in_token", 200),
        ("sign_in_with_ticket", 400),
        ("revoke_sign_in_token", 200),
    ]
    tokens = list(fresh._world.sign_in_tokens.values())
    assert [t.status for t in tokens] == ["revoked"]


async def test_a_dropped_sign_in_revokes_the_ticket_and_is_not_retried(
    fresh: FrontendAPIEmulator, call: Any
) -> None:
    fresh.drop_connection("*/sign_ins")
    with pytest.raises(APIConnectionError):
        await call("sign_in_user")(
            fresh.create_user().id, frontend_api_url=fresh.url, **backend(fresh)
        )
    calls = [r.operation for r in fresh.requests]
    assert calls == [
        "create_sign_in_token",
        None,  # the dropped sign-in (answered by the fault, before routing)
        "revoke_sign_in_token",
    ]
    assert [t.status for t in fresh._world.sign_in_tokens.values()] == ["revoked"]


async def test_a_failed_revoke_leaves_the_sign_in_error(
    fresh: FrontendAPIEmulator, call: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fresh.native_api_disabled = True
    fresh.fail("*/revoke", 500, times=None)
    with pytest.raises(BadRequestError) as caught:
        await call("sign_in_user")(
            fresh.create_user().id, frontend_api_url=fresh.url, **backend(fresh), max_retries=0
        )
    assert caught.value.code == "native_api_disabled"
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert "could not be revoked" in warning[0].getMessage()
    assert fresh.secret_key not in caplog.text


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        ("needs_second_factor", {"Authorization": "client_jwt.new"}, "did not complete"),
        ("complete", {}, "without a client token"),
    ],
)
async def test_a_sign_in_that_gives_no_device_is_an_error(
    emulator: FrontendAPIEmulator,
    fapi: FakeFrontendAPI,
    call: Any,
    status: str,
    headers: dict[str, str],
    message: str,
) -> None:
    """The Frontend API (here a scripted one) answered 200, but not with a usable device."""
    session = payloads.session("sess_new")
    sign_in = {"object": "sign_in_attempt", "id": "sia_1", "status": status}
    sign_in["created_session_id"] = "sess_new" if status == "complete" else None
    fapi.reply(200, {"response": sign_in, "client": payloads.client(session)}, headers=headers)
    with pytest.raises(ClerkSessionsError, match=message):
        await call("sign_in_user")(
            emulator.create_user().id, frontend_api_url=fapi.url, **backend(emulator)
        )
    assert [r.path for r in fapi.requests] == ["/v1/client/sign_ins"]


async def test_an_unknown_user_makes_no_device(emulator: FrontendAPIEmulator, call: Any) -> None:
    with pytest.raises(NotFoundError):
        await call("sign_in_user")(
            "user_nobody", frontend_api_url=emulator.url, **backend(emulator)
        )


# -- the three-line journey ------------------------------------------------------------------------


def test_from_a_secret_key_to_a_session_token_in_three_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's promise, literally: with the keys in the environment, three lines."""
    with FrontendAPIEmulator() as fapi:
        user = fapi.create_user()
        monkeypatch.setenv("CLERK_SECRET_KEY", fapi.secret_key)
        monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", fapi.publishable_key)
        monkeypatch.setenv("CLERK_BACKEND_API_URL", fapi.backend_api_url)  # not api.clerk.com

        device = sign_in_user_sync(user.id)
        with ClerkSessions(client_token=device.client_token) as clerk:
            jwt = clerk.get_token(device.session_id)

        claims = _claims(fapi, jwt)
        assert (claims["sub"], claims["sid"]) == (user.id, device.session_id)


async def test_the_three_lines_async(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user()
    keys = {"publishable_key": emulator.publishable_key}

    device = await sign_in_user(user.id, **keys, **backend(emulator))
    async with AsyncClerkSessions(**keys, client_token=device.client_token) as clerk:
        jwt = await clerk.get_token(device.session_id)

    claims = _claims(emulator, jwt)
    assert (claims["sub"], claims["sid"]) == (user.id, device.session_id)


def test_the_blocking_functions_need_no_event_loop(emulator: FrontendAPIEmulator) -> None:
    token = create_sign_in_token_sync(emulator.create_user().id, **backend(emulator))
    revoke_sign_in_token_sync(token.id, **backend(emulator))
    assert emulator.sign_in_token(token.id).status == "revoked"


async def test_the_coroutines_run_concurrently(emulator: FrontendAPIEmulator) -> None:
    users = [emulator.create_user() for _ in range(5)]
    devices: list[SignedInDevice] = []

    async def one(user_id: str) -> None:
        devices.append(
            await sign_in_user(user_id, frontend_api_url=emulator.url, **backend(emulator))
        )

    async with anyio.create_task_group() as group:
        for user in users:
            group.start_soon(one, user.id)
    assert sorted(d.user_id for d in devices) == sorted(u.id for u in users)
    assert len({d.client_id for d in devices}) == 5
    token = await create_sign_in_token(users[0].id, **backend(emulator))
    await revoke_sign_in_token(token.id, **backend(emulator))


def _claims(fapi: FrontendAPIEmulator, token: str) -> dict[str, Any]:
    import jwt

    keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(fapi.jwks()).keys}
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["RS256"], issuer=fapi.url, options={"verify_aud": False}
    )
    return claims
