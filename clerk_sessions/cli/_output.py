"""Everything the command line prints: JSON for scripts, rich tables for people.

stdout carries results; stderr carries progress, warnings and errors. rich drops colour by
itself when a stream is not a terminal or ``NO_COLOR`` is set, so piped output is plain text,
and no line of it ends in blanks.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import attrs
import orjson
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clerk_sessions._errors import _ADVICE
from clerk_sessions._redact import REDACTED
from clerk_sessions.models import Client, Envelope, Session, SessionReverification, SignInFactor

from ._exit import error_payload

if TYPE_CHECKING:
    from clerk_sessions.admin import SignedInDevice

# Anything shaped like a Clerk secret key is masked in every error a command prints, whether or
# not this process was given that key (an argument error can quote a mistyped one).
_SECRET_KEY_SHAPED = re.compile(r"\bsk_(?:test|live)_[A-Za-z0-9]+")

# What each session-token claim means (Clerk's v2 claims), for the decoded-claims table.
CLAIM_MEANINGS: Mapping[str, str] = {
    "azp": "authorized party",
    "exp": "expires",
    "fva": "minutes since 1st, 2nd factor",
    "iat": "issued",
    "iss": "issuer (the Frontend API)",
    "jti": "token id",
    "nbf": "not before",
    "o": "active organization",
    "sid": "session",
    "sts": "session status",
    "sub": "user",
    "v": "claims version",
}
_TIME_CLAIMS = frozenset({"exp", "iat", "nbf", "auth_time"})


_TRAILING_BLANKS = re.compile(r"[ \t]+(?=\n)")


class _Console(Console):
    """A rich console whose output to a file or a pipe has no blanks at the end of a line
    (rich pads every table cell to its column's width, the last one too)."""

    def print(self, *objects: Any, **options: Any) -> None:
        if self.is_terminal:
            super().print(*objects, **options)
            return
        with self.capture() as captured:
            super().print(*objects, **options)
        self.file.write(_TRAILING_BLANKS.sub("", captured.get()))
        self.file.flush()


def make_console(*, stderr: bool) -> Console:
    # highlight/emoji off: values from the server are shown as they are, never re-styled.
    # soft_wrap on stderr: an error or warning stays one line in a log, whatever the width.
    return _Console(stderr=stderr, highlight=False, emoji=False, soft_wrap=stderr)


class Output:
    """The two streams of one command, and whether results are JSON."""

    def __init__(self, *, json_mode: bool, secrets: tuple[str | None, ...] = ()) -> None:
        self.json_mode = json_mode
        self.out = make_console(stderr=False)
        self.err = make_console(stderr=True)
        self.secrets = secrets

    def json(self, data: object) -> None:
        """One JSON document on stdout (indented: one object per command)."""
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        sys.stdout.flush()

    def json_line(self, data: object) -> None:
        sys.stdout.write(orjson.dumps(data).decode() + "\n")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/] {escape(message)}")

    def note(self, message: str) -> None:
        """A line for the person on stderr (never mixed into results)."""
        self.err.print(escape(message))

    def error(self, error: BaseException, usage: str | None = None) -> None:
        payload = error_payload(error, self.secrets)
        payload["message"] = mask_secret_keys(payload["message"])
        if usage:
            self.err.print(escape(mask_secret_keys(usage.rstrip())), style="dim")
        self.err.print(f"[bold red]error:[/] {escape(payload['message'])}")
        details = "  ".join(
            f"{name}: {payload[name]}"
            for name in ("code", "status", "clerk_trace_id")
            if payload.get(name) is not None
        )
        if details:
            self.err.print(f"  {escape(details)}", style="dim")
        hint = _ADVICE.get(getattr(error, "code", None) or "")
        if hint:
            self.err.print(f"  hint: {escape(hint)}")
        if self.json_mode:
            self.json({"error": payload})

    def envelope(self, envelope: Envelope[Any]) -> None:
        """A response with its piggybacked client: JSON, or a table for each."""
        if self.json_mode:
            self.json(to_data(envelope))
            return
        response = envelope.response
        if isinstance(response, Session):
            self.out.print(session_table(response))
        elif isinstance(response, SessionReverification):
            self.out.print(reverification_table(response))
        if isinstance(response, Client) or envelope.client is not None:
            self.out.print(
                client_table(response if isinstance(response, Client) else envelope.client)
            )
        elif response is None:
            self.out.print("The client is gone: the server returned no client.")


def mask_secret_keys(text: str) -> str:
    return _SECRET_KEY_SHAPED.sub(REDACTED, text)


def signed_in_table(device: SignedInDevice, token_file: Path) -> Table:
    """What ``login`` did, for a person (the token itself is never shown)."""
    return key_value_table(
        "Signed in",
        [
            ("session", device.session_id),
            ("user", device.user_id),
            ("client (device)", device.client_id),
            ("client token", f"saved to {token_file} (owner-only)"),
        ],
    )


