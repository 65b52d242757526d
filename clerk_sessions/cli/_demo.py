"""``clerk-sessions demo``: every operation, end to end, on an emulator started for the occasion.

Nothing to configure: the emulator runs on 127.0.0.1 in this process, the client is pointed at
it by its publishable key alone, and a few users sign in on a few devices. Under ``--json`` the
tour goes to stderr and a JSON summary to stdout.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import jwt
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clerk_sessions._batch import TokenRequest
from clerk_sessions._client import AsyncClerkSessions
from clerk_sessions._errors import ClerkAPIError
from clerk_sessions._operations import OPERATIONS
from clerk_sessions._reverify import ReverificationStep
from clerk_sessions.models import Envelope, SessionReverification
from clerk_sessions.testing import (
    TEST_CODE,
    FrontendAPIEmulator,
    RedisServerNotInstalled,
    SignedIn,
    UserRecord,
    running_redis,
)

from ._exit import EXIT_OK
from ._output import (
    Output,
    claims_table,
    client_table,
    organization_slug,
    session_table,
    verification_summary,
)

SIGNED_IN_MINUTES_AGO = 45


@attrs.frozen
class Device:
    name: str
    owner: str
    signed_in: SignedIn


@attrs.frozen
class Cast:
    jane: UserRecord
    devices: Sequence[Device]

    def device(self, name: str, owner: str) -> SignedIn:
        return next(d.signed_in for d in self.devices if (d.name, d.owner) == (name, owner))


def set_the_scene(fapi: FrontendAPIEmulator) -> Cast:
    """Three users, an organization, a JWT template, four devices (one shared by two users)."""
    jane = fapi.create_user(
        first_name="Jane",
        last_name="Doe",
        email="jane+clerk_test@example.com",
        phone="+12015550100",
        password="correct-horse-battery",
        second_factors=("phone_code",),
    )
    ravi = fapi.create_user(
        first_name="Ravi", last_name="Patel", email="ravi+clerk_test@example.com"
    )
    mei = fapi.create_user(first_name="Mei", last_name="Chen", email="mei+clerk_test@example.com")
    fapi.create_organization(
        "Acme", slug="acme", members={jane.id: "org:admin", ravi.id: "org:member"}
    )
    fapi.create_jwt_template(
        "supabase",
        claims={
            "aud": "authenticated",
            "role": "authenticated",
            "email": "{{user.primary_email_address}}",
            "name": "{{user.full_name}}",
        },
        lifetime=60,
    )
    # They signed in a while ago, so that reverification visibly resets the factor ages.
    fapi.clock.advance(-SIGNED_IN_MINUTES_AGO * 60)
    laptop = fapi.sign_in(jane)
    devices = [
        Device("laptop", "Jane", laptop),
        Device("laptop", "Ravi", fapi.sign_in(ravi, device=laptop)),
        Device("phone", "Jane", fapi.sign_in(jane)),
        Device("tablet", "Mei", fapi.sign_in(mei)),
        Device("desktop", "Ravi", fapi.sign_in(ravi)),
    ]
    fapi.clock.advance(SIGNED_IN_MINUTES_AGO * 60)
    return Cast(jane, devices)


class Tour:
    """Numbered sections, notes and tables on one console."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.sections = 0

    def section(self, title: str, call: str) -> None:
        self.sections += 1
        self.console.print()
        self.console.rule(f"[bold]{self.sections}. {escape(title)}", align="left", style="blue")
        self.console.print(f"[dim]{escape(call)}[/]")

    def note(self, text: str) -> None:
        self.console.print(text)

    def ok(self, text: str) -> None:
        self.console.print(f"[green]ok[/] {text}")

    def expected_error(self, what: str, error: ClerkAPIError) -> None:
        self.console.print(
            f"[yellow]{escape(what)}[/] -> HTTP {error.status} [bold]{escape(str(error.code))}[/]: "
            f"{escape(error.long_message or error.message or '')} "
            f"[dim](clerk_trace_id {escape(str(error.clerk_trace_id))})[/]"
        )


