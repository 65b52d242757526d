"""Spec-conformant response payloads (validated against the spec in test_contract.py).

Builders return fresh dicts so a test can tweak one without affecting others.
"""

from __future__ import annotations

from typing import Any

NOW_MS = 1_764_000_000_000


def email_address(
    email_id: str = "idn_email_1", email: str = "jane+clerk_test@example.com"
) -> dict[str, Any]:
    return {
        "id": email_id,
        "object": "email_address",
        "email_address": email,
        "reserved": False,
        "verification": {
            "object": "verification_otp",
            "status": "verified",
            "strategy": "email_code",
            "attempts": 1,
            "expire_at": NOW_MS + 600_000,
        },
        "linked_to": [],
        "matches_sso_connection": False,
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
    }


def phone_number(phone_id: str = "idn_phone_1") -> dict[str, Any]:
    return {
        "id": phone_id,
        "object": "phone_number",
        "phone_number": "+12015550100",
        "reserved_for_second_factor": True,
        "default_second_factor": True,
        "reserved": False,
        "verification": {
            "object": "verification_otp",
            "status": "verified",
            "strategy": "phone_code",
            "attempts": 1,
            "expire_at": NOW_MS + 600_000,
        },
        "linked_to": [],
        "backup_codes": None,
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
    }


def organization(org_id: str = "org_1") -> dict[str, Any]:
    return {
        "id": org_id,
        "object": "organization",
        "name": "Acme",
        "slug": "acme",
        "image_url": "https://img.example.com/org.png",
        "has_image": False,
        "members_count": 3,
        "pending_invitations_count": 0,
        "max_allowed_memberships": 5,
        "admin_delete_enabled": True,
        "public_metadata": {},
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
    }


def user(user_id: str = "user_1") -> dict[str, Any]:
    return {
        "id": user_id,
        "object": "user",
        "username": "jane",
        "first_name": "Jane",
        "last_name": "Doe",
        "image_url": "https://img.example.com/jane.png",
        "has_image": True,
        "primary_email_address_id": "idn_email_1",
        "primary_phone_number_id": "idn_phone_1",
        "primary_web3_wallet_id": None,
        "password_enabled": True,
        "two_factor_enabled": True,
        "totp_enabled": False,
        "backup_code_enabled": False,
        "email_addresses": [email_address()],
        "phone_numbers": [phone_number()],
        "web3_wallets": [],
        "passkeys": [],
        "organization_memberships": [
            {
                "id": "orgmem_1",
                "object": "organization_membership",
                "public_metadata": {},
                "role": "org:admin",
                "role_name": "Admin",
                "permissions": ["org:sys_memberships:manage"],
                "created_at": NOW_MS,
                "updated_at": NOW_MS,
                "organization": organization(),
            }
        ],
        "external_accounts": [],
        "saml_accounts": [],
        "enterprise_accounts": [],
        "public_metadata": {"plan": "pro"},
        "private_metadata": {},
        "unsafe_metadata": {},
        "external_id": None,
        "last_sign_in_at": NOW_MS,
        "banned": False,
        "locked": False,
        "lockout_expires_in_seconds": None,
        "verification_attempts_remaining": 100,
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
        "delete_self_enabled": True,
        "create_organization_enabled": True,
        "last_active_at": NOW_MS,
        "mfa_enabled_at": None,
        "mfa_disabled_at": None,
        "legal_accepted_at": None,
    }


def session(session_id: str = "sess_1", status: str = "active", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": session_id,
        "object": "session",
        "status": status,
        "expire_at": NOW_MS + 7 * 86_400_000,
        "abandon_at": NOW_MS + 30 * 86_400_000,
        "last_active_at": NOW_MS,
        "last_active_token": {
            "object": "token",
            "jwt": "eyJhbGciOiJSUzI1NiJ9.eyJzaWQiOiJzZXNzXzEifQ.c2ln",
        },
        "actor": None,
        "tasks": None,
        "last_active_organization_id": None,
        "public_user_data": {
            "first_name": "Jane",
            "last_name": "Doe",
            "image_url": "https://img.example.com/jane.png",
            "has_image": True,
            "identifier": "jane+clerk_test@example.com",
            "user_id": "user_1",
            "username": "jane",
        },
        "factor_verification_age": [3, -1],
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
        "user": user(),
    }
    data.update(overrides)
    return data


def client(*sessions: dict[str, Any], client_id: str = "client_1") -> dict[str, Any]:
    return {
        "object": "client",
        "id": client_id,
        "sessions": list(sessions),
        "sign_in": None,
        "sign_up": None,
        "last_active_session_id": sessions[0]["id"] if sessions else None,
        "last_authentication_strategy": "email_code",
        "cookie_expires_at": None,
        "captcha_bypass": False,
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
    }


def session_envelope(session_id: str = "sess_1", status: str = "active") -> dict[str, Any]:
    current = session(session_id, status)
    return {"response": current, "client": client(current)}


def touch_envelope(session_id: str = "sess_1", *, with_client: bool = True) -> dict[str, Any]:
    current = session(session_id)
    return {"response": current, "client": client(current) if with_client else None}


def delete_sessions_envelope(client_id: str = "client_1") -> dict[str, Any]:
    return {"response": client(client_id=client_id), "client": None}


def token(jwt: str = "eyJhbGciOiJSUzI1NiJ9.eyJzaWQiOiJzZXNzXzEifQ.c2lnbmF0dXJl") -> dict[str, Any]:
    return {"object": "token", "jwt": jwt}


def reverification_envelope(
    session_id: str = "sess_1", status: str = "needs_first_factor", level: str = "first_factor"
) -> dict[str, Any]:
    current = session(session_id)
    base = {
        key: current[key]
        for key in ("id", "object", "status", "expire_at", "abandon_at", "last_active_at")
    }
    return {
        "response": {
            "object": "session_reverification",
            "level": level,
            "status": status,
            "supported_first_factors": [
                {
                    "strategy": "email_code",
                    "safe_identifier": "j***+clerk_test@example.com",
                    "email_address_id": "idn_email_1",
                    "primary": True,
                },
                {"strategy": "password"},
            ],
            "supported_second_factors": [
                {
                    "strategy": "phone_code",
                    "safe_identifier": "+1201***0100",
                    "phone_number_id": "idn_phone_1",
                }
            ],
            "first_factor_verification": None,
            "second_factor_verification": None,
            "session": base,
        },
        "client": client(current),
    }


def clerk_errors(
    code: str = "resource_not_found",
    message: str = "not found",
    long_message: str = "Resource not found",
    *,
    trace_id: str | None = "trace_abc123",
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "long_message": long_message}
    if meta is not None:
        error["meta"] = meta
    body: dict[str, Any] = {"errors": [error]}
    if trace_id is not None:
        body["clerk_trace_id"] = trace_id
    return body
