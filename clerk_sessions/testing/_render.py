"""The JSON of the emulator's answers: records in the shapes of Clerk's Frontend API and Backend
API (``../shared/docs/fapi-protocol.md``, the ``fapi-*.yml`` and ``bapi-*.yml`` specs).

``Renderer`` reads the records (``_records``) and the clock and changes nothing: the rules
that run before an answer is rendered (a session past ``expire_at`` turns ``expired``, say)
are ``_world.World``'s. JWTs and their claims are minted there too; here they are only
embedded where an answer carries them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping

from ._records import (
    ClientRecord,
    EmailRecord,
    Json,
    OrganizationRecord,
    PhoneRecord,
    SessionRecord,
    SignInTokenRecord,
    UserRecord,
    VerificationRecord,
)


class Renderer:
    """Renders the records of one emulator; ``users``, ``organizations`` and ``sessions`` are
    the world's own dicts (read, never written) and ``now`` its clock."""

    def __init__(
        self,
        *,
        users: Mapping[str, UserRecord],
        organizations: Mapping[str, OrganizationRecord],
        sessions: Mapping[str, SessionRecord],
        now: Callable[[], float],
    ) -> None:
        self._users = users
        self._organizations = organizations
        self._sessions = sessions
        self._now = now

    def session(self, session: SessionRecord, *, full: bool = True) -> Json:
        """A ``Session`` (``full=False``: the few fields a reverification embeds)."""
        base: Json = {
            "id": session.id,
            "object": "session",
            "status": session.status,
            "expire_at": _ms(session.expire_at),
            "abandon_at": _ms(session.abandon_at),
            "last_active_at": _ms(session.last_active_at),
        }
        if not full:
            return base
        user = self._users[session.user_id]
        token = session.last_active_token
        base.update(
            {
                "last_active_token": None if token is None else {"object": "token", "jwt": token},
                "actor": None,
                "tasks": None,
                "last_active_organization_id": session.last_active_organization_id,
                "public_user_data": {
                    "first_name": user.first_name,
                    "last_name": user.last_name,
                    "image_url": _image_url(user.id),
                    "has_image": False,
                    "identifier": user.identifier,
                    "user_id": user.id,
                    "username": user.username,
                },
                "factor_verification_age": session.factor_verification_age(self._now()),
                "created_at": _ms(session.created_at),
                "updated_at": _ms(session.updated_at),
                "user": self.user(user),
            }
        )
        return base

    def client(self, client: ClientRecord) -> Json:
        """A ``Client`` with its sessions as they are (``World.client_json`` expires the due
        ones first)."""
        sessions = [self._sessions[sid] for sid in client.session_ids]
        return {
            "object": "client",
            "id": client.id,
            "sessions": [self.session(session) for session in sessions],
            "sign_in": None,
            "sign_up": None,
            "last_active_session_id": client.last_active_session_id,
            "last_authentication_strategy": client.last_authentication_strategy
            if sessions
            else None,
            "cookie_expires_at": None,
            "captcha_bypass": False,
            "created_at": _ms(client.created_at),
            "updated_at": _ms(client.updated_at),
        }

    def reverification(self, session: SessionRecord) -> Json:
        """The ``SessionReverification`` of ``session``'s current reverification."""
        flow = session.reverification
        assert flow is not None
        user = self._users[session.user_id]
        return {
            "object": "session_reverification",
            "level": flow.level,
            "status": flow.status,
            "supported_first_factors": _first_factors(user),
            "supported_second_factors": _second_factors(user),
            "first_factor_verification": _verification(flow.first_factor_verification),
            "second_factor_verification": _verification(flow.second_factor_verification),
            "session": self.session(session, full=False),
        }

    def sign_in(self, sign_in_id: str, session: SessionRecord, *, abandon_at: float) -> Json:
        """A completed ticket sign-in (``Client.SignIn-2``) that created ``session``."""
        user = self._users[session.user_id]
        return {
            "object": "sign_in_attempt",
            "id": sign_in_id,
            "status": "complete",
            "supported_identifiers": ["email_address", "phone_number", "username"],
            "supported_first_factors": _first_factors(user),
            "supported_second_factors": _second_factors(user),
            "first_factor_verification": {
                "object": "verification_ticket",
                "status": "verified",
                "strategy": "ticket",
                "attempts": None,
                "expire_at": None,
            },
            "second_factor_verification": None,
            "identifier": user.identifier,
            "user_data": {
                "first_name": user.first_name,
                "last_name": user.last_name,
                "image_url": _image_url(user.id),
                "has_image": False,
            },
            "created_session_id": session.id,
            "abandon_at": _ms(abandon_at),
        }

    def sign_in_token(self, record: SignInTokenRecord, *, with_token: bool, issuer: str) -> Json:
        """The Backend API's ``SignInToken``. Only the creating answer carries the token (and
        the URL on ``issuer`` that embeds it): a revoke answer does not hand the credential out
        again."""
        body: Json = {
            "object": "sign_in_token",
            "id": record.id,
            "status": record.status,
            "user_id": record.user_id,
        }
        if with_token:
            body["token"] = record.token
            body["url"] = f"{issuer}/v1/tickets/accept?ticket={record.token}"
        body["created_at"] = _ms(record.created_at)
        body["updated_at"] = _ms(record.updated_at)
        return body

    def user(self, user: UserRecord) -> Json:
        created = _ms(user.created_at)
        strategies = user.second_factor_strategies
        return {
            "id": user.id,
            "object": "user",
            "username": user.username,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "image_url": _image_url(user.id),
            "has_image": False,
            "primary_email_address_id": user.primary_email_address_id,
            "primary_phone_number_id": user.primary_phone_number_id,
            "primary_web3_wallet_id": None,
            "password_enabled": user.password is not None,
            "two_factor_enabled": bool(strategies),
            "totp_enabled": "totp" in strategies,
            "backup_code_enabled": "backup_code" in strategies,
            "email_addresses": [_email(e, created) for e in user.email_addresses],
            "phone_numbers": [_phone(p, created) for p in user.phone_numbers],
            "web3_wallets": [],
            "passkeys": [],
            "organization_memberships": [
                _membership(org, user.id)
                for org in self._organizations.values()
                if user.id in org.members
            ],
            "external_accounts": [],
            "saml_accounts": [],
            "enterprise_accounts": [],
            "public_metadata": user.public_metadata,
            "private_metadata": {},
            "unsafe_metadata": {},
            "external_id": None,
            "last_sign_in_at": created,
            "banned": False,
            "locked": False,
            "lockout_expires_in_seconds": None,
            "verification_attempts_remaining": 100,
            "created_at": created,
            "updated_at": created,
            "delete_self_enabled": True,
            "create_organization_enabled": True,
            "last_active_at": created,
            "mfa_enabled_at": created if strategies else None,
            "mfa_disabled_at": None,
            "legal_accepted_at": None,
        }


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _image_url(object_id: str) -> str:
    return f"https://img.clerk.com/{base64.urlsafe_b64encode(object_id.encode()).decode()}"


