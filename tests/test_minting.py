"""Clerk's 2026 minting protocol (``fapi-protocol.md`` §7, §7b).

Two server behaviours, both in the emulator: an instance that answers a mint without the
previous token with ``422 missing_expired_token`` (the 2026 incidents; the SDK retries once
with ``?expired_token=<last token it saw>``), and an instance with the Session Minter (the SDK,
told so by ``session_minter=True`` or ``CLERK_SESSION_MINTER=1``, sends the previous token in
the body as ``token``, and ``force_origin=true`` on skip-cache). Template mints send neither.

The emulator's request log says which seeds a request carried (never their values). Where a
test must see the values - which token the retry carried - or needs a server that misbehaves
(always 422, no ``last_active_token``, echoing the query string into its error page), a small
aiohttp server stands in. The previous token is a credential in a query string: canary tests
check it never reaches logs, errors or reprs.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import attrs
import jwt
import pytest
from aiohttp import web

from clerk_sessions import (
    APIConnectionError,
    AsyncClerkSessions,
    ClerkSessionsError,
    ConfigurationError,
    NotFoundError,
    ServerError,
    TokenRequest,
    UnprocessableEntityError,
)
from clerk_sessions._runtime import Runtime
from clerk_sessions.testing import FrontendAPIEmulator, SignedIn

from . import payloads

pytestmark = pytest.mark.anyio

SIGNING_KEY = "test-signing-key-for-fake-jwts-0123456789"
MISSING = payloads.clerk_errors(
    "missing_expired_token",
    "The expired_token parameter is required",
    "The expired_token parameter is required",
    meta={"param_name": "expired_token"},
)


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def session_jwt(sid: str, label: str) -> str:
    now = int(time.time())
    return jwt.encode(
        {"sid": sid, "iat": now, "exp": now + 60, "label": label}, SIGNING_KEY, algorithm="HS256"
    )


def token_log(fapi: FrontendAPIEmulator) -> list[tuple[str | None, int, bool, bool, bool]]:
    """(operation, status, body token?, ?expired_token, force_origin) of every request."""
    return [
        (r.operation, r.status, r.sent_token, r.expired_token, r.force_origin)
        for r in fapi.requests
    ]


MINT = "create_session_token"
TEMPLATE_MINT = "create_session_token_with_template"
GET = "get_session"


# -- a server whose answers and seen values the test controls -------------------------------------


@attrs.define
class Seen:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]


RetryAnswer = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MintServer:
    """``/tokens`` answers 422 ``missing_expired_token`` unless the query carries
    ``expired_token`` (``always_missing``: whatever it carries); ``getSession`` answers with
    ``last_active`` as the session's ``last_active_token`` (or ``get_session_status``);
    ``on_retry`` may answer a mint that carried ``expired_token`` instead of minting."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.last_active: str | None = session_jwt("sess_1", "last-active")
        self.get_session_status = 200
        self.always_missing = False
        self.on_retry: RetryAnswer | None = None
        self.minted: list[str] = []
        self.url = ""

    def mints(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = dict(await request.post()) if request.can_read_body else {}
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                {k: str(v) for k, v in form.items()},
            )
        )
        sid = request.match_info["sid"]
        if request.method == "GET":
            if self.get_session_status != 200:
                return web.json_response(payloads.clerk_errors(), status=self.get_session_status)
            envelope = payloads.session_envelope(sid)
            envelope["response"]["last_active_token"] = (
                None if self.last_active is None else {"object": "token", "jwt": self.last_active}
            )
            envelope["client"]["sessions"] = [envelope["response"]]
            return web.json_response(envelope)
        retried = "expired_token" in request.query
        if self.always_missing or (not retried and "template" not in request.match_info):
            return web.json_response(MISSING, status=422)
        if retried and self.on_retry is not None:
            return await self.on_retry(request)
        minted = session_jwt(sid, f"minted-{len(self.minted) + 1}")
        self.minted.append(minted)
        return web.json_response({"object": "token", "jwt": minted})


