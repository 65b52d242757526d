"""The ``clerk-sessions`` command line, against the local Frontend API emulator.

Most tests run ``main([...])`` in-process and read what it printed; a few start real processes
to prove the entry points. Every in-process run also checks the canary: the device's client
token never appears in anything the command prints.
"""

from __future__ import annotations

import ast
import contextlib
import getpass
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import jwt
import orjson
import pytest

from clerk_sessions.cli import (
    EXIT_API_ERROR,
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_NETWORK_ERROR,
    EXIT_OK,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    main,
)
from clerk_sessions.testing import (
    STALE_CLIENT_TOKEN_GRACE,
    FrontendAPIEmulator,
    SignedIn,
    UserRecord,
    inspect,
)

TEST_CODE = "424242"


@attrs.frozen
class World:
    fapi: FrontendAPIEmulator
    user: UserRecord
    device: SignedIn
    org_id: str


@attrs.frozen
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return orjson.loads(self.out)

    @property
    def lines(self) -> list[Any]:
        return [orjson.loads(line) for line in self.out.splitlines()]


@pytest.fixture(autouse=True)
def _plain_wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain text, wide enough that no table wraps an id: assertions read values, not layout."""
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def world() -> Iterator[World]:
    with FrontendAPIEmulator() as fapi:
        user = fapi.create_user(
            first_name="Jane",
            email="jane+clerk_test@example.com",
            phone="+12015550100",
            password="correct-horse",
            second_factors=("phone_code",),
        )
        org = fapi.create_organization("Acme", slug="acme", members={user.id: "org:admin"})
        fapi.create_jwt_template("supabase", claims={"role": "authenticated"})
        yield World(fapi, user, fapi.sign_in(user), org.id)


@pytest.fixture
def cli(world: World, capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli("get", sid)``: run the command line against the emulator as ``world.device``."""

    def run(*args: str, configured: bool = True) -> Run:
        options = [
            "--frontend-api-url",
            world.fapi.url,
            "--client-token",
            world.device.client_token,
        ]
        code = main([*(options if configured else []), *args])
        captured = capsys.readouterr()
        assert world.device.client_token not in captured.out + captured.err  # the canary
        return Run(code, captured.out, captured.err)

    return run


def verify(fapi: FrontendAPIEmulator, token: str) -> dict[str, Any]:
    """Check a session token exactly as a backend would, with the emulator's JWKS."""
    keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(fapi.jwks()).keys}
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["RS256"], issuer=fapi.url, options={"verify_aud": False}
    )
    return claims


# --- help, parsing, usage errors -------------------------------------------------------------


def test_help_lists_commands_configuration_and_exit_codes(cli: Any) -> None:
    result = cli("--help", configured=False)
    assert result.code == EXIT_OK
    for text in ("get", "touch", "remove-all", "token", "refresh", "verify", "demo"):
        assert text in result.out
    for text in ("CLERK_PUBLISHABLE_KEY", "CLERK_CLIENT_TOKEN", "--client-token-file"):
        assert text in result.out
    assert "exit codes" in result.out
    for code in (EXIT_USAGE, EXIT_API_ERROR, EXIT_NETWORK_ERROR):
        assert f"\n  {code}  " in result.out


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["get"],
        ["get", "  "],
        ["--timeout", "0", "get", "sess_1"],
        ["--max-retries", "-1", "get", "sess_1"],
        ["refresh", "--concurrency", "0"],
        ["touch", "sess_1", "--org", "acme", "--personal"],
        ["token", "sess_1", "--template", "supabase", "--org", "acme"],
        ["verify", "start", "sess_1", "--level", "third_factor"],
        [
            "verify",
            "attempt-first",
            "sess_1",
            "--strategy",
            "email_code",
            "--code",
            "1",
            "--password-stdin",
        ],
    ],
)
def test_usage_errors_exit_2_with_usage_and_no_traceback(cli: Any, args: list[str]) -> None:
    result = cli(*args)
    assert result.code == EXIT_USAGE
    assert "error:" in result.err
    assert "Traceback" not in result.err
    assert result.out == ""


def test_usage_error_under_json_is_also_json_on_stdout(cli: Any) -> None:
    result = cli("--json", "bogus")
    assert result.code == EXIT_USAGE
    assert result.json["error"]["type"] == "UsageError"
    assert "bogus" in result.json["error"]["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["get", "sess_1"], "No Frontend API"),
        (["--frontend-api-url", "http://127.0.0.1:9", "get", "sess_1"], "No client token"),
        (["--publishable-key", "sk_test_abc", "--client-token", "t", "get", "s"], "secret key"),
        (["--client-token", "t", "--client-token-file", "f", "get", "s"], "not both"),
        (
            [
                "--frontend-api-url",
                "http://127.0.0.1:9",
                "--client-token-file",
                "/nope",
                "get",
                "s",
            ],
            "cannot read",
        ),
    ],
)
def test_configuration_errors_exit_2(cli: Any, args: list[str], message: str) -> None:
    result = cli(*args, configured=False)
    assert result.code == EXIT_USAGE
    assert message in result.err


def test_global_options_work_after_the_command(world: World, cli: Any) -> None:
    result = cli(
        "get",
        world.device.session_id,
        "--json",
        "--frontend-api-url",
        world.fapi.url,
        "--client-token",
        world.device.client_token,
        configured=False,
    )
    assert result.code == EXIT_OK
    assert result.json["response"]["id"] == world.device.session_id