def _membership(org: OrganizationRecord, user_id: str) -> Json:
    created = _ms(org.created_at)
    role = org.members[user_id]
    return {
        "id": f"orgmem_{org.id.removeprefix('org_')}{user_id[-6:]}",
        "object": "organization_membership",
        "public_metadata": {},
        "role": role,
        "role_name": role.removeprefix("org:").replace("_", " ").title(),
        "permissions": ["org:sys_memberships:manage"] if role == "org:admin" else [],
        "created_at": created,
        "updated_at": created,
        "organization": {
            "id": org.id,
            "object": "organization",
            "name": org.name,
            "slug": org.slug,
            "image_url": _image_url(org.id),
            "has_image": False,
            "members_count": len(org.members),
            "pending_invitations_count": 0,
            "max_allowed_memberships": 5,
            "admin_delete_enabled": True,
            "public_metadata": org.public_metadata,
            "created_at": created,
            "updated_at": created,
        },
    }


def _verification(record: VerificationRecord | None) -> Json | None:
    if record is None:
        return None
    return {
        "object": record.kind,
        "status": record.status,
        "strategy": record.strategy,
        "attempts": record.attempts,
        "expire_at": None if record.expire_at is None else _ms(record.expire_at),
    }


def _mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def _mask_phone(number: str) -> str:
    return f"{number[:5]}***{number[-4:]}"


def _first_factors(user: UserRecord) -> list[Json]:
    factors: list[Json] = [
        {
            "strategy": "email_code",
            "safe_identifier": _mask_email(email.address),
            "email_address_id": email.id,
            "primary": index == 0,
        }
        for index, email in enumerate(user.email_addresses)
    ]
    factors += [
        {
            "strategy": "phone_code",
            "safe_identifier": _mask_phone(phone.number),
            "phone_number_id": phone.id,
            "primary": index == 0,
        }
        for index, phone in enumerate(user.phone_numbers)
    ]
    if user.password is not None:
        factors.append({"strategy": "password"})
    return factors


def _second_factors(user: UserRecord) -> list[Json]:
    factors: list[Json] = [
        {
            "strategy": "phone_code",
            "safe_identifier": _mask_phone(phone.number),
            "phone_number_id": phone.id,
            "default": True,
        }
        for phone in user.phone_numbers
        if phone.second_factor
    ]
    factors += [
        {"strategy": s} for s in ("totp", "backup_code") if s in user.second_factor_strategies
    ]
    return factors


def _identification_verified(strategy: str) -> Json:
    """An email address's or phone number's own verification (always verified here)."""
    return {
        "object": "verification_otp",
        "status": "verified",
        "strategy": strategy,
        "attempts": 1,
        "expire_at": 0,
    }


def _email(email: EmailRecord, created: int) -> Json:
    return {
        "id": email.id,
        "object": "email_address",
        "email_address": email.address,
        "reserved": False,
        "verification": _identification_verified("email_code"),
        "linked_to": [],
        "matches_sso_connection": False,
        "created_at": created,
        "updated_at": created,
    }


def _phone(phone: PhoneRecord, created: int) -> Json:
    return {
        "id": phone.id,
        "object": "phone_number",
        "phone_number": phone.number,
        "reserved_for_second_factor": phone.second_factor,
        "default_second_factor": phone.second_factor,
        "reserved": False,
        "verification": _identification_verified("phone_code"),
        "linked_to": [],
        "backup_codes": None,
        "created_at": created,
        "updated_at": created,
    }