@pytest.fixture
async def server() -> AsyncIterator[MintServer]:
    mint_server = MintServer()
    app = web.Application()
    app.router.add_get("/v1/client/sessions/{sid}", mint_server.handle)
    app.router.add_post("/v1/client/sessions/{sid}/tokens", mint_server.handle)
    app.router.add_post("/v1/client/sessions/{sid}/tokens/{template}", mint_server.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    mint_server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield mint_server
    finally:
        await runner.cleanup()


def client_of(server: MintServer, **options: Any) -> AsyncClerkSessions:
    return AsyncClerkSessions(frontend_api_url=server.url, client_token="client-A", **options)


# -- 422 missing_expired_token: one retry with ?expired_token= ------------------------------------


async def test_get_token_create_session_token_and_batches_survive_the_2026_incident() -> None:
    async with FrontendAPIEmulator(require_expired_token=True) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            jwt_1 = await clerk.get_token(device.session_id)  # knows no token yet
            assert token_log(fapi) == [
                (MINT, 422, False, False, False),
                (GET, 200, False, False, False),  # its last_active_token seeds the retry
                (MINT, 200, False, True, False),
            ]
            token = await clerk.create_session_token(device.session_id)  # knows jwt_1
            assert token_log(fapi)[3:] == [
                (MINT, 422, False, False, False),
                (MINT, 200, False, True, False),
            ]

            second = fapi.sign_in(device=device)  # a session this client has never seen
            del fapi.requests[:]
            results = [
                r
                async for r in clerk.refresh_tokens(
                    [device.session_id, TokenRequest(second.session_id)], concurrency=1
                )
            ]
    assert {claims(jwt_1)["sid"], claims(token.jwt)["sid"]} == {device.session_id}
    assert [r.ok for r in results] == [True, True]
    assert [claims(r.token or "")["sid"] for r in results] == [
        device.session_id,
        second.session_id,
    ]
    assert token_log(fapi) == [
        (MINT, 422, False, False, False),
        (MINT, 200, False, True, False),
        (MINT, 422, False, False, False),
        (GET, 200, False, False, False),
        (MINT, 200, False, True, False),
    ]


async def test_the_retry_carries_the_last_token_the_sdk_saw(server: MintServer) -> None:
    """The cached token (here from getSession's last_active_token), then each minted one."""
    async with client_of(server) as clerk:
        await clerk.get_session("sess_1")
        assert await clerk.get_token("sess_1") == server.last_active  # a cache hit: no mint
        fresh = await clerk.get_token("sess_1", skip_cache=True)
        token = await clerk.create_session_token("sess_1")
    assert [s.query.get("expired_token") for s in server.mints()] == [
        None,
        server.last_active,
        None,
        fresh,
    ]
    assert token.jwt == server.minted[-1]
    assert [s.method for s in server.seen].count("GET") == 1  # no getSession was needed


async def test_an_expired_last_token_is_still_the_one_sent(server: MintServer) -> None:
    """``expired_token`` is for exactly that: a token too old to be served is still the seed."""
    now = int(time.time())
    server.last_active = jwt.encode(
        {"sid": "sess_1", "iat": now - 3600, "exp": now - 3540}, SIGNING_KEY, algorithm="HS256"
    )
    async with client_of(server) as clerk:
        await clerk.get_session("sess_1")
        token = await clerk.get_token("sess_1")
    assert token == server.minted[0]
    assert server.mints()[-1].query["expired_token"] == server.last_active


async def test_with_no_token_known_the_sdk_asks_get_session_first(server: MintServer) -> None:
    async with client_of(server) as clerk:
        token = await clerk.get_token("sess_1")
    assert [(s.method, s.query.get("expired_token")) for s in server.seen] == [
        ("POST", None),
        ("GET", None),
        ("POST", server.last_active),
    ]
    assert token == server.minted[0]


@pytest.mark.parametrize("get_session", ["no last_active_token", "getSession fails"])
async def test_with_still_no_token_known_the_422_is_raised(
    server: MintServer, get_session: str
) -> None:
    if get_session == "no last_active_token":
        server.last_active = None
    else:
        server.get_session_status = 404
    async with client_of(server, max_retries=0) as clerk:
        with pytest.raises(UnprocessableEntityError) as raised:
            await clerk.get_token("sess_1")
    assert (raised.value.status, raised.value.code) == (422, "missing_expired_token")
    assert [s.method for s in server.seen] == ["POST", "GET"]  # no retry without a token
    if get_session == "getSession fails":
        assert isinstance(raised.value.__cause__, NotFoundError)


async def test_a_server_that_keeps_asking_gets_exactly_one_retry(server: MintServer) -> None:
    server.always_missing = True
    async with client_of(server) as clerk:  # the default retry budget: not spent on a 422
        await clerk.get_session("sess_1")
        with pytest.raises(UnprocessableEntityError) as raised:
            await clerk.create_session_token("sess_1")
    assert raised.value.code == "missing_expired_token"
    assert [s.query.get("expired_token") for s in server.mints()] == [None, server.last_active]


async def test_the_expired_token_step_is_not_a_retry_of_the_budget(server: MintServer) -> None:
    """422 missing_expired_token, then 503, 503, 200 with max_retries=2: the step is a protocol
    exchange (sent at once, once per call), so both 503s are retried, announced as retries 1
    and 2 of 2, and the call succeeds with retries_taken == 2."""
    answers = [503, 503]

    async def flaky(request: web.Request) -> web.StreamResponse:
        if answers:
            return web.json_response(payloads.clerk_errors(), status=answers.pop(0))
        minted = session_jwt("sess_1", "after-two-503s")
        server.minted.append(minted)
        return web.json_response({"object": "token", "jwt": minted})

    async def no_sleep(seconds: float) -> None:
        pass

    server.on_retry = flaky
    events: list[str] = []
    async with client_of(
        server,
        max_retries=2,
        on_retry=lambda event: events.append(f"{event.retry} of {event.max_retries}"),
        _runtime=Runtime(sleep=no_sleep),
    ) as clerk:
        await clerk.get_session("sess_1")
        token = await clerk.create_session_token("sess_1")
    assert token.jwt == server.minted[-1]
    assert token.retries_taken == 2
    assert events == ["1 of 2", "2 of 2"]
    assert [s.query.get("expired_token") is not None for s in server.mints()] == [
        False,
        True,
        True,
        True,
    ]


# -- the Session Minter: the previous token in the body ------------------------------------------


@pytest.mark.parametrize("setting", ["constructor", "env 1", "env true"])
async def test_with_the_session_minter_every_non_template_mint_sends_the_previous_token(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    options: dict[str, Any] = {}
    if setting == "constructor":
        options["session_minter"] = True
    else:
        monkeypatch.setenv("CLERK_SESSION_MINTER", setting.removeprefix("env "))
    async with FrontendAPIEmulator(session_minter=True) as fapi:
        fapi.create_jwt_template("hasura", {"role": "user"})
        device = fapi.sign_in()
        async with fapi.async_client(device, **options) as clerk:
            await clerk.get_session(device.session_id)  # the SDK now knows a previous token
            await clerk.create_session_token(device.session_id)
            await clerk.get_token(device.session_id, skip_cache=True)
            await clerk.get_token(device.session_id, organization_id=None)  # not cached yet
            batch = [r async for r in clerk.refresh_tokens([device.session_id])]
            templated = await clerk.get_token(device.session_id, template="hasura")
    assert batch[0].ok
    assert claims(templated)["role"] == "user"
    assert token_log(fapi) == [
        (GET, 200, False, False, False),
        (MINT, 200, True, False, False),
        (MINT, 200, True, False, True),  # skip_cache: force_origin too
        (MINT, 200, True, False, False),
        (MINT, 200, True, False, False),
        (TEMPLATE_MINT, 200, False, False, False),  # neither
    ]
    assert fapi.requests[-1].form == {}


async def test_with_the_session_minter_and_no_token_known_yet_the_first_mint_is_retried() -> None:
    async with FrontendAPIEmulator(session_minter=True) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device, session_minter=True) as clerk:
            await clerk.get_token(device.session_id)
            await clerk.get_token(device.session_id, skip_cache=True)
    assert token_log(fapi) == [
        (MINT, 422, False, False, False),
        (GET, 200, False, False, False),
        (MINT, 200, False, True, False),
        (MINT, 200, True, False, True),  # from now on the body carries it
    ]


async def test_an_explicit_session_minter_false_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLERK_SESSION_MINTER", "1")
    async with FrontendAPIEmulator(session_minter=True) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device, session_minter=False) as clerk:
            await clerk.get_session(device.session_id)
            await clerk.get_token(device.session_id, skip_cache=True)
    assert token_log(fapi) == [
        (GET, 200, False, False, False),
        (MINT, 422, False, False, False),  # no body token, no force_origin
        (MINT, 200, False, True, False),  # ... and the query retry saves the day
    ]


