"""What ``FrontendAPIEmulator`` does, shown through the SDK that talks to it.

Each section is one promise of issue #6 (§1 and §2): lifecycle, set-up helpers, Clerk's rules for
the twelve operations, native authentication, client-token rotation, session tokens, Clerk's 2026
minting seeds, reverification, fault injection, the request log, the clock and the pytest plugin.
Requests go
over real HTTP on 127.0.0.1; a raw aiohttp request stands in where the SDK deliberately cannot
send something (no ``_is_native``, ``Origin`` with ``Authorization``...).

The response *shapes* are checked against the spec in ``test_emulator_conformance.py``; here we
check the *behaviour*. Tests that only add their own users and devices share one emulator; a test
that changes options, faults or the clock starts its own.
"""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Iterator, Mapping
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import attrs
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from multidict import CIMultiDict

from clerk_sessions import (
    APIConnectionError,
    APITimeoutError,
    AsyncClerkSessions,
    AuthenticationError,
    BadRequestError,
    ClerkAPIError,
    ClerkSessions,
    Envelope,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SessionReverification,
    UnprocessableEntityError,
)
from clerk_sessions._runtime import Runtime
from clerk_sessions.testing import (
    STALE_CLIENT_TOKEN_GRACE,
    TEST_CODE,
    Clock,
    Fault,
    FrontendAPIEmulator,
    SignedIn,
)
from clerk_sessions.testing import __main__ as standalone

from .conftest import FakeSleep

pytestmark = pytest.mark.anyio

CANARY_PASSWORD = "canary-PASSWORD-5d1e"
CANARY_TOKEN = "canary-CLIENT-TOKEN-9b2c"
CANARY_SEED = "canary-SESSION-JWT-4e7a"
DAY = 86_400


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[FrontendAPIEmulator]:
    """One emulator (served from a background thread) for tests that only add their own state."""
    with FrontendAPIEmulator() as fapi:
        yield fapi


async def clerk_error(call: Awaitable[object], kind: type[ClerkAPIError]) -> tuple[int, str | None]:
    """Await ``call``, which must raise ``kind``; return the error's HTTP status and Clerk code."""
    with pytest.raises(kind) as caught:
        await call
    return caught.value.status, caught.value.code


def claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (``test_session_tokens_verify_…`` verifies the signature)."""
    return jwt.decode(token, options={"verify_signature": False})


@attrs.frozen
class RawAnswer:
    status: int
    headers: CIMultiDict[str]
    body: Any

    @property
    def code(self) -> str | None:
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        return errors[0]["code"] if errors else None


async def send_raw(
    fapi: FrontendAPIEmulator,
    method: str,
    path: str,
    *,
    headers: dict[str, str],
    query: str = "_is_native=1",
    form: Mapping[str, str] | None = None,
) -> RawAnswer:
    """A request exactly as given (aiohttp adds no Origin and no Authorization of its own);
    ``form`` is sent urlencoded. A body that is not JSON is read as text."""
    url = f"{fapi.url}{path}?{query}" if query else f"{fapi.url}{path}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers, data=form) as response,
    ):
        if response.content_type == "application/json":
            body = await response.json()
        else:
            body = await response.text()
        return RawAnswer(response.status, CIMultiDict(response.headers), body)


def native(**params: str) -> str:
    """A native query string with more parameters (``expired_token=...``)."""
    return urlencode({"_is_native": "1", **params})


async def mint_raw(
    fapi: FrontendAPIEmulator,
    device: SignedIn,
    *,
    query: str = "_is_native=1",
    form: Mapping[str, str] | None = None,
    template: str | None = None,
) -> RawAnswer:
    """``POST .../tokens`` (or ``.../tokens/{template}``) exactly as given: the SDK decides
    itself when to send a seed, these tests must not depend on it."""
    path = f"/v1/client/sessions/{device.session_id}/tokens"
    if template is not None:
        path = f"{path}/{template}"
    return await send_raw(
        fapi, "POST", path, headers={"Authorization": device.client_token}, query=query, form=form
    )


def previous_token(fapi: FrontendAPIEmulator, device: SignedIn) -> str:
    """The session's latest session JWT (the one sign-in minted, until a new one is)."""
    token = fapi.session(device.session_id).last_active_token
    assert token is not None
    return token


def seeds_logged(fapi: FrontendAPIEmulator) -> list[tuple[bool, bool, bool]]:
    return [(r.sent_token, r.expired_token, r.force_origin) for r in fapi.requests]


async def reverify_with_email_code(
    clerk: AsyncClerkSessions, session_id: str, code: str = TEST_CODE
) -> Envelope[SessionReverification]:
    await clerk.prepare_session_reverification_first_factor(session_id, strategy="email_code")
    return await clerk.attempt_session_reverification_first_factor(
        session_id, strategy="email_code", code=code
    )


def emulator_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "clerk-fapi-emulator"}


# -- lifecycle -------------------------------------------------------------------------------------


async def test_async_with_serves_on_a_free_loopback_port_until_the_block_ends() -> None:
    async with FrontendAPIEmulator() as fapi:
        url = fapi.url
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9]\d*", url)
        assert fapi.jwks_url == f"{url}/.well-known/jwks.json"
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            envelope = await clerk.get_session(device.session_id)
        assert envelope.response.status == "active"
        with pytest.raises(RuntimeError, match="already running"):
            await fapi.start()

    with pytest.raises(RuntimeError, match="start the emulator first"):
        _ = fapi.url
    async with AsyncClerkSessions(
        frontend_api_url=url, client_token=device.client_token, max_retries=0
    ) as clerk:
        with pytest.raises(APIConnectionError):
            await clerk.get_session(device.session_id)


def test_with_serves_from_a_background_thread_for_sync_code() -> None:
    already_running = emulator_threads()
    with FrontendAPIEmulator() as fapi:
        started = emulator_threads() - already_running
        assert len(started) == 1
        device = fapi.sign_in()
        with fapi.sync_client(device) as clerk:
            envelope = clerk.get_session(device.session_id)
        assert envelope.response.id == device.session_id

    assert not any(thread.is_alive() for thread in started)
    with pytest.raises(RuntimeError, match="start the emulator first"):
        _ = fapi.url


