"""Devices, not views: what every view of one Clerk client (device) shares.

A device is named by the ``id`` claim of its client-token JWT (two generations of one device's
token share it), or by the token string when the token is not such a JWT. Every view of a
device - the client itself, each ``with_client_token(...)`` result, the sync facade's views -
shares its cached session tokens, its single flight, its current client token and its
sign-outs; different devices share nothing; device records are bounded.

Most tests run against the emulator (its request log counts mints and says which client-token
generation each request carried); a small aiohttp server stands in where a test needs tokens
the emulator would refuse (opaque ones) or answers held and released in a chosen order.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio.to_thread
import jwt
import pytest
from aiohttp import web

from clerk_sessions import (
    AsyncClerkSessions,
    AuthenticationError,
    ClerkAPIError,
    Envelope,
    NotFoundError,
)
from clerk_sessions import _client as client_module
from clerk_sessions._devices import device_name
from clerk_sessions.testing import STALE_CLIENT_TOKEN_GRACE, FrontendAPIEmulator, inspect

from . import payloads

pytestmark = pytest.mark.anyio

SIGNING_KEY = "test-signing-key-for-fake-jwts-0123456789"


def client_jwt(client_id: str, rotating: str) -> str:
    """A native client token: a JWT naming its client (``id``) with a rotating part (§14)."""
    return jwt.encode({"id": client_id, "rotating_token": rotating}, SIGNING_KEY, algorithm="HS256")


def mints(fapi: FrontendAPIEmulator) -> int:
    return sum(r.operation == "create_session_token" for r in fapi.requests)


def kept(clerk: AsyncClerkSessions) -> int:
    kept_tokens = inspect(clerk).kept_tokens
    assert kept_tokens is not None  # the in-process store
    return kept_tokens


def backend(fapi: FrontendAPIEmulator) -> AsyncClerkSessions:
    """The README's backend client: one for every device, no client token of its own."""
    return AsyncClerkSessions(publishable_key=fapi.publishable_key, _runtime=fapi.runtime())


class Devices:
    """A Frontend API stand-in that takes any client token: it mints a session JWT per
    ``/tokens``, answers ``getSession``, records each request's ``Authorization``, and can
    rotate the client token or hold an answer until the test releases it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (Authorization, path)
        self.rotate: dict[str, str] = {}  # session id -> client token to send back
        self.hold: dict[str, asyncio.Event] = {}  # session id -> released when set
        self.arrived: dict[str, asyncio.Event] = {}
        self.url = ""

    def tokens_minted(self) -> int:
        return sum(path.endswith("/tokens") for _, path in self.seen)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["sid"]
        self.seen.append((request.headers.get("Authorization", ""), request.path))
        self.arrived.setdefault(sid, asyncio.Event()).set()
        if sid in self.hold:
            await self.hold[sid].wait()
        headers = {"Authorization": self.rotate[sid]} if sid in self.rotate else {}
        if request.method == "GET":
            return web.json_response(payloads.session_envelope(sid), headers=headers)
        now = int(time.time())
        minted = jwt.encode(
            {"sid": sid, "iat": now, "exp": now + 60, "n": len(self.seen)},
            SIGNING_KEY,
            algorithm="HS256",
        )
        return web.json_response({"object": "token", "jwt": minted}, headers=headers)


@pytest.fixture
async def devices() -> AsyncIterator[Devices]:
    server = Devices()
    app = web.Application()
    app.router.add_get("/v1/client/sessions/{sid}", server.handle)
    app.router.add_post("/v1/client/sessions/{sid}/tokens", server.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        for event in server.hold.values():
            event.set()
        await runner.cleanup()


# -- one mint per device, however many views ---------------------------------------------------


async def test_a_view_per_request_mints_one_token_for_fifty_requests() -> None:
    """The README's FastAPI pattern: each request makes its own view of the device."""
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        async with backend(fapi) as clerk:

            async def orders(client_token: str, session_id: str) -> str:  # one web request
                client = clerk.with_client_token(client_token)
                return await client.get_token(session_id)

            served = [await orders(device.client_token, device.session_id) for _ in range(50)]
    assert len(set(served)) == 1
    assert mints(fapi) == 1


async def test_twenty_views_asking_at_once_share_one_mint() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        async with backend(fapi) as clerk:
            views = [clerk.with_client_token(device.client_token) for _ in range(20)]
            served = await asyncio.gather(*(v.get_token(device.session_id) for v in views))
    assert len(set(served)) == 1
    assert mints(fapi) == 1


