"""Tokens timed on the server's clock (``fapi-protocol.md`` §12).

A session JWT's ``iat``/``exp`` are on the Frontend API's clock. The SDK estimates that clock
from each answer (the ``Date`` header and a new token's ``iat``) and judges cached tokens by
it, so a machine whose clock is an hour off either way still mints once per token lifetime and
never serves a token the server has expired.

The unit tests drive ``ServerClock`` with fake clocks. The end-to-end tests run the emulator
on a clock an hour away from the client's own fake clock: both move together, under the test's
control, so "time passes" without waiting.
"""

from __future__ import annotations

import email.utils
from email.utils import formatdate
from typing import Any

import anyio.to_thread
import jwt
import pytest
from aiohttp import web

from clerk_sessions import AsyncClerkSessions, ClerkSessions
from clerk_sessions import _clock as clock_module
from clerk_sessions._clock import ServerClock
from clerk_sessions._runtime import Runtime
from clerk_sessions.testing import Clock, FrontendAPIEmulator

from . import payloads

pytestmark = pytest.mark.anyio

HOUR = 3600.0
LIFETIME = 60  # the emulator's (and Clerk's) default session-token lifetime
LEEWAY = 10.0  # the SDK's default token_leeway


class LocalClocks:
    """This machine's clocks, faked: a calendar clock and a monotonic one on another base.

    The calendar clock starts a quarter past a second, so whole-second server values never sit
    exactly on a boundary of the local one.
    """

    def __init__(self, wall: float = 1_800_000_000.25, monotonic: float = 5_000.0) -> None:
        self.wall = wall
        self.monotonic = monotonic

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.monotonic += seconds

    def runtime(self) -> Runtime:
        return Runtime(monotonic=lambda: self.monotonic, wall=lambda: self.wall)


def http_date(at: float) -> str:
    return formatdate(at, usegmt=True)


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def mints(fapi: FrontendAPIEmulator) -> int:
    return sum(r.operation == "create_session_token" for r in fapi.requests)


# -- ServerClock, alone --------------------------------------------------------------------------


def test_before_any_answer_there_is_no_skew_and_now_is_the_local_clock() -> None:
    local = LocalClocks()
    clock = ServerClock(local.runtime())
    assert clock.skew is None
    assert clock.now() == local.wall


def test_a_date_header_sets_the_servers_time_and_the_skew() -> None:
    local = LocalClocks()
    clock = ServerClock(local.runtime())
    clock.observe_date(http_date(local.wall + HOUR))
    assert clock.skew == pytest.approx(HOUR, abs=1)
    assert clock.now() == pytest.approx(local.wall + HOUR, abs=1)
    before = clock.now()
    local.advance(42)
    assert clock.now() - before == pytest.approx(42)


@pytest.mark.parametrize("server_ahead", [HOUR, -HOUR, 0.0])
def test_skew_is_positive_when_the_server_is_ahead_and_negative_when_behind(
    server_ahead: float,
) -> None:
    local = LocalClocks()
    clock = ServerClock(local.runtime())
    clock.observe_date(http_date(local.wall + server_ahead))
    assert clock.skew is not None
    assert clock.skew == pytest.approx(server_ahead, abs=1)


def test_a_minted_tokens_iat_is_a_sample_of_the_servers_clock_too() -> None:
    local = LocalClocks()
    clock = ServerClock(local.runtime())
    clock.observe_issued_at(int(local.wall - HOUR))
    assert clock.skew == pytest.approx(-HOUR, abs=1)


def test_intervals_run_on_the_monotonic_clock_so_stepping_the_calendar_changes_nothing() -> None:
    """An NTP step of the local calendar clock moves ``skew`` (it is reported against that
    clock) but not the server time tokens are judged by."""
    local = LocalClocks()
    clock = ServerClock(local.runtime())
    clock.observe_date(http_date(local.wall))
    server_now = clock.now()
    local.wall -= 1000  # the calendar clock is stepped back; the monotonic one is not
    assert clock.now() == server_now
    assert clock.skew == pytest.approx(1000, abs=1)


@pytest.mark.parametrize(
    "unreadable",
    [
        "",
        "yesterday",
        "Sun, 06 Nov 1994 08:49:37 -0000",  # no zone: not an instant
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:61:37 GMT",
    ],
)
def test_an_unreadable_date_is_ignored(unreadable: str) -> None:
    local = LocalClocks()
    clock = ServerClock(local.runtime())
    clock.observe_date(unreadable)
    clock.observe_date(None)
    assert clock.skew is None
    clock.observe_date(http_date(local.wall + HOUR))
    clock.observe_date(unreadable)
    assert clock.skew == pytest.approx(HOUR, abs=1)


def test_one_odd_date_does_not_move_the_estimate() -> None:
    """A proxy's cached (stale) ``Date`` is one odd sample among the recent answers: the
    median of the last five ignores it."""
    local = LocalClocks()
    clock = ServerClock(local.runtime())
    for _ in range(4):
        clock.observe_date(http_date(local.wall + HOUR))
        local.advance(1)
    clock.observe_date(http_date(local.wall - 5 * HOUR))  # a day-old page, cached somewhere
    assert clock.skew == pytest.approx(HOUR, abs=1)


