"""Realistic Frontend API bodies for the benchmarks, in the spec's shapes.

What a multi-session app's device sees: a client holding three signed-in accounts, each user
with the identifiers, passkey, Google account and organizations a real account gathers, and
values as long as Clerk's (27-character ids, ``img.clerk.com`` proxy URLs, RS256 session JWTs).
``tests/test_bench_payloads.py`` validates every body here against the spec.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import orjson

NOW_MS = 1_764_000_000_000
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def clerk_id(prefix: str, seed: str) -> str:
    """A Clerk-style id (``user_2pXy…``, 27 base62 characters after the prefix)."""
    digest = int.from_bytes(hashlib.sha256(f"{prefix}{seed}".encode()).digest(), "big")
    chars = []
    for _ in range(26):
        digest, index = divmod(digest, 62)
        chars.append(_ALPHABET[index])
    return f"{prefix}_2{''.join(chars)}"


def image_url(source: str) -> str:
    """Clerk's image proxy URL: base64 JSON naming the original image."""
    spec = orjson.dumps({"type": "proxy", "src": source})
    return "https://img.clerk.com/" + base64.urlsafe_b64encode(spec).rstrip(b"=").decode()


def _segment(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def session_jwt(session_id: str, user_id: str, org_id: str | None, *, lifetime: int) -> str:
    """An RS256 session token with Clerk's v2 claims, valid for ``lifetime`` seconds."""
    now = int(time.time())
    header = {"alg": "RS256", "cat": "cl_B7d4PD111AAA", "kid": clerk_id("ins", "k"), "typ": "JWT"}
    claims: dict[str, Any] = {
        "azp": "https://app.example.com",
        "exp": now + lifetime,
        "fva": [3, -1],
        "iat": now,
        "iss": "https://clerk.example.com",
        "nbf": now - 10,
        "sid": session_id,
        "sts": "active",
        "sub": user_id,
        "v": 2,
    }
    if org_id is not None:
        claims["o"] = {"id": org_id, "rol": "admin", "slg": "acme", "per": "manage,read"}
    return f"{_segment(header)}.{_segment(claims)}.{'s' * 342}"


def _otp(strategy: str) -> dict[str, Any]:
    return {
        "object": "verification_otp",
        "status": "verified",
        "strategy": strategy,
        "attempts": 1,
        "expire_at": NOW_MS + 600_000,
    }


def email_address(email_id: str, email: str, *, oauth_id: str | None = None) -> dict[str, Any]:
    verification = (
        _otp("email_code")
        if oauth_id is None
        else {
            "object": "verification_from_oauth",
            "status": "verified",
            "strategy": "from_oauth_google",
            "attempts": None,
            "expire_at": None,
        }
    )
    return {
        "id": email_id,
        "object": "email_address",
        "email_address": email,
        "reserved": False,
        "verification": verification,
        "linked_to": [] if oauth_id is None else [{"type": "oauth_google", "id": oauth_id}],
        "matches_sso_connection": False,
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
    }


def phone_number(phone_id: str) -> dict[str, Any]:
    return {
        "id": phone_id,
        "object": "phone_number",
        "phone_number": "+12015550100",
        "reserved_for_second_factor": True,
        "default_second_factor": True,
        "reserved": False,
        "verification": _otp("phone_code"),
        "linked_to": [],
        "backup_codes": None,
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
    }


def passkey(passkey_id: str) -> dict[str, Any]:
    return {
        "id": passkey_id,
        "object": "passkey",
        "name": "iCloud Keychain",
        "last_used_at": NOW_MS,
        "verification": {
            "object": "verification_passkey",
            "status": "verified",
            "strategy": "passkey",
            "attempts": 1,
            "expire_at": NOW_MS + 600_000,
        },
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
    }


def google_account(account_id: str, email_id: str, email: str, name: str) -> dict[str, Any]:
    avatar = image_url(f"https://lh3.googleusercontent.com/a/{clerk_id('g', email)}=s1000-c")
    return {
        "object": "google_account",
        "id": account_id,
        "provider": "oauth_google",
        "identification_id": email_id,
        "provider_user_id": "104629837465019283746",
        "approved_scopes": "email https://www.googleapis.com/auth/userinfo.email "
        "https://www.googleapis.com/auth/userinfo.profile openid profile",
        "email_address": email,
        "email_address_verified": True,
        "first_name": name,
        "last_name": "Doe",
        "avatar_url": avatar,
        "image_url": avatar,
        "username": None,
        "phone_number": None,
        "public_metadata": {},
        "label": None,
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
        "verification": {
            "object": "verification_oauth",
            "status": "verified",
            "strategy": "oauth_google",
            "error": None,
            "expire_at": NOW_MS + 600_000,
            "attempts": None,
            "verified_at_client": None,
        },
    }


def membership(org_name: str, slug: str, role: str) -> dict[str, Any]:
    org_id = clerk_id("org", slug)
    return {
        "id": clerk_id("orgmem", slug + role),
        "object": "organization_membership",
        "public_metadata": {},
        "role": f"org:{role}",
        "role_name": role.title(),
        "permissions": [
            "org:sys_profile:manage",
            "org:sys_memberships:read",
            "org:sys_memberships:manage",
        ],
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
        "organization": {
            "id": org_id,
            "object": "organization",
            "name": org_name,
            "slug": slug,
            "image_url": image_url(f"https://images.clerk.dev/uploaded/img_{org_id}.png"),
            "has_image": True,
            "members_count": 42,
            "pending_invitations_count": 3,
            "max_allowed_memberships": 100,
            "admin_delete_enabled": True,
            "public_metadata": {"plan": "business", "region": "eu-west-1"},
            "created_at": NOW_MS,
            "updated_at": NOW_MS,
        },
    }


def user(index: int) -> dict[str, Any]:
    name = ("Jane", "John", "Ada")[index % 3]
    user_id = clerk_id("user", name)
    email_id, oauth_email_id = clerk_id("idn", f"{name}1"), clerk_id("idn", f"{name}2")
    phone_id, oauth_id = clerk_id("idn", f"{name}3"), clerk_id("idn", f"{name}4")
    work, personal = f"{name.lower()}.doe@acme.example.com", f"{name.lower()}.doe@gmail.com"
    google = index < 2  # the third account signs in with email and password only
    return {
        "id": user_id,
        "object": "user",
        "username": f"{name.lower()}doe",
        "first_name": name,
        "last_name": "Doe",
        "image_url": image_url(f"https://images.clerk.dev/oauth_google/img_{user_id}"),
        "has_image": True,
        "primary_email_address_id": email_id,
        "primary_phone_number_id": phone_id,
        "primary_web3_wallet_id": None,
        "password_enabled": True,
        "two_factor_enabled": True,
        "totp_enabled": False,
        "backup_code_enabled": False,
        "email_addresses": [email_address(email_id, work)]
        + ([email_address(oauth_email_id, personal, oauth_id=oauth_id)] if google else []),
        "phone_numbers": [phone_number(phone_id)],
        "web3_wallets": [],
        "passkeys": [passkey(clerk_id("pkey", name))] if index == 0 else [],
        "organization_memberships": [membership("Acme", "acme", "admin")],
        "external_accounts": (
            [google_account(oauth_id, oauth_email_id, personal, name)] if google else []
        ),
        "saml_accounts": [],
        "enterprise_accounts": [],
        "password_last_updated_at": NOW_MS,
        "public_metadata": {"plan": "pro", "onboarded": True, "locale": "en-GB"},
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
        "mfa_enabled_at": NOW_MS,
        "mfa_disabled_at": None,
        "legal_accepted_at": None,
    }


def session(index: int, *, token_lifetime: int = 86_400) -> dict[str, Any]:
    """Session ``sess_<index>`` (the benchmarks ask for it by that id) with its full user."""
    data = user(index)
    session_id = f"sess_{index}"
    org_id = data["organization_memberships"][0]["organization"]["id"]
    return {
        "id": session_id,
        "object": "session",
        "status": "active",
        "expire_at": NOW_MS + 7 * 86_400_000,
        "abandon_at": NOW_MS + 30 * 86_400_000,
        "last_active_at": NOW_MS,
        "last_active_token": {
            "object": "token",
            "jwt": session_jwt(session_id, data["id"], org_id, lifetime=token_lifetime),
        },
        "actor": None,
        "tasks": [],
        "last_active_organization_id": org_id,
        "public_user_data": {
            "first_name": data["first_name"],
            "last_name": data["last_name"],
            "image_url": data["image_url"],
            "has_image": True,
            "identifier": data["email_addresses"][0]["email_address"],
            "user_id": data["id"],
            "username": data["username"],
        },
        "factor_verification_age": [3, -1],
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
        "user": data,
    }


def client(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "client",
        "id": clerk_id("client", "device"),
        "sessions": sessions,
        "sign_in": None,
        "sign_up": None,
        "last_active_session_id": sessions[0]["id"],
        "last_authentication_strategy": "oauth_google",
        "cookie_expires_at": None,
        "captcha_bypass": False,
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
    }


def session_envelope() -> dict[str, Any]:
    """getSession: session 0, and the client (three sessions, full users) piggybacked."""
    sessions = [session(i) for i in range(3)]
    return {"response": sessions[0], "client": client(sessions)}


def token(session_id: str = "sess_0") -> dict[str, Any]:
    """createSessionToken: a token valid for a day, so cached get_token hits stay hits."""
    return {
        "object": "token",
        "jwt": session_jwt(session_id, clerk_id("user", "Jane"), None, lifetime=86_400),
    }


def reverification_envelope() -> dict[str, Any]:
    """startSessionReverification: factors to choose from, and the client piggybacked."""
    sessions = [session(i) for i in range(3)]
    current = sessions[0]
    emails = current["user"]["email_addresses"]
    return {
        "response": {
            "object": "session_reverification",
            "level": "second_factor",
            "status": "needs_first_factor",
            "session": {
                key: current[key]
                for key in ("id", "object", "status", "expire_at", "abandon_at", "last_active_at")
            },
            "supported_first_factors": [
                {
                    "strategy": "email_code",
                    "safe_identifier": "j***@acme.example.com",
                    "email_address_id": emails[0]["id"],
                    "primary": True,
                },
                {"strategy": "passkey"},
                {"strategy": "password"},
            ],
            "supported_second_factors": [
                {
                    "strategy": "phone_code",
                    "safe_identifier": "+1201***0100",
                    "phone_number_id": current["user"]["phone_numbers"][0]["id"],
                    "default": True,
                },
                {"strategy": "totp"},
            ],
            "first_factor_verification": None,
            "second_factor_verification": None,
        },
        "client": client(sessions),
    }


def bapi_session(index: int = 0) -> dict[str, Any]:
    """What Clerk's Backend API answers for ``GET /v1/sessions/{id}`` (the peer SDK's route)."""
    data = session(index)
    return {
        "object": "session",
        "id": data["id"],
        "user_id": data["user"]["id"],
        "client_id": clerk_id("client", "device"),
        "status": "active",
        "last_active_organization_id": data["last_active_organization_id"],
        "actor": None,
        "last_active_at": NOW_MS,
        "expire_at": data["expire_at"],
        "abandon_at": data["abandon_at"],
        "created_at": NOW_MS,
        "updated_at": NOW_MS,
    }


def encoded() -> dict[str, bytes]:
    """Every body the benchmark server answers with, encoded once."""
    return {
        "session": orjson.dumps(session_envelope()),
        "token": orjson.dumps(token()),
        "reverification": orjson.dumps(reverification_envelope()),
        "bapi_session": orjson.dumps(bapi_session()),
    }