async def test_without_the_setting_nothing_extra_is_sent_to_a_plain_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLERK_SESSION_MINTER", raising=False)
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            await clerk.get_session(device.session_id)
            await clerk.get_token(device.session_id, skip_cache=True)
    assert token_log(fapi) == [(GET, 200, False, False, False), (MINT, 200, False, False, False)]
    assert fapi.requests[-1].form == {}


@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_a_session_minter_env_value_that_is_not_a_boolean_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CLERK_SESSION_MINTER", value)
    with pytest.raises(ConfigurationError, match="CLERK_SESSION_MINTER"):
        AsyncClerkSessions(frontend_api_url="http://127.0.0.1:9")


def test_a_session_minter_argument_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="session_minter"):
        AsyncClerkSessions(frontend_api_url="http://127.0.0.1:9", session_minter="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "modes",
    [{"require_expired_token": True}, {"session_minter": True}],
    ids=["require_expired_token", "session_minter"],
)
@pytest.mark.parametrize("client_minter", [False, True])
async def test_template_mints_never_send_a_previous_token(
    modes: dict[str, bool], client_minter: bool
) -> None:
    async with FrontendAPIEmulator(**modes) as fapi:
        fapi.create_jwt_template("hasura", {"role": "user"})
        device = fapi.sign_in()
        async with fapi.async_client(device, session_minter=client_minter) as clerk:
            await clerk.get_session(device.session_id)  # a previous token is known
            await clerk.get_token(device.session_id, template="hasura")
            await clerk.get_token(device.session_id, template="hasura", skip_cache=True)
            await clerk.create_session_token_with_template(device.session_id, "hasura")
    templated = [r for r in fapi.requests if r.operation == TEMPLATE_MINT]
    assert [(r.status, r.sent_token, r.expired_token, r.force_origin) for r in templated] == [
        (200, False, False, False)
    ] * 3
    assert all(r.form == {} and "expired_token" not in r.query for r in templated)