def test_one_odd_date_right_after_the_first_answer_does_not_swing_the_estimate() -> None:
    """With one good sample and one odd one there is no majority for the odd value: the
    estimate must not land between them (half an hour off, for a stale hour)."""
    local = LocalClocks()
    clock = ServerClock(local.runtime())
    clock.observe_date(http_date(local.wall))
    local.advance(1)
    clock.observe_date(http_date(local.wall - HOUR))  # the odd one
    assert clock.skew == pytest.approx(0, abs=1)


def test_a_real_change_of_the_servers_clock_is_followed_after_three_answers() -> None:
    local = LocalClocks()
    clock = ServerClock(local.runtime())
    for _ in range(5):
        clock.observe_date(http_date(local.wall))
        local.advance(1)
    skews = []
    for _ in range(3):  # the server's clock was set an hour ahead
        clock.observe_date(http_date(local.wall + HOUR))
        local.advance(1)
        skews.append(clock.skew)
    assert skews[:2] == [pytest.approx(0, abs=1)] * 2
    assert skews[2] == pytest.approx(HOUR, abs=1)


def test_the_same_date_string_again_is_not_parsed_nor_counted_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many answers within one second carry the same ``Date``: one string comparison each."""
    parsed: list[str] = []
    real_parse = email.utils.parsedate_to_datetime

    def counting_parse(value: str) -> Any:
        parsed.append(value)
        return real_parse(value)

    monkeypatch.setattr(clock_module.email.utils, "parsedate_to_datetime", counting_parse)
    local = LocalClocks(wall=1_800_000_000.0)
    clock = ServerClock(local.runtime())
    date = http_date(local.wall)
    clock.observe_date(date)
    local.advance(0.9)  # the same server second, 0.9 s later on this machine
    clock.observe_date(date)
    clock.observe_date(date)
    assert parsed == [date]
    # Counted again, 0.9 s later, it would have pulled the estimate back.
    # The sample is the end of the server's second (1_800_000_001), read at local 0.0.
    assert clock.now() == pytest.approx(1_800_000_001.0 + 0.9, abs=0.01)


# -- get_token with the server an hour away ------------------------------------------------------


def skewed_emulator(local: LocalClocks, server_ahead: float) -> FrontendAPIEmulator:
    """An emulator whose clock is ``server_ahead`` seconds from ``local``'s calendar clock and
    moves with it."""
    return FrontendAPIEmulator(clock=Clock(now=lambda: local.wall + server_ahead))


def skewed_client(fapi: FrontendAPIEmulator, token: str, local: LocalClocks) -> AsyncClerkSessions:
    """A client on this machine's (fake) clocks, not the emulator's."""
    return AsyncClerkSessions(
        frontend_api_url=fapi.url, client_token=token, max_retries=0, _runtime=local.runtime()
    )


@pytest.mark.parametrize("server_ahead", [HOUR, -HOUR], ids=["server-ahead", "server-behind"])
async def test_one_mint_per_token_lifetime_with_the_server_an_hour_off(
    server_ahead: float,
) -> None:
    local = LocalClocks()
    async with skewed_emulator(local, server_ahead) as fapi:
        device = fapi.sign_in()
        async with skewed_client(fapi, device.client_token, local) as clerk:
            assert clerk.clock_skew is None
            first = await clerk.get_token(device.session_id)
            served = set()
            for _ in range(40):  # 40 s of traffic: the token has 20 s left, more than refresh
                local.advance(1)
                served.add(await clerk.get_token(device.session_id))
            assert (served, mints(fapi)) == ({first}, 1)

            local.advance(15)  # 55 s after minting: 5 s left, below the 10 s leeway
            second = await clerk.get_token(device.session_id)
            assert second != first
            assert mints(fapi) == 2
            assert claims(second)["exp"] - fapi.clock.now() > LEEWAY
            assert clerk.clock_skew == pytest.approx(server_ahead, abs=2)


@pytest.mark.parametrize("phase", [0.05, 0.95])
@pytest.mark.parametrize("server_ahead", [HOUR, -HOUR], ids=["server-ahead", "server-behind"])
async def test_a_token_is_never_served_with_less_than_the_leeway_left_on_the_servers_clock(
    server_ahead: float, phase: float
) -> None:
    """Fifth-of-a-second steps over three token lifetimes, from two sub-second phases of
    the server's clock: every token handed out has the leeway left by the emulator's clock
    (``Date`` and ``iat`` are whole seconds; each sample is taken at the end of its second, so
    the estimate errs towards expiring early), and tokens are minted once per lifetime -
    leeway (no refresh-ahead here: ``token_refresh_ahead`` equals the leeway)."""
    local = LocalClocks(wall=1_800_000_000 + phase)
    async with skewed_emulator(local, server_ahead) as fapi:
        device = fapi.sign_in()
        async with AsyncClerkSessions(
            frontend_api_url=fapi.url,
            client_token=device.client_token,
            token_leeway=LEEWAY,
            token_refresh_ahead=LEEWAY,
            _runtime=local.runtime(),
        ) as clerk:
            left_when_served = []
            for _ in range(5 * 3 * LIFETIME):
                token = await clerk.get_token(device.session_id)
                left_when_served.append(claims(token)["exp"] - fapi.clock.now())
                local.advance(0.2)
    assert min(left_when_served) >= LEEWAY
    assert 3 <= mints(fapi) <= 4  # 180 s / (60 s - 10 s)


class DatedSessionServer:
    """``getSession`` answers whose ``Date`` the test picks (a proxy's stale copy, say), with a
    ``last_active_token`` minted on the server's clock; ``/tokens`` mints on it too."""

    def __init__(self, server_now: Any) -> None:
        self.server_now = server_now
        self.dates: list[float] = []  # the Date of each coming getSession answer, in order
        self.mints = 0
        self.url = ""

    def token(self) -> str:
        now = int(self.server_now())
        return jwt.encode(
            {"sid": "sess_1", "iat": now, "exp": now + LIFETIME}, "k" * 32, algorithm="HS256"
        )

    async def get_session(self, request: web.Request) -> web.Response:
        envelope = payloads.session_envelope("sess_1")
        envelope["response"]["last_active_token"] = {"object": "token", "jwt": self.token()}
        envelope["client"]["sessions"] = [envelope["response"]]
        date = self.dates.pop(0) if self.dates else self.server_now()
        return web.json_response(envelope, headers={"Date": http_date(date)})

    async def mint(self, request: web.Request) -> web.Response:
        self.mints += 1
        body = {"object": "token", "jwt": self.token()}
        return web.json_response(body, headers={"Date": http_date(self.server_now())})


async def test_a_stale_date_from_a_proxy_never_revives_an_expired_token() -> None:
    """getSession seeds the cache with the session's token; a second answer carries a cached
    ``Date`` an hour old. Two minutes later that token has expired on the server: get_token
    must mint, not serve it because the clock estimate was dragged half an hour back."""
    local = LocalClocks()
    server = DatedSessionServer(lambda: local.wall)
    app = web.Application()
    app.router.add_get("/v1/client/sessions/{sid}", server.get_session)
    app.router.add_post("/v1/client/sessions/{sid}/tokens", server.mint)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with AsyncClerkSessions(
            frontend_api_url=url, client_token="client-A", _runtime=local.runtime()
        ) as clerk:
            seeded = await clerk.get_session("sess_1")
            server.dates.append(local.wall - HOUR)  # the next answer comes from a stale cache
            await clerk.get_session("sess_1")
            local.advance(2 * LIFETIME)
            token = await clerk.get_token("sess_1")
    finally:
        await runner.cleanup()
    assert seeded.response.last_active_token is not None
    assert token != seeded.response.last_active_token.jwt
    assert claims(token)["exp"] > local.wall + LEEWAY
    assert server.mints == 1


async def test_the_emulators_helper_client_follows_its_clock_after_a_jump() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            first = await clerk.get_token(device.session_id)
            fapi.clock.advance(HOUR)
            fresh = await clerk.get_token(device.session_id)
            skew = clerk.clock_skew
    assert fresh != first
    assert claims(fresh)["exp"] - fapi.clock.now() > LEEWAY
    assert mints(fapi) == 2
    assert skew == pytest.approx(0, abs=2)  # the helper's own clock jumped with the emulator's


async def test_clock_skew_is_none_until_the_first_answer_and_then_a_number() -> None:
    local = LocalClocks()
    async with skewed_emulator(local, -HOUR) as fapi:
        device = fapi.sign_in()
        async with skewed_client(fapi, device.client_token, local) as clerk:
            view = clerk.with_client_token(device.client_token)
            assert (clerk.clock_skew, view.clock_skew) == (None, None)
            await view.get_session(device.session_id)  # one answer: its Date header
            assert clerk.clock_skew == pytest.approx(-HOUR, abs=2)
            assert view.clock_skew == clerk.clock_skew  # one estimate per Frontend API


async def test_the_sync_facade_exposes_clock_skew_too() -> None:
    local = LocalClocks()
    async with skewed_emulator(local, HOUR) as fapi:
        device = fapi.sign_in()
        clerk = ClerkSessions(
            frontend_api_url=fapi.url, client_token=device.client_token, _runtime=local.runtime()
        )
        try:
            assert clerk.clock_skew is None
            view = clerk.with_client_token(device.client_token)
            first = await anyio.to_thread.run_sync(view.get_token, device.session_id)
            local.advance(30)
            again = await anyio.to_thread.run_sync(clerk.get_token, device.session_id)
            assert again == first
            assert mints(fapi) == 1
            assert clerk.clock_skew == pytest.approx(HOUR, abs=2)
            assert view.clock_skew == clerk.clock_skew
        finally:
            await anyio.to_thread.run_sync(clerk.close)