class JWKS:
    """Verifies session tokens as a backend does: fetch the JWKS, pick the key by ``kid``."""

    def __init__(self, url: str, issuer: str) -> None:
        self.url = url
        self.issuer = issuer
        self.keys: dict[str, jwt.PyJWK] = {}

    async def fetch(self) -> None:
        async with aiohttp.ClientSession() as http, http.get(self.url) as response:
            response.raise_for_status()
            jwk_set = jwt.PyJWKSet.from_dict(await response.json())
        self.keys = {str(key.key_id): key for key in jwk_set.keys}

    def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        key = self.keys[jwt.get_unverified_header(token)["kid"]]
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["RS256"], issuer=self.issuer, audience=audience
        )
        return claims


async def run_demo(out: Output, *, tokens: int) -> int:
    started = time.monotonic()
    # Under --json the tour is commentary: stderr, so that stdout is only the JSON summary.
    tour = Tour(out.err if out.json_mode else out.out)
    tour.console.print("[bold]clerk-sessions demo[/]")
    tour.console.print("Every Sessions operation of Clerk's Frontend API, on a local emulator.")
    async with FrontendAPIEmulator() as fapi:
        cast = set_the_scene(fapi)
        laptop = cast.device("laptop", "Jane")
        async with AsyncClerkSessions(
            publishable_key=fapi.publishable_key, client_token=laptop.client_token
        ) as clerk:
            await _introductions(tour, fapi, cast)
            jwks = JWKS(fapi.jwks_url, issuer=fapi.url)
            await jwks.fetch()
            await _ticket_sign_in(tour, fapi, clerk, jwks)
            await _get_and_touch(tour, clerk, laptop)
            await _tokens(tour, clerk, laptop, jwks)
            batch = await _batch_refresh(tour, fapi, clerk, cast, jwks, tokens)
            await _many_workers(tour, fapi, cast)
            await _reverification(tour, clerk, cast, jwks)
            await _step_up_in_one_call(tour, fapi, clerk, cast)
            await _sign_outs(tour, clerk, cast)
        operations = Counter(r.operation for r in fapi.requests if r.operation is not None)
    elapsed = time.monotonic() - started
    _summary(tour, operations, len(fapi.requests), elapsed)
    if out.json_mode:
        out.json(
            {
                "ok": True,
                "operations": {name: operations[name] for name in OPERATIONS},
                "requests": len(fapi.requests),
                "batch": batch,
                "elapsed_seconds": round(elapsed, 3),
            }
        )
    return EXIT_OK


async def _introductions(tour: Tour, fapi: FrontendAPIEmulator, cast: Cast) -> None:
    tour.section("Sign in", "three users on four devices; Jane and Ravi share the laptop")
    tour.note(f"emulator:        [bold]{fapi.url}[/]")
    tour.note(f"publishable key: [bold]{fapi.publishable_key}[/] (all a client needs to find it)")
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("device", "user", "session"):
        table.add_column(column, no_wrap=True)
    for device in cast.devices:
        table.add_row(device.name, device.owner, device.signed_in.session_id)
    tour.console.print(table)
    laptop = cast.device("laptop", "Jane")
    tour.note(
        f"The laptop is one client ({laptop.client_id}) with two sessions. Jane has a second "
        f"factor (SMS to +1 201 555 0100). Everyone signed in {SIGNED_IN_MINUTES_AGO} minutes "
        "ago. Client tokens, each device's credential, are never printed."
    )


async def _ticket_sign_in(
    tour: Tour, fapi: FrontendAPIEmulator, clerk: AsyncClerkSessions, jwks: JWKS
) -> None:
    tour.section(
        "Sign a new device in with a ticket (no phone needed)",
        "await clerk.with_client_token(None).sign_in_with_ticket(ticket)",
    )
    sam = fapi.create_user(first_name="Sam", last_name="Okafor", email="sam+clerk_test@example.com")
    # With a real instance the ticket comes from the Backend API and your secret key:
    # clerk_sessions.admin.create_sign_in_token(user_id), or sign_in_user(user_id) for both steps.
    ticket = fapi.create_sign_in_token(sam, expires_in_seconds=300)
    device = clerk.with_client_token(None)  # a device with no client yet
    signed_in = (await device.sign_in_with_ticket(ticket)).response
    session_id = signed_in.created_session_id
    assert session_id is not None
    claims = jwks.verify(await device.get_token(session_id))
    tour.ok(
        f"Sam is signed in: sign-in {signed_in.status}, session {session_id}; the device got its "
        f"client token from the answer, and a session token for user {claims['sub']}"
    )
    try:
        await clerk.with_client_token(None).sign_in_with_ticket(ticket)
    except ClerkAPIError as error:
        tour.expected_error("the same ticket again (a ticket works once, never retried)", error)


