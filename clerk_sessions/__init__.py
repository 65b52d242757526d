"""clerk_sessions: the Sessions operations of Clerk's Frontend API, for Python.

``AsyncClerkSessions`` is the async core (aiohttp + attrs/cattrs); ``ClerkSessions`` is the same
client for blocking code, generated from it. Errors, models and the
``UNSET`` sentinel are re-exported here; every model lives in :mod:`clerk_sessions.models`.
"""

from typing import TYPE_CHECKING, Any

from ._client import AsyncClerkSessions, ClientTokenCallback, RetryCallback
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClerkAPIError,
    ClerkSessionsError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    UnprocessableEntityError,
)
from ._logging import setup_logging_from_env as _setup_logging_from_env
from ._store import MemoryStore, Store
from ._types import UNSET, Timeout, Unset
from ._version import __version__
from .models import (
    ClerkError,
    Client,
    EmailAddress,
    Envelope,
    ExternalAccount,
    Organization,
    OrganizationMembership,
    Passkey,
    PhoneNumber,
    PublicUserData,
    SamlAccount,
    Session,
    SessionReverification,
    SessionStatus,
    SessionTask,
    SignIn,
    SignInFactor,
    SignUp,
    Token,
    User,
    Web3Wallet,
)

__all__ = [
    "UNSET",
    "APIConnectionError",
    "APITimeoutError",
    "AsyncClerkSessions",
    "AuthenticationError",
    "BadRequestError",
    "BatchSummary",
    "BlockingCallInEventLoopWarning",
    "ClerkAPIError",
    "ClerkError",
    "ClerkSessions",
    "ClerkSessionsError",
    "Client",
    "ClientTokenCallback",
    "CodesCallback",
    "ConfigurationError",
    "ConflictError",
    "EmailAddress",
    "Envelope",
    "ExternalAccount",
    "NoSupportedFactorError",
    "NotFoundError",
    "Organization",
    "OrganizationMembership",
    "Passkey",
    "PermissionDeniedError",
    "PhoneNumber",
    "MemoryStore",
    "ProgressCallback",
    "PublicUserData",
    "RateLimitError",
    "ResponseValidationError",
    "RetryCallback",
    "RetryEvent",
    "ReverificationStep",
    "SamlAccount",
    "ServerError",
    "Session",
    "SessionReverification",
    "SessionStatus",
    "SessionTask",
    "SignIn",
    "SignInFactor",
    "SignUp",
    "Store",
    "Timeout",
    "Token",
    "TokenRequest",
    "TokenResult",
    "UnprocessableEntityError",
    "Unset",
    "User",
    "Web3Wallet",
    "__version__",
    "needs_reverification",
]

if TYPE_CHECKING:
    from ._batch import BatchSummary, ProgressCallback, TokenRequest, TokenResult
    from ._bridge import BlockingCallInEventLoopWarning
    from ._retry_event import RetryEvent
    from ._reverify import (
        CodesCallback,
        NoSupportedFactorError,
        ReverificationStep,
        needs_reverification,
    )
    from ._sync import ClerkSessions

# Imported on first use, so applications that never use them never load them: the blocking
# client (and the event-loop machinery behind it), batch refresh, step-up and retry events.
_LAZY = {
    "ClerkSessions": "._sync",
    "BlockingCallInEventLoopWarning": "._bridge",
    "BatchSummary": "._batch",
    "ProgressCallback": "._batch",
    "TokenRequest": "._batch",
    "TokenResult": "._batch",
    "CodesCallback": "._reverify",
    "NoSupportedFactorError": "._reverify",
    "ReverificationStep": "._reverify",
    "needs_reverification": "._reverify",
    "RetryEvent": "._retry_event",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


_setup_logging_from_env()
