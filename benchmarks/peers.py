"""Peer paths, for context only: httpx + pydantic, and Clerk's official Backend API SDK.

Neither is a dependency of the package: ``nox -s bench`` installs them into its own venv, and
a peer that is missing is reported as a skipped row, with the reason.
"""

from __future__ import annotations

import os
from typing import Any

# nox -s bench says which peer it could not install, and why.
_NOT_INSTALLED = os.environ.get("BENCH_PEERS_SKIPPED", "")


def _why(exc: ImportError, peer: str) -> str:
    for reason in _NOT_INSTALLED.split("; "):
        if reason.startswith(f"{peer}:"):
            return f"not installed ({reason})"
    return f"{type(exc).__name__}: {exc}"


try:
    import httpx
    from pydantic import BaseModel, ConfigDict
except ImportError as exc:  # the rows say "skipped: ..."
    HTTPX_PYDANTIC_MISSING: str | None = _why(exc, "httpx + pydantic")
else:
    HTTPX_PYDANTIC_MISSING = None

try:
    from clerk_backend_api import Clerk
except ImportError as exc:
    CLERK_BACKEND_API_MISSING: str | None = _why(exc, "clerk-backend-api")
else:
    CLERK_BACKEND_API_MISSING = None


if HTTPX_PYDANTIC_MISSING is None:
    # Minimal models of the same getSession body, as strict as ours ("5" is not an int) and
    # keeping unknown keys; written for this benchmark only.

    class _Model(BaseModel):
        model_config = ConfigDict(strict=True, extra="allow")

    class Verification(_Model):
        object: str | None = None
        status: str | None = None
        strategy: str | None = None
        attempts: int | None = None
        expire_at: int | None = None

    class IdentificationLink(_Model):
        type: str | None = None
        id: str

    class EmailAddress(_Model):
        id: str
        object: str
        email_address: str | None = None
        reserved: bool | None = None
        verification: Verification | None = None
        linked_to: list[IdentificationLink] | None = None
        matches_sso_connection: bool | None = None
        created_at: int | None = None
        updated_at: int | None = None

    class PhoneNumber(_Model):
        id: str
        object: str
        phone_number: str | None = None
        reserved_for_second_factor: bool | None = None
        default_second_factor: bool | None = None
        reserved: bool | None = None
        verification: Verification | None = None
        linked_to: list[IdentificationLink] | None = None
        backup_codes: list[str] | None = None
        created_at: int | None = None
        updated_at: int | None = None

    class Passkey(_Model):
        id: str
        object: str
        name: str | None = None
        last_used_at: int | None = None
        verification: Verification | None = None
        created_at: int | None = None
        updated_at: int | None = None

    class ExternalAccount(_Model):
        object: str
        id: str
        provider: str | None = None
        identification_id: str | None = None
        provider_user_id: str | None = None
        approved_scopes: str | None = None
        email_address: str | None = None
        email_address_verified: bool | None = None
        first_name: str | None = None
        last_name: str | None = None
        avatar_url: str | None = None
        image_url: str | None = None
        username: str | None = None
        phone_number: str | None = None
        public_metadata: dict[str, Any] | None = None
        label: str | None = None
        created_at: int | None = None
        updated_at: int | None = None
        verification: Verification | None = None

    class Organization(_Model):
        id: str
        object: str
        name: str | None = None
        slug: str | None = None
        image_url: str | None = None
        has_image: bool | None = None
        members_count: int | None = None
        pending_invitations_count: int | None = None
        max_allowed_memberships: int | None = None
        admin_delete_enabled: bool | None = None
        public_metadata: dict[str, Any] | None = None
        created_at: int | None = None
        updated_at: int | None = None

    class OrganizationMembership(_Model):
        id: str
        object: str
        public_metadata: dict[str, Any] | None = None
        role: str | None = None
        role_name: str | None = None
        permissions: list[str] | None = None
        created_at: int | None = None
        updated_at: int | None = None
        organization: Organization | None = None

    class User(_Model):
        id: str
        object: str
        username: str | None = None
        first_name: str | None = None
        last_name: str | None = None
        image_url: str | None = None
        has_image: bool | None = None
        primary_email_address_id: str | None = None
        primary_phone_number_id: str | None = None
        primary_web3_wallet_id: str | None = None
        password_enabled: bool | None = None
        two_factor_enabled: bool | None = None
        totp_enabled: bool | None = None
        backup_code_enabled: bool | None = None
        email_addresses: list[EmailAddress] | None = None
        phone_numbers: list[PhoneNumber] | None = None
        web3_wallets: list[dict[str, Any]] | None = None
        passkeys: list[Passkey] | None = None
        organization_memberships: list[OrganizationMembership] | None = None
        external_accounts: list[ExternalAccount] | None = None
        saml_accounts: list[dict[str, Any]] | None = None
        password_last_updated_at: int | None = None
        public_metadata: dict[str, Any] | None = None
        private_metadata: dict[str, Any] | None = None
        unsafe_metadata: dict[str, Any] | None = None
        external_id: str | None = None
        last_sign_in_at: int | None = None
        banned: bool | None = None
        locked: bool | None = None
        lockout_expires_in_seconds: int | None = None
        verification_attempts_remaining: int | None = None
        created_at: int | None = None
        updated_at: int | None = None
        delete_self_enabled: bool | None = None
        create_organization_enabled: bool | None = None
        last_active_at: int | None = None
        mfa_enabled_at: int | None = None
        mfa_disabled_at: int | None = None
        legal_accepted_at: int | None = None

    class Token(_Model):
        object: str = "token"
        jwt: str

    class PublicUserData(_Model):
        first_name: str | None = None
        last_name: str | None = None
        image_url: str | None = None
        has_image: bool | None = None
        identifier: str | None = None
        user_id: str | None = None
        username: str | None = None

    class Session(_Model):
        id: str
        object: str
        status: str | None = None
        expire_at: int | None = None
        abandon_at: int | None = None
        last_active_at: int | None = None
        last_active_token: Token | None = None
        actor: dict[str, Any] | None = None
        tasks: list[dict[str, Any]] | None = None
        last_active_organization_id: str | None = None
        public_user_data: PublicUserData | None = None
        factor_verification_age: list[int] | None = None
        created_at: int | None = None
        updated_at: int | None = None
        user: User | None = None

    class Client(_Model):
        object: str
        id: str
        sessions: list[Session] | None = None
        sign_in: dict[str, Any] | None = None
        sign_up: dict[str, Any] | None = None
        last_active_session_id: str | None = None
        last_authentication_strategy: str | None = None
        cookie_expires_at: int | None = None
        captcha_bypass: bool | None = None
        created_at: int | None = None
        updated_at: int | None = None

    class SessionEnvelope(_Model):
        response: Session
        client: Client | None = None


def clerk_backend_api(base_url: str) -> Any:
    """Clerk's SDK pointed at the loopback server, on clients that never read proxy settings
    (the traffic must stay on 127.0.0.1); otherwise its defaults."""
    return Clerk(
        bearer_auth="sk_test_benchmark",
        server_url=f"{base_url}/v1",
        client=httpx.Client(follow_redirects=True, trust_env=False),
        async_client=httpx.AsyncClient(follow_redirects=True, trust_env=False),
    )