# -- canaries: the previous token is a credential -------------------------------------------------


def texts_of(error: BaseException) -> Iterator[str]:
    """Everything an error shows: str, repr, attributes, its cause chain and the traceback."""
    yield "".join(traceback.format_exception(type(error), error, error.__traceback__))
    seen: BaseException | None = error
    while seen is not None:
        yield str(seen)
        yield repr(seen)
        yield repr(vars(seen))
        yield repr(seen.args)
        seen = seen.__cause__ or seen.__context__


def pieces(token: str) -> dict[str, str]:
    """A token and the parts of it that would give it away."""
    found = {"token": token}
    if token.count(".") == 2:
        _header, payload, signature = token.split(".")
        found.update(payload=payload, signature=signature, slice=payload[8:40])
    return found


def assert_absent(secret: str, text: str, where: str) -> None:
    for name, piece in pieces(secret).items():
        assert piece not in text, f"the previous session token's {name} leaked into {where}"


@pytest.mark.parametrize("mode", ["expired_token in the query", "token in the body"])
async def test_the_previous_token_never_appears_in_logs_results_or_errors(
    caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="clerk_sessions")
    query = mode.startswith("expired_token")
    async with FrontendAPIEmulator(require_expired_token=query, session_minter=not query) as fapi:
        device = fapi.sign_in()
        previous = fapi.session(device.session_id).last_active_token
        assert previous is not None
        async with fapi.async_client(device, session_minter=not query, max_retries=0) as clerk:
            envelope = await clerk.get_session(device.session_id)
            served = await clerk.get_token(device.session_id, skip_cache=True)  # seeded: previous
            token = await clerk.create_session_token(device.session_id)  # seeded: served
            # The next mint is asked for its seed, then its retry fails with an HTML page.
            fapi.fail("*/tokens", 422, code="missing_expired_token")
            fapi.fail("*/tokens", 500, html=True)
            with pytest.raises(ServerError) as raised:
                await clerk.create_session_token(device.session_id)
    assert [r.expired_token for r in fapi.requests[-2:]] == [False, True]  # the seed was sent
    assert "create_session_token" in caplog.text  # the requests were logged at DEBUG
    for secret in (previous, served, token.jwt):
        assert_absent(secret, caplog.text, "the log")
        assert_absent(secret, repr(envelope) + repr(token) + repr(clerk), "a repr")
        for text in texts_of(raised.value):
            assert_absent(secret, text, "the error")


