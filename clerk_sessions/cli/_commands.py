"""The subcommands: one table from command to SDK call, and the few that need more."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from clerk_sessions import admin
from clerk_sessions._client import AsyncClerkSessions
from clerk_sessions._reverify import NoSupportedFactorError, ReverificationStep
from clerk_sessions._types import UNSET, Unset
from clerk_sessions.models import Envelope

from ._exit import EXIT_OK, UsageError
from ._output import Output, claims_table, decode_claims, key_value_table, signed_in_table
from ._parser import build_parser, organization
from ._settings import Settings, private_file

Command = Callable[[argparse.Namespace, Settings, Output], int]
EnvelopeCall = Callable[[AsyncClerkSessions, argparse.Namespace], Awaitable[Envelope[Any]]]


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
        args.code = ask("Code: ").strip()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = ask("Password: ", hidden=True)
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


def verify_run_command(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    """``verify run``: the whole step-up (``reverify``), asking for each code as it goes."""

    async def work(clerk: AsyncClerkSessions) -> int:
        try:
            envelope = await clerk.reverify(
                args.session_id,
                level=args.level,
                codes=CodePrompt(out),
                strategies=args.strategies,
                max_attempts=args.max_attempts,
            )
        except NoSupportedFactorError as error:  # a choice to make differently: --strategies
            raise UsageError(
                f"cannot reverify the {error.stage.replace('_', ' ')}: Clerk offers "
                f"{', '.join(error.supported) or 'no factor'}, and --strategies allows "
                f"{', '.join(error.wanted)}"
            ) from None
        out.envelope(envelope)
        out.note(f"Session {args.session_id} is verified ({args.level}).")
        return EXIT_OK

    return with_client(settings, out, work)


def ask(prompt: str, *, hidden: bool = False) -> str:
    """One line from the person (or the script) at stdin, after ``prompt`` on stderr: never on
    stdout, which may be a file; ``hidden``: a password, read without echo. Ctrl-C stops the
    command at once (``KeyboardInterrupt``, exit 130), wherever the prompt is asked.

    Inside ``asyncio.run`` (``verify run`` asks between requests) that needs Python's own SIGINT
    handler back for the read: asyncio's only cancels the main task and returns, and a read
    blocked in the loop's thread then goes on waiting (PEP 475), so a first Ctrl-C was lost.
    """
    try:
        with _ctrl_c_interrupts():
            if hidden:
                return getpass.getpass(prompt, stream=sys.stderr)
            sys.stderr.write(prompt)
            sys.stderr.flush()
            return sys.stdin.readline()
    except KeyboardInterrupt:
        if not prompt.endswith("\n"):
            sys.stderr.write("\n")  # the report goes on a line of its own, not after "^C"
        raise


@contextlib.contextmanager
def _ctrl_c_interrupts() -> Iterator[None]:
    """SIGINT raises ``KeyboardInterrupt`` in the block, then the handler before it is back.
    Left alone when Ctrl-C is ignored (``nohup``, a background job) or off the main thread
    (where no handler can be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    if before in (signal.SIG_IGN, signal.default_int_handler, None):
        # None: a handler set outside Python, which could not be put back.
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


_SECRET_NAMES = {
    "password": "Password",
    "totp": "Authenticator app code",
    "backup_code": "Backup code",
}


class CodePrompt:
    """``codes(step)`` for ``reverify``: asks a person on a terminal (a password without echo),
    or reads one secret a line from stdin for scripts. Prompts go to stderr, never stdout."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._interactive = sys.stdin.isatty()

    def __call__(self, step: ReverificationStep) -> str:
        label = _SECRET_NAMES.get(step.strategy, "Code")
        stage = step.stage.replace("_", " ")
        if step.error is not None:
            reason = step.error.code or "refused"
            self._out.warn(
                f"that {label.lower()} was not accepted ({reason}); "
                f"attempt {step.attempt} of {step.max_attempts}"
            )
        sent_to = step.factor.safe_identifier if step.strategy.endswith("_code") else None
        where = f" (sent to {sent_to})" if sent_to and step.strategy != "backup_code" else ""
        prompt = f"{label} for the {stage}{where}: "
        if self._interactive:
            answer = ask(prompt, hidden=step.strategy == "password")
        else:
            answer = ask(prompt + "(reading stdin)\n")
        secret = answer.rstrip("\r\n") if step.strategy == "password" else answer.strip()
        if not secret:
            raise UsageError(f"no {label.lower()} for the {stage}: nothing was entered")
        return secret


def login_command(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    """``login``: sign a new device in with a ticket (given, or made with the secret key) and
    save its client token. The token file is made ready first: a ticket works only once."""
    path = settings.client_token_file
    assert path is not None  # check_combinations
    replaced = _holds_token(path)
    with contextlib.ExitStack() as stack:
        try:
            save = stack.enter_context(private_file(path))
        except OSError as error:
            raise UsageError(
                f"cannot write the client token file {path}: {error.strerror or error}"
            ) from None
        device = asyncio.run(_sign_in(args, settings))
        save(device.client_token)
    if out.json_mode:
        out.json(
            {
                "session_id": device.session_id,
                "user_id": device.user_id,
                "client_id": device.client_id,
                "client_token_file": str(path),
            }
        )
    else:
        sys.stdout.write(device.session_id + "\n")  # SID=$(clerk-sessions login …) works
        out.err.print(signed_in_table(device, path))
    if replaced:
        out.warn(
            f"{path} held another device's client token; it was replaced (that device stays "
            "signed in until its sessions end)."
        )
    return EXIT_OK


async def _sign_in(args: argparse.Namespace, settings: Settings) -> admin.SignedInDevice:
    if args.ticket is not None:
        async with settings.new_device_client() as clerk:
            envelope = await clerk.sign_in_with_ticket(args.ticket)
            return admin.SignedInDevice.from_sign_in(
                envelope, client_token=clerk.client_token, frontend_api_url=clerk.frontend_api_url
            )
    settings.check_frontend_api()
    options = {k: v for k, v in settings.client_options().items() if k != "session_minter"}
    try:
        return await admin.sign_in_user(
            args.user_id,
            secret_key=settings.secret_key,
            publishable_key=settings.publishable_key,
            frontend_api_url=settings.frontend_api_url,
            org_id=args.org,
            backend_api_url=args.backend_api_url,
            **options,
        )
    except ImportError as error:  # the admin extra (clerk-backend-api) is missing
        raise UsageError(str(error)) from None


def _holds_token(path: Path) -> bool:
    try:
        return bool(path.read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        return False


def demo_command(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    try:
        from ._demo import run_demo
    except ImportError as error:  # the emulator's extra (PyJWT) is missing
        raise UsageError(
            f"{error}; install the cli extra: pip install 'clerk-sessions[cli]'"
        ) from error

    return asyncio.run(run_demo(out, tokens=args.tokens))


def completion_command(args: argparse.Namespace, settings: Settings, out: Output) -> int:
    """``completion SHELL``: the script shtab generates from the parser (nothing at run time:
    the shell completes from the script alone, without starting Python)."""
    try:
        import shtab
    except ImportError:
        raise UsageError(
            "shell completion needs shtab: pip install 'clerk-sessions[cli]' (or pip install shtab)"
        ) from None
    sys.stdout.write(shtab.complete(build_parser(), shell=args.shell))
    return EXIT_OK


COMMANDS: Mapping[str, Command] = {
    **{name: envelope_command(name) for name in ENVELOPE_CALLS},
    "token": token_command,
    "verify run": verify_run_command,
    "login": login_command,
    "refresh": refresh_command,
    "demo": demo_command,
    "completion": completion_command,
}