async def test_two_generations_of_a_client_token_are_one_device() -> None:
    """Another process saw a rotation; this one gets both the old and the new token. Both
    name the same client (``id``), but a claim is no proof: each new string costs one request,
    whose answer proves it. Then they are one device: one cache entry, one current token."""
    async with FrontendAPIEmulator(rotate_client_tokens=True) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as other_process:
            await other_process.get_session(device.session_id)  # rotates
            newer = other_process.client_token
        fapi.rotate_client_tokens = False
        assert newer is not None
        assert newer != device.client_token
        assert device_name(newer) == device_name(device.client_token) == f"id:{device.client_id}"
        before = mints(fapi)
        async with backend(fapi) as clerk:
            old_view = clerk.with_client_token(device.client_token)
            new_view = clerk.with_client_token(newer)
            await old_view.get_token(device.session_id)  # proves the old string
            second = await new_view.get_token(device.session_id)  # proves the new one
            assert old_view.client_token == new_view.client_token == newer
            assert kept(clerk) == 1
            again = [
                await clerk.with_client_token(token).get_token(device.session_id)
                for token in (device.client_token, newer)
            ]
    assert again == [second, second]
    assert mints(fapi) - before == 2
    assert fapi.requests[-1].token_generation == 2  # the mint went out with the newer token


async def test_a_client_jwt_is_named_by_its_id_and_any_other_token_is_its_own_device(
    devices: Devices,
) -> None:
    generations = [client_jwt("client_1", "aaa"), client_jwt("client_1", "bbb")]
    other_client = client_jwt("client_2", "aaa")
    without_id = jwt.encode({"sub": "x"}, SIGNING_KEY, algorithm="HS256")
    opaque = ["opaque-token-1", "opaque-token-2"]
    async with AsyncClerkSessions(frontend_api_url=devices.url) as clerk:
        for token in [*generations, other_client, without_id, *opaque, opaque[0], without_id]:
            await clerk.with_client_token(token).get_token("sess_1")
        assert kept(clerk) == 5
    # client_1 (two generations, each proven by its own first request), client_2, the JWT
    # without id, and each opaque token
    assert devices.tokens_minted() == 6
    assert device_name(opaque[0]) != device_name(opaque[1])
    assert device_name(without_id) == f"token:{without_id}"


async def test_different_devices_never_share_the_tokens_of_one_session_id(
    devices: Devices,
) -> None:
    async with AsyncClerkSessions(frontend_api_url=devices.url) as clerk:
        laptop, phone = clerk.with_client_token("laptop"), clerk.with_client_token("phone")
        together = await asyncio.gather(laptop.get_token("sess_1"), phone.get_token("sess_1"))
        again = [await laptop.get_token("sess_1"), await phone.get_token("sess_1")]
        assert kept(clerk) == 2
    assert together[0] != together[1]
    assert again == together
    assert sorted(auth for auth, _ in devices.seen) == ["laptop", "phone"]


# -- the device's current client token ------------------------------------------------------------


async def test_a_rotation_seen_by_one_view_is_sent_by_every_view() -> None:
    """Old client tokens stop working here soon after a rotation: a view made later with the
    token its request brought still works, because it sends the device's current one."""
    async with FrontendAPIEmulator(
        rotate_client_tokens=True, reject_stale_client_tokens=True
    ) as fapi:
        device = fapi.sign_in()
        async with backend(fapi) as clerk:
            first, second = (clerk.with_client_token(device.client_token) for _ in range(2))
            await first.get_session(device.session_id)  # answered with generation 2
            await second.get_session(device.session_id)
            fapi.clock.advance(STALE_CLIENT_TOKEN_GRACE + 1)  # generation 1 is now refused
            late = clerk.with_client_token(device.client_token)  # the old token, again
            assert late.client_token == fapi.client_record(device.client_id).current_token
            envelope = await late.get_session(device.session_id)
    assert isinstance(envelope, Envelope)
    assert [(r.token_generation, r.status) for r in fapi.requests] == [(1, 200), (2, 200), (3, 200)]


async def test_of_two_answers_to_one_token_the_one_that_arrives_last_wins(
    devices: Devices,
) -> None:
    """Clerk supersedes its previous token whenever it issues one: the answer produced last
    holds the token that works (keeping the first would strand the device on a dead one)."""
    devices.hold["slow"] = asyncio.Event()
    devices.rotate.update({"slow": "token-3", "fast": "token-2"})
    async with AsyncClerkSessions(frontend_api_url=devices.url, client_token="token-1") as clerk:
        first, second = clerk.with_client_token("token-1"), clerk.with_client_token("token-1")
        slow = asyncio.ensure_future(first.get_session("slow"))  # sent with token-1
        await devices.arrived.setdefault("slow", asyncio.Event()).wait()
        await second.get_session("fast")  # sent with token-1, rotates to token-2
        assert clerk.client_token == "token-2"
        devices.hold["slow"].set()
        await slow  # answered after token-2 was issued: token-3 is the newest
        assert first.client_token == second.client_token == clerk.client_token == "token-3"
        del devices.rotate["slow"]
        await first.get_session("slow")
    assert devices.seen[-1] == ("token-3", "/v1/client/sessions/slow")


