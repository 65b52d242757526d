"""clerk_sessions: the Sessions operations of Clerk's Frontend API, for Python.

``AsyncClerkSessions`` is the async core (aiohttp + attrs/cattrs); ``ClerkSessions`` is the same
client for blocking code, generated from it. Errors, models and the
``UNSET`` sentinel are re-exported here; every model lives in :mod:`clerk_sessions.models`.
"""

from ._batch import BatchSummary, ProgressCallback, TokenRequest, TokenResult
from ._bridge import BlockingCallInEventLoopWarning
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
from ._retry import RetryEvent
from ._sync import ClerkSessions
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
    "ConfigurationError",
    "ConflictError",
    "EmailAddress",
    "Envelope",
    "ExternalAccount",
    "NotFoundError",
    "Organization",
    "OrganizationMembership",
    "Passkey",
    "PermissionDeniedError",
    "PhoneNumber",
    "ProgressCallback",
    "PublicUserData",
    "RateLimitError",
    "ResponseValidationError",
    "RetryCallback",
    "RetryEvent",
    "SamlAccount",
    "ServerError",
    "Session",
    "SessionReverification",
    "SessionStatus",
    "SessionTask",
    "SignIn",
    "SignInFactor",
    "SignUp",
    "Timeout",
    "Token",
    "TokenRequest",
    "TokenResult",
    "UnprocessableEntityError",
    "Unset",
    "User",
    "Web3Wallet",
    "__version__",
]

_setup_logging_from_env()
