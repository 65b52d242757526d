"""Test helpers: a local, stateful Clerk Frontend API for your own tests and for the demo.

Install with ``pip install "clerk-sessions[testing]"``. ::

    from clerk_sessions.testing import FrontendAPIEmulator

    async with FrontendAPIEmulator() as fapi:
        device = fapi.sign_in(fapi.create_user(email="jane+clerk_test@example.com"))
        async with fapi.async_client(device) as clerk:
            token = await clerk.create_session_token(device.session_id)

Signing in without a phone: ``fapi.create_sign_in_token(user)`` makes a ticket (or ``POST
{fapi.backend_api_url}/v1/sign_in_tokens`` with ``Authorization: Bearer {fapi.secret_key}``),
and the SDK's ``sign_in_with_ticket(ticket)`` signs in with it.

``running_redis(directory)`` starts a real ``redis-server`` on a free loopback port (for
``clerk_sessions.redis.RedisStore`` in your tests), which a test may kill, restart or freeze.

With pytest, the fixtures ``clerk_emulator``, ``clerk_device``, ``clerk_client`` (async) and
``clerk_sync_client`` come from the package's pytest plugin (``clerk_sessions.pytest_plugin``).
"""

from __future__ import annotations

try:
    import jwt as _jwt  # noqa: F401  (fail early with an install hint)
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "clerk_sessions.testing needs the 'testing' extra: pip install \"clerk-sessions[testing]\""
    ) from exc

from ._emulator import FrontendAPIEmulator, RecordedRequest, SignedIn
from ._faults import Fault
from ._inspect import ClientInspection, inspect, settle
from ._records import (
    IssuedTokenRecord,
    OrganizationRecord,
    OutboxMessage,
    SessionRecord,
    SignInTokenRecord,
    UserRecord,
)
from ._redis_server import RedisServer, RedisServerNotInstalled, running_redis
from ._world import STALE_CLIENT_TOKEN_GRACE, TEST_CODE, Clock

__all__ = [
    "STALE_CLIENT_TOKEN_GRACE",
    "TEST_CODE",
    "ClientInspection",
    "Clock",
    "Fault",
    "FrontendAPIEmulator",
    "IssuedTokenRecord",
    "OrganizationRecord",
    "OutboxMessage",
    "RecordedRequest",
    "RedisServer",
    "RedisServerNotInstalled",
    "SessionRecord",
    "SignInTokenRecord",
    "SignedIn",
    "UserRecord",
    "inspect",
    "running_redis",
    "settle",
]
