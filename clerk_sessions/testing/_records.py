"""The emulator's records: plain attrs classes, with no rules and no JSON.

``_world.World`` holds them and changes them by Clerk's rules; ``_render.Renderer`` turns them
into the JSON of Clerk's answers. The only logic here is what a record derives from its own
fields (a user's second factors, a session's factor verification age).
"""

from __future__ import annotations

from typing import Any

import attrs

Json = dict[str, Any]


def _minutes_since(at: float | None, now: float) -> int:
    return -1 if at is None else max(0, int((now - at) // 60))


@attrs.define
class EmailRecord:
    id: str
    address: str


@attrs.define
class PhoneRecord:
    id: str
    number: str
    second_factor: bool


@attrs.define
class UserRecord:
    """A user. ``password``, ``totp_secret`` and ``backup_codes`` are what reverification checks."""

    id: str
    first_name: str | None
    last_name: str | None
    username: str | None
    email_addresses: list[EmailRecord]
    phone_numbers: list[PhoneRecord]
    password: str | None = attrs.field(repr=False)
    totp_secret: bytes | None = attrs.field(repr=False)
    backup_codes: list[str] = attrs.field(repr=False)
    public_metadata: dict[str, Any]
    created_at: float

    @property
    def primary_email_address_id(self) -> str | None:
        return self.email_addresses[0].id if self.email_addresses else None

    @property
    def primary_phone_number_id(self) -> str | None:
        return self.phone_numbers[0].id if self.phone_numbers else None

    @property
    def identifier(self) -> str:
        if self.email_addresses:
            return self.email_addresses[0].address
        if self.phone_numbers:
            return self.phone_numbers[0].number
        return self.username or self.id

    @property
    def second_factor_strategies(self) -> list[str]:
        strategies = ["phone_code"] if any(p.second_factor for p in self.phone_numbers) else []
        if self.totp_secret is not None:
            strategies.append("totp")
        if self.backup_codes:
            strategies.append("backup_code")
        return strategies


@attrs.define
class OrganizationRecord:
    id: str
    name: str
    slug: str
    members: dict[str, str]
    """user id → role (``org:admin``, ``org:member``)."""
    created_at: float
    public_metadata: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class TemplateRecord:
    name: str
    claims: dict[str, Any]
    lifetime: int


@attrs.define
class PendingCode:
    strategy: str
    target_id: str
    code: str = attrs.field(repr=False)
    expire_at: float
    attempts: int = 0


@attrs.frozen
class VerificationRecord:
    """Where one reverification step stands: ``kind`` is Clerk's verification object
    (``verification_otp``, ``verification_password``, ``verification_totp``,
    ``verification_backup_code``); ``expire_at`` is ``None`` for a factor without a code."""

    kind: str
    status: str
    strategy: str
    attempts: int
    expire_at: float | None


@attrs.define
class Reverification:
    level: str
    status: str
    first_factor_verification: VerificationRecord | None = None
    second_factor_verification: VerificationRecord | None = None
    pending: dict[str, PendingCode] = attrs.Factory(dict)
    """Prepared one-time codes by step (``first``/``second``)."""


@attrs.define
class SessionRecord:
    id: str
    client_id: str
    user_id: str
    status: str
    created_at: float
    updated_at: float
    last_active_at: float
    expire_at: float
    abandon_at: float
    last_active_organization_id: str | None
    first_factor_at: float | None
    second_factor_at: float | None
    last_active_token: str | None = attrs.field(default=None, repr=False)
    reverification: Reverification | None = None

    def factor_verification_age(self, now: float) -> list[int]:
        """Minutes since the first and the second factor were verified (-1: never), as the
        ``fva`` claim and ``factor_verification_age`` carry them."""
        return [
            _minutes_since(self.first_factor_at, now),
            _minutes_since(self.second_factor_at, now),
        ]


@attrs.frozen
class IssuedTokenRecord:
    """A session or template JWT the emulator signed (``FrontendAPIEmulator.issued_tokens``):
    what a test needs to judge a token it was handed without trusting the client that handed
    it out. ``source`` is ``sign_in``, ``touch`` (a session's new ``last_active_token``),
    ``mint`` (``POST .../tokens``) or ``template`` (``POST .../tokens/{template}``); times are
    on the emulator's clock."""

    jwt: str = attrs.field(repr=False)
    session_id: str
    client_id: str
    source: str
    template: str | None
    organization_id: str | None
    issued_at: float
    iat: int
    exp: int


@attrs.define
class ClientRecord:
    id: str
    session_ids: list[str]
    last_active_session_id: str | None
    created_at: float
    updated_at: float
    token_generation: int = 0
    """How many times the client token was (re)issued; the request log names it."""
    current_token: str = attrs.field(default="", repr=False)
    superseded_at: dict[int, float] = attrs.Factory(dict)
    """Token generation → when a newer token replaced it."""
    last_authentication_strategy: str | None = None


@attrs.define
class SignInTokenRecord:
    """A sign-in token of the Backend API (``POST /v1/sign_in_tokens``): ``pending`` until a
    ticket sign-in uses it (``accepted``) or it is revoked (``revoked``); it works once, and
    not after ``expire_at`` (on the emulator's clock)."""

    id: str
    user_id: str
    org_id: str | None
    token: str = attrs.field(repr=False)
    status: str
    created_at: float
    updated_at: float
    expire_at: float


@attrs.frozen
class OutboxMessage:
    """A code the emulator "sent" to an address that is not one of Clerk's test addresses."""

    to: str
    strategy: str
    code: str = attrs.field(repr=False)
