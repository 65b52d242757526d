"""The argument parser: global options, subcommands, and help that documents exit codes."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

from clerk_sessions._constants import (
    DEFAULT_BATCH_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
)
from clerk_sessions._types import UNSET, Unset
from clerk_sessions._version import __version__

from ._exit import EXIT_API_ERROR, EXIT_CODES_HELP, EXIT_NETWORK_ERROR, EXIT_OK, UsageError

DEFAULT_DEMO_TOKENS = 3000

COMPLETION_SHELLS = ("bash", "zsh", "tcsh")
# shtab's completion of file names (shtab.FILE), set on the arguments that take a file; written
# out so that building the parser needs no shtab (tests check it is shtab's).
FILE_COMPLETION: Mapping[str, str] = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}

T = TypeVar("T")

DESCRIPTION = """\
Act for a signed-in Clerk client (device) from the terminal: the Sessions operations of
Clerk's Frontend API. Start with `clerk-sessions demo`: it needs no account."""

EPILOG = f"""\
configuration (a flag always wins over any environment variable; a URL wins over a key):
  CLERK_PUBLISHABLE_KEY    --publishable-key   pk_test_… or pk_live_… of your instance
  CLERK_FRONTEND_API_URL   --frontend-api-url  a proxy, custom domain or the local emulator
  CLERK_CLIENT_TOKEN       --client-token      the native client token (device JWT)
Global options go before or after the command. Prefer the environment or --client-token-file
for the client token: a flag's value stays in your shell history. When Clerk rotates the
token, --client-token-file is rewritten with the new one; otherwise a warning says so.

examples:
  clerk-sessions demo
  clerk-sessions login --user-id user_123 --client-token-file device.token  # CLERK_SECRET_KEY
  python -m clerk_sessions.testing --port 8787     # an emulator, in another terminal
  clerk-sessions --frontend-api-url http://127.0.0.1:8787 get sess_123
  JWT=$(clerk-sessions token sess_123 --template supabase)
  clerk-sessions refresh ids.txt --concurrency 128 > tokens.jsonl

{EXIT_CODES_HELP}"""


class Parser(argparse.ArgumentParser):
    """Raises UsageError instead of exiting, so errors are reported like every other error
    (and as JSON under --json)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, usage=self.format_usage())


def _named(name: str) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    """Name an argument type for argparse's message when it raises ValueError: "invalid NAME
    value: 'abc'" (argparse quotes a type's ``__name__``, else it would say ``_seconds``)."""

    def name_it(parse: Callable[[str], T]) -> Callable[[str], T]:
        parse.__name__ = name
        return parse

    return name_it


@_named("text")
def _non_empty(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


@_named("integer")
def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


@_named("seconds")
def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return number


@_named("integer")
def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


@_named("strategy list")
def _strategy_list(value: str) -> tuple[str, ...]:
    strategies = tuple(part.strip() for part in value.split(","))
    if not all(strategies):
        raise argparse.ArgumentTypeError(
            f"expected strategies separated by commas (e.g. totp,phone_code), got {value!r}"
        )
    return strategies


def _global_options() -> argparse.ArgumentParser:
    # SUPPRESS: an option given before the command is not reset by the subparser's default.
    options = Parser(add_help=False, argument_default=argparse.SUPPRESS)
    group = options.add_argument_group("global options")
    group.add_argument(
        "--publishable-key", type=_non_empty, metavar="KEY", help="env CLERK_PUBLISHABLE_KEY"
    )
    group.add_argument(
        "--frontend-api-url",
        type=_non_empty,
        metavar="URL",
        help="env CLERK_FRONTEND_API_URL (e.g. the emulator)",
    )
    group.add_argument(
        "--client-token",
        type=_non_empty,
        metavar="TOKEN",
        help="env CLERK_CLIENT_TOKEN; never printed",
    )
    _completes_files(
        group.add_argument(
            "--client-token-file",
            type=_non_empty,
            metavar="FILE",
            help="read the client token from FILE and write it back when Clerk rotates it",
        )
    )
    group.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    group.add_argument("--debug", action="store_true", help="show tracebacks and SDK debug logs")
    group.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"per request, retries included (default {DEFAULT_TIMEOUT.total:g})",
    )
    group.add_argument(
        "--max-retries",
        type=_non_negative_int,
        metavar="N",
        help=f"retries of failed requests that are safe to repeat (default {DEFAULT_MAX_RETRIES})",
    )
    group.add_argument(
        "--session-minter",
        action=argparse.BooleanOptionalAction,
        help="the instance uses Clerk's Session Minter: send the previous token when minting "
        "(env CLERK_SESSION_MINTER)",
    )
    return options