async def _get_and_touch(tour: Tour, clerk: AsyncClerkSessions, laptop: SignedIn) -> None:
    tour.section("Get a session", "await clerk.get_session(laptop.session_id)")
    envelope = await clerk.get_session(laptop.session_id)
    tour.console.print(session_table(envelope.response))
    tour.console.print(client_table(envelope.client))
    tour.note(
        "[dim]* the session the client used last. Every answer carries the client's state.[/]"
    )

    tour.section(
        "Touch: switch to an organization by slug",
        "await clerk.touch_session(laptop.session_id, active_organization_id='acme')",
    )
    session = (await clerk.touch_session(laptop.session_id, active_organization_id="acme")).response
    tour.ok(
        f"Jane's laptop session is now in organization {session.last_active_organization_id} "
        f"({organization_slug(session)})"
    )


async def _tokens(tour: Tour, clerk: AsyncClerkSessions, laptop: SignedIn, jwks: JWKS) -> None:
    tour.section("Mint a session token", "await clerk.create_session_token(laptop.session_id)")
    token = await clerk.create_session_token(laptop.session_id)
    claims = jwks.verify(token.jwt)
    tour.console.print(claims_table("Session token claims", claims))
    tour.ok(f"RS256 signature, issuer and expiry verified with the JWKS at {jwks.url}")

    tour.section(
        "Mint a token with a JWT template",
        "await clerk.create_session_token_with_template(laptop.session_id, 'supabase')",
    )
    templated = await clerk.create_session_token_with_template(laptop.session_id, "supabase")
    tour.console.print(
        claims_table(
            "'supabase' template claims", jwks.verify(templated.jwt, audience="authenticated")
        )
    )
    tour.ok("verified too: templates are signed with the same keys")


