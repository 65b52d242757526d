"""The subcommands: one table from command to SDK call, and the few that need more."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from clerk_sessions._client import AsyncClerkSessions
from clerk_sessions._types import UNSET, Unset
from clerk_sessions.models import Envelope

from ._exit import EXIT_OK, UsageError
from ._output import Output, claims_table, decode_claims, key_value_table
from ._settings import Settings

Command = Callable[[argparse.Namespace, Settings, Output], int]
EnvelopeCall = Callable[[AsyncClerkSessions, argparse.Namespace], Awaitable[Envelope[Any]]]


def organization(args: argparse.Namespace) -> str | Unset | None:
    """--org X → X; --personal → None (sent empty: the personal account); neither → UNSET."""
    if getattr(args, "personal", False):
        return None
    org: str | None = getattr(args, "org", None)
    return UNSET if org is None else org


def _or_unset(value: str | None) -> str | Unset:
    return UNSET if value is None else value


# Every command that answers an envelope (a session, a reverification or the client).
ENVELOPE_CALLS: Mapping[str, EnvelopeCall] = {
    "get": lambda clerk, a: clerk.get_session(a.session_id),
    "touch": lambda clerk, a: clerk.touch_session(
        a.session_id, active_organization_id=organization(a), intent=_or_unset(a.intent)
    ),
    "end": lambda clerk, a: clerk.end_session(a.session_id),
    "remove": lambda clerk, a: clerk.remove_session(a.session_id),
    "remove-all": lambda clerk, a: clerk.remove_client_sessions_and_retain_cookie(),
    "verify start": lambda clerk, a: clerk.start_session_reverification(
        a.session_id, level=a.level
    ),
    "verify prepare-first": lambda clerk, a: clerk.prepare_session_reverification_first_factor(
        a.session_id,
        strategy=a.strategy,
        email_address_id=_or_unset(a.email_address_id),
        phone_number_id=_or_unset(a.phone_number_id),
    ),
    "verify attempt-first": lambda clerk, a: clerk.attempt_session_reverification_first_factor(
        a.session_id,
        strategy=a.strategy,
        **({"password": a.password} if a.strategy == "password" else {"code": a.code}),
    ),
    "verify prepare-second": lambda clerk, a: clerk.prepare_session_reverification_second_factor(
        a.session_id, strategy=_or_unset(a.strategy), phone_number_id=_or_unset(a.phone_number_id)
    ),
    "verify attempt-second": lambda clerk, a: clerk.attempt_session_reverification_second_factor(
        a.session_id, strategy=a.strategy, code=a.code
    ),
}


def with_client(
    settings: Settings, out: Output, work: Callable[[AsyncClerkSessions], Awaitable[int]]
) -> int:
    async def session() -> int:
        async with settings.client(out) as clerk:
            return await work(clerk)

    return asyncio.run(session())


def envelope_command(name: str) -> Command:
    call = ENVELOPE_CALLS[name]

    def run(args: argparse.Namespace, settings: Settings, out: Output) -> int:
        collect_answers(args)

        async def work(clerk: AsyncClerkSessions) -> int:
            out.envelope(await call(clerk, args))
            return EXIT_OK

        return with_client(settings, out, work)

    return run


def collect_answers(args: argparse.Namespace) -> None:
    """Codes and passwords for the verify attempts, asked for before any request is sent.

    A password is never a flag value (it would stay in shell history): stdin or a prompt.
    """
    if not args.action.startswith("verify attempt"):
        return
    if args.strategy == "password":
        args.password = _read_password(args.password_stdin)
    elif args.code is None:
        if getattr(args, "password_stdin", False):
            raise UsageError("--password-stdin goes with --strategy password; give --code")
        if not sys.stdin.isatty():
            raise UsageError(f"--strategy {args.strategy} needs --code CODE")
        args.code = input("Code: ").strip()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        raise UsageError("--strategy password reads the password from --password-stdin or a prompt")
    if not password:
        raise UsageError("empty password")
    return password


def token_command(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    async def work(clerk: AsyncClerkSessions) -> int:
        if args.template is not None:
            token = await clerk.create_session_token_with_template(args.session_id, args.template)
        else:
            token = await clerk.create_session_token(
                args.session_id, organization_id=organization(args)
            )
        if out.json_mode:
            out.json({"jwt": token.jwt, "claims": decode_claims(token.jwt)[1]})
        elif args.decode:
            header, claims = decode_claims(token.jwt)
            out.out.print(key_value_table("Header", header.items()))
            out.out.print(claims_table("Claims (not verified)", claims))
        else:
            # Plain: the JWT alone, so that JWT=$(clerk-sessions token …) works.
            sys.stdout.write(token.jwt + "\n")
        return EXIT_OK

    return with_client(settings, out, work)


def refresh_command(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    from ._refresh import refresh

    return with_client(settings, out, lambda clerk: refresh(clerk, args, out))


def demo_command(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    try:
        from ._demo import run_demo
    except ImportError as error:  # the emulator's extra (PyJWT) is missing
        raise UsageError(
            f"{error}; install the cli extra: pip install 'clerk-sessions[cli]'"
        ) from error

    return asyncio.run(run_demo(out, tokens=args.tokens))


COMMANDS: Mapping[str, Command] = {
    **{name: envelope_command(name) for name in ENVELOPE_CALLS},
    "token": token_command,
    "refresh": refresh_command,
    "demo": demo_command,
}
