"""The argument parser: global options, subcommands, and help that documents exit codes."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from clerk_sessions._constants import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from clerk_sessions._version import __version__

from ._exit import EXIT_API_ERROR, EXIT_CODES_HELP, EXIT_NETWORK_ERROR, EXIT_OK, UsageError

DEFAULT_CONCURRENCY = 64
DEFAULT_DEMO_TOKENS = 3000

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


def _non_empty(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


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
    group.add_argument(
        "--client-token-file",
        type=_non_empty,
        metavar="FILE",
        help="read the client token from FILE and write it back when Clerk rotates it",
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


def _organization_choice(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--org", metavar="ORG", help=f"{what} this organization (ID or slug)")
    group.add_argument(
        "--personal", action="store_true", help=f"{what} the personal account (no organization)"
    )


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
    refresh.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE",
        help="session ids, one a line (# comments and blank lines ignored); default stdin",
    )
    refresh.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"requests in flight at once (default {DEFAULT_CONCURRENCY})",
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
    return parser


def check_combinations(args: argparse.Namespace) -> None:
    """Rules argparse cannot express."""
    template = getattr(args, "template", None)
    if template is not None and (getattr(args, "org", None) or getattr(args, "personal", False)):
        raise UsageError(
            "--template cannot be combined with --org/--personal: Clerk's template endpoint "
            "takes no organization (use a template whose claims read the organization)"
        )