async def _batch_refresh(
    tour: Tour,
    fapi: FrontendAPIEmulator,
    clerk: AsyncClerkSessions,
    cast: Cast,
    jwks: JWKS,
    count: int,
) -> dict[str, Any]:
    devices = cast.devices
    clients = len({device.signed_in.client_id for device in devices})
    tour.section(
        f"Batch refresh: {count:,} tokens for {len(devices)} sessions on {clients} devices",
        "async for result in clerk.refresh_tokens(requests, concurrency=64): ...",
    )
    requests = [
        TokenRequest(device.signed_in.session_id, client_token=device.signed_in.client_token)
        for device in (devices[i % len(devices)] for i in range(count))
    ]
    progress = Progress(
        TextColumn("minting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=tour.console,
        disable=not tour.console.is_terminal,
        transient=True,
    )
    per_session: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    before = _mints(fapi)
    started = time.monotonic()
    with progress:
        task = progress.add_task("refresh", total=count)
        async for result in clerk.refresh_tokens(requests, concurrency=64):
            progress.advance(task)
            if result.error is not None or result.token is None:
                failures[type(result.error).__name__] += 1
                continue
            per_session[jwks.verify(result.token)["sid"]] += 1
    elapsed = time.monotonic() - started
    minted = _mints(fapi) - before
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("device", "user", "session", "tokens"):
        table.add_column(column, justify="right" if column == "tokens" else "left")
    for device in devices:
        sid = device.signed_in.session_id
        table.add_row(device.name, device.owner, sid, f"{per_session[sid]:,}")
    tour.console.print(table)
    ok = sum(per_session.values())
    tour.ok(
        f"{ok:,} tokens returned and their signatures verified in {elapsed:.1f} s "
        f"({ok / max(elapsed, 1e-6):,.0f} tokens/s); {sum(failures.values())} failed"
    )
    tour.note(
        f"They took {minted:,} mints: a request for a session whose token is being minted waits "
        "for that mint and shares its token (one request to Clerk, not one each)."
    )
    return {
        "tokens": count,
        "ok": ok,
        "failed": dict(failures),
        "mints": minted,
        "seconds": round(elapsed, 3),
    }


async def _many_workers(tour: Tour, fapi: FrontendAPIEmulator, cast: Cast) -> None:
    desktop = cast.device("desktop", "Ravi")
    tour.section(
        "Many workers, one truth: 3 processes ask for the same token",
        "AsyncClerkSessions(..., store=RedisStore('redis://…'))  # in each worker process",
    )
    before = _mints(fapi)
    try:
        with tempfile.TemporaryDirectory() as directory, running_redis(Path(directory)) as server:
            tokens = await _run_workers(fapi.url, server.url, desktop, workers=3)
    except RedisServerNotInstalled as missing:  # raised at start-up, before any worker
        tour.note(f"[yellow]skipped[/]: {escape(str(missing))}")
        return
    minted = _mints(fapi) - before
    tour.ok(
        f"3 worker processes x {_CALLERS} concurrent get_token calls on one Redis "
        f"({server.url}): {len(tokens)} distinct token, {minted} mint seen by the emulator"
    )


_CALLERS = 20


def _mints(fapi: FrontendAPIEmulator) -> int:
    return sum(1 for r in fapi.requests if r.operation == "create_session_token")


async def _run_workers(url: str, redis_url: str, device: SignedIn, *, workers: int) -> set[str]:
    """Start the worker processes, let all of them go at once, collect their tokens."""
    command = [sys.executable, "-m", "clerk_sessions.cli._demo_worker", url, redis_url]
    processes = [
        await asyncio.create_subprocess_exec(
            *command,
            device.session_id,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    try:
        for process in processes:
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write(device.client_token.encode() + b"\n")
            await process.stdin.drain()
            await process.stdout.readline()  # "ready"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.close()
        outputs = await asyncio.gather(*(process.communicate() for process in processes))
    except ConnectionError as error:  # a worker's stdin pipe broke: it is gone
        # (A BrokenPipeError of its own would read as this command's stdout being closed.)
        raise RuntimeError("a demo worker process failed") from error
    if any(process.returncode for process in processes):
        raise RuntimeError("a demo worker process failed")
    return {line for stdout, _ in outputs for line in stdout.decode().split()}


async def _reverification(tour: Tour, clerk: AsyncClerkSessions, cast: Cast, jwks: JWKS) -> None:
    phone = cast.device("phone", "Jane")
    on_phone = clerk.with_client_token(phone.client_token)
    sid = phone.session_id
    before = jwks.verify((await on_phone.create_session_token(sid)).jwt)["fva"]
    tour.section(
        "Multi-factor reverification (step-up) on Jane's phone",
        "start -> prepare/attempt first factor -> prepare/attempt second factor",
    )
    jane = cast.jane
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("step", "status", "verification"):
        table.add_column(column, no_wrap=True)

    async def step(label: str, call: Awaitable[Envelope[SessionReverification]]) -> None:
        reverification = (await call).response
        latest = (
            reverification.second_factor_verification or reverification.first_factor_verification
        )
        table.add_row(
            escape(label), str(reverification.status), verification_summary(latest) or "-"
        )

    await step(
        "start (multi_factor)", on_phone.start_session_reverification(sid, level="multi_factor")
    )
    await step(
        "prepare first (email_code)",
        on_phone.prepare_session_reverification_first_factor(
            sid, strategy="email_code", email_address_id=jane.primary_email_address_id
        ),
    )
    wrong_code: ClerkAPIError | None = None
    try:
        await on_phone.attempt_session_reverification_first_factor(
            sid, strategy="email_code", code="000000"
        )
    except ClerkAPIError as error:
        wrong_code = error
    await step(
        f"attempt first ({TEST_CODE})",
        on_phone.attempt_session_reverification_first_factor(
            sid, strategy="email_code", code=TEST_CODE
        ),
    )
    await step(
        "prepare second (phone_code)",
        on_phone.prepare_session_reverification_second_factor(sid, strategy="phone_code"),
    )
    await step(
        f"attempt second ({TEST_CODE})",
        on_phone.attempt_session_reverification_second_factor(
            sid, strategy="phone_code", code=TEST_CODE
        ),
    )
    tour.console.print(table)
    if wrong_code is not None:
        tour.expected_error("before the right code, a wrong one (000000) was refused", wrong_code)
    after = jwks.verify((await on_phone.create_session_token(sid)).jwt)["fva"]
    tour.ok(
        f"the token's fva claim (minutes since first, second factor) went from {before} to {after}"
    )


async def _step_up_in_one_call(
    tour: Tour, fapi: FrontendAPIEmulator, clerk: AsyncClerkSessions, cast: Cast
) -> None:
    phone = cast.device("phone", "Jane")
    on_phone = clerk.with_client_token(phone.client_token)
    sid = phone.session_id
    tour.section(
        "Step-up in one call: with_reverification",
        "await clerk.with_reverification(sid, call, codes=ask_the_user)",
    )
    # A sensitive action Clerk refuses until the session steps up (one 403, as Clerk sends it).
    fapi.fail(f"POST /v1/client/sessions/{sid}/touch", 403, code="session_reverification_required")
    asked: list[str] = []

    def ask_the_user(step: ReverificationStep) -> str:
        asked.append(f"{step.stage} by {step.strategy}")
        return TEST_CODE

    touched = await on_phone.with_reverification(
        sid, lambda: on_phone.touch_session(sid), codes=ask_the_user
    )
    tour.ok(
        f"the touch was refused (403 session_reverification_required), stepped up "
        f"({', '.join(asked)}), and repeated: session {touched.response.status}"
    )


async def _sign_outs(tour: Tour, clerk: AsyncClerkSessions, cast: Cast) -> None:
    ravi = cast.device("laptop", "Ravi")
    tour.section("End a session", "await clerk.end_session(ravi_on_laptop.session_id)")
    envelope = await clerk.end_session(ravi.session_id)
    tour.console.print(client_table(envelope.client))
    tour.note("An ended session stays in the client, and can no longer mint tokens:")
    try:
        await clerk.create_session_token(ravi.session_id)
    except ClerkAPIError as error:
        tour.expected_error("create_session_token on the ended session", error)

    tablet = cast.device("tablet", "Mei")
    tour.section("Remove a session", "await tablet_clerk.remove_session(tablet.session_id)")
    on_tablet = clerk.with_client_token(tablet.client_token)
    removed = await on_tablet.remove_session(tablet.session_id)
    tour.ok(f"Mei's session is {removed.response.status}, and gone from the tablet's client:")
    tour.console.print(client_table(removed.client))

    tour.section(
        "Remove every session of a client, keep the client",
        "await clerk.remove_client_sessions_and_retain_cookie()",
    )
    client = (await clerk.remove_client_sessions_and_retain_cookie()).response
    tour.console.print(client_table(client))
    tour.ok("the laptop is signed out; its client (and client token) remain for the next sign-in")


def _summary(tour: Tour, operations: Counter[str], requests: int, elapsed: float) -> None:
    tour.section("Summary", f"{requests:,} requests to the emulator")
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("operation")
    table.add_column("HTTP")
    table.add_column("calls", justify="right")
    for name, operation in OPERATIONS.items():
        table.add_row(name, operation.method, f"{operations[name]:,}")
    tour.console.print(table)
    covered = sum(1 for name in OPERATIONS if operations[name])
    tour.ok(f"{covered} of {len(OPERATIONS)} operations exercised in {elapsed:.1f} s")
    tour.note("Next steps:")
    tour.note("  clerk-sessions --help")
    tour.note("  python -m clerk_sessions.testing --port 8787   # an emulator of your own")
    tour.note("  clerk-sessions --frontend-api-url http://127.0.0.1:8787 get SESSION_ID")
