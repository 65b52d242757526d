"""Reading JWTs without verifying them: the claims the SDK needs for timing and naming.

Verification is the business of whoever receives a session token; the SDK only needs to know
when a token expires, how fresh it is (``oiat``, then ``iat``), and which device a client token
names (its ``id`` claim). Nothing here trusts what it reads for anything else.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

from ._types import Unset

TokenKey = tuple[str, str, str, str | None, str | Unset | None]
"""(Frontend API host, device key, session id, template, organization id); see ``token_key``."""


def token_key(
    host: str,
    device: str,
    session_id: str,
    template: str | None,
    organization_id: str | Unset | None,
) -> TokenKey:
    # None and "" both select the personal account: one key (UNSET, falsy too, stays apart).
    personal = organization_id == ""
    return (host, device, session_id, template, None if personal else organization_id)


_NUMBERS = frozenset({int, float})


def _segment(segment: str) -> Any:
    # What base64.urlsafe_b64decode does, without its Python layers (most of its cost).
    standard = segment.replace("-", "+").replace("_", "/") + "=" * (-len(segment) % 4)
    return orjson.loads(binascii.a2b_base64(standard))


def jwt_claims(jwt: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified; None if ``jwt`` is not a readable JWT."""
    try:
        _header, payload, _signature = jwt.split(".")
        claims = _segment(payload)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return None
    return claims if type(claims) is dict else None


class JwtTiming:
    """What the cache needs from a JWT: its lifetime and its freshness order."""

    __slots__ = ("_header", "_origin_issued_at", "expires_at", "issued_at")

    def __init__(self, issued_at: float, expires_at: float, header: str) -> None:
        self.issued_at = issued_at
        self.expires_at = expires_at
        # The header is read only when freshness is compared (a token replacing a kept one):
        # a batch's new tokens never need it.
        self._header: str | None = header
        self._origin_issued_at: float | None = None

    @property
    def origin_issued_at(self) -> float | None:
        """The ``oiat`` header: when the session state behind the token was issued (None when
        the header has none, or cannot be read)."""
        header = self._header
        if header is not None:
            try:
                head = _segment(header)
            except (ValueError, binascii.Error, orjson.JSONDecodeError):
                head = None
            oiat: Any = head.get("oiat") if type(head) is dict else None
            self._origin_issued_at = float(oiat) if type(oiat) in _NUMBERS else None
            self._header = None
        return self._origin_issued_at

    def __repr__(self) -> str:
        return (
            f"JwtTiming(issued_at={self.issued_at!r}, expires_at={self.expires_at!r}, "
            f"origin_issued_at={self.origin_issued_at!r})"
        )

    @property
    def freshness(self) -> tuple[int, float, float]:
        # clerk-js: higher oiat wins, ties go to higher iat, a token without oiat loses.
        if self.origin_issued_at is None:
            return (0, 0.0, self.issued_at)
        return (1, self.origin_issued_at, self.issued_at)


def jwt_timing(jwt: str) -> JwtTiming | None:
    """``iat``/``exp`` (and ``oiat``) of a JWT, unverified; None if it cannot be read."""
    try:
        header, payload, _signature = jwt.split(".")
        claims = _segment(payload)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return None
    if type(claims) is not dict:  # orjson makes plain dicts
        return None
    iat: Any = claims.get("iat")
    exp: Any = claims.get("exp")
    # JSON numbers only (orjson gives exactly int or float; a bool is neither).
    if type(iat) not in _NUMBERS or type(exp) not in _NUMBERS:
        return None
    return JwtTiming(float(iat), float(exp), header)


class CachedToken:
    """A session JWT as a store keeps it: the token and its timing (read once)."""

    __slots__ = ("jwt", "timing")

    def __init__(self, jwt: str, timing: JwtTiming) -> None:
        self.jwt = jwt
        self.timing = timing

    def __repr__(self) -> str:  # never the JWT
        return f"CachedToken(timing={self.timing!r})"

    def fresher_than(self, other: CachedToken) -> bool:
        """Freshness never goes backwards (clerk-js): keep self over ``other``?"""
        return self.timing.freshness > other.timing.freshness
