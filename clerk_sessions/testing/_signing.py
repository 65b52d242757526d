"""RS256 signing of the emulator's session and client tokens, and the JWKS that verifies them.

PyJWT (with ``cryptography``) does the cryptography, so the tokens are exactly what a backend's
own verification code accepts.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class Signer:
    """One RSA key pair: signs JWTs and publishes its public half as a JWKS."""

    def __init__(self, key_id: str) -> None:
        # 2048 bits: what Clerk uses, and fast enough to generate per emulator (~50 ms).
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = key_id

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        headers = {"kid": self.key_id, "typ": "JWT", **(header or {})}
        return jwt.encode(claims, self._private_key, algorithm="RS256", headers=headers)

    def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """``(header, claims)`` of a JWT this key signed, whatever its times say (an expired
        token still proves where it came from); ``None`` for anything else."""
        try:
            decoded = jwt.decode_complete(
                token,
                self._private_key.public_key(),
                algorithms=["RS256"],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except jwt.PyJWTError:
            return None
        return decoded["header"], decoded["payload"]

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self._private_key.public_key()))
        jwk.update({"kid": self.key_id, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"