def to_data(value: object) -> Any:
    """A model as JSON-ready data, field names as on the wire, with every JWT masked.

    Unknown JSON keys are kept (as received). Session JWTs piggybacked on responses
    (``last_active_token``) are masked: the ``token`` command is the one way to print a JWT.
    """
    if attrs.has(type(value)):
        model = cast("type[attrs.AttrsInstance]", type(value))
        fields = {
            field.name: getattr(value, field.name)
            for field in attrs.fields(model)
            if field.name not in ("unknown_fields", "retries_taken")
        }
        return to_data({**fields, **getattr(value, "unknown_fields", {})})
    if isinstance(value, str):
        return str.__str__(value)  # open enums as their plain value
    if isinstance(value, Mapping):
        data = {str(key): to_data(item) for key, item in value.items()}
        if isinstance(data.get("jwt"), str):
            data["jwt"] = REDACTED
        return data
    if isinstance(value, list | tuple):
        return [to_data(item) for item in value]
    return value


def decode_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a JWT, *without* verifying it: for display only."""
    try:
        header, payload = (
            orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            for part in token.split(".")[:2]
        )
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        raise ValueError("the server returned a token that is not a JWT") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("the server returned a token that is not a JWT")
    return header, payload


def format_time(value: object, *, milliseconds: bool = True) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    seconds = value / 1000 if milliseconds else value
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_value_table(title: str, rows: Iterable[tuple[str, object]]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE, show_header=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, escape("-" if value is None or value == "" else str(value)))
    return table


def claims_table(title: str, claims: Mapping[str, Any]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("claim", style="bold cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("meaning", style="dim")
    for name, value in claims.items():
        shown = orjson.dumps(value).decode() if not isinstance(value, str) else value
        if name in _TIME_CLAIMS:
            shown = f"{shown} = {format_time(value, milliseconds=False)}"
        table.add_row(name, escape(shown), CLAIM_MEANINGS.get(name, ""))
    return table


def user_name(session: Session) -> str:
    data = session.public_user_data
    if data is None:
        return "-"
    return " ".join(part for part in (data.first_name, data.last_name) if part) or "(no name)"


def _user_id(session: Session) -> str | None:
    if session.user is not None:
        return session.user.id
    return session.public_user_data.user_id if session.public_user_data else None


def organization_slug(session: Session) -> str | None:
    """The slug of the active organization, found in the user's memberships."""
    memberships = session.user.organization_memberships if session.user is not None else []
    return next(
        (
            m.organization.slug
            for m in memberships
            if m.organization and m.organization.id == session.last_active_organization_id
        ),
        None,
    )


def session_rows(session: Session) -> list[tuple[str, object]]:
    identifier = session.public_user_data.identifier if session.public_user_data else None
    org_id, slug = session.last_active_organization_id, organization_slug(session)
    return [
        ("id", session.id),
        ("status", session.status),
        ("user", user_name(session) + (f" <{identifier}>" if identifier else "")),
        ("user id", _user_id(session)),
        ("organization", f"{org_id} ({slug})" if slug else org_id or "personal account"),
        ("last active", format_time(session.last_active_at)),
        ("expires", format_time(session.expire_at)),
        ("factor age (min)", _factor_ages(session.factor_verification_age)),
    ]


def session_table(session: Session) -> Table:
    return key_value_table("Session", session_rows(session))


def _factor_ages(ages: Sequence[int]) -> str:
    if not ages:
        return "-"
    names = ("first", "second")
    return ", ".join(
        f"{names[i] if i < len(names) else i}: {'never' if age < 0 else age}"
        for i, age in enumerate(ages)
    )


def client_table(client: Client | None) -> Table:
    """The client's sessions, one row each; ``*`` marks the one the client used last."""
    title = f"Client {client.id}" if client is not None else "Client"
    table = Table(title=escape(title), title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("session", no_wrap=True)
    for column in ("status", "user", "organization"):
        table.add_column(column, overflow="fold")
    last_active = client.last_active_session_id if client is not None else None
    for session in client.sessions if client is not None else []:
        table.add_row(
            escape(session.id + (" *" if session.id == last_active else "")),
            escape(str(session.status or "-")),
            escape(user_name(session)),
            escape(organization_slug(session) or session.last_active_organization_id or "-"),
        )
    if not table.row_count:
        table.add_row("(no sessions)", "", "", "")
    return table


def _factors(factors: Sequence[SignInFactor]) -> str:
    return ", ".join(
        str(f.strategy) + (f" ({f.safe_identifier})" if f.safe_identifier else "")
        for f in factors
        if f.strategy is not None
    )


def reverification_rows(reverification: SessionReverification) -> list[tuple[str, object]]:
    first = reverification.first_factor_verification
    second = reverification.second_factor_verification
    return [
        ("level", reverification.level),
        ("status", reverification.status),
        ("first factors", _factors(reverification.supported_first_factors)),
        ("second factors", _factors(reverification.supported_second_factors)),
        ("first factor", verification_summary(first)),
        ("second factor", verification_summary(second)),
        ("session", reverification.session.id if reverification.session else None),
    ]


def verification_summary(verification: object) -> str | None:
    """``strategy: status`` of any verification variant (known or not)."""
    if verification is None:
        return None
    strategy = getattr(verification, "strategy", None) or "?"
    return f"{strategy}: {getattr(verification, 'status', None) or '?'}"


def reverification_table(reverification: SessionReverification) -> Table:
    return key_value_table("Session reverification", reverification_rows(reverification))
