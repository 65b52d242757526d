"""Canary test: credentials never show up in logs, reprs or error messages.

A distinctive client token, a rotated token (two of them), a ``__client`` cookie and a JWT (a
real three-segment shape whose payload carries a canary) go through every operation, every
error path and a retry, with every logger at DEBUG. None of them may appear in the log text,
in ``repr()`` of any result or model reachable from it, in ``str()``/``repr()`` of any error
(and its ``headers``, ``body_excerpt``, cause chain and traceback), or in ``repr()`` of the
clients. The JWT may only be read back from ``Token.jwt`` attributes.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

import anyio
import attrs
import orjson
import pytest

from clerk_sessions import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ClerkAPIError,
    ClerkSessionsError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    Token,
)
from clerk_sessions._errors import error_class_for_status
from clerk_sessions._logging import setup_logging_from_env
from clerk_sessions._operations import OPERATIONS
from clerk_sessions._runtime import Runtime
from clerk_sessions._wire import api_error

from . import payloads
from .conftest import REPO, FakeFrontendAPI, FakeSleep, MakeClerk, core_of
from .test_operations import CALLS, Call

pytestmark = pytest.mark.anyio


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


TOKEN = "canary-CLIENT-TOKEN-d41d8cd9"
ROTATED = "canary-ROTATED-TOKEN-8f00b204"
ROTATED_AGAIN = "canary-ROTATED-AGAIN-e9800998"
COOKIE = "canary-COOKIE-ecf8427e"
SET_COOKIE = f"__client={COOKIE}; Path=/; HttpOnly; Secure; SameSite=Lax"
JWT_CANARY = "canary-JWT-PAYLOAD-0cc175b9"
JWT_PAYLOAD = b64url(orjson.dumps({"sid": "sess_1", "sub": "user_1", "canary": JWT_CANARY}))
JWT = f"eyJhbGciOiJSUzI1NiJ9.{JWT_PAYLOAD}.{b64url(b'canary-signature-92eb5ffe')}"

CANARIES = {
    "client token": TOKEN,
    "rotated token": ROTATED,
    "second rotated token": ROTATED_AGAIN,
    "cookie": COOKIE,
    "JWT": JWT,
    "JWT payload segment": JWT_PAYLOAD,
    "a slice of the JWT payload": JWT_PAYLOAD[8:28],
    "decoded JWT payload": JWT_CANARY,
}

ERROR_STATUSES = [400, 401, 403, 404, 409, 422, 429, 500, 502]


def assert_clean(text: str, where: str) -> None:
    for name, canary in CANARIES.items():
        assert canary not in text, f"the {name} leaked into {where}: {text[:2000]}"


def with_jwt(data: Any) -> Any:
    """A copy of a reply with every ``jwt`` value replaced by the canary JWT."""
    if isinstance(data, dict):
        return {k: JWT if k == "jwt" else with_jwt(v) for k, v in data.items()}
    if isinstance(data, list):
        return [with_jwt(item) for item in data]
    return data


def html_page(status: int, token: str = TOKEN) -> bytes:
    """A proxy's error page that echoes what the request carried."""
    return (
        f"<!DOCTYPE html><html><head><title>{status} Error</title></head><body>"
        f"<h1>{status}</h1><p>Request header Authorization: {token}</p>"
        f"<p>Bearer {token}</p><pre>session={JWT}</pre></body></html>"
    ).encode()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger (aiohttp's and asyncio's included) and ``clerk_sessions`` at DEBUG."""
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="clerk_sessions"):
        yield caplog


def check_logs(caplog: pytest.LogCaptureFixture) -> None:
    assert any(r.name == "clerk_sessions" for r in caplog.records), "nothing was logged"
    assert_clean(caplog.text, "the log text")
    for record in caplog.records:
        assert_clean(record.getMessage(), f"a log record of {record.name}")
        assert_clean(repr(record.args), f"the arguments of a log record of {record.name}")


def walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every value reachable from a result: models, their fields, lists and mappings."""
    yield path, value
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            yield from walk(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")


def check_result(result: Any) -> int:
    """Reprs mask the JWT everywhere; returns how many ``Token.jwt`` hold it (readable)."""
    tokens = 0
    for path, value in walk(result, "result"):
        if attrs.has(type(value)):
            assert_clean(repr(value), f"repr({path})")
            assert_clean(str(value), f"str({path})")
        if isinstance(value, Token):
            assert value.jwt == JWT, path  # reading the attribute gives the real JWT
            tokens += 1
        elif isinstance(value, str) and not path.endswith(".jwt"):
            assert_clean(value, path)
    return tokens


def check_error(error: BaseException) -> None:
    assert isinstance(error, ClerkSessionsError)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # the whole cause chain
        seen.add(id(current))
        name = type(current).__name__
        assert_clean(str(current), f"str({name})")
        assert_clean(repr(current), f"repr({name})")
        for attribute in ("headers", "body_excerpt"):
            value = getattr(current, attribute, None)
            assert_clean(repr(value), f"repr({name}.{attribute})")
            assert_clean(str(value), f"str({name}.{attribute})")
        current = current.__cause__ or current.__context__
    assert_clean("".join(traceback.format_exception(error)), "the formatted traceback")


def check_clients(clerk: Any) -> None:
    assert_clean(repr(clerk), "repr(client)")
    assert_clean(str(clerk), "str(client)")
    assert_clean(repr(core_of(clerk)), "repr(AsyncClerkSessions)")
    assert_clean(repr(clerk.with_client_token(TOKEN)), "repr(with_client_token(...))")


async def raises(awaitable: Any) -> BaseException:
    with pytest.raises(ClerkSessionsError) as info:
        await awaitable
    return info.value


def call_of(call: Call, clerk: Any, **options: Any) -> Any:
    return getattr(clerk, call.method)(*call.args, **call.kwargs, **options)


# --------------------------------------------------------------------------------------------
# Every operation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.id)
async def test_every_operation_keeps_the_canaries_out(
    call: Call, fapi: FakeFrontendAPI, make_clerk: MakeClerk, logs: pytest.LogCaptureFixture
) -> None:
    reply = with_jwt(call.reply)
    fapi.reply(json=reply, headers={"Set-Cookie": SET_COOKIE, "Authorization": ROTATED})
    async with make_clerk(frontend_api_url=fapi.url, client_token=TOKEN, max_retries=0) as clerk:
        check_clients(clerk)
        result = await call_of(call, clerk)
        assert clerk.client_token == ROTATED  # rotated, readable, and...
        check_clients(clerk)  # ...still masked

    assert fapi.last.headers["Authorization"] == TOKEN  # the canary did travel
    tokens = check_result(result)
    assert tokens == orjson.dumps(reply).count(b'"jwt"')  # every JWT reached a Token
    check_logs(logs)


# --------------------------------------------------------------------------------------------
# Every error path
# --------------------------------------------------------------------------------------------


def error_body(kind: str, status: int) -> tuple[bytes, str]:
    if kind == "html":
        return html_page(status), "text/html"
    echoed = f"JWT {JWT}" if kind == "json-jwt" else f"token {TOKEN} and JWT {JWT}"
    body = payloads.clerk_errors(
        "authorization_invalid",
        f"Invalid authorization: {echoed}",
        f"The request carried an invalid authorization: {echoed}",
        meta={"echo": echoed},
    )
    return orjson.dumps(body), "application/json"


@pytest.mark.parametrize(
    "kind",
    [
        "html",
        "json-jwt",
        "json-token",
    ],
)
@pytest.mark.parametrize("status", ERROR_STATUSES)
async def test_error_responses_keep_the_canaries_out(
    status: int,
    kind: str,
    fapi: FakeFrontendAPI,
    make_clerk: MakeClerk,
    logs: pytest.LogCaptureFixture,
) -> None:
    call = CALLS[ERROR_STATUSES.index(status) % len(CALLS)]  # a different operation each
    body, content_type = error_body(kind, status)
    fapi.reply(
        status,
        body=body,
        content_type=content_type,
        headers={"Set-Cookie": SET_COOKIE, "Authorization": ROTATED, "Retry-After": "1"},
    )
    async with make_clerk(frontend_api_url=fapi.url, client_token=TOKEN, max_retries=0) as clerk:
        error = await raises(call_of(call, clerk))
        check_clients(clerk)

    assert type(error) is error_class_for_status(status)
    assert isinstance(error, ClerkAPIError)
    assert error.headers["Set-Cookie"] == "[redacted]"
    assert error.headers["Authorization"] == "[redacted]"
    if isinstance(error, RateLimitError):
        assert error.retry_after == 1.0
    check_error(error)
    check_logs(logs)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(None, id="non-JSON"),
        pytest.param(
            {"response": [TOKEN, JWT], "client": {"id": TOKEN}, "jwt": [JWT], "object": TOKEN},
            id="mis-shaped",
        ),
        pytest.param({"response": {"id": TOKEN, "status": JWT}}, id="incomplete"),
    ],
)
@pytest.mark.parametrize("method", ["get_session", "create_session_token"])
async def test_a_bad_200_keeps_the_canaries_out(
    method: str,
    body: Any,
    fapi: FakeFrontendAPI,
    make_clerk: MakeClerk,
    logs: pytest.LogCaptureFixture,
) -> None:
    if body is None:
        fapi.reply(200, body=html_page(200), content_type="text/html")
    else:
        fapi.reply(200, body, headers={"Set-Cookie": SET_COOKIE})
    async with make_clerk(frontend_api_url=fapi.url, client_token=TOKEN, max_retries=0) as clerk:
        error = await raises(getattr(clerk, method)("sess_1"))
        check_clients(clerk)

    assert isinstance(error, ResponseValidationError)
    check_error(error)
    check_logs(logs)


