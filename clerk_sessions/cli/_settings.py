"""Global options resolved against the environment, and where a rotated client token goes."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from clerk_sessions._client import AsyncClerkSessions
from clerk_sessions._constants import ENV_CLIENT_TOKEN, ENV_FRONTEND_API_URL, ENV_PUBLISHABLE_KEY
from clerk_sessions._errors import ConfigurationError
from clerk_sessions.admin import ENV_SECRET_KEY

from ._exit import UsageError
from ._output import Output


@attrs.frozen
class Settings:
    """The global options as given on the command line (``None``: the flag was absent).

    Every flag beats its environment variable: ``--frontend-api-url`` > ``--publishable-key`` >
    ``CLERK_FRONTEND_API_URL`` > ``CLERK_PUBLISHABLE_KEY`` (resolved by the SDK client, which
    reads the environment only when neither flag is given), and ``--client-token-file`` or
    ``--client-token`` > ``CLERK_CLIENT_TOKEN``, ``--(no-)session-minter`` >
    ``CLERK_SESSION_MINTER``, ``--secret-key`` > ``CLERK_SECRET_KEY`` (``login --user-id``;
    resolved by ``clerk_sessions.admin``).
    """

    publishable_key: str | None = None
    frontend_api_url: str | None = None
    client_token: str | None = attrs.field(default=None, repr=False)
    client_token_file: Path | None = None
    json: bool = False
    debug: bool = False
    timeout: float | None = None
    max_retries: int | None = None
    session_minter: bool | None = None
    secret_key: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        # Global options default to "absent" (argparse.SUPPRESS): getattr supplies the default.
        client_token = getattr(args, "client_token", None)
        token_file = getattr(args, "client_token_file", None)
        if client_token is not None and token_file is not None:
            raise UsageError("give either --client-token or --client-token-file, not both")
        return cls(
            publishable_key=getattr(args, "publishable_key", None),
            frontend_api_url=getattr(args, "frontend_api_url", None),
            client_token=client_token,
            client_token_file=None if token_file is None else Path(token_file),
            json=getattr(args, "json", False),
            debug=getattr(args, "debug", False),
            timeout=getattr(args, "timeout", None),
            max_retries=getattr(args, "max_retries", None),
            session_minter=getattr(args, "session_minter", None),
            secret_key=getattr(args, "secret_key", None),
        )

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """Values never to print: every client token and secret key this process may know."""
        return (
            self.client_token,
            os.environ.get(ENV_CLIENT_TOKEN),
            self.secret_key,
            os.environ.get(ENV_SECRET_KEY),
        )

    def resolve_client_token(self) -> str:
        if self.client_token_file is not None:
            try:
                return self.client_token_file.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise UsageError(
                    f"cannot read the client token file {self.client_token_file}: "
                    f"{error.strerror or error}"
                ) from None
        token = self.client_token
        if token is None:
            token = os.environ.get(ENV_CLIENT_TOKEN)
        if not token:
            raise ConfigurationError(
                f"No client token: set {ENV_CLIENT_TOKEN}, or pass --client-token-file FILE "
                "(the native client token of a signed-in device)."
            )
        return token

    def check_frontend_api(self) -> None:
        """The CLI's own message for "nothing says where the Frontend API is"."""
        if not (
            self.publishable_key
            or self.frontend_api_url
            or os.environ.get(ENV_PUBLISHABLE_KEY)
            or os.environ.get(ENV_FRONTEND_API_URL)
        ):
            raise ConfigurationError(
                f"No Frontend API to talk to: pass --publishable-key (or set "
                f"{ENV_PUBLISHABLE_KEY}), or --frontend-api-url for a proxy or the local emulator "
                "(python -m clerk_sessions.testing). To try things without an account: "
                "clerk-sessions demo"
            )

    def client_options(self) -> dict[str, Any]:
        """--timeout, --max-retries and --session-minter, as client keywords (when given)."""
        options: dict[str, Any] = {}
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.max_retries is not None:
            options["max_retries"] = self.max_retries
        if self.session_minter is not None:
            options["session_minter"] = self.session_minter
        return options

    def client(self, out: Output) -> AsyncClerkSessions:
        """The SDK client these options describe; a rotated token is handled by TokenStore."""
        self.check_frontend_api()
        return AsyncClerkSessions(
            publishable_key=self.publishable_key,
            frontend_api_url=self.frontend_api_url,
            client_token=self.resolve_client_token(),
            on_client_token=TokenStore(self.client_token_file, out).save,
            **self.client_options(),
        )

    def new_device_client(self) -> AsyncClerkSessions:
        """A client for a device that has no client token yet (``login``): the environment's
        ``CLERK_CLIENT_TOKEN`` is not read."""
        self.check_frontend_api()
        return AsyncClerkSessions(
            publishable_key=self.publishable_key,
            frontend_api_url=self.frontend_api_url,
            client_token="",  # an empty Authorization: a new client (None would read the env)
            **self.client_options(),
        )


class TokenStore:
    """Follows Clerk's client-token rotation: rewrites --client-token-file, or warns.

    Never prints the token: a person needs to know that the stored one went stale, not its value.
    """

    def __init__(self, path: Path | None, out: Output) -> None:
        self._path = path
        self._out = out

    def save(self, token: str | None) -> None:
        what = "rotated" if token else "cleared (the client was signed out)"
        if self._path is None:
            self._out.warn(
                f"Clerk {what} the client token; the one you passed is no longer current. "
                "Use --client-token-file FILE to have it saved automatically."
            )
            return
        _write_private(self._path, token or "")
        self._out.warn(f"Clerk {what} the client token; saved to {self._path}.")


def _write_private(path: Path, text: str) -> None:
    with private_file(path) as write:
        write(text)


@contextlib.contextmanager
def private_file(path: Path) -> Iterator[Callable[[str], None]]:
    """Write ``path`` atomically and owner-only: a crash never leaves half a token, other users
    never read it.

    The temporary file (mode 0600) is made beside ``path`` on entry (an ``OSError`` if the
    directory cannot be written), before the caller does anything it cannot undo (``login``
    spends a single-use ticket); the returned function writes it and renames it into place.
    Left without writing, the temporary file is removed and ``path`` is untouched.
    """
    fd, temporary = tempfile.mkstemp(prefix=".clerk-token-", dir=path.parent or ".")
    handle = os.fdopen(fd, "w", encoding="utf-8")

    def write(text: str) -> None:
        with handle:
            handle.write(text + "\n")
        os.replace(temporary, path)

    try:
        yield write
    finally:
        handle.close()  # a no-op once written
        Path(temporary).unlink(missing_ok=True)  # once written, already renamed away