def _completes_files(action: argparse.Action) -> None:
    action.complete = FILE_COMPLETION  # type: ignore[attr-defined]  # read by shtab


def _organization_choice(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--org", metavar="ORG", help=f"{what} this organization (ID or slug)")
    group.add_argument(
        "--personal", action="store_true", help=f"{what} the personal account (no organization)"
    )


def organization(args: argparse.Namespace) -> str | Unset | None:
    """--org X → X; --personal → None (sent empty: the personal account); neither → UNSET."""
    if getattr(args, "personal", False):
        return None
    org: str | None = getattr(args, "org", None)
    return UNSET if org is None else org


def build_parser() -> Parser:
    common = _global_options()
    parser = Parser(
        prog="clerk-sessions",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"clerk-sessions {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(
        name: str, help: str, action: str | None = None, owner: Any = commands
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = owner.add_parser(
            name,
            help=help,
            description=help,
            parents=[common],
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(action=action or name)
        return sub

    def with_session(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("session_id", metavar="SESSION_ID", type=_non_empty)
        return sub

    with_session(command("get", "show a session of this client"))
    touch = with_session(command("touch", "keep a session alive, make it active, switch org"))
    _organization_choice(touch, "switch to")
    touch.add_argument("--intent", choices=("focus", "select_session", "select_org"))
    with_session(command("end", "sign a session out (it stays in the client, ended)"))
    with_session(command("remove", "sign a session out and remove it from the client"))
    command("remove-all", "sign out every session of this client; keep the client")

    token = with_session(command("token", "mint a session JWT and print it"))
    token.add_argument(
        "--template", type=_non_empty, metavar="NAME", help="shape the JWT with this JWT template"
    )
    _organization_choice(token, "a token for")
    token.add_argument("--decode", action="store_true", help="show the claims as a table")

    refresh = command("refresh", "mint tokens for many sessions: JSON lines on stdout")
    refresh.description = f"""\
Mint a token for each session id, many at once.
stdout: one JSON line per id, in the order they finish:
  {{"session_id": …, "ok": true, "jwt": …}} or {{"session_id": …, "ok": false, "error": {{…}}}}
stderr: a progress bar (on a terminal) and a summary.
Exit {EXIT_OK} when every token was minted, {EXIT_API_ERROR} if any failed \
({EXIT_NETWORK_ERROR} if every failure was a network error)."""
    _completes_files(
        refresh.add_argument(
            "file",
            nargs="?",
            default="-",
            metavar="FILE",
            help="session ids, one a line (# comments and blank lines ignored); default stdin",
        )
    )
    refresh.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_BATCH_CONCURRENCY,
        metavar="N",
        help=f"requests in flight at once (default {DEFAULT_BATCH_CONCURRENCY}, as the SDK's)",
    )
    refresh.add_argument(
        "--template", type=_non_empty, metavar="NAME", help="shape the JWTs with this template"
    )
    _organization_choice(refresh, "tokens for")

    verify = command("verify", "step-up verification (reverification) of a session")
    steps = verify.add_subparsers(title="steps", metavar="STEP", required=True)

    def step(name: str, help: str) -> argparse.ArgumentParser:
        return with_session(command(name, help, action=f"verify {name}", owner=steps))

    step("start", "start reverification").add_argument(
        "--level", required=True, choices=("first_factor", "second_factor", "multi_factor")
    )
    prepare_first = step("prepare-first", "send the first-factor code (email or SMS)")
    prepare_first.add_argument("--strategy", required=True, choices=("email_code", "phone_code"))
    target = prepare_first.add_mutually_exclusive_group()
    target.add_argument("--email-address-id", metavar="ID")
    target.add_argument("--phone-number-id", metavar="ID")
    attempt_first = step("attempt-first", "answer the first factor: a code or the password")
    attempt_first.add_argument(
        "--strategy", required=True, choices=("email_code", "phone_code", "password")
    )
    answer = attempt_first.add_mutually_exclusive_group()
    answer.add_argument("--code", metavar="CODE", help="prompted for when omitted on a terminal")
    answer.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin (without it, you are prompted; never a flag value)",
    )
    prepare_second = step("prepare-second", "send the second-factor code (SMS)")
    prepare_second.add_argument("--strategy", choices=("phone_code",))
    prepare_second.add_argument("--phone-number-id", metavar="ID")
    attempt_second = step("attempt-second", "answer the second factor")
    attempt_second.add_argument(
        "--strategy", required=True, choices=("phone_code", "totp", "backup_code")
    )
    attempt_second.add_argument("--code", metavar="CODE", help="prompted for when omitted")

    run = step("run", "step a session up in one go: prompts for each code (passwords hidden)")
    run.description = """\
Step a session up at LEVEL: start, pick a factor, send the code (email or SMS), ask you for it
and attempt it, then the second factor if Clerk asks for one. Codes are prompted for on a
terminal (passwords without echo); otherwise they are read from stdin, one a line. A wrong code
is asked for again, up to --max-attempts times."""
    run.add_argument(
        "--level", required=True, choices=("first_factor", "second_factor", "multi_factor")
    )
    run.add_argument(
        "--strategies",
        type=_strategy_list,
        metavar="LIST",
        help="the factors to use, in order of preference, e.g. totp,phone_code (default: "
        "email_code,phone_code,password, then totp,phone_code,backup_code)",
    )
    run.add_argument(
        "--max-attempts",
        type=_positive_int,
        default=3,
        metavar="N",
        help="attempts per factor before giving up (default 3)",
    )

    login = command("login", "sign a new device in with a sign-in token; save its client token")
    login.description = """\
Sign a new device (Clerk client) in and write its client token to --client-token-file FILE
(owner-only, mode 0600); print the new session's id on stdout.
  --ticket TICKET   a sign-in token made with the Backend API (single use)
  --user-id USER    make that ticket here with the secret key (CLERK_SECRET_KEY or
                    --secret-key; needs pip install 'clerk-sessions[admin]'), then sign in
The instance's Native API must be enabled (Clerk dashboard, Native applications)."""
    how = login.add_mutually_exclusive_group(required=True)
    how.add_argument("--ticket", type=_non_empty, metavar="TICKET", help="a sign-in token")
    how.add_argument(
        "--user-id", type=_non_empty, metavar="USER", help="sign this user in (secret key)"
    )
    login.add_argument(
        "--secret-key",
        type=_non_empty,
        metavar="KEY",
        help="env CLERK_SECRET_KEY (better: a flag stays in shell history); never printed",
    )
    login.add_argument(
        "--backend-api-url",
        type=_non_empty,
        metavar="URL",
        help="env CLERK_BACKEND_API_URL, default https://api.clerk.com (the emulator's: "
        "http://127.0.0.1:PORT/bapi)",
    )
    login.add_argument(
        "--org", type=_non_empty, metavar="ORG_ID", help="start the session in this organization"
    )

    demo = command("demo", "a guided tour on a local emulator: no configuration needed")
    demo.description = (
        "Start a Frontend API emulator on 127.0.0.1, sign a few users in on a few devices and "
        "call every operation.\nWith --json the tour goes to stderr and a JSON summary to stdout."
    )
    demo.add_argument(
        "--tokens",
        type=_positive_int,
        default=DEFAULT_DEMO_TOKENS,
        metavar="N",
        help=f"tokens in the batch refresh (default {DEFAULT_DEMO_TOKENS})",
    )

    completion = command("completion", "print a shell completion script (bash, zsh, tcsh)")
    completion.description = """\
Print a completion script for SHELL on stdout (made by shtab from this command line). Install:
  bash  clerk-sessions completion bash > ~/.local/share/bash-completion/completions/clerk-sessions
  zsh   clerk-sessions completion zsh > ~/.zfunc/_clerk-sessions
        (with fpath+=(~/.zfunc) before compinit in ~/.zshrc)
  tcsh  clerk-sessions completion tcsh > ~/.clerk-sessions.tcsh
        (and source ~/.clerk-sessions.tcsh in ~/.tcshrc)"""
    completion.add_argument(
        "shell", metavar="SHELL", choices=COMPLETION_SHELLS, help=", ".join(COMPLETION_SHELLS)
    )
    return parser


def check_combinations(args: argparse.Namespace) -> None:
    """Rules argparse cannot express."""
    if getattr(args, "action", None) == "login":
        if getattr(args, "client_token_file", None) is None:
            raise UsageError("login writes the new device's client token to --client-token-file")
        if getattr(args, "client_token", None) is not None:
            raise UsageError(
                "login signs a new device in: it takes no --client-token (the new token goes "
                "to --client-token-file)"
            )
        if args.ticket is not None:
            for flag in ("secret_key", "backend_api_url", "org"):
                if getattr(args, flag) is not None:
                    raise UsageError(
                        f"--{flag.replace('_', '-')} goes with --user-id: a ticket needs no "
                        "Backend API call (and carries its organization)"
                    )
    template = getattr(args, "template", None)
    if template is not None and (getattr(args, "org", None) or getattr(args, "personal", False)):
        raise UsageError(
            "--template cannot be combined with --org/--personal: Clerk's template endpoint "
            "takes no organization (use a template whose claims read the organization)"
        )