async def test_connection_refused_keeps_the_canaries_out(
    unused_tcp_port: int,
    make_clerk: MakeClerk,
    fake_sleep: FakeSleep,
    logs: pytest.LogCaptureFixture,
) -> None:
    async with make_clerk(
        frontend_api_url=f"http://127.0.0.1:{unused_tcp_port}",
        client_token=TOKEN,
        _runtime=Runtime(sleep=fake_sleep),
    ) as clerk:
        error = await raises(clerk.touch_session("sess_1", active_organization_id=TOKEN))
        check_clients(clerk)

    assert type(error) is APIConnectionError
    assert error.retries_taken == 2  # default retries, all logged
    check_error(error)
    check_logs(logs)


async def test_a_timeout_keeps_the_canaries_out(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk, logs: pytest.LogCaptureFixture
) -> None:
    fapi.hang()
    async with make_clerk(frontend_api_url=fapi.url, client_token=TOKEN, max_retries=0) as clerk:
        error = await raises(clerk.create_session_token("sess_1", timeout=0.2))
        check_clients(clerk)

    assert isinstance(error, APITimeoutError)
    check_error(error)
    check_logs(logs)


async def test_a_dropped_connection_keeps_the_canaries_out(
    fapi: FakeFrontendAPI, make_clerk: MakeClerk, logs: pytest.LogCaptureFixture
) -> None:
    fapi.drop_connection()
    async with make_clerk(frontend_api_url=fapi.url, client_token=TOKEN, max_retries=0) as clerk:
        error = await raises(clerk.end_session("sess_1"))
        check_clients(clerk)

    assert type(error) is APIConnectionError
    check_error(error)
    check_logs(logs)