async def test_a_late_answer_never_takes_the_device_back_to_a_token_it_moved_past(
    devices: Devices,
) -> None:
    devices.hold["slow"] = asyncio.Event()
    devices.rotate.update({"slow": "token-2", "fast": "token-2"})
    async with AsyncClerkSessions(frontend_api_url=devices.url, client_token="token-1") as clerk:
        slow = asyncio.ensure_future(clerk.get_session("slow"))  # sent with token-1
        await devices.arrived.setdefault("slow", asyncio.Event()).wait()
        await clerk.get_session("fast")  # token-1 -> token-2
        devices.rotate["fast"] = "token-3"
        await clerk.get_session("fast")  # token-2 -> token-3
        devices.hold["slow"].set()
        await slow  # repeats token-2, which the device moved past
        assert clerk.client_token == "token-3"


async def test_an_answer_to_a_request_sent_before_a_sign_out_does_not_bring_the_token_back(
    devices: Devices,
) -> None:
    devices.hold["slow"] = asyncio.Event()
    devices.rotate.update({"slow": "token-2", "fast": "Bearer"})  # "Bearer": cleared (§3)
    async with AsyncClerkSessions(frontend_api_url=devices.url, client_token="token-1") as clerk:
        slow = asyncio.ensure_future(clerk.get_session("slow"))  # sent with token-1
        await devices.arrived.setdefault("slow", asyncio.Event()).wait()
        await clerk.get_session("fast")  # the client token is cleared
        assert clerk.client_token is None
        devices.hold["slow"].set()
        await slow
        assert clerk.client_token is None


async def test_on_client_token_is_called_once_per_rotation_and_the_latest_callback_wins() -> None:
    async with FrontendAPIEmulator(rotate_client_tokens=True) as fapi:
        device = fapi.sign_in()
        early: list[str | None] = []
        late: list[str | None] = []
        async with backend(fapi) as clerk:
            first = clerk.with_client_token(device.client_token, on_client_token=early.append)
            await first.get_session(device.session_id)
            second = clerk.with_client_token(device.client_token, on_client_token=late.append)
            await second.get_session(device.session_id)
            silent = clerk.with_client_token(device.client_token)  # gives no callback
            await silent.get_session(device.session_id)
            await first.get_session(device.session_id)  # the device's callback is `late` now
            other = fapi.sign_in()
            await clerk.with_client_token(other.client_token).get_session(other.session_id)
            current = first.client_token
    assert len(early) == 1
    assert len(late) == 3
    assert len(set(early + late)) == 4  # a new token each time
    assert late[-1] == current == fapi.client_record(device.client_id).current_token


# -- sign-out, for every view --------------------------------------------------------------------


SignOut = Callable[[AsyncClerkSessions, str], Awaitable[object]]
SIGN_OUTS: dict[str, SignOut] = {
    "end_session": lambda view, sid: view.end_session(sid),
    "remove_session": lambda view, sid: view.remove_session(sid),
    "remove_client_sessions_and_retain_cookie": lambda view, sid: (
        view.remove_client_sessions_and_retain_cookie()
    ),
}


@pytest.mark.parametrize("sign_out", SIGN_OUTS)
async def test_a_sign_out_through_one_view_drops_the_tokens_every_view_would_serve(
    sign_out: str,
) -> None:
    async with FrontendAPIEmulator() as fapi:
        device, elsewhere = fapi.sign_in(), fapi.sign_in()
        async with backend(fapi) as clerk:
            one, another = (clerk.with_client_token(device.client_token) for _ in range(2))
            other_device = clerk.with_client_token(elsewhere.client_token)
            assert await one.get_token(device.session_id) == await another.get_token(
                device.session_id
            )
            kept_elsewhere = await other_device.get_token(elsewhere.session_id)
            assert mints(fapi) == 2

            await SIGN_OUTS[sign_out](one, device.session_id)
            with pytest.raises((AuthenticationError, NotFoundError)):
                await another.get_token(device.session_id)  # asked the server: signed out
            assert mints(fapi) == 3
            assert await other_device.get_token(elsewhere.session_id) == kept_elsewhere
            assert mints(fapi) == 3


# -- the sync facade -----------------------------------------------------------------------------


