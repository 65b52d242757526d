"""Every default in one place. Change a number here, and only here."""

from __future__ import annotations

from typing import Final

from ._types import Timeout

# Clerk-API-Version sent on every request (header only; never also as a query parameter).
DEFAULT_API_VERSION: Final = "2026-05-12"

# Split timeouts: a slow server should not hang a web worker for minutes, and a dead host
# should fail fast. ``connect`` also bounds the wait for a free connection in the pool.
DEFAULT_TIMEOUT: Final = Timeout(total=30.0, connect=5.0)

# Retries (policy lands with the retry issue; the knob exists from the start).
DEFAULT_MAX_RETRIES: Final = 2

# Connection pool: enough for a batch job's fan-out, small enough not to trip rate limits.
DEFAULT_CONNECTION_LIMIT: Final = 100

# Error messages quote at most this much of a non-JSON body (e.g. a proxy's HTML page).
BODY_EXCERPT_CHARS: Final = 200

ENV_PUBLISHABLE_KEY: Final = "CLERK_PUBLISHABLE_KEY"
ENV_FRONTEND_API_URL: Final = "CLERK_FRONTEND_API_URL"
ENV_CLIENT_TOKEN: Final = "CLERK_CLIENT_TOKEN"

# Native auth: the client token travels in Authorization and this flag tells FAPI to read it.
NATIVE_QUERY: Final = (("_is_native", "1"),)

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