async def test_a_malformed_response_header_keeps_the_canaries_out(
    make_clerk: MakeClerk, logs: pytest.LogCaptureFixture
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n"
            + f"Set-Cookie: {SET_COOKIE}; session={JWT}\x01\r\n\r\n{{}}".encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        async with make_clerk(
            frontend_api_url=f"http://127.0.0.1:{port}", client_token=TOKEN, max_retries=0
        ) as clerk:
            error = await raises(clerk.get_session("sess_1"))

    # aiohttp's C and pure-Python parsers (the latter under -X dev) differ on a control
    # character in a header value: a refused response or an empty body. No canary either way.
    assert type(error) in (APIConnectionError, ResponseValidationError)
    check_logs(logs)
    check_error(error)


# --------------------------------------------------------------------------------------------
# Every retry, with token rotation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.id)
async def test_a_retry_with_token_rotation_keeps_the_canaries_out(
    call: Call,
    fapi: FakeFrontendAPI,
    make_clerk: MakeClerk,
    fake_sleep: FakeSleep,
    logs: pytest.LogCaptureFixture,
) -> None:
    fapi.reply(
        503,
        body=html_page(503),
        content_type="text/html",
        headers={"Authorization": ROTATED, "Set-Cookie": SET_COOKIE, "Retry-After": "1"},
    )
    fapi.reply(
        json=with_jwt(call.reply),
        headers={"Authorization": ROTATED_AGAIN, "Set-Cookie": SET_COOKIE},
    )
    # The default client retries; prepare_*/attempt_* retry only when the call opts in.
    async with make_clerk(
        frontend_api_url=fapi.url, client_token=TOKEN, _runtime=Runtime(sleep=fake_sleep)
    ) as clerk:
        options = {} if OPERATIONS[call.method].retry_safe else {"max_retries": 2}
        result = await call_of(call, clerk, **options)
        assert clerk.client_token == ROTATED_AGAIN
        check_clients(clerk)

        # An error after the rotation echoing the token now in use: masked as well.
        fapi.reply(500, body=html_page(500, ROTATED_AGAIN), content_type="text/html")
        error = await raises(call_of(call, clerk, max_retries=0))

    assert [r.headers["Authorization"] for r in fapi.requests] == [TOKEN, ROTATED, ROTATED_AGAIN]
    assert fake_sleep.delays == [1.0]
    assert result.retries_taken == 1
    check_result(result)
    assert isinstance(error, ServerError)
    check_error(error)
    assert "retrying" in logs.text
    check_logs(logs)


# --------------------------------------------------------------------------------------------
# CLERK_SESSIONS_LOG
# --------------------------------------------------------------------------------------------


@pytest.fixture
def sdk_logger() -> Iterator[logging.Logger]:
    """The ``clerk_sessions`` logger, with handlers and level restored afterwards."""
    logger = logging.getLogger("clerk_sessions")
    handlers, level = list(logger.handlers), logger.level
    try:
        yield logger
    finally:
        for handler in [h for h in logger.handlers if h not in handlers]:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(level)


@pytest.mark.parametrize(("value", "level"), [("debug", logging.DEBUG), (" INFO ", logging.INFO)])
def test_the_environment_turns_sdk_logging_on(
    value: str, level: int, monkeypatch: pytest.MonkeyPatch, sdk_logger: logging.Logger
) -> None:
    monkeypatch.setenv("CLERK_SESSIONS_LOG", value)
    before = list(sdk_logger.handlers)
    setup_logging_from_env()
    added = [h for h in sdk_logger.handlers if h not in before]
    assert len(added) == 1
    assert isinstance(added[0], logging.StreamHandler)
    assert sdk_logger.level == level


@pytest.mark.parametrize("value", ["verbose", "10", "DEBUG=1"])
def test_an_invalid_log_setting_is_ignored_with_a_warning(
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    sdk_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CLERK_SESSIONS_LOG", value)
    before, level = list(sdk_logger.handlers), sdk_logger.level
    with caplog.at_level(logging.WARNING, logger="clerk_sessions"):
        setup_logging_from_env()
    assert sdk_logger.handlers == before
    assert sdk_logger.level == level
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name == "clerk_sessions"
    assert "CLERK_SESSIONS_LOG" in warnings[0].getMessage()
    assert value.lower() in warnings[0].getMessage()


def test_nothing_is_set_up_without_the_variable(
    monkeypatch: pytest.MonkeyPatch, sdk_logger: logging.Logger
) -> None:
    monkeypatch.delenv("CLERK_SESSIONS_LOG", raising=False)
    before, level = list(sdk_logger.handlers), sdk_logger.level
    setup_logging_from_env()
    assert (sdk_logger.handlers, sdk_logger.level) == (before, level)


SCRIPT = """
import clerk_sessions

with clerk_sessions.ClerkSessions(
    frontend_api_url={url!r}, client_token={token!r}, max_retries=0
) as clerk:
    print(repr(clerk))
    print(repr(clerk.get_session("sess_1")))
    print(repr(clerk.create_session_token("sess_1")))
    print(repr(clerk))
    try:
        clerk.get_session("sess_1")
    except clerk_sessions.ClerkSessionsError as exc:
        print(repr(exc), str(exc), exc.headers, exc.body_excerpt)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return {**env, **extra}


async def test_debug_logging_from_the_environment_in_a_fresh_process(
    fapi: FakeFrontendAPI,
) -> None:
    """``CLERK_SESSIONS_LOG=debug`` at import: debug lines on stderr, and no canary."""
    headers = {"Set-Cookie": SET_COOKIE, "Authorization": ROTATED}
    fapi.reply(json=with_jwt(payloads.session_envelope()), headers=headers)
    fapi.reply(json=with_jwt(payloads.token()), headers=headers)
    fapi.reply(401, body=html_page(401, ROTATED), content_type="text/html", headers=headers)
    script = textwrap.dedent(SCRIPT).format(url=fapi.url, token=TOKEN)

    done = await anyio.run_process(
        [sys.executable, "-c", script], env=_env(CLERK_SESSIONS_LOG="debug"), check=False
    )

    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "clerk_sessions DEBUG] GET get_session -> HTTP 200" in stderr
    assert "POST create_session_token -> HTTP 200" in stderr
    assert "GET get_session -> HTTP 401" in stderr
    assert "AuthenticationError(status=401" in stdout
    assert [r.headers["Authorization"] for r in fapi.requests] == [TOKEN, ROTATED, ROTATED]
    assert_clean(stderr, "the debug log on stderr")
    assert_clean(stdout, "the reprs and messages printed")


def test_an_invalid_log_setting_at_import_warns_on_stderr() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import clerk_sessions, logging; print(logging.getLogger('clerk_sessions').handlers)",
        ],
        env=_env(CLERK_SESSIONS_LOG="verbose"),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Ignoring CLERK_SESSIONS_LOG='verbose'" in done.stderr
    assert done.stdout.strip() == "[]"


def test_a_token_echoed_in_trace_id_or_meta_is_masked() -> None:
    body = orjson.dumps(
        {
            "errors": [{"code": "x", "message": "m", "meta": {"echo": [TOKEN, {"jwt": JWT}]}}],
            "meta": {"client": TOKEN},
            "clerk_trace_id": TOKEN,
        }
    )
    error = api_error(OPERATIONS["get_session"], 401, {}, body, secrets=(TOKEN,), now=0.0)
    assert isinstance(error, AuthenticationError)
    for text in (str(error), repr(error), repr(error.errors), repr(error.meta)):
        assert TOKEN not in text
        assert JWT not in text
