"""The ``clerk_sessions`` logger: silent below WARNING unless ``CLERK_SESSIONS_LOG`` says so.

What is logged: operation, HTTP method, status, elapsed time, retries and ``clerk_trace_id``.
What never is: URLs, headers (``Authorization``, cookies), form bodies, response bodies, JWTs.
Log lines are built only from those safe fields, never from request or response objects.
"""

from __future__ import annotations

import logging
import os
import traceback

from ._constants import ENV_LOG

logger = logging.getLogger("clerk_sessions")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}


def setup_logging_from_env() -> None:
    """``CLERK_SESSIONS_LOG=debug|info`` turns the SDK's logging on, to stderr."""
    value = os.environ.get(ENV_LOG, "").strip().lower()
    if not value:
        return
    level = _LEVELS.get(value)
    if level is None:
        logger.warning("Ignoring %s=%r: use 'debug' or 'info'.", ENV_LOG, value)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


def log_callback_error(name: str, exc: BaseException, consequence: str, secret: str | None) -> None:
    """A user's callback raised: ERROR with its traceback, never the ``secret`` it was given
    (its own message may quote it). The SDK goes on: a callback never loses a result."""
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if secret:
        trace = trace.replace(secret, "<client token>")
    logger.error("%s raised; %s:\n%s", name, consequence, trace)