async def test_the_publishable_key_alone_points_a_client_at_the_emulator(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in()
    assert emulator.publishable_key.startswith("pk_test_")
    async with AsyncClerkSessions(
        publishable_key=emulator.publishable_key, client_token=device.client_token
    ) as clerk:
        assert clerk.frontend_api_url == emulator.url
        envelope = await clerk.get_session(device.session_id)
    assert envelope.response.id == device.session_id


def test_python_m_clerk_sessions_testing_serves_a_signed_in_demo_device() -> None:
    command = [sys.executable, "-m", "clerk_sessions.testing", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            printed: list[str] = []
            for line in server.stdout:  # it prints its coordinates, then serves
                printed.append(line.strip())
                if line.startswith("Press Ctrl+C"):
                    break
            settings = dict(line.split("=", 1) for line in printed if line.startswith("CLERK_"))
            session_id = re.search(r"session id: (sess_\w+)", "\n".join(printed))
            assert session_id is not None, printed
            assert re.fullmatch(r"http://127\.0\.0\.1:[1-9]\d*", settings["CLERK_FRONTEND_API_URL"])

            with ClerkSessions(
                publishable_key=settings["CLERK_PUBLISHABLE_KEY"],
                client_token=settings["CLERK_CLIENT_TOKEN"],
            ) as clerk:
                assert clerk.frontend_api_url == settings["CLERK_FRONTEND_API_URL"]
                envelope = clerk.get_session(session_id[1])
            assert envelope.response.status == "active"
            assert envelope.response.public_user_data is not None
            assert envelope.response.public_user_data.identifier == "jane+clerk_test@example.com"
        finally:
            server.terminate()
    assert server.returncode is not None


def readme_template_names() -> set[str]:
    """Every ``--template NAME`` in the README's examples and in ``clerk-sessions --help``."""
    from clerk_sessions.cli._parser import EPILOG

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    return set(re.findall(r"--template (\w[\w-]*)", readme + EPILOG))


def test_the_standalone_server_mints_with_every_template_the_readme_names() -> None:
    """``JWT=$(clerk-sessions token … --template supabase)`` works against
    ``python -m clerk_sessions.testing`` as the README says."""
    names = readme_template_names()
    assert "supabase" in names  # the scan found the README's example
    fapi = standalone.make_emulator(standalone.build_parser().parse_args([]))
    with fapi:
        device = standalone.set_up(fapi)
        with fapi.sync_client(device) as clerk:
            minted = {
                name: claims(clerk.create_session_token_with_template(device.session_id, name).jwt)
                for name in sorted(names)
            }
    assert set(standalone.JWT_TEMPLATES) >= names
    for token_claims in minted.values():
        assert token_claims["sid"] == device.session_id
        assert token_claims["sub"] == device.user_id
    # Clerk's Supabase template: what Supabase's row-level security reads.
    assert minted["supabase"]["aud"] == "authenticated"
    assert minted["supabase"]["role"] == "authenticated"
    assert minted["supabase"]["email"] == "jane+clerk_test@example.com"


def test_the_standalone_server_keeps_only_the_newest_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert standalone.MAX_LOGGED_REQUESTS == 10_000
    monkeypatch.setattr(standalone, "MAX_LOGGED_REQUESTS", 2)
    with standalone.make_emulator(standalone.build_parser().parse_args([])) as fapi:
        device = standalone.set_up(fapi)
        with fapi.sync_client(device) as clerk:
            clerk.get_session(device.session_id)
            clerk.touch_session(device.session_id)
            clerk.end_session(device.session_id)
    assert [r.operation for r in fapi.requests] == ["touch_session", "end_session"]


# -- set-up helpers --------------------------------------------------------------------------------


async def test_create_user_with_emails_phones_password_and_second_factors(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user(
        first_name="Ada",
        last_name="Lovelace",
        username="ada",
        email=["ada+clerk_test@example.com", "ada@work.example"],
        phone="+12015550111",
        password="correct-horse",
        second_factors=("phone_code", "totp", "backup_code"),
        public_metadata={"plan": "pro"},
    )
    assert user.id.startswith("user_")
    assert user.second_factor_strategies == ["phone_code", "totp", "backup_code"]
    assert len(user.backup_codes) == 10

    device = emulator.sign_in(user)
    async with emulator.async_client(device) as clerk:
        envelope = await clerk.get_session(device.session_id)
    seen = envelope.response.user
    assert seen is not None
    assert [e.email_address for e in seen.email_addresses] == [
        "ada+clerk_test@example.com",
        "ada@work.example",
    ]
    assert [(p.phone_number, p.reserved_for_second_factor) for p in seen.phone_numbers] == [
        ("+12015550111", True)
    ]
    assert (seen.username, seen.password_enabled, seen.public_metadata) == (
        "ada",
        True,
        {"plan": "pro"},
    )
    assert (seen.two_factor_enabled, seen.totp_enabled, seen.backup_code_enabled) == (
        True,
        True,
        True,
    )

    plain = emulator.create_user()  # defaults: a unique Clerk test address, no second factor
    assert re.fullmatch(r"jane\.\d+\+clerk_test@example\.com", plain.email_addresses[0].address)
    assert (plain.phone_numbers, plain.password, plain.second_factor_strategies) == ([], None, [])


async def test_organizations_with_members_slugs_and_added_members(
    emulator: FrontendAPIEmulator,
) -> None:
    owner, newcomer = emulator.create_user(), emulator.create_user()
    org = emulator.create_organization("Acme Rockets", members={owner.id: "org:admin"})
    named = emulator.create_organization("Globex", slug="globex-hq")
    assert (org.slug, named.slug) == ("acme-rockets", "globex-hq")
    assert org.members == {owner.id: "org:admin"}

    emulator.add_member(org.id, newcomer.id)  # role org:member by default
    assert org.members[newcomer.id] == "org:member"
    device = emulator.sign_in(newcomer)
    async with emulator.async_client(device) as clerk:
        envelope = await clerk.get_session(device.session_id)
        token = await clerk.create_session_token(device.session_id, organization_id=org.id)
    assert envelope.response.user is not None
    memberships = envelope.response.user.organization_memberships
    assert [(m.organization and m.organization.slug, m.role) for m in memberships] == [
        ("acme-rockets", "org:member")
    ]
    assert claims(token.jwt)["o"] == {"id": org.id, "slg": "acme-rockets", "rol": "member"}


async def test_sign_in_makes_a_new_device_or_adds_a_session_to_an_existing_one(
    emulator: FrontendAPIEmulator,
) -> None:
    jane, john = emulator.create_user(first_name="Jane"), emulator.create_user(first_name="John")
    laptop, phone = emulator.sign_in(jane), emulator.sign_in(jane)
    assert laptop.client_id != phone.client_id
    assert laptop.client_token != phone.client_token

    johns = emulator.sign_in(john, device=laptop)  # multi-session: a second session on the laptop
    assert (johns.client_id, johns.client_token, johns.user_id) == (
        laptop.client_id,
        laptop.client_token,
        john.id,
    )
    record = emulator.client_record(laptop.client_id)
    assert record.session_ids == [laptop.session_id, johns.session_id]
    assert record.last_active_session_id == johns.session_id
    assert emulator.session(johns.session_id).user_id == john.id

    async with emulator.async_client(laptop) as clerk:
        envelope = await clerk.get_session(laptop.session_id)
    assert envelope.client is not None
    assert [s.id for s in envelope.client.sessions] == [laptop.session_id, johns.session_id]
    assert envelope.client.last_active_session_id == johns.session_id

    stranger = emulator.sign_in()  # no user given: a new one
    assert stranger.user_id not in (jane.id, john.id)
    assert emulator.session(stranger.session_id).status == "active"


async def test_sign_in_can_start_in_an_organization_by_id_or_slug(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user()
    org = emulator.create_organization("Initech", members={user.id: "org:admin"})
    for reference in (org.id, "initech"):  # like touch, which takes an ID or a slug
        device = emulator.sign_in(user, active_organization_id=reference)
        assert emulator.session(device.session_id).last_active_organization_id == org.id
        async with emulator.async_client(device) as clerk:
            token = await clerk.create_session_token(device.session_id)
        assert claims(token.jwt)["o"]["id"] == org.id


def test_helpers_refuse_impossible_set_ups_with_value_error(emulator: FrontendAPIEmulator) -> None:
    member, outsider = emulator.create_user(), emulator.create_user()
    org = emulator.create_organization("Umbrella", members={member.id: "org:admin"})
    with pytest.raises(ValueError, match="unknown second factors"):
        emulator.create_user(second_factors=["carrier_pigeon"])
    with pytest.raises(ValueError, match="needs a phone number"):
        emulator.create_user(second_factors=["phone_code"])
    with pytest.raises(ValueError, match="exists"):
        emulator.create_organization("Umbrella")
    with pytest.raises(ValueError, match="no user"):
        emulator.create_organization("Hooli", members={"user_missing": "org:admin"})
    with pytest.raises(ValueError, match="not a member"):
        emulator.sign_in(outsider, active_organization_id=org.id)
    with pytest.raises(ValueError, match="no user"):
        emulator.sign_in("user_missing")
    with pytest.raises(ValueError, match="no TOTP"):
        emulator.totp_code(member)
    with pytest.raises(ValueError, match="token_lifetime"):
        FrontendAPIEmulator(token_lifetime=0)
    with pytest.raises(ValueError, match="no user"):
        emulator.add_member(org.id, "user_missing")
    with pytest.raises(ValueError, match="org_missing"):
        emulator.add_member("org_missing", member.id)


# -- the twelve operations: Clerk's semantics ------------------------------------------------------


async def test_end_signs_the_session_out_and_keeps_it_in_the_client(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in()
    async with emulator.async_client(device) as clerk:
        ended = await clerk.end_session(device.session_id)
        later = await clerk.get_session(device.session_id)
    assert ended.response.status == "ended"
    assert ended.client is not None
    assert [(s.id, s.status) for s in ended.client.sessions] == [(device.session_id, "ended")]
    assert ended.client.last_active_session_id is None
    assert later.response.status == "ended"


async def test_remove_signs_the_session_out_and_drops_it_from_the_client(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in()
    other = emulator.sign_in(device=device)
    async with emulator.async_client(device) as clerk:
        removed = await clerk.remove_session(device.session_id)
        assert await clerk_error(clerk.get_session(device.session_id), NotFoundError) == (
            404,
            "resource_not_found",
        )
    assert removed.response.status == "removed"
    assert removed.client is not None
    assert [s.id for s in removed.client.sessions] == [other.session_id]
    assert removed.client.last_active_session_id == other.session_id


async def test_removing_all_sessions_keeps_the_client_and_its_token(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in()
    second = emulator.sign_in(device=device)
    async with emulator.async_client(device) as clerk:
        envelope = await clerk.remove_client_sessions_and_retain_cookie()
        assert envelope.client is None
        assert envelope.response is not None
        assert envelope.response.id == device.client_id  # the same client
        assert (envelope.response.sessions, envelope.response.last_active_session_id) == ([], None)
        assert emulator.session(device.session_id).status == "removed"
        assert emulator.session(second.session_id).status == "removed"

        again = emulator.sign_in(device=device)  # the device signs in anew, same client token
        assert again.client_id == device.client_id
        fresh = await clerk.get_session(again.session_id)
    assert fresh.response.status == "active"
    assert fresh.client is not None
    assert [s.id for s in fresh.client.sessions] == [again.session_id]


async def test_touch_makes_the_session_the_clients_active_one(
    emulator: FrontendAPIEmulator,
) -> None:
    first = emulator.sign_in()
    second = emulator.sign_in(device=first)
    assert emulator.client_record(first.client_id).last_active_session_id == second.session_id
    async with emulator.async_client(first) as clerk:
        touched = await clerk.touch_session(first.session_id)
    assert touched.client is not None
    assert touched.client.last_active_session_id == first.session_id
    assert emulator.client_record(first.client_id).last_active_session_id == first.session_id
    assert touched.response.last_active_token is not None
    assert claims(touched.response.last_active_token.jwt)["sid"] == first.session_id


async def test_touch_switches_organization_by_id_or_slug_and_empty_is_personal(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user()
    stark = emulator.create_organization("Stark Industries", members={user.id: "org:admin"})
    wayne = emulator.create_organization(
        "Wayne Enterprises", slug="wayne", members={user.id: "org:member"}
    )
    device = emulator.sign_in(user)
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        by_id = await clerk.touch_session(sid, active_organization_id=stark.id)
        by_slug = await clerk.touch_session(sid, active_organization_id="wayne")
        unchanged = await clerk.touch_session(sid)  # absent: keep the active organization
        personal = await clerk.touch_session(sid, active_organization_id=None)  # sent as ""

    assert by_id.response.last_active_organization_id == stark.id
    assert by_slug.response.last_active_organization_id == wayne.id
    assert unchanged.response.last_active_organization_id == wayne.id
    assert personal.response.last_active_organization_id is None
    tokens = [e.response.last_active_token for e in (by_id, by_slug, personal)]
    assert [t and claims(t.jwt).get("o", {}).get("slg") for t in tokens] == [
        "stark-industries",
        "wayne",
        None,
    ]


async def test_touch_with_intent_focus_skips_the_client(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in()
    async with emulator.async_client(device) as clerk:
        focused = await clerk.touch_session(device.session_id, intent="focus")
        selected = await clerk.touch_session(device.session_id, intent="select_session")
    assert (focused.response.id, focused.client) == (device.session_id, None)
    assert selected.client is not None
    assert selected.client.id == device.client_id


async def test_token_organization_absent_means_active_empty_means_personal(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user()
    home = emulator.create_organization("Soylent", members={user.id: "org:admin"})
    other = emulator.create_organization("Tyrell", members={user.id: "org:member"})
    device = emulator.sign_in(user, active_organization_id=home.id)
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        absent = await clerk.create_session_token(sid)
        empty = await clerk.create_session_token(sid, organization_id=None)  # sent as ""
        chosen = await clerk.create_session_token(sid, organization_id=other.id)
    assert claims(absent.jwt)["o"] == {"id": home.id, "slg": "soylent", "rol": "admin"}
    assert "o" not in claims(empty.jwt)
    assert claims(chosen.jwt)["o"] == {"id": other.id, "slg": "tyrell", "rol": "member"}
    assert emulator.session(sid).last_active_organization_id == home.id  # minting never switches


async def test_organizations_the_user_cannot_use_are_refused(
    emulator: FrontendAPIEmulator,
) -> None:
    user, stranger = emulator.create_user(), emulator.create_user()
    theirs = emulator.create_organization("Cyberdyne", members={stranger.id: "org:admin"})
    device = emulator.sign_in(user)
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        not_member = (403, "not_a_member_in_organization")
        not_found = (404, "organization_not_found_or_unauthorized")
        assert (
            await clerk_error(
                clerk.touch_session(sid, active_organization_id=theirs.id), PermissionDeniedError
            )
            == not_member
        )
        assert (
            await clerk_error(
                clerk.create_session_token(sid, organization_id=theirs.id), PermissionDeniedError
            )
            == not_member
        )
        assert (
            await clerk_error(
                clerk.touch_session(sid, active_organization_id="org_missing"), NotFoundError
            )
            == not_found
        )
        assert (
            await clerk_error(
                clerk.create_session_token(sid, organization_id="org_missing"), NotFoundError
            )
            == not_found
        )
    assert emulator.session(sid).last_active_organization_id is None


async def test_templates_by_name_fill_shortcodes_with_their_own_lifetime(
    emulator: FrontendAPIEmulator,
) -> None:
    emulator.create_jwt_template(
        "hasura-doc",
        {
            "email": "{{user.primary_email_address}}",
            "org": "{{org.slug}}",
            "greeting": "Hello {{user.first_name}}!",
            "plan": {"name": "{{user.public_metadata.plan}}"},
            "static": 42,
        },
        lifetime=300,
    )
    user = emulator.create_user(
        first_name="Grace", email="grace+clerk_test@example.com", public_metadata={"plan": "pro"}
    )
    org = emulator.create_organization("Hopper Labs", members={user.id: "org:admin"})
    device = emulator.sign_in(user, active_organization_id=org.id)
    async with emulator.async_client(device) as clerk:
        token = await clerk.create_session_token_with_template(device.session_id, "hasura-doc")
        assert await clerk_error(
            clerk.create_session_token_with_template(device.session_id, "no-such-template"),
            NotFoundError,
        ) == (404, "resource_not_found")
    got = claims(token.jwt)
    assert {k: got[k] for k in ("email", "org", "greeting", "plan", "static")} == {
        "email": "grace+clerk_test@example.com",
        "org": "hopper-labs",
        "greeting": "Hello Grace!",
        "plan": {"name": "pro"},
        "static": 42,
    }
    assert (got["sub"], got["sid"], got["exp"] - got["iat"]) == (user.id, device.session_id, 300)


async def test_an_ended_session_refuses_touch_end_tokens_and_reverification(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in()
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        await clerk.end_session(sid)
        invalid_action = (400, "invalid_action_for_session")
        not_signed_in = (401, "authentication_invalid")
        assert await clerk_error(clerk.touch_session(sid), BadRequestError) == invalid_action
        assert await clerk_error(clerk.end_session(sid), BadRequestError) == invalid_action
        assert (
            await clerk_error(clerk.create_session_token(sid), AuthenticationError) == not_signed_in
        )
        assert (
            await clerk_error(
                clerk.create_session_token_with_template(sid, "any"), AuthenticationError
            )
            == not_signed_in
        )
        assert (
            await clerk_error(
                clerk.start_session_reverification(sid, level="first_factor"), AuthenticationError
            )
            == not_signed_in
        )


async def test_unknown_sessions_and_other_clients_sessions_are_refused(
    emulator: FrontendAPIEmulator,
) -> None:
    mine, theirs = emulator.sign_in(), emulator.sign_in()
    async with emulator.async_client(mine) as clerk:
        unknown = (404, "resource_not_found")
        assert await clerk_error(clerk.get_session("sess_unknown"), NotFoundError) == unknown
        assert await clerk_error(clerk.touch_session("sess_unknown"), NotFoundError) == unknown
        assert (
            await clerk_error(clerk.create_session_token("sess_unknown"), NotFoundError) == unknown
        )

        foreign = (401, "action_for_session_not_authorized")
        assert (
            await clerk_error(clerk.get_session(theirs.session_id), AuthenticationError) == foreign
        )
        assert (
            await clerk_error(clerk.end_session(theirs.session_id), AuthenticationError) == foreign
        )
        assert (
            await clerk_error(clerk.create_session_token(theirs.session_id), AuthenticationError)
            == foreign
        )
    assert emulator.session(theirs.session_id).status == "active"


# -- native authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        pytest.param(
            "",
            {"Authorization": "{token}"},
            (401, "authentication_invalid"),
            id="no _is_native",
        ),
        pytest.param("_is_native=1", {}, (401, "request_header_missing"), id="no Authorization"),
        pytest.param(
            "_is_native=1",
            {"Authorization": "{token}", "Origin": "https://app.example.com"},
            (400, "origin_authorization_headers_conflict"),
            id="Origin and Authorization",
        ),
        pytest.param(
            "_is_native=1&__clerk_api_version=2026-05-12",
            {"Authorization": "{token}", "Clerk-API-Version": "2026-05-12"},
            (400, "api_version_invalid"),
            id="API version twice",
        ),
        pytest.param("_is_native=1", {"Authorization": "{token}"}, (200, None), id="native"),
        pytest.param("_is_native=true", {"Authorization": "{token}"}, (200, None), id="true"),
    ],
)
async def test_native_request_rules(
    emulator: FrontendAPIEmulator,
    query: str,
    headers: dict[str, str],
    expected: tuple[int, str | None],
) -> None:
    device = emulator.sign_in()
    sent = {name: value.format(token=device.client_token) for name, value in headers.items()}
    answer = await send_raw(
        emulator, "GET", f"/v1/client/sessions/{device.session_id}", headers=sent, query=query
    )
    assert (answer.status, answer.code) == expected


async def test_a_session_route_without_a_client_token_is_signed_out(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in()
    async with emulator.async_client(None) as clerk:  # sends an empty Authorization
        assert await clerk_error(clerk.get_session(device.session_id), AuthenticationError) == (
            401,
            "signed_out",
        )
    assert emulator.requests[-1].headers["Authorization"] == ""


async def test_an_unknown_client_token_is_refused(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in()
    async with emulator.async_client(CANARY_TOKEN) as clerk:
        assert await clerk_error(clerk.get_session(device.session_id), AuthenticationError) == (
            401,
            "authentication_invalid",
        )


async def test_post_client_with_an_empty_authorization_mints_a_client(
    emulator: FrontendAPIEmulator,
) -> None:
    minted = await send_raw(emulator, "POST", "/v1/client", headers={"Authorization": ""})
    assert minted.status == 200
    token = minted.headers["Authorization"]  # the new client token rides in this header
    client_id = minted.body["response"]["id"]
    assert token
    assert minted.body["response"]["sessions"] == []
    assert emulator.client_record(client_id).token_generation == 1

    fetched = await send_raw(emulator, "GET", "/v1/client", headers={"Authorization": token})
    assert (fetched.status, fetched.body["response"]["id"]) == (200, client_id)
    async with emulator.async_client(token) as clerk:  # and the SDK can act for that client
        envelope = await clerk.remove_client_sessions_and_retain_cookie()
    assert envelope.response is not None
    assert envelope.response.id == client_id

    nobody = await send_raw(emulator, "GET", "/v1/client", headers={"Authorization": ""})
    assert (nobody.status, nobody.body["response"]) == (200, None)


async def test_post_with_method_delete_is_a_delete(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in()
    answer = await send_raw(
        emulator,
        "POST",
        "/v1/client/sessions",
        headers={"Authorization": device.client_token},
        query="_method=DELETE&_is_native=1",
    )
    assert (answer.status, answer.body["response"]["sessions"]) == (200, [])
    assert emulator.session(device.session_id).status == "removed"
    logged = emulator.requests[-1]
    assert (logged.method, logged.operation) == (
        "DELETE",
        "remove_client_sessions_and_retain_cookie",
    )


# -- client-token rotation -------------------------------------------------------------------------


async def test_rotation_hands_the_sdk_a_new_client_token_with_every_answer() -> None:
    async with FrontendAPIEmulator(rotate_client_tokens=True) as fapi:
        device = fapi.sign_in()
        rotated: list[str | None] = []
        async with fapi.async_client(device, on_client_token=rotated.append) as clerk:
            for _ in range(3):
                await clerk.touch_session(device.session_id)
            assert clerk.client_token == rotated[-1]
    assert len(set(rotated)) == 3
    assert None not in rotated
    assert device.client_token not in rotated
    assert [r.token_generation for r in fapi.requests] == [1, 2, 3]  # each sent the latest one
    assert fapi.client_record(device.client_id).token_generation == 4


async def test_with_stale_tokens_rejected_the_sdk_keeps_up_but_old_tokens_die() -> None:
    async with FrontendAPIEmulator(
        rotate_client_tokens=True, reject_stale_client_tokens=True
    ) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            for _ in range(10):
                await clerk.create_session_token(device.session_id)
            envelope = await clerk.get_session(device.session_id)
        assert envelope.response.status == "active"
        assert [r.status for r in fapi.requests] == [200] * 11
        assert [r.token_generation for r in fapi.requests] == list(range(1, 12))

        fapi.clock.advance(STALE_CLIENT_TOKEN_GRACE + 1)  # past the grace for answers in flight
        stale = await send_raw(
            fapi,
            "GET",
            f"/v1/client/sessions/{device.session_id}",
            headers={"Authorization": device.client_token},
        )
        assert (stale.status, stale.code) == (401, "authentication_invalid")


async def test_with_stale_tokens_rejected_calls_in_flight_together_still_succeed() -> None:
    """Concurrent calls all carry the token of the moment, and each answer rotates it. A
    rotated-away token keeps working for a short grace, so the calls already in flight succeed
    (Android guards against the rotated answers such races produce, fapi-protocol §3)."""
    async with FrontendAPIEmulator(
        rotate_client_tokens=True, reject_stale_client_tokens=True
    ) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device, max_retries=0) as clerk:
            tokens = await asyncio.gather(
                *(clerk.create_session_token(device.session_id) for _ in range(5))
            )
            envelope = await clerk.get_session(device.session_id)  # with the adopted token
        assert len({token.jwt for token in tokens}) == 5
        assert envelope.response.status == "active"

        fapi.clock.advance(STALE_CLIENT_TOKEN_GRACE + 1)
        stale = await send_raw(
            fapi,
            "GET",
            f"/v1/client/sessions/{device.session_id}",
            headers={"Authorization": device.client_token},
        )
        assert (stale.status, stale.code) == (401, "authentication_invalid")


# -- session tokens --------------------------------------------------------------------------------


def test_session_tokens_verify_against_the_jwks_with_clerks_v2_claims(
    emulator: FrontendAPIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = emulator.create_user()
    org = emulator.create_organization("Jwks Inc", members={user.id: "org:member"})
    device = emulator.sign_in(user, active_organization_id=org.id)
    with emulator.sync_client(device) as clerk:
        token = clerk.create_session_token(device.session_id).jwt

    monkeypatch.setenv("no_proxy", "*")  # PyJWKClient fetches with urllib
    # Exactly what a backend does: fetch the JWKS, pick the key by kid, verify RS256.
    signing_key = jwt.PyJWKClient(emulator.jwks_url).get_signing_key_from_jwt(token)
    verified = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        issuer=emulator.url,
        options={"require": ["sid", "sub", "iss", "iat", "exp", "nbf"]},
    )
    assert {"sid", "sub", "iss", "iat", "exp", "nbf", "fva", "sts", "v", "o"} <= set(verified)
    assert (verified["sid"], verified["sub"], verified["sts"], verified["v"]) == (
        device.session_id,
        user.id,
        "active",
        2,
    )
    assert verified["o"] == {"id": org.id, "slg": "jwks-inc", "rol": "member"}
    assert verified["fva"] == [0, -1]  # first factor just now; no second factor
    assert verified["exp"] - verified["iat"] == 60  # Clerk's default lifetime
    assert verified["nbf"] <= verified["iat"]
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"], header["oiat"]) == (
        "RS256",
        signing_key.key_id,
        verified["iat"],
    )


async def test_token_lifetime_is_configurable() -> None:
    async with FrontendAPIEmulator(token_lifetime=300) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            token = await clerk.create_session_token(device.session_id)
    got = claims(token.jwt)
    assert got["exp"] - got["iat"] == 300


# -- minting seeds: Clerk's 2026 protocol (fapi-protocol §7, §7b) ----------------------------------


async def test_by_default_tokens_need_no_seed_and_accept_token_and_force_origin() -> None:
    async with FrontendAPIEmulator() as fapi:
        assert (fapi.require_expired_token, fapi.session_minter) == (False, False)
        device = fapi.sign_in()
        old = previous_token(fapi, device)
        answers = [
            await mint_raw(fapi, device),
            await mint_raw(fapi, device, form={"token": old, "force_origin": "true"}),
            await mint_raw(fapi, device, query=native(expired_token=old)),
            await mint_raw(fapi, device, form={"token": old, "bogus": "1"}),
        ]
    assert [(a.status, a.code) for a in answers] == [
        (200, None),
        (200, None),
        (200, None),
        (422, "form_param_unknown"),  # only token and force_origin join the spec's fields
    ]
    assert {claims(a.body["jwt"])["sid"] for a in answers[:3]} == {device.session_id}
    assert seeds_logged(fapi) == [
        (False, False, False),
        (True, False, True),
        (False, True, False),
        (True, False, False),
    ]


async def test_require_expired_token_answers_422_until_the_query_carries_the_previous_token() -> (
    None
):
    async with FrontendAPIEmulator(require_expired_token=True) as fapi:
        device = fapi.sign_in()
        old = previous_token(fapi, device)
        bare = await mint_raw(fapi, device)
        # The incident servers read only the query: the body's token does not help.
        body_only = await mint_raw(fapi, device, form={"token": old, "force_origin": "true"})
        fapi.clock.advance(3600)  # the seed is long expired: that is what it is for
        assert claims(old)["exp"] < fapi.clock.now()
        retried = await mint_raw(fapi, device, query=native(expired_token=old))
        also_in_body = await mint_raw(
            fapi, device, query=native(expired_token=old), form={"token": old}
        )

    for refused in (bare, body_only):
        assert refused.status == 422
        assert refused.body["errors"][0] == {
            "code": "missing_expired_token",
            "message": "The expired_token parameter is required",
            "long_message": "The expired_token parameter is required",
            "meta": {"param_name": "expired_token"},
        }
        assert refused.body["clerk_trace_id"]
    assert (retried.status, also_in_body.status) == (200, 200)
    fresh = claims(retried.body["jwt"])
    assert fresh["sid"] == device.session_id
    assert fresh["iat"] >= claims(old)["iat"] + 3600
    assert fapi.session(device.session_id).last_active_token == also_in_body.body["jwt"]
    assert [r.status for r in fapi.requests] == [422, 422, 200, 200]


async def test_session_minter_takes_the_previous_token_in_the_body_even_expired() -> None:
    async with FrontendAPIEmulator(session_minter=True) as fapi:
        device = fapi.sign_in()
        old = previous_token(fapi, device)
        fapi.clock.advance(3600)
        first = await mint_raw(fapi, device, form={"token": old, "force_origin": "true"})
        chained = await mint_raw(fapi, device, form={"token": first.body["jwt"]})
    assert (first.status, chained.status) == (200, 200)
    assert (
        claims(first.body["jwt"])["sid"] == claims(chained.body["jwt"])["sid"] == device.session_id
    )
    assert seeds_logged(fapi) == [(True, False, True), (True, False, False)]
    assert fapi.requests[0].form == {"token": "[redacted]", "force_origin": "true"}


async def test_session_minter_without_a_seed_is_missing_expired_token_until_the_retry() -> None:
    async with FrontendAPIEmulator(session_minter=True) as fapi:
        org = fapi.create_organization("Minted")
        user = fapi.create_user()
        fapi.add_member(org.id, user.id)
        device = fapi.sign_in(user)
        old = previous_token(fapi, device)
        bare = await mint_raw(fapi, device)
        with_org = await mint_raw(fapi, device, form={"organization_id": org.id})
        # What an SDK without the minter setting does next: the query retry (clerk-js, §7).
        retried = await mint_raw(
            fapi, device, query=native(expired_token=old), form={"organization_id": org.id}
        )
    assert [(a.status, a.code) for a in (bare, with_org, retried)] == [
        (422, "missing_expired_token"),
        (422, "missing_expired_token"),
        (200, None),
    ]
    assert claims(retried.body["jwt"])["o"]["id"] == org.id
    assert seeds_logged(fapi)[-1] == (False, True, False)


async def test_the_modes_are_attributes_a_test_flips_while_clients_run() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        codes = []
        for require, minter in [(False, False), (True, False), (False, True), (False, False)]:
            fapi.require_expired_token, fapi.session_minter = require, minter
            codes.append((await mint_raw(fapi, device)).code)
    assert codes == [None, "missing_expired_token", "missing_expired_token", None]


async def test_the_template_route_needs_no_seed_in_either_mode() -> None:
    """Clerk's clients send template mints an empty body: neither token nor expired_token."""
    async with FrontendAPIEmulator(require_expired_token=True, session_minter=True) as fapi:
        fapi.create_jwt_template("hasura", {"role": "user"})
        device = fapi.sign_in()
        templated = await mint_raw(fapi, device, template="hasura")
        seeded = await mint_raw(fapi, device, template="hasura", form={"token": "x"})
        plain = await mint_raw(fapi, device)
    assert templated.status == 200
    assert claims(templated.body["jwt"])["role"] == "user"
    assert (seeded.status, seeded.code) == (422, "form_param_unknown")  # nor does it take one
    assert (plain.status, plain.code) == (422, "missing_expired_token")


def _forged(token: str) -> str:
    """``token`` exactly (claims, kid, headers), signed with another key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = {k: v for k, v in jwt.get_unverified_header(token).items() if k != "alg"}
    return jwt.encode(claims(token), key, algorithm="RS256", headers=header)


@pytest.mark.parametrize("mode", ["default", "require_expired_token", "session_minter"])
async def test_a_seed_must_be_a_session_token_of_that_very_session(mode: str) -> None:
    options: dict[str, Any] = {} if mode == "default" else {mode: True}
    async with FrontendAPIEmulator(**options) as fapi:
        fapi.create_jwt_template("plain", {"role": "user"})
        device = fapi.sign_in()
        other = fapi.sign_in(device=device)  # another session of the same client
        own = previous_token(fapi, device)
        template_token = (await mint_raw(fapi, device, template="plain")).body["jwt"]
        foreign = {
            "another session's": previous_token(fapi, other),
            "a template's": template_token,
            "another key's": _forged(own),
            "a client token": device.client_token,
            "not a JWT": CANARY_SEED,
        }
        refused: dict[tuple[str, str], tuple[int, str | None, str]] = {}
        for what, seed in foreign.items():
            for param, where in (("token", "body"), ("expired_token", "query")):
                if where == "body":
                    answer = await mint_raw(
                        fapi, device, query=native(expired_token=own), form={"token": seed}
                    )
                else:
                    answer = await mint_raw(
                        fapi, device, query=native(expired_token=seed), form={"token": own}
                    )
                error = answer.body["errors"][0] if answer.status != 200 else {"meta": {}}
                refused[what, param] = (answer.status, answer.code, error["meta"].get("param_name"))
                assert seed not in str(answer.body)
        accepted = await mint_raw(
            fapi, device, query=native(expired_token=own), form={"token": own}
        )
    assert refused == {key: (422, "form_param_value_invalid", key[1]) for key in refused}
    assert len(refused) == 10
    assert accepted.status == 200


async def test_force_origin_is_true_or_false(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in()
    off = await mint_raw(emulator, device, form={"force_origin": "false"})
    odd = await mint_raw(emulator, device, form={"force_origin": "yes"})
    assert off.status == 200
    assert emulator.requests[-2].force_origin is False
    assert (odd.status, odd.code) == (422, "form_param_value_invalid")
    assert odd.body["errors"][0]["meta"] == {"param_name": "force_origin"}


# -- reverification --------------------------------------------------------------------------------


async def test_first_factor_email_code_on_a_clerk_test_address(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in(emulator.create_user(email="jane+clerk_test@example.com"))
    outbox_before = len(emulator.outbox)
    async with emulator.async_client(device) as clerk:
        started = await clerk.start_session_reverification(device.session_id, level="first_factor")
        done = await reverify_with_email_code(clerk, device.session_id, TEST_CODE)
    assert (started.response.level, started.response.status) == (
        "first_factor",
        "needs_first_factor",
    )
    assert done.response.status == "complete"
    assert done.response.first_factor_verification is not None
    assert done.response.first_factor_verification.status == "verified"
    assert len(emulator.outbox) == outbox_before  # nothing "sent" to a test address


async def test_first_factor_phone_code_on_a_555_01xx_number(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in(emulator.create_user(phone="+12015550142"))
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        await clerk.start_session_reverification(sid, level="first_factor")
        await clerk.prepare_session_reverification_first_factor(sid, strategy="phone_code")
        done = await clerk.attempt_session_reverification_first_factor(
            sid, strategy="phone_code", code=TEST_CODE
        )
    assert done.response.status == "complete"


async def test_a_real_address_gets_a_random_code_in_the_outbox(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in(emulator.create_user(email="jane@real.example"))
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        await clerk.start_session_reverification(sid, level="first_factor")
        await clerk.prepare_session_reverification_first_factor(sid, strategy="email_code")
        message = emulator.outbox[-1]
        assert (message.to, message.strategy) == ("jane@real.example", "email_code")
        assert re.fullmatch(r"\d{6}", message.code)
        assert message.code not in repr(message)
        assert message.code not in repr(emulator.outbox)

        assert await clerk_error(
            clerk.attempt_session_reverification_first_factor(
                sid, strategy="email_code", code=TEST_CODE
            ),
            UnprocessableEntityError,
        ) == (422, "form_code_incorrect")
        done = await clerk.attempt_session_reverification_first_factor(
            sid, strategy="email_code", code=message.code
        )
    assert done.response.status == "complete"


async def test_password_strategy_checks_the_users_password(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in(emulator.create_user(password="correct-horse"))
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        await clerk.start_session_reverification(sid, level="first_factor")
        assert await clerk_error(
            clerk.attempt_session_reverification_first_factor(
                sid, strategy="password", password="battery-staple"
            ),
            UnprocessableEntityError,
        ) == (422, "form_password_incorrect")
        done = await clerk.attempt_session_reverification_first_factor(
            sid, strategy="password", password="correct-horse"
        )
    assert done.response.status == "complete"


async def test_multi_factor_goes_through_both_factors(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user(phone="+12015550100", second_factors=["phone_code"])
    device = emulator.sign_in(user)
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        started = await clerk.start_session_reverification(sid, level="multi_factor")
        first = await reverify_with_email_code(clerk, sid)
        await clerk.prepare_session_reverification_second_factor(sid, strategy="phone_code")
        second = await clerk.attempt_session_reverification_second_factor(
            sid, strategy="phone_code", code=TEST_CODE
        )
    assert [e.response.status for e in (started, first, second)] == [
        "needs_first_factor",
        "needs_second_factor",
        "complete",
    ]
    assert started.response.level == "multi_factor"
    assert [f.strategy for f in started.response.supported_second_factors] == ["phone_code"]
    assert second.response.second_factor_verification is not None
    assert second.response.second_factor_verification.status == "verified"


async def test_second_factor_level_starts_at_the_second_factor_and_takes_totp(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user(second_factors=["totp"])
    device = emulator.sign_in(user)
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        started = await clerk.start_session_reverification(sid, level="second_factor")
        assert await clerk_error(
            clerk.attempt_session_reverification_second_factor(sid, strategy="totp", code="wrong"),
            UnprocessableEntityError,
        ) == (422, "form_code_incorrect")
        done = await clerk.attempt_session_reverification_second_factor(
            sid, strategy="totp", code=emulator.totp_code(user)
        )
    assert (started.response.level, started.response.status) == (
        "second_factor",
        "needs_second_factor",
    )
    assert done.response.status == "complete"


async def test_a_backup_code_works_once(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user(second_factors=["backup_code"])
    code = user.backup_codes[0]
    device = emulator.sign_in(user)
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        await clerk.start_session_reverification(sid, level="second_factor")
        done = await clerk.attempt_session_reverification_second_factor(
            sid, strategy="backup_code", code=code
        )
        assert done.response.status == "complete"

        await clerk.start_session_reverification(sid, level="second_factor")
        assert await clerk_error(
            clerk.attempt_session_reverification_second_factor(
                sid, strategy="backup_code", code=code
            ),
            UnprocessableEntityError,
        ) == (422, "form_code_incorrect")
    assert code not in user.backup_codes
    assert len(user.backup_codes) == 9


@pytest.mark.parametrize("level", ["second_factor", "multi_factor"])
async def test_without_a_second_factor_the_level_falls_back_to_first_factor(
    emulator: FrontendAPIEmulator, level: str
) -> None:
    device = emulator.sign_in()
    async with emulator.async_client(device) as clerk:
        started = await clerk.start_session_reverification(device.session_id, level=level)
        done = await reverify_with_email_code(clerk, device.session_id)
    assert (started.response.level, started.response.status) == (
        "first_factor",
        "needs_first_factor",
    )
    assert done.response.status == "complete"


async def test_wrong_codes_then_too_many_attempts(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in()
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        await clerk.start_session_reverification(sid, level="first_factor")
        await clerk.prepare_session_reverification_first_factor(sid, strategy="email_code")
        for _ in range(3):
            assert await clerk_error(
                clerk.attempt_session_reverification_first_factor(
                    sid, strategy="email_code", code="000000"
                ),
                UnprocessableEntityError,
            ) == (422, "form_code_incorrect")
        assert await clerk_error(  # even the right code, now
            clerk.attempt_session_reverification_first_factor(
                sid, strategy="email_code", code=TEST_CODE
            ),
            BadRequestError,
        ) == (400, "verification_failed")
        done = await reverify_with_email_code(clerk, sid)  # a new code starts over
    assert done.response.status == "complete"


async def test_steps_out_of_order_are_refused(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in()
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        assert await clerk_error(
            clerk.prepare_session_reverification_first_factor(sid, strategy="email_code"),
            BadRequestError,
        ) == (400, "session_reverification_missing")
        assert await clerk_error(
            clerk.attempt_session_reverification_first_factor(
                sid, strategy="email_code", code=TEST_CODE
            ),
            BadRequestError,
        ) == (400, "session_reverification_missing")

        await clerk.start_session_reverification(sid, level="first_factor")
        wrong_step = (400, "invalid_action_for_session_reverification")
        assert (
            await clerk_error(
                clerk.prepare_session_reverification_second_factor(sid, strategy="phone_code"),
                BadRequestError,
            )
            == wrong_step
        )
        await reverify_with_email_code(clerk, sid)
        assert (
            await clerk_error(reverify_with_email_code(clerk, sid), BadRequestError) == wrong_step
        )


async def test_a_code_expires_after_ten_minutes() -> None:
    clock = Clock()
    async with FrontendAPIEmulator(clock=clock) as fapi:
        device = fapi.sign_in()
        sid = device.session_id
        async with fapi.async_client(device) as clerk:
            await clerk.start_session_reverification(sid, level="first_factor")
            await clerk.prepare_session_reverification_first_factor(sid, strategy="email_code")
            clock.advance(601)
            assert await clerk_error(
                clerk.attempt_session_reverification_first_factor(
                    sid, strategy="email_code", code=TEST_CODE
                ),
                BadRequestError,
            ) == (400, "verification_expired")
            done = await reverify_with_email_code(clerk, sid)  # prepared again: a fresh code
    assert done.response.status == "complete"


async def test_reverification_resets_the_factor_verification_age() -> None:
    clock = Clock()
    async with FrontendAPIEmulator(clock=clock) as fapi:
        user = fapi.create_user(phone="+12015550123", second_factors=["phone_code"])
        device = fapi.sign_in(user)
        sid = device.session_id
        async with fapi.async_client(device) as clerk:
            clock.advance(45 * 60)
            before = await clerk.get_session(sid)

            await clerk.start_session_reverification(sid, level="first_factor")
            await reverify_with_email_code(clerk, sid)
            clock.advance(5 * 60)
            after_first = await clerk.get_session(sid)

            await clerk.start_session_reverification(sid, level="second_factor")
            await clerk.prepare_session_reverification_second_factor(sid)
            await clerk.attempt_session_reverification_second_factor(
                sid, strategy="phone_code", code=TEST_CODE
            )
            after_both = await clerk.get_session(sid)
            token = await clerk.create_session_token(sid)
    assert before.response.factor_verification_age == [45, 45]
    assert after_first.response.factor_verification_age == [5, 50]
    assert after_both.response.factor_verification_age == [5, 0]
    assert claims(token.jwt)["fva"] == [5, 0]  # a fresh token carries the new ages


# -- fault injection -------------------------------------------------------------------------------


async def test_a_failure_n_times_is_retried_through_by_the_sdk(fake_sleep: FakeSleep) -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fault = fapi.fail("GET /v1/client/sessions/*", 503, times=2)
        # The emulator's clocks, and a sleep that retries at once instead of waiting out backoff.
        runtime = Runtime(monotonic=fapi.clock.now, wall=fapi.clock.now, sleep=fake_sleep)
        async with fapi.async_client(device, max_retries=2, _runtime=runtime) as clerk:
            envelope = await clerk.get_session(device.session_id)
            again = await clerk.get_session(device.session_id)
    assert (envelope.retries_taken, again.retries_taken) == (2, 0)
    assert len(fake_sleep.delays) == 2
    assert fault.hits == 2
    assert [(r.status, r.fault) for r in fapi.requests] == [
        (503, fault),
        (503, fault),
        (200, None),
        (200, None),
    ]


async def _outcomes_with_seed(seed: int) -> tuple[list[bool], int]:
    async with FrontendAPIEmulator(seed=seed) as fapi:
        device = fapi.sign_in()
        fault = fapi.fail("*/tokens", 503, times=None, probability=0.5)
        outcomes: list[bool] = []
        async with fapi.async_client(device, max_retries=0) as clerk:
            for _ in range(20):
                try:
                    await clerk.create_session_token(device.session_id)
                except ServerError:
                    outcomes.append(False)
                else:
                    outcomes.append(True)
        return outcomes, fault.hits


async def test_a_fault_with_a_probability_is_deterministic_with_a_seed() -> None:
    first, hits = await _outcomes_with_seed(1234)
    second, _ = await _outcomes_with_seed(1234)
    assert first == second
    assert True in first
    assert False in first
    assert hits == first.count(False)


async def test_rate_limit_answers_429_with_retry_after() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fapi.rate_limit("*/tokens", retry_after=7)
        async with fapi.async_client(device, max_retries=0) as clerk:
            with pytest.raises(RateLimitError) as caught:
                await clerk.create_session_token(device.session_id)
            token = await clerk.create_session_token(device.session_id)  # times=1: over
    error = caught.value
    assert (error.status, error.code, error.retry_after) == (429, "too_many_requests", 7.0)
    assert claims(token.jwt)["sid"] == device.session_id


async def test_an_html_error_page_is_a_typed_api_error() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fapi.fail("GET /v1/client/sessions/*", 502, html=True)
        async with fapi.async_client(device, max_retries=0) as clerk:
            with pytest.raises(ServerError) as caught:
                await clerk.get_session(device.session_id)
    error = caught.value
    assert (error.status, error.errors, error.code) == (502, [], None)
    assert error.body_excerpt is not None
    assert "<h1>502 Error</h1>" in error.body_excerpt


async def test_a_dropped_connection_is_a_connection_error() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fault = fapi.drop_connection("*/touch")
        async with fapi.async_client(device, max_retries=0) as clerk:
            with pytest.raises(APIConnectionError) as caught:
                await clerk.touch_session(device.session_id)
            touched = await clerk.touch_session(device.session_id)
    assert not isinstance(caught.value, APITimeoutError)
    assert touched.response.id == device.session_id
    assert (fapi.requests[0].status, fapi.requests[0].fault) == (0, fault)


async def test_a_truncated_body_is_a_typed_error() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fault = fapi.truncate_body("GET *")
        async with fapi.async_client(device, max_retries=0) as clerk:
            with pytest.raises(APIConnectionError, match="cut short"):
                await clerk.get_session(device.session_id)
    assert (fapi.requests[0].status, fapi.requests[0].fault) == (200, fault)


async def test_a_long_delay_times_the_client_out_and_leaves_nothing_running() -> None:
    tasks_before = asyncio.all_tasks()
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fault = fapi.delay("*/touch", 30)
        async with fapi.async_client(device, max_retries=0, timeout=0.2) as clerk:
            with pytest.raises(APITimeoutError):
                await clerk.touch_session(device.session_id)
        assert fault.hits == 1
    # Stopping abandons the delayed answer: no handler of the emulator is left in this loop.
    leftovers = asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
    assert not leftovers, leftovers
    # The abandoned request is still in the log, with no status: it was never answered.
    assert [(r.operation, r.status, r.fault) for r in fapi.requests] == [(None, 0, fault)]


async def test_a_truncated_answer_does_not_rotate_the_client_token() -> None:
    """Its headers cannot be trusted by the client, so a rotation there would lock it out."""
    async with FrontendAPIEmulator(rotate_client_tokens=True) as fapi:
        device = fapi.sign_in()
        fapi.truncate_body("GET *")
        async with fapi.async_client(device, max_retries=0) as clerk:
            with pytest.raises(APIConnectionError):
                await clerk.get_session(device.session_id)
        assert fapi.client_record(device.client_id).token_generation == 1


async def test_signing_in_on_a_device_after_rotation_returns_its_current_token() -> None:
    async with FrontendAPIEmulator(
        rotate_client_tokens=True, reject_stale_client_tokens=True
    ) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            await clerk.get_session(device.session_id)  # rotates the client token
        second = fapi.sign_in(device=device)
        assert second.client_token != device.client_token
        assert second.client_token == fapi.client_record(device.client_id).current_token
        fapi.clock.advance(STALE_CLIENT_TOKEN_GRACE + 1)
        async with fapi.async_client(second, max_retries=0) as clerk:
            assert (await clerk.get_session(second.session_id)).response.status == "active"


async def test_clear_faults_removes_every_rule() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fapi.fail("*", 503, times=None)
        async with fapi.async_client(device, max_retries=0) as clerk:
            assert await clerk_error(clerk.get_session(device.session_id), ServerError) == (
                503,
                "service_unavailable",
            )
            fapi.clear_faults()
            envelope = await clerk.get_session(device.session_id)
    assert envelope.response.status == "active"


async def test_fault_routes_are_globs_on_method_and_path_or_on_the_path() -> None:
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fapi.create_jwt_template("tmpl", {"x": 1})
        sid = device.session_id
        gets = fapi.fail("GET /v1/client/sessions/*", 503, times=None)
        tokens = fapi.fail("*/tokens", 500, times=None)
        async with fapi.async_client(device, max_retries=0) as clerk:
            touched = await clerk.touch_session(sid)  # a POST: the GET rule does not match
            templated = await clerk.create_session_token_with_template(sid, "tmpl")  # …/tokens/tmpl
            assert await clerk_error(clerk.get_session(sid), ServerError) == (
                503,
                "service_unavailable",
            )
            assert await clerk_error(clerk.create_session_token(sid), ServerError) == (
                500,
                "internal_clerk_error",
            )
    assert touched.response.id == sid
    assert claims(templated.jwt)["x"] == 1
    assert (gets.hits, tokens.hits) == (1, 1)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"probability": 1.5}, "probability"),
        ({"probability": -0.1}, "probability"),
        ({"times": 0}, "times"),
        ({"latency": -1.0}, "latency"),
        ({"status": 503, "drop": True}, "at most one"),
        ({"drop": True, "truncate": True}, "at most one"),
        ({"status": 500, "truncate": True}, "at most one"),
    ],
)
def test_impossible_faults_raise_value_error(arguments: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Fault("*", **arguments)


@pytest.mark.parametrize("times", ["default", None])
def test_a_delay_fires_once_by_default_like_every_fault(times: Any) -> None:
    with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        fault = (
            fapi.delay("*/touch", 0.05)
            if times == "default"
            else fapi.delay("*/touch", 0.05, times=times)
        )
        with fapi.sync_client(device) as clerk:
            for _ in range(3):
                clerk.touch_session(device.session_id)
    expected = [fault, None, None] if times == "default" else [fault] * 3
    assert [r.fault for r in fapi.requests] == expected
    assert fault.hits == (1 if times == "default" else 3)


def test_the_fault_helpers_validate_too(emulator: FrontendAPIEmulator) -> None:
    with pytest.raises(ValueError, match="times"):
        emulator.fail("*", times=0)
    with pytest.raises(ValueError, match="latency"):
        emulator.delay("*", -1)
    with pytest.raises(ValueError, match="probability"):
        emulator.drop_connection("*", probability=2)


# -- the request log -------------------------------------------------------------------------------


@pytest.mark.parametrize("cap", [None, 0, 3])
def test_max_logged_requests_keeps_the_newest(cap: int | None) -> None:
    with FrontendAPIEmulator(max_logged_requests=cap) as fapi:
        device = fapi.sign_in()
        with fapi.sync_client(device) as clerk:
            for _ in range(4):
                clerk.get_session(device.session_id)
            clerk.touch_session(device.session_id)
    operations = [r.operation for r in fapi.requests]
    expected = [*["get_session"] * 4, "touch_session"]  # unbounded by default
    assert operations == (expected if cap is None else expected[len(expected) - cap :])


def test_max_logged_requests_is_not_negative() -> None:
    with pytest.raises(ValueError, match="max_logged_requests"):
        FrontendAPIEmulator(max_logged_requests=-1)


async def test_the_request_log_names_operations_and_redacts_credentials() -> None:
    async with FrontendAPIEmulator() as fapi:
        user = fapi.create_user(password=CANARY_PASSWORD)
        device = fapi.sign_in(user)
        sid = device.session_id
        async with fapi.async_client(device) as clerk:
            await clerk.get_session(sid)
            await clerk.start_session_reverification(sid, level="first_factor")
            await clerk.attempt_session_reverification_first_factor(
                sid, strategy="password", password=CANARY_PASSWORD
            )
            await clerk.start_session_reverification(sid, level="first_factor")
            await reverify_with_email_code(clerk, sid)
        async with fapi.async_client(CANARY_TOKEN, max_retries=0) as stranger:
            with pytest.raises(AuthenticationError):
                await stranger.get_session(sid)

    assert [(r.operation, r.status, r.client_id) for r in fapi.requests] == [
        ("get_session", 200, device.client_id),
        ("start_session_reverification", 200, device.client_id),
        ("attempt_session_reverification_first_factor", 200, device.client_id),
        ("start_session_reverification", 200, device.client_id),
        ("prepare_session_reverification_first_factor", 200, device.client_id),
        ("attempt_session_reverification_first_factor", 200, device.client_id),
        ("get_session", 401, None),
    ]
    first = fapi.requests[0]
    assert (first.method, first.path, first.query) == (
        "GET",
        f"/v1/client/sessions/{sid}",
        {"_is_native": "1"},
    )
    assert all(r.headers["Authorization"] == "[redacted]" for r in fapi.requests)
    assert fapi.requests[1].form == {"level": "first_factor"}
    assert fapi.requests[2].form == {"strategy": "password", "password": "[redacted]"}
    assert fapi.requests[5].form == {"strategy": "email_code", "code": "[redacted]"}

    shown = repr(fapi.requests) + repr(device) + repr(user) + repr(fapi.session(sid))
    for secret in (device.client_token, CANARY_TOKEN, CANARY_PASSWORD):
        assert secret not in shown


async def test_the_log_says_which_seeds_a_mint_carried_but_never_their_values(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FrontendAPIEmulator(session_minter=True) as fapi:
        device = fapi.sign_in()
        sid = device.session_id
        own = previous_token(fapi, device)
        answers = [
            await mint_raw(fapi, device, form={"token": own, "force_origin": "true"}),
            await mint_raw(fapi, device, query=native(expired_token=own, debug="skip_cache")),
            await mint_raw(fapi, device, form={"token": CANARY_SEED}),
            await mint_raw(fapi, device, query=native(expired_token=CANARY_SEED)),
        ]
        async with fapi.async_client(device) as clerk:  # any other route: nothing to say
            await clerk.get_session(sid)

    assert [a.status for a in answers] == [200, 200, 422, 422]
    assert seeds_logged(fapi) == [
        (True, False, True),
        (False, True, False),
        (True, False, False),
        (False, True, False),
        (False, False, False),
    ]
    assert fapi.requests[0].form == {"token": "[redacted]", "force_origin": "true"}
    assert fapi.requests[1].query == {
        "_is_native": "1",
        "expired_token": "[redacted]",
        "debug": "skip_cache",
    }
    assert fapi.requests[2].form == {"token": "[redacted]"}
    assert fapi.requests[3].query["expired_token"] == "[redacted]"
    out, err = capfd.readouterr()
    shown = "\n".join(
        [repr(fapi.requests), str(fapi.requests), caplog.text, out, err]
        + [str(a.body) for a in answers[2:]]
    )
    for secret in (own, CANARY_SEED):
        assert secret not in shown


# -- the clock -------------------------------------------------------------------------------------


async def test_a_session_expires_seven_days_after_sign_in() -> None:
    clock = Clock()
    async with FrontendAPIEmulator(clock=clock) as fapi:
        device = fapi.sign_in()
        sid = device.session_id
        async with fapi.async_client(device) as clerk:
            clock.advance(7 * DAY - 60)
            assert (await clerk.get_session(sid)).response.status == "active"
            clock.advance(61)
            assert (await clerk.get_session(sid)).response.status == "expired"
            assert await clerk_error(clerk.create_session_token(sid), AuthenticationError) == (
                401,
                "authentication_invalid",
            )
            assert await clerk_error(clerk.touch_session(sid), BadRequestError) == (
                400,
                "invalid_action_for_session",
            )
        assert fapi.session(sid).status == "expired"


def test_clock_freeze_advance_and_unfreeze() -> None:
    wall = [1_700_000_000.0]
    clock = Clock(now=lambda: wall[0])
    clock.advance(30)
    assert clock.now() == 1_700_000_030
    clock.freeze()
    wall[0] += 100  # real time passes; frozen time does not
    assert clock.now() == 1_700_000_030
    clock.advance(60)
    assert clock.now() == 1_700_000_090
    clock.unfreeze()  # time moves again, from where it stood
    assert clock.now() == 1_700_000_090
    wall[0] += 5
    assert clock.now() == 1_700_000_095
    clock.freeze(at=1_800_000_000)
    assert clock.now() == 1_800_000_000


async def test_a_frozen_clock_stamps_every_token_with_the_same_time() -> None:
    clock = Clock()
    clock.freeze(at=1_800_000_000)
    async with FrontendAPIEmulator(clock=clock) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            first = await clerk.create_session_token(device.session_id)
            clock.advance(90)
            second = await clerk.create_session_token(device.session_id)
            third = await clerk.create_session_token(device.session_id)
    assert [claims(t.jwt)["iat"] for t in (first, second, third)] == [
        1_800_000_000,
        1_800_000_090,
        1_800_000_090,
    ]


async def test_every_answer_is_dated_on_the_emulator_clock() -> None:
    wall = [1_800_000_000.0]
    clock = Clock(now=lambda: wall[0])  # "real" time that moves only when the test says so
    async with FrontendAPIEmulator(clock=clock) as fapi:
        device = fapi.sign_in()
        path = f"/v1/client/sessions/{device.session_id}"
        auth = {"Authorization": device.client_token}
        first = await send_raw(fapi, "GET", path, headers=auth)
        clock.advance(3600)
        minted = await mint_raw(fapi, device)
        wall[0] += 5
        unknown = await send_raw(fapi, "GET", "/v1/nowhere", headers=auth)
        fapi.fail("GET /v1/client/sessions/*", 502, html=True)
        html = await send_raw(fapi, "GET", path, headers=auth)
        fapi.rate_limit("GET /v1/client/sessions/*")
        limited = await send_raw(fapi, "GET", path, headers=auth)
        jwks = await send_raw(fapi, "GET", "/.well-known/jwks.json", headers={}, query="")

    assert first.headers["Date"] == formatdate(1_800_000_000, usegmt=True)
    assert first.headers["Date"] == "Fri, 15 Jan 2027 08:00:00 GMT"
    assert minted.headers["Date"] == formatdate(1_800_003_600, usegmt=True)
    # The SDK reads the server's clock from both: they agree.
    iat = claims(minted.body["jwt"])["iat"]
    assert parsedate_to_datetime(minted.headers["Date"]).timestamp() == iat
    assert [(a.status, a.headers["Date"]) for a in (unknown, html, limited, jwks)] == [
        (status, formatdate(1_800_003_605, usegmt=True)) for status in (404, 502, 429, 200)
    ]
    assert "<html>" in html.body


# -- clients on the emulator's clock ---------------------------------------------------------------


async def test_helper_clients_follow_the_emulator_clock_and_mint_after_it_jumps() -> None:
    """``async_client`` gives its client the emulator's clock: a jump expires the cached token
    for the client exactly as for the server, so ``get_token`` mints a fresh one."""
    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            first = await clerk.get_token(device.session_id)
            cached = await clerk.get_token(device.session_id)
            fapi.clock.advance(3600)
            fresh = await clerk.get_token(device.session_id)
    assert cached == first
    assert fresh != first
    assert claims(fresh)["iat"] >= claims(first)["iat"] + 3600
    assert claims(fresh)["exp"] > fapi.clock.now()


def test_sync_helper_clients_follow_the_emulator_clock_too() -> None:
    with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in()
        with fapi.sync_client(device) as clerk:
            first = clerk.get_token(device.session_id)
            fapi.clock.advance(3600)
            fresh = clerk.get_token(device.session_id)
    assert fresh != first
    assert claims(fresh)["iat"] >= claims(first)["iat"] + 3600


def test_the_emulator_runtime_reads_the_emulator_clock() -> None:
    clock = Clock()
    clock.freeze(at=1_800_000_000)
    fapi = FrontendAPIEmulator(clock=clock)
    runtime = fapi.runtime()
    clock.advance(90)
    assert (runtime.wall(), runtime.monotonic()) == (1_800_000_090, 1_800_000_090)


async def test_a_runtime_passed_to_the_helpers_is_the_one_the_client_uses(
    emulator: FrontendAPIEmulator,
) -> None:
    reads: list[str] = []

    def wall() -> float:
        reads.append("wall")
        return time.time()

    def monotonic() -> float:
        reads.append("monotonic")
        return time.monotonic()

    device = emulator.sign_in()
    own = Runtime(monotonic=monotonic, wall=wall)
    async with emulator.async_client(device, _runtime=own) as clerk:
        await clerk.get_token(device.session_id)
    assert reads


# -- the pytest plugin -----------------------------------------------------------------------------


def test_the_plugin_is_registered_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("clerk_sessions")


def test_the_plugin_gives_a_signed_in_sync_client(
    clerk_emulator: FrontendAPIEmulator, clerk_device: SignedIn, clerk_sync_client: ClerkSessions
) -> None:
    envelope = clerk_sync_client.get_session(clerk_device.session_id)
    assert envelope.response.status == "active"
    assert envelope.client is not None
    assert envelope.client.id == clerk_device.client_id
    assert clerk_sync_client.frontend_api_url == clerk_emulator.url


async def test_the_plugin_gives_a_signed_in_async_client(
    clerk_emulator: FrontendAPIEmulator,
    clerk_device: SignedIn,
    clerk_client: AsyncClerkSessions,
) -> None:
    token = await clerk_client.create_session_token(clerk_device.session_id)
    assert claims(token.jwt)["sid"] == clerk_device.session_id
    assert clerk_emulator.requests[-1].operation == "create_session_token"


def test_the_plugin_clients_follow_the_emulator_clock(
    clerk_emulator: FrontendAPIEmulator, clerk_device: SignedIn, clerk_sync_client: ClerkSessions
) -> None:
    first = clerk_sync_client.get_token(clerk_device.session_id)
    clerk_emulator.clock.advance(3600)
    fresh = clerk_sync_client.get_token(clerk_device.session_id)
    assert fresh != first
    assert claims(fresh)["iat"] >= claims(first)["iat"] + 3600