@pytest.fixture(scope="module")
def emulator_jwt() -> Iterator[str]:
    """A real session JWT, signed by the emulator."""
    with FrontendAPIEmulator() as fapi:
        device: SignedIn = fapi.sign_in()
        token = fapi.session(device.session_id).last_active_token
        assert token is not None
        yield token


async def _echo_html(request: web.Request) -> web.StreamResponse:
    page = f"<html><body><h1>500</h1><p>GET {request.raw_path} failed</p></body></html>"
    return web.Response(status=500, text=page, content_type="text/html")


async def _echo_json(request: web.Request) -> web.StreamResponse:
    echo = f"bad query: {request.query_string}"
    body = payloads.clerk_errors(
        "form_param_value_invalid", echo, echo, meta={"param_name": request.query_string}
    )
    body["clerk_trace_id"] = request.query["expired_token"]
    return web.json_response(body, status=422)


async def _echo_header(request: web.Request) -> web.StreamResponse:
    return web.json_response(
        payloads.clerk_errors("internal_clerk_error"),
        status=500,
        headers={"X-Original-URL": str(request.rel_url)},
    )


async def _drop(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.abort()
    return web.Response(status=500)


ECHOES: dict[str, tuple[RetryAnswer, type[ClerkSessionsError]]] = {
    "an HTML page": (_echo_html, ServerError),
    "a Clerk error body": (_echo_json, UnprocessableEntityError),
    "a response header": (_echo_header, ServerError),
    "a dropped connection": (_drop, APIConnectionError),
}


@pytest.mark.parametrize("echo", ECHOES)
@pytest.mark.parametrize("shape", ["emulator JWT", "opaque"])
async def test_a_server_echoing_the_query_never_puts_the_previous_token_in_an_error(
    server: MintServer,
    caplog: pytest.LogCaptureFixture,
    emulator_jwt: str,
    echo: str,
    shape: str,
) -> None:
    """An error page quoting the request URL quotes the token the retry carried in it. An
    opaque token is not shaped like a JWT: only masking by value can catch it."""
    caplog.set_level(logging.DEBUG, logger="clerk_sessions")
    canary = emulator_jwt if shape == "emulator JWT" else "canary-PREVIOUS-SESSION-TOKEN-5e1f"
    server.last_active = canary
    server.on_retry, expected = ECHOES[echo]
    async with client_of(server, max_retries=0) as clerk:
        with pytest.raises(expected) as raised:
            await clerk.get_token("sess_1")
    assert server.mints()[-1].query["expired_token"] == canary  # it did travel in the query
    for text in texts_of(raised.value):
        assert_absent(canary, text, f"the error ({echo})")
    assert_absent(canary, caplog.text, "the log")
