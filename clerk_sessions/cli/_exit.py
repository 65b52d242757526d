"""Exit codes and the error report: what a failed command tells a person and a script."""

from __future__ import annotations

from typing import Any, Final

from clerk_sessions._errors import (
    APIConnectionError,
    ClerkAPIError,
    ConfigurationError,
    RateLimitError,
)
from clerk_sessions._redact import redact_text

EXIT_OK: Final = 0
EXIT_UNEXPECTED: Final = 1
EXIT_USAGE: Final = 2
EXIT_API_ERROR: Final = 3
EXIT_NETWORK_ERROR: Final = 4
EXIT_INTERRUPTED: Final = 130  # the shell's convention for SIGINT: 128 + 2
# stdout's reader went away (``| head``): what the shell reports for a tool that SIGPIPE ends,
# 128 + 13, so that ``set -o pipefail`` sees a cut-short output as the same tools show it.
EXIT_BROKEN_PIPE: Final = 141

EXIT_CODES_HELP: Final = f"""\
exit codes:
  {EXIT_OK}  success
  {EXIT_USAGE}  usage or configuration error (bad arguments, missing key or client token)
  {EXIT_API_ERROR}  the Frontend API answered with an error (4xx/5xx; Clerk code and trace id shown)
  {EXIT_NETWORK_ERROR}  network error or timeout (the server could not be reached)
  {EXIT_UNEXPECTED}  anything else (an invalid response, a bug: rerun with --debug)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
  {EXIT_BROKEN_PIPE}  stdout was closed by its reader (e.g. | head): output cut short"""


class UsageError(Exception):
    """The command line itself is wrong; ``usage`` is the parser's usage line, if any."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, UsageError | ConfigurationError):
        return EXIT_USAGE
    if isinstance(error, ClerkAPIError):
        return EXIT_API_ERROR
    if isinstance(error, APIConnectionError):
        return EXIT_NETWORK_ERROR
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_UNEXPECTED


def error_payload(error: BaseException, secrets: tuple[str | None, ...] = ()) -> dict[str, Any]:
    """The JSON shape of an error: type, message, and Clerk's code, status and trace id."""
    payload: dict[str, Any] = {"type": type(error).__name__, "message": describe(error, secrets)}
    if isinstance(error, ClerkAPIError):
        payload.update(code=error.code, status=error.status, clerk_trace_id=error.clerk_trace_id)
        if isinstance(error, RateLimitError):
            payload["retry_after"] = error.retry_after
    else:
        payload.update(code=None, status=getattr(error, "status", None), clerk_trace_id=None)
    return payload


def describe(error: BaseException, secrets: tuple[str | None, ...] = ()) -> str:
    """One line for a person. SDK messages are already redacted; anything else is redacted here
    (an unexpected exception could quote a token)."""
    if isinstance(error, ClerkAPIError):
        text = error.long_message or error.message or str(error)
    elif isinstance(error, KeyboardInterrupt):
        text = "interrupted"
    else:
        text = str(error) or type(error).__name__
        if not isinstance(error, UsageError | ConfigurationError | APIConnectionError):
            text = f"{type(error).__name__}: {text}"
    return redact_text(text, secrets)
