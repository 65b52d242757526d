"""Keep credentials out of messages, reprs and logs.

Client tokens and session tokens are JWTs (``xxx.yyy.zzz`` of base64url); anything shaped like
one is masked wherever server- or user-supplied text is echoed back, and known secrets (the
token a request carried) are masked by value as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"

# Patterns as text: re compiles each on first use and keeps it in its cache. Redaction serves
# error paths, so a process that never fails never compiles them.
_JWT_SHAPED = r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
_BEARER = r"(?i)\bbearer\s+\S+"

# A raw header line quoted in a parser's error message, e.g. "Set-Cookie: __client=...".
_HEADER_LINE = r"(?i)\b((?:set-cookie|cookie|authorization|proxy-authorization)\s*:\s*)[^\r\n'\"]*"

# Response headers that can carry a credential (token rotation, cookies).
SENSITIVE_HEADERS = frozenset({"authorization", "set-cookie", "cookie", "proxy-authorization"})


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    text = re.sub(_HEADER_LINE, r"\1" + REDACTED, text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = re.sub(_BEARER, "Bearer " + REDACTED, text)
    return re.sub(_JWT_SHAPED, REDACTED, text)


def redact_headers(
    headers: Iterable[tuple[str, str]], secrets: Iterable[str | None] = ()
) -> dict[str, str]:
    """A plain dict of headers with credential-bearing values replaced, and any value that
    quotes a known secret (a server echoing the request URL, say) redacted."""
    known = tuple(secrets)
    return {
        name: REDACTED if name.lower() in SENSITIVE_HEADERS else redact_text(value, known)
        for name, value in headers
    }


def excerpt(body: bytes, secrets: Iterable[str | None] = (), limit: int = 200) -> str:
    """A short, redacted, printable start of a response body, for error messages."""
    text = body[: limit * 4].decode("utf-8", "replace")
    text = " ".join(redact_text(text, secrets).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