async def test_the_sync_facades_views_share_the_device_across_threads() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        clerk = fapi.sync_client(None)
        try:
            views = [clerk.with_client_token(device.client_token) for _ in range(10)]
            served: list[str] = []

            async def ask(view: Any) -> None:
                served.append(await anyio.to_thread.run_sync(view.get_token, device.session_id))

            async with anyio.create_task_group() as group:
                for view in views:
                    group.start_soon(ask, view)
            assert len(set(served)) == 1
            assert mints(fapi) == 1

            await anyio.to_thread.run_sync(views[0].end_session, device.session_id)
            with pytest.raises(ClerkAPIError):
                await anyio.to_thread.run_sync(views[1].get_token, device.session_id)
            assert mints(fapi) == 2
        finally:
            await anyio.to_thread.run_sync(clerk.close)


# -- bounded device records -----------------------------------------------------------------------


async def test_a_hundred_thousand_views_over_a_thousand_devices_stay_bounded() -> None:
    """Memory is counted as CPython's allocated blocks (``sys.getallocatedblocks``): exact for
    net growth, and free of tracemalloc's cost under coverage. A view kept per call would add
    two blocks per call: 100,000 here."""
    tokens = [client_jwt(f"client_{i:04d}", "r") for i in range(1000)]
    async with AsyncClerkSessions(frontend_api_url="http://127.0.0.1:9") as clerk:
        for i in range(50_000):
            clerk.with_client_token(tokens[i % 1000])
        gc.collect()
        before = sys.getallocatedblocks()
        for i in range(50_000, 100_000):
            clerk.with_client_token(tokens[i % 1000])
        gc.collect()
        grown = sys.getallocatedblocks() - before
        assert inspect(clerk).devices <= 1000
    assert grown < 1000  # flat: not a block per view


async def test_with_few_device_slots_the_least_recently_used_go_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records are watched through weak references, so watching keeps none alive. (Opaque
    tokens: each is its own device, kept without a proof.)"""
    monkeypatch.setattr(client_module, "MAX_DEVICES", 3)
    async with AsyncClerkSessions(frontend_api_url="http://127.0.0.1:9") as clerk:

        def record(token: str) -> weakref.ref[Any]:
            return weakref.ref(clerk.with_client_token(token)._device)

        watched = {name: record(f"opaque-{name}") for name in ("a", "b", "c")}
        record("opaque-a")  # a is used again: b is now the least recently used
        watched["d"] = record("opaque-d")
        gc.collect()
        alive = {name for name, ref in watched.items() if ref() is not None}
        assert alive == {"a", "c", "d"}
        assert inspect(clerk).devices == 3
        assert clerk.with_client_token("opaque-a")._device is watched["a"]()


async def test_strings_nobody_proved_are_not_kept_once_their_views_are_gone() -> None:
    """A stream of forged client tokens (each a new string claiming some client id) cannot
    fill the device index and push the real devices out: an unproven string's record lives
    as long as its views."""
    async with AsyncClerkSessions(frontend_api_url="http://127.0.0.1:9") as clerk:
        held = clerk.with_client_token(client_jwt("victim", "live"))
        for n in range(2000):
            clerk.with_client_token(client_jwt("victim", f"forged-{n}"))
        gc.collect()
        assert inspect(clerk).devices == 1  # the one a live view holds
        assert held.client_token == client_jwt("victim", "live")


@pytest.mark.parametrize("kind", ["jwt", "opaque"])
async def test_a_device_held_by_a_live_view_is_never_split_into_two_records(
    monkeypatch: pytest.MonkeyPatch, devices: Devices, kind: str
) -> None:
    """Even once its tokens (the first and a rotated one) have fallen out of the bounded
    index, a device that a live view holds is found again: one record, one current token, one
    set of cached tokens."""
    monkeypatch.setattr(client_module, "MAX_DEVICES", 2)
    first, rotated = (
        (client_jwt("held", "1"), client_jwt("held", "2"))
        if kind == "jwt"
        else ("held-token-1", "held-token-2")
    )
    devices.rotate["sess_1"] = rotated
    async with AsyncClerkSessions(frontend_api_url=devices.url) as clerk:
        held = clerk.with_client_token(first)
        cached = await held.get_token("sess_1")  # its answer rotates the device's token
        del devices.rotate["sess_1"]
        assert held.client_token == rotated
        for i in range(10):  # other devices push both of its tokens out of the index
            clerk.with_client_token(f"passer-by-{i}")
        gc.collect()
        found = {}
        for label, token in (("first token", first), ("rotated token", rotated)):
            again = clerk.with_client_token(token)
            found[label] = (
                again._device is held._device,
                again.client_token,
                await again.get_token("sess_1"),
            )
    assert found == dict.fromkeys(found, (True, rotated, cached))
    assert devices.tokens_minted() == 1