def test_configuration_from_the_environment(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", world.fapi.publishable_key)
    monkeypatch.setenv("CLERK_CLIENT_TOKEN", world.device.client_token)
    result = cli("--json", "get", world.device.session_id, configured=False)
    assert result.code == EXIT_OK
    assert result.json["response"]["status"] == "active"


def test_without_rich_a_one_line_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # makes ``import rich`` fail
    assert main(["demo"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "clerk-sessions[cli]" in err
    assert len(err.strip().splitlines()) == 1


# --- the session commands --------------------------------------------------------------------


def test_get_prints_the_session_and_its_client(world: World, cli: Any) -> None:
    result = cli("get", world.device.session_id)
    assert result.code == EXIT_OK
    for text in (world.device.session_id, "active", "Jane", world.device.client_id):
        assert text in result.out


def test_get_json_is_the_envelope_with_jwts_masked(world: World, cli: Any) -> None:
    result = cli("--json", "get", world.device.session_id)
    assert result.code == EXIT_OK
    data = result.json
    assert data["response"]["object"] == "session"
    assert data["response"]["user"]["id"] == world.user.id
    assert [s["id"] for s in data["client"]["sessions"]] == [world.device.session_id]
    # The piggybacked session JWT is not printed: `token` is the command that prints JWTs.
    assert data["response"]["last_active_token"]["jwt"] == "[redacted]"
    assert "eyJ" not in result.out


def test_touch_switches_organization_by_slug_and_back(world: World, cli: Any) -> None:
    sid = world.device.session_id
    assert (
        cli("--json", "touch", sid, "--org", "acme").json["response"]["last_active_organization_id"]
        == world.org_id
    )
    plain = cli("touch", sid, "--org", "acme")
    assert f"{world.org_id} (acme)" in plain.out
    assert (
        cli("--json", "touch", sid, "--personal").json["response"]["last_active_organization_id"]
        is None
    )


def test_touch_with_focus_intent_has_no_client(world: World, cli: Any) -> None:
    result = cli("--json", "touch", world.device.session_id, "--intent", "focus")
    assert result.code == EXIT_OK
    assert result.json["client"] is None


def test_token_prints_only_the_jwt(world: World, cli: Any) -> None:
    result = cli("token", world.device.session_id)
    assert result.code == EXIT_OK
    assert result.out.count("\n") == 1
    claims = verify(world.fapi, result.out.strip())
    assert claims["sid"] == world.device.session_id
    assert claims["sub"] == world.user.id


def test_token_json_has_the_jwt_and_its_claims(world: World, cli: Any) -> None:
    sid = world.device.session_id
    with_org = cli("--json", "token", sid, "--org", "acme").json
    assert set(with_org) == {"jwt", "claims"}
    assert with_org["claims"] == verify(world.fapi, with_org["jwt"])
    assert with_org["claims"]["o"]["slg"] == "acme"
    assert "o" not in cli("--json", "token", sid, "--personal").json["claims"]


def test_token_with_a_template(world: World, cli: Any) -> None:
    result = cli("--json", "token", world.device.session_id, "--template", "supabase")
    assert result.code == EXIT_OK
    assert result.json["claims"]["role"] == "authenticated"


def test_token_decode_shows_header_and_claims(world: World, cli: Any) -> None:
    result = cli("token", world.device.session_id, "--decode")
    assert result.code == EXIT_OK
    for text in ("RS256", "sid", world.device.session_id, "fva", "session status"):
        assert text in result.out
    assert "eyJ" not in result.out


def test_end_then_remove_then_remove_all(world: World, cli: Any) -> None:
    other = world.fapi.sign_in(world.fapi.create_user(first_name="Ravi"), device=world.device)
    ended = cli("--json", "end", other.session_id).json
    assert ended["response"]["status"] == "ended"
    assert other.session_id in [s["id"] for s in ended["client"]["sessions"]]
    removed = cli("--json", "remove", other.session_id).json
    assert removed["response"]["status"] == "removed"
    assert other.session_id not in [s["id"] for s in removed["client"]["sessions"]]
    result = cli("remove-all")
    assert result.code == EXIT_OK
    assert "(no sessions)" in result.out
    assert world.device.client_id in result.out
    assert world.fapi.session(world.device.session_id).status == "removed"


# --- verify ----------------------------------------------------------------------------------


def test_verify_multi_factor_flow(world: World, cli: Any) -> None:
    sid = world.device.session_id
    email_id = world.user.primary_email_address_id
    assert email_id is not None
    steps = [
        (["start", sid, "--level", "multi_factor"], "needs_first_factor"),
        (
            ["prepare-first", sid, "--strategy", "email_code", "--email-address-id", email_id],
            "needs_first_factor",
        ),
        (
            ["attempt-first", sid, "--strategy", "email_code", "--code", TEST_CODE],
            "needs_second_factor",
        ),
        (["prepare-second", sid, "--strategy", "phone_code"], "needs_second_factor"),
        (["attempt-second", sid, "--strategy", "phone_code", "--code", TEST_CODE], "complete"),
    ]
    for args, status in steps:
        result = cli("--json", "verify", *args)
        assert result.code == EXIT_OK, result.err
        assert result.json["response"]["status"] == status
    plain = cli("verify", "start", sid, "--level", "first_factor")
    assert "needs_first_factor" in plain.out
    assert "email_code" in plain.out


def test_verify_password_is_read_from_stdin(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = world.device.session_id
    assert cli("verify", "start", sid, "--level", "first_factor").code == EXIT_OK
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct-horse\n"))
    result = cli(
        "--json", "verify", "attempt-first", sid, "--strategy", "password", "--password-stdin"
    )
    assert result.code == EXIT_OK
    assert result.json["response"]["status"] == "complete"
    assert "correct-horse" not in result.out + result.err


def test_verify_password_needs_stdin_or_a_prompt(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct-horse\n"))  # not a terminal
    result = cli("verify", "attempt-first", world.device.session_id, "--strategy", "password")
    assert result.code == EXIT_USAGE
    assert "--password-stdin" in result.err
    assert not world.fapi.requests  # refused before any request


def test_verify_wrong_code_is_an_api_error(world: World, cli: Any) -> None:
    sid = world.device.session_id
    cli("verify", "start", sid, "--level", "first_factor")
    cli("verify", "prepare-first", sid, "--strategy", "email_code")
    result = cli("verify", "attempt-first", sid, "--strategy", "email_code", "--code", "000000")
    assert result.code == EXIT_API_ERROR
    assert "form_code_incorrect" in result.err
    assert "422" in result.err


# --- refresh ---------------------------------------------------------------------------------


def test_refresh_reads_stdin_and_writes_json_lines(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = world.device.session_id
    stdin = f"# sessions to refresh\n{sid}\n\n   \nsess_unknown\n{sid}  # again\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    result = cli("refresh", "--concurrency", "2")
    assert result.code == EXIT_API_ERROR  # one of three failed
    lines = sorted(result.lines, key=lambda line: line["ok"])
    assert [line["session_id"] for line in lines] == ["sess_unknown", sid, sid]
    failed = lines[0]
    assert failed["ok"] is False
    assert failed["error"]["code"] == "resource_not_found"
    assert failed["error"]["status"] == 404
    assert failed["error"]["clerk_trace_id"]
    for line in lines[1:]:
        assert verify(world.fapi, line["jwt"])["sid"] == sid
    assert "refreshed 2 of 3 tokens" in result.err
    assert "NotFoundError" in result.err


def test_refresh_reads_a_file_with_a_template(world: World, cli: Any, tmp_path: Path) -> None:
    second = world.fapi.sign_in(world.user, device=world.device)
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{world.device.session_id}\n{second.session_id}\n" * 50)
    result = cli("refresh", str(ids), "--template", "supabase")
    assert result.code == EXIT_OK
    assert len(result.lines) == 100
    assert all(verify(world.fapi, line["jwt"])["role"] == "authenticated" for line in result.lines)
    assert "refreshed 100 of 100 tokens" in result.err


def test_refresh_of_nothing_succeeds(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("# nothing here\n\n"))
    result = cli("refresh")
    assert result.code == EXIT_OK
    assert result.out == ""


def test_refresh_of_a_missing_file_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    result = cli("refresh", str(tmp_path / "missing.txt"))
    assert result.code == EXIT_USAGE
    assert "cannot read" in result.err


def test_refresh_only_network_failures_exit_4(
    cli: Any, monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("sess_1\nsess_2\n"))
    url = f"http://127.0.0.1:{unused_tcp_port}"
    result = cli("--frontend-api-url", url, "--max-retries", "0", "refresh")
    assert result.code == EXIT_NETWORK_ERROR
    assert {line["error"]["type"] for line in result.lines} == {"APIConnectionError"}


# --- errors ----------------------------------------------------------------------------------


def test_api_error_shows_code_status_and_trace_id_without_traceback(cli: Any) -> None:
    result = cli("get", "sess_unknown")
    assert result.code == EXIT_API_ERROR
    assert result.out == ""
    assert "error: No session was found" in result.err
    assert "code: resource_not_found" in result.err
    assert "status: 404" in result.err
    assert "clerk_trace_id: emu_" in result.err
    assert "Traceback" not in result.err


def test_api_error_under_json(cli: Any) -> None:
    result = cli("--json", "end", "sess_unknown")
    assert result.code == EXIT_API_ERROR
    error = result.json["error"]
    assert error["type"] == "NotFoundError"
    assert error["code"] == "resource_not_found"
    assert error["status"] == 404
    assert error["clerk_trace_id"].startswith("emu_")


def test_debug_shows_the_traceback(cli: Any) -> None:
    result = cli("--debug", "get", "sess_unknown")
    assert result.code == EXIT_API_ERROR
    assert "Traceback" in result.err
    assert "NotFoundError" in result.err


def test_network_error_exits_4(cli: Any, unused_tcp_port: int) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}"
    result = cli("--json", "--frontend-api-url", url, "--max-retries", "0", "get", "sess_1")
    assert result.code == EXIT_NETWORK_ERROR
    assert result.json["error"]["type"] == "APIConnectionError"
    assert "Traceback" not in result.err


def test_invalid_response_exits_1(world: World, cli: Any) -> None:
    world.fapi.fail("*", 200, html=True)  # a proxy's HTML page where JSON belongs
    result = cli("get", world.device.session_id)
    assert result.code == EXIT_UNEXPECTED
    assert "ResponseValidationError" in result.err
    assert "Traceback" not in result.err


def test_the_client_token_is_never_printed(world: World, cli: Any) -> None:
    """The ``cli`` fixture asserts it after every run; these are the runs most likely to leak:
    errors, tracebacks, JSON, and an unrecognised argument that is the token itself."""
    token = world.device.client_token
    sid = world.device.session_id
    cli("--debug", "--json", "get", "sess_unknown")
    cli("--debug", "get", sid)
    cli("get", sid, "--bogus", token)
    cli("--json", "token", sid, "--template", "missing")
    world.fapi.fail("*", 500, times=None)
    cli("--debug", "--json", "--max-retries", "0", "get", sid)


# --- client token rotation -------------------------------------------------------------------


def test_rotated_client_token_is_written_back_to_the_file(
    world: World, cli: Any, tmp_path: Path
) -> None:
    world.fapi.rotate_client_tokens = True
    token_file = tmp_path / "client-token"
    token_file.write_text(world.device.client_token + "\n")
    result = cli(
        "--frontend-api-url",
        world.fapi.url,
        "--client-token-file",
        str(token_file),
        "get",
        world.device.session_id,
        configured=False,
    )
    assert result.code == EXIT_OK
    rotated = token_file.read_text().strip()
    assert rotated not in ("", world.device.client_token)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "rotated" in result.err
    assert rotated not in result.out + result.err
    world.fapi.reject_stale_client_tokens = True  # the saved token is the one that works now
    world.fapi.clock.advance(STALE_CLIENT_TOKEN_GRACE + 1)
    again = cli(
        "--frontend-api-url",
        world.fapi.url,
        "--client-token-file",
        str(token_file),
        "get",
        world.device.session_id,
        configured=False,
    )
    assert again.code == EXIT_OK


def test_rotated_client_token_without_a_file_is_a_warning(world: World, cli: Any) -> None:
    world.fapi.rotate_client_tokens = True
    result = cli("--json", "get", world.device.session_id)
    assert result.code == EXIT_OK
    assert "warning: Clerk rotated the client token" in result.err
    assert "--client-token-file" in result.err
    assert result.json["response"]["id"] == world.device.session_id


# --- demo ------------------------------------------------------------------------------------


def test_demo_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    # CI runs the full demo (3,000 tokens) through the README command; 300 keep this quick.
    assert main(["demo", "--tokens", "300"]) == EXIT_OK
    out = capsys.readouterr().out
    for section in (
        "Sign in",
        "Get a session",
        "Touch: switch to an organization by slug",
        "Mint a session token",
        "verified with the JWKS",
        "Mint a token with a JWT template",
        "Batch refresh: 300 tokens",
        "300 tokens returned and their signatures verified",
        " mints: a request for a session whose token is being minted waits for that mint",
        "Multi-factor reverification",
        "complete",
        "to [0, 0]",
        "End a session",
        "Remove a session",
        "Remove every session of a client",
        "12 of 12 operations exercised",
    ):
        assert section in out
    assert "\x1b[" not in out  # plain text when not a terminal
    assert "Traceback" not in out


def test_demo_json_summary_on_stdout_tour_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json", "--tokens", "50"]) == EXIT_OK
    captured = capsys.readouterr()
    summary = orjson.loads(captured.out)
    assert summary["ok"] is True
    assert len(summary["operations"]) == 12
    assert all(calls > 0 for calls in summary["operations"].values())
    assert summary["batch"]["ok"] == 50
    assert "Batch refresh" in captured.err
    # One token per request, but requests in flight for one session share its mint: the tour
    # says how many mints there were, and never calls every result a mint.
    mints = summary["batch"]["mints"]
    assert 5 <= mints < 50  # each of the five sessions at least once
    assert f"They took {mints:,} mints" in captured.err
    assert "tokens minted" not in captured.err


# --- entry points as real processes ----------------------------------------------------------


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    return {**env, "COLUMNS": "200", **extra}


def test_python_dash_m_runs_the_command_line(world: World) -> None:
    env = _environment(
        CLERK_FRONTEND_API_URL=world.fapi.url, CLERK_CLIENT_TOKEN=world.device.client_token
    )
    token = subprocess.run(
        [sys.executable, "-m", "clerk_sessions", "token", world.device.session_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert token.returncode == EXIT_OK, token.stderr
    assert verify(world.fapi, token.stdout.strip())["sid"] == world.device.session_id
    missing = subprocess.run(
        [sys.executable, "-m", "clerk_sessions", "get", "sess_unknown"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert missing.returncode == EXIT_API_ERROR
    assert "resource_not_found" in missing.stderr
    assert world.device.client_token not in missing.stdout + missing.stderr


def _cli_process(world: World, command: list[str], **options: Any) -> subprocess.Popen[str]:
    """The command line as a real process on ``world``'s emulator and device, its stdout and
    stderr piped (text)."""
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(
            CLERK_FRONTEND_API_URL=world.fapi.url, CLERK_CLIENT_TOKEN=world.device.client_token
        ),
        **options,
    )


def test_a_closed_stdout_ends_the_command_quietly(world: World, tmp_path: Path) -> None:
    """``clerk-sessions refresh ids.txt | head -1``: when the reader closes the pipe, no
    "error: BrokenPipeError", no "Exception ignored" from the interpreter's last flush, and
    exit 141 (128 + SIGPIPE), the status a shell shows for ``yes | head -1``."""
    count = 500
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{world.device.session_id}\n" * count)
    with _cli_process(
        world, [sys.executable, "-m", "clerk_sessions", "refresh", str(ids)]
    ) as child:
        assert child.stdout is not None
        first = child.stdout.readline()
        child.stdout.close()  # as head -1 does
        child.stdout = None  # communicate() reads stderr alone
        try:
            _, err = child.communicate(timeout=120)
        finally:
            child.kill()  # only if it is still running
    # Its lines are more than a pipe holds (64 KiB) and the child's buffer: when the pipe
    # closed, the child still had lines to write, whatever the timing.
    assert len(first) * count > 4 * 2**16, first
    assert orjson.loads(first)["ok"] is True
    assert child.returncode == EXIT_BROKEN_PIPE, err
    for text in ("Traceback", "BrokenPipeError", "Exception ignored", "error:"):
        assert text not in err


def test_console_script(world: World) -> None:
    script = Path(sys.executable).with_name("clerk-sessions")
    if not script.exists():
        pytest.skip("the clerk-sessions console script is not installed in this environment")
    result = subprocess.run(
        [str(script), "--json", "get", world.device.session_id],
        capture_output=True,
        text=True,
        env=_environment(
            CLERK_PUBLISHABLE_KEY=world.fapi.publishable_key,
            CLERK_CLIENT_TOKEN=world.device.client_token,
        ),
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert orjson.loads(result.stdout)["response"]["id"] == world.device.session_id
    usage = subprocess.run(
        [str(script), "get"], capture_output=True, text=True, env=_environment(), check=False
    )
    assert usage.returncode == EXIT_USAGE


# --- flags beat the environment --------------------------------------------------------------

DEAD_URL = "http://127.0.0.1:9"  # nothing listens: a request sent here fails with exit 4
DEAD_KEY = "pk_test_MTI3LjAuMC4xOjkk"  # decodes to 127.0.0.1:9
SECRET_KEY = "sk_test_abc123"  # refused wherever it is used


def test_publishable_key_flag_beats_the_frontend_api_url_variable(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLERK_FRONTEND_API_URL", DEAD_URL)
    result = cli(
        *("--publishable-key", world.fapi.publishable_key),
        *("--client-token", world.device.client_token),
        *("--max-retries", "0", "--json", "get", world.device.session_id),
        configured=False,
    )
    assert result.code == EXIT_OK, result.err
    assert result.json["response"]["id"] == world.device.session_id


def test_frontend_api_url_flag_beats_the_key_flag_and_both_variables(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLERK_FRONTEND_API_URL", DEAD_URL)
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", SECRET_KEY)  # ignored, so not refused
    result = cli(
        *("--frontend-api-url", world.fapi.url, "--publishable-key", DEAD_KEY),
        *("--client-token", world.device.client_token),
        *("--max-retries", "0", "--json", "get", world.device.session_id),
        configured=False,
    )
    assert result.code == EXIT_OK, result.err
    assert result.json["response"]["id"] == world.device.session_id


def test_the_frontend_api_url_variable_beats_the_key_variable(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLERK_FRONTEND_API_URL", world.fapi.url)
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", DEAD_KEY)
    monkeypatch.setenv("CLERK_CLIENT_TOKEN", world.device.client_token)
    result = cli("--max-retries", "0", "get", world.device.session_id, configured=False)
    assert result.code == EXIT_OK, result.err


@pytest.mark.parametrize("flag", ["--client-token", "--client-token-file"])
def test_client_token_flags_beat_the_client_token_variable(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flag: str
) -> None:
    monkeypatch.setenv("CLERK_CLIENT_TOKEN", "a-token-of-another-device")  # would be a 401
    token_file = tmp_path / "token"
    token_file.write_text(world.device.client_token + "\n", encoding="utf-8")
    value = world.device.client_token if flag == "--client-token" else str(token_file)
    result = cli(
        *("--frontend-api-url", world.fapi.url, flag, value),
        *("--json", "get", world.device.session_id),
        configured=False,
    )
    assert result.code == EXIT_OK, result.err
    assert result.json["response"]["id"] == world.device.session_id


@pytest.mark.parametrize(
    "flag", ["--publishable-key", "--frontend-api-url", "--client-token", "--client-token-file"]
)
def test_an_empty_flag_is_a_usage_error_not_a_fall_back_to_the_environment(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    monkeypatch.setenv("CLERK_FRONTEND_API_URL", world.fapi.url)
    monkeypatch.setenv("CLERK_CLIENT_TOKEN", world.device.client_token)
    result = cli(flag, "", "get", world.device.session_id, configured=False)
    assert result.code == EXIT_USAGE
    assert f"{flag}: must not be empty" in result.err


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ([], None, False),
        ([], "1", True),
        (["--no-session-minter"], "1", False),  # the flag beats the environment
        (["--session-minter"], "0", True),
    ],
)
def test_session_minter_flag_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], env: str | None, expected: bool
) -> None:
    from clerk_sessions.cli._output import Output
    from clerk_sessions.cli._parser import build_parser
    from clerk_sessions.cli._settings import Settings

    if env is None:
        monkeypatch.delenv("CLERK_SESSION_MINTER", raising=False)
    else:
        monkeypatch.setenv("CLERK_SESSION_MINTER", env)
    args = build_parser().parse_args(
        [*flags, "--frontend-api-url", "http://127.0.0.1:9", "--client-token", "t", "get", "s"]
    )
    client = Settings.from_args(args).client(Output(json_mode=True))
    assert inspect(client).session_minter is expected


# --- login (issue #13 item 7) -----------------------------------------------------------------


def _login(cli: Any, world: World, token_file: Path, *args: str) -> Run:
    """``login`` as a new device: the Frontend API URL and the token file, nothing else."""
    options = ["--frontend-api-url", world.fapi.url, "--client-token-file", str(token_file)]
    result: Run = cli(*options, "login", *args, configured=False)
    return result


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".clerk-token-"))


def test_login_with_a_ticket_saves_the_token_and_prints_the_session(
    world: World, cli: Any, tmp_path: Path
) -> None:
    ticket = world.fapi.create_sign_in_token(world.user)
    token_file = tmp_path / "device.token"
    result = _login(cli, world, token_file, "--ticket", ticket)
    assert result.code == EXIT_OK, result.err
    session_id = result.out.strip()
    assert result.out == session_id + "\n"  # SID=$(clerk-sessions login …)
    assert world.fapi.session(session_id).user_id == world.user.id
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    for secret in (token, ticket):
        assert secret not in result.out + result.err
    assert f"saved to {token_file}" in result.err
    assert _leftovers(tmp_path) == []
    # The saved token is the new device's: it works, and it is not the world's device.
    again = cli(
        *("--frontend-api-url", world.fapi.url, "--client-token-file", str(token_file)),
        *("--json", "get", session_id),
        configured=False,
    )
    assert again.code == EXIT_OK, again.err
    assert again.json["client"]["id"] != world.device.client_id


def test_login_with_a_user_id_and_the_secret_key_from_the_environment(
    world: World, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLERK_SECRET_KEY", world.fapi.secret_key)
    monkeypatch.setenv("CLERK_BACKEND_API_URL", world.fapi.backend_api_url)
    token_file = tmp_path / "device.token"
    result = _login(
        cli, world, token_file, "--json", "--user-id", world.user.id, "--org", world.org_id
    )
    assert result.code == EXIT_OK, result.err
    data = result.json
    assert set(data) == {"session_id", "user_id", "client_id", "client_token_file"}
    assert data["user_id"] == world.user.id
    assert data["client_token_file"] == str(token_file)
    session = world.fapi.session(data["session_id"])
    assert (session.user_id, session.last_active_organization_id) == (world.user.id, world.org_id)
    assert (
        world.fapi.client_record(data["client_id"]).current_token == token_file.read_text().strip()
    )
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert world.fapi.secret_key not in result.out + result.err
    assert token_file.read_text().strip() not in result.out + result.err


def test_login_flags_beat_the_environment(
    world: World, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLERK_SECRET_KEY", "sk_test_canaryNOTtheKEY0000000000000000000000")
    monkeypatch.setenv("CLERK_BACKEND_API_URL", DEAD_URL)
    result = _login(
        cli,
        world,
        tmp_path / "device.token",
        *("--user-id", world.user.id, "--secret-key", world.fapi.secret_key),
        *("--backend-api-url", world.fapi.backend_api_url),
    )
    assert result.code == EXIT_OK, result.err
    assert world.fapi.secret_key not in result.out + result.err


@pytest.mark.parametrize("debug", [[], ["--debug"], ["--debug", "--json"]])
def test_login_with_a_wrong_secret_key_exits_3_without_printing_it(
    world: World, cli: Any, tmp_path: Path, debug: list[str]
) -> None:
    wrong = "sk_test_canaryWRONGkey000000000000000000000000"
    token_file = tmp_path / "device.token"
    result = _login(
        cli,
        world,
        token_file,
        *debug,
        *("--user-id", world.user.id, "--secret-key", wrong),
        *("--backend-api-url", world.fapi.backend_api_url),
    )
    assert result.code == EXIT_API_ERROR
    assert "clerk_key_invalid" in result.err
    assert wrong not in result.out + result.err
    assert ("Traceback" in result.err) == bool(debug)
    assert not token_file.exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["login", "--ticket", "t"], "--client-token-file"),
        (["--client-token-file", "f", "login"], "one of the arguments --ticket --user-id"),
        (["--client-token-file", "f", "login", "--ticket", "t", "--user-id", "u"], "not allowed"),
        (["--client-token", "t", "--client-token-file", "f", "login", "--ticket", "t"], "takes no"),
        (["--client-token-file", "f", "login", "--ticket", "t", "--secret-key", "k"], "--user-id"),
        (["--client-token-file", "f", "login", "--ticket", "t", "--org", "o"], "--user-id"),
        (["--client-token-file", "f", "login", "--user-id", "u"], "No secret key"),
        (
            ["--client-token-file", "f", "login", "--user-id", "u", "--secret-key", "pk_test_x"],
            "publishable key (pk_…) was given where a secret key",
        ),
    ],
)
def test_login_usage_errors_exit_2(
    world: World, cli: Any, args: list[str], message: str, tmp_path: Path
) -> None:
    os.chdir(tmp_path)  # "f" is never written: every case fails before
    result = cli("--frontend-api-url", world.fapi.url, *args, configured=False)
    assert result.code == EXIT_USAGE, result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "f").exists()
    assert not [r for r in world.fapi.requests if r.operation == "create_sign_in_token"]


def test_a_secret_key_in_a_bad_command_line_is_not_printed(world: World, cli: Any) -> None:
    key = "sk_live_canarySECRETinARGV0000000000000000000"
    for args in (
        ["login", "--user-id", "u", "--bogus", key],
        ["login", f"--secret-key={key}", "--user-id"],
        ["--json", "login", "--secret-key", key],
        [key],
    ):
        result = cli(*args, configured=False)
        assert result.code == EXIT_USAGE
        assert key not in result.out + result.err


def test_a_spent_ticket_exits_3_and_leaves_the_file_alone(
    world: World, cli: Any, tmp_path: Path
) -> None:
    ticket = world.fapi.create_sign_in_token(world.user)
    token_file = tmp_path / "device.token"
    assert _login(cli, world, token_file, "--ticket", ticket).code == EXIT_OK
    saved = token_file.read_text()
    result = _login(cli, world, token_file, "--ticket", ticket)
    assert result.code == EXIT_API_ERROR
    assert "ticket_already_used" in result.err
    assert token_file.read_text() == saved
    assert _leftovers(tmp_path) == []


def test_an_unwritable_token_file_fails_before_the_ticket_is_spent(
    world: World, cli: Any, tmp_path: Path
) -> None:
    ticket = world.fapi.create_sign_in_token(world.user)
    result = _login(cli, world, tmp_path / "missing" / "device.token", "--ticket", ticket)
    assert result.code == EXIT_USAGE
    assert "cannot write the client token file" in result.err
    assert world.fapi.sign_in_token(ticket).status == "pending"


def test_login_replacing_a_token_says_so(world: World, cli: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "device.token"
    token_file.write_text(world.device.client_token + "\n")
    result = _login(cli, world, token_file, "--ticket", world.fapi.create_sign_in_token(world.user))
    assert result.code == EXIT_OK, result.err
    assert "held another device's client token" in result.err
    assert token_file.read_text().strip() != world.device.client_token


def test_login_when_the_native_api_is_off_revokes_the_ticket(
    world: World, cli: Any, tmp_path: Path
) -> None:
    world.fapi.native_api_disabled = True
    result = _login(
        cli,
        world,
        tmp_path / "device.token",
        *("--user-id", world.user.id, "--secret-key", world.fapi.secret_key),
        *("--backend-api-url", world.fapi.backend_api_url),
    )
    assert result.code == EXIT_API_ERROR
    assert "native_api_disabled" in result.err
    assert "hint: enable the Native API for this instance in the Clerk dashboard" in result.err
    revokes = [r.status for r in world.fapi.requests if r.operation == "revoke_sign_in_token"]
    assert revokes == [200]


def test_login_with_a_user_id_without_the_admin_extra(
    world: World, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "clerk_backend_api", None)
    result = _login(
        cli,
        world,
        tmp_path / "device.token",
        *("--user-id", world.user.id, "--secret-key", world.fapi.secret_key),
    )
    assert result.code == EXIT_USAGE
    assert "clerk-sessions[admin]" in result.err
    assert world.fapi.secret_key not in result.err
    ticket = world.fapi.create_sign_in_token(world.user)  # --ticket needs no extra
    assert _login(cli, world, tmp_path / "other.token", "--ticket", ticket).code == EXIT_OK


# --- verify run (issue #13 item 7) ------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_verify_run_reads_codes_from_stdin(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = world.device.session_id
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{TEST_CODE}\n{TEST_CODE}\n"))
    result = cli("verify", "run", sid, "--level", "multi_factor")
    assert result.code == EXIT_OK, result.err
    assert "complete" in result.out
    assert "email_code: verified" in result.out
    assert "phone_code: verified" in result.out
    assert "Code for the first factor (sent to j***@example.com)" in result.err
    assert "Code for the second factor (sent to +1201***0100)" in result.err
    assert f"Session {sid} is verified (multi_factor)." in result.err
    session = world.fapi.session(sid)
    before = world.fapi.clock.now() - 5
    assert session.first_factor_at is not None
    assert session.second_factor_at is not None
    assert min(session.first_factor_at, session.second_factor_at) > before  # both just now
    assert TEST_CODE not in result.out + result.err


def test_verify_run_json(world: World, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{TEST_CODE}\n"))
    result = cli("--json", "verify", "run", world.device.session_id, "--level", "second_factor")
    assert result.code == EXIT_OK, result.err
    assert result.json["response"]["status"] == "complete"
    assert result.json["response"]["level"] == "second_factor"


def test_verify_run_asks_for_a_password_without_echo(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    asked: list[str] = []

    def fake_getpass(prompt: str = "", stream: Any = None) -> str:
        asked.append(prompt)
        assert stream is sys.stderr  # the prompt never goes to stdout
        return "correct-horse"

    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    result = cli(
        "verify", "run", world.device.session_id, "--level", "first_factor",
        "--strategies", "password",
    )  # fmt: skip
    assert result.code == EXIT_OK, result.err
    assert asked == ["Password for the first factor: "]
    assert "password: verified" in result.out
    assert "correct-horse" not in result.out + result.err


def test_verify_run_prompts_on_a_terminal(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal(f"000000\n{TEST_CODE}\n"))
    result = cli("verify", "run", world.device.session_id, "--level", "first_factor")
    assert result.code == EXIT_OK, result.err
    assert "(reading stdin)" not in result.err
    assert "not accepted (form_code_incorrect); attempt 2 of 3" in result.err


def test_verify_run_gives_up_after_max_attempts(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("000000\n111111\n"))
    result = cli(
        "verify", "run", world.device.session_id, "--level", "first_factor",
        "--max-attempts", "2",
    )  # fmt: skip
    assert result.code == EXIT_API_ERROR
    assert "form_code_incorrect" in result.err
    assert "attempt 2 of 2" in result.err


def test_verify_run_without_input_is_a_usage_error(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    result = cli("verify", "run", world.device.session_id, "--level", "first_factor")
    assert result.code == EXIT_USAGE
    assert "nothing was entered" in result.err


@pytest.mark.parametrize(
    "command",
    [
        ["verify", "run", "SID", "--level", "first_factor"],  # a code, read from stdin
        ["verify", "run", "SID", "--level", "first_factor", "--strategies", "password"],
        ["verify", "attempt-first", "SID", "--strategy", "email_code"],  # "Code: "
    ],
    ids=["run-code", "run-password", "attempt-code"],
)
def test_ctrl_c_at_a_prompt_stops_at_once(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """The first Ctrl-C at a prompt ends the command: exit 130, one line on stderr. Inside
    ``asyncio.run`` (``verify run``) asyncio's SIGINT handler only cancelled the main task, and
    the read went on waiting for the code; the next answer was read, and lost."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        pytest.skip("needs Python's own SIGINT handler on the main thread")
    went_on: list[str] = []

    def press_ctrl_c(*_args: object, **_kwargs: object) -> str:
        signal.raise_signal(signal.SIGINT)  # handled before raise_signal returns
        went_on.append("the prompt was still waiting after Ctrl-C")
        return TEST_CODE + "\n"

    terminal = _Terminal("")
    monkeypatch.setattr(terminal, "readline", press_ctrl_c)
    monkeypatch.setattr(sys, "stdin", terminal)
    monkeypatch.setattr(getpass, "getpass", press_ctrl_c)
    args = [world.device.session_id if arg == "SID" else arg for arg in command]
    result = cli(*args)
    assert went_on == []
    assert result.code == EXIT_INTERRUPTED, result.err
    assert result.err.splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in result.err
    assert result.out == ""  # prompts and the report go to stderr
    attempts = [r for r in world.fapi.requests if r.operation and "attempt" in r.operation]
    assert attempts == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_sigint_stops_a_real_verify_run_waiting_for_a_code(world: World) -> None:
    """The same with a real process and a real SIGINT, sent once the prompt is on stderr: the
    process ends by itself (no answer, stdin left open), not when a code arrives."""
    # Python's own handler, as in a shell (a test runner may have had SIGINT ignored).
    entry = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from clerk_sessions.cli import main; sys.exit(main())"
    )
    command = [sys.executable, "-c", entry, "verify", "run", world.device.session_id]
    with _cli_process(
        world,
        [*command, "--level", "first_factor"],
        stdin=subprocess.PIPE,  # open, and nothing ever written: no code will come
    ) as child:
        assert child.stderr is not None
        try:
            before = ""
            while "(reading stdin)" not in before:
                line = child.stderr.readline()
                assert line, f"the process ended before it asked for a code: {before}"
                before += line
            assert "Code for the first factor" in before
            child.send_signal(signal.SIGINT)
            try:
                status = child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail("the first SIGINT did not stop the prompt")
            after = child.stderr.read()
        finally:
            child.kill()  # only if it is still running
    assert status == EXIT_INTERRUPTED, after
    assert after.strip() == "error: interrupted"
    attempts = [r for r in world.fapi.requests if r.operation and "attempt" in r.operation]
    assert attempts == []


@pytest.mark.parametrize(
    ("strategies", "message"),
    [
        ("backup_code", "Clerk offers phone_code"),
        ("email_code,,password", "separated by commas"),
        ("sms", "sms"),
    ],
)
def test_verify_run_strategies_that_cannot_work_exit_2(
    world: World, cli: Any, monkeypatch: pytest.MonkeyPatch, strategies: str, message: str
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{TEST_CODE}\n"))
    result = cli(
        "verify", "run", world.device.session_id, "--level", "second_factor",
        "--strategies", strategies,
    )  # fmt: skip
    assert result.code == EXIT_USAGE, result.err
    assert message in result.err
    assert "Traceback" not in result.err


def test_help_lists_login_and_verify_run(cli: Any) -> None:
    top = cli("--help", configured=False)
    assert "login" in top.out
    assert "clerk-sessions login --user-id" in top.out
    verify_help = cli("verify", "--help", configured=False)
    assert "run" in verify_help.out
    login_help = cli("login", "--help", configured=False)
    for text in ("--ticket", "--user-id", "CLERK_SECRET_KEY", "CLERK_BACKEND_API_URL", "0600"):
        assert text in login_help.out


# --- polish (issue #14 item 7) ----------------------------------------------------------------


def test_piped_tables_end_no_line_in_blanks(world: World, cli: Any) -> None:
    """rich pads every cell to its column's width; off a terminal the padding at the end of a
    line is dropped (``clerk-sessions get … | diff``, or a file, should show none)."""
    sid = world.device.session_id
    for args in (("get", sid), ("touch", sid, "--org", "acme"), ("token", sid, "--decode")):
        result = cli(*args)
        assert result.code == EXIT_OK, result.err
        lines = result.out.splitlines()
        assert len(lines) > 5, result.out  # tables, not one line
        assert [line for line in lines if line != line.rstrip()] == [], args
    assert world.device.session_id in cli("get", sid).out  # the values are all still there


def test_a_terminal_keeps_rich_output_as_rich_renders_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only piped output is rewritten: on a terminal, rich writes (and colours) as it does."""
    from clerk_sessions.cli._output import key_value_table, make_console

    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat this stream as a terminal
    stream = io.StringIO()
    console = make_console(stderr=False)
    console.file = stream
    assert console.is_terminal
    console.print(key_value_table("T", [("key", "value")]))
    assert any(line != line.rstrip() for line in stream.getvalue().splitlines())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "abc", "get", "s"], "argument --timeout: invalid seconds value: 'abc'"),
        (["--max-retries", "x", "get", "s"], "argument --max-retries: invalid integer value: 'x'"),
        (["refresh", "--concurrency", "x"], "argument --concurrency: invalid integer value: 'x'"),
        (["demo", "--tokens", "1.5"], "argument --tokens: invalid integer value: '1.5'"),
    ],
)
def test_a_value_that_is_no_number_says_what_was_expected(
    cli: Any, args: list[str], message: str
) -> None:
    result = cli(*args)
    assert result.code == EXIT_USAGE
    assert message in result.err
    assert "invalid _" not in result.err  # never the name of a private function


def test_refresh_concurrency_defaults_to_the_sdks() -> None:
    from clerk_sessions._constants import DEFAULT_BATCH_CONCURRENCY
    from clerk_sessions.cli._parser import build_parser

    args = build_parser().parse_args(["refresh", "ids.txt"])
    assert args.concurrency == DEFAULT_BATCH_CONCURRENCY
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as shown:
        build_parser().parse_args(["refresh", "--help"])
    assert f"(default {DEFAULT_BATCH_CONCURRENCY}" in shown.getvalue()


COMMAND_NAMES = ("get", "touch", "end", "remove", "remove-all", "token", "refresh", "verify")
COMMAND_NAMES += ("login", "demo", "completion")


def test_completion_bash_prints_a_script_for_every_command(cli: Any) -> None:
    result = cli("completion", "bash", configured=False)
    assert result.code == EXIT_OK, result.err
    assert "complete " in result.out  # bash's builtin that registers it
    assert "clerk-sessions" in result.out
    for name in (*COMMAND_NAMES, "attempt-first", "--client-token-file", "--concurrency"):
        assert name in result.out, name


@pytest.mark.parametrize("shell", ["zsh", "tcsh"])
def test_completion_for_zsh_and_tcsh(cli: Any, shell: str) -> None:
    result = cli("completion", shell, configured=False)
    assert result.code == EXIT_OK, result.err
    for name in COMMAND_NAMES:
        assert name in result.out, name


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_and_shells_with_the_script(cli: Any, tmp_path: Path) -> None:
    script = tmp_path / "clerk-sessions.bash"
    script.write_text(cli("completion", "bash", configured=False).out)
    probe = f"""
source {script}
complete_words() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=();
  _shtab_clerk_sessions; echo "${{COMPREPLY[*]}}"; }}
complete_words clerk-sessions re
complete_words clerk-sessions completion ''
complete_words clerk-sessions verify at
"""
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "remove remove-all refresh",
        "bash zsh tcsh",
        "attempt-first attempt-second",
    ]


def test_completion_without_shtab_is_an_install_hint(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "shtab", None)  # makes ``import shtab`` fail
    result = cli("completion", "bash", configured=False)
    assert result.code == EXIT_USAGE
    assert "pip install 'clerk-sessions[cli]'" in result.err
    assert result.out == ""
    assert "Traceback" not in result.err


def test_file_arguments_complete_file_names_as_shtab_says() -> None:
    import shtab

    from clerk_sessions.cli._parser import COMPLETION_SHELLS, FILE_COMPLETION

    assert set(COMPLETION_SHELLS) <= set(shtab.SUPPORTED_SHELLS)
    assert {shell: shtab.FILE[shell] for shell in COMPLETION_SHELLS} == FILE_COMPLETION


def test_the_cli_modules_import_one_another_without_a_cycle() -> None:
    """Every import between the cli's modules, function-level ones included, goes one way:
    a module can be imported (and understood) without the ones that use it."""
    package = Path(__file__).parents[1] / "clerk_sessions" / "cli"
    imports: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "clerk_sessions.cli."
            ):
                found.add(node.module.removeprefix("clerk_sessions.cli."))  # type: ignore[union-attr]
        imports[path.stem] = found & {p.stem for p in package.glob("*.py")}
    assert imports["_refresh"], "the scan found no import at all"

    def cycle_from(start: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        for module in sorted(imports[path[-1]]):
            if module == start:
                return (*path, module)
            if module not in path:
                found = cycle_from(start, (*path, module))
                if found:
                    return found
        return None

    cycles = [cycle for name in imports if (cycle := cycle_from(name, (name,)))]
    assert cycles == []
