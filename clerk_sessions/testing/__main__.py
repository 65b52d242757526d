"""``python -m clerk_sessions.testing [--port N]``: run the emulator as a standalone server.

It prints the URL, a publishable key and a signed-in demo device, then serves until interrupted.
Point any client at it with ``--frontend-api-url`` / ``CLERK_FRONTEND_API_URL``. The JWT
templates the README's examples name (``--template supabase``) exist here too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Mapping
from typing import Any

from . import FrontendAPIEmulator, SignedIn

MAX_LOGGED_REQUESTS = 10_000
"""The request log keeps this many (the newest): a server left running must not grow for ever."""

JWT_TEMPLATES: Mapping[str, Mapping[str, Any]] = {
    # Clerk's Supabase template: Supabase reads ``aud``/``role`` and the user's email.
    "supabase": {
        "aud": "authenticated",
        "role": "authenticated",
        "email": "{{user.primary_email_address}}",
        "app_metadata": {},
        "user_metadata": {},
    },
}
"""JWT templates of the standalone server, by name: every one the README's examples use."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clerk_sessions.testing",
        description="Run a local Clerk Frontend API emulator (Sessions endpoints, native auth).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--token-lifetime", type=int, default=60, help="session JWT seconds")
    parser.add_argument(
        "--rotate-client-tokens",
        action="store_true",
        help="send a new client token with every answer",
    )
    parser.add_argument(
        "--require-expired-token",
        action="store_true",
        help="answer /tokens without ?expired_token= with 422 missing_expired_token",
    )
    parser.add_argument(
        "--session-minter",
        action="store_true",
        help="expect /tokens to carry the previous session token (body field token)",
    )
    parser.add_argument("--seed", type=int, default=None, help="deterministic IDs and codes")
    return parser


def make_emulator(args: argparse.Namespace) -> FrontendAPIEmulator:
    """The server as the command line asks for it, its request log capped."""
    return FrontendAPIEmulator(
        host=args.host,
        port=args.port,
        token_lifetime=args.token_lifetime,
        rotate_client_tokens=args.rotate_client_tokens,
        require_expired_token=args.require_expired_token,
        session_minter=args.session_minter,
        seed=args.seed,
        max_logged_requests=MAX_LOGGED_REQUESTS,
    )


def set_up(fapi: FrontendAPIEmulator) -> SignedIn:
    """The demo user (in organization ``acme``), the JWT templates, and a signed-in device."""
    user = fapi.create_user(
        email="jane+clerk_test@example.com",
        phone="+12015550100",
        password="correct-horse",
        second_factors=("phone_code",),
    )
    fapi.create_organization("Acme", slug="acme", members={user.id: "org:admin"})
    for name, claims in JWT_TEMPLATES.items():
        fapi.create_jwt_template(name, claims)
    return fapi.sign_in(user)


async def _serve(args: argparse.Namespace) -> None:
    async with make_emulator(args) as fapi:
        device = set_up(fapi)
        # This is a local test server: its demo credentials are meant to be copied.
        print(f"Clerk Frontend API emulator on {fapi.url}", flush=True)
        print(f"  CLERK_FRONTEND_API_URL={fapi.url}")
        print(f"  CLERK_PUBLISHABLE_KEY={fapi.publishable_key}")
        print(f"  CLERK_CLIENT_TOKEN={device.client_token}")
        print(f"  session id: {device.session_id} (user {device.user_id}, password correct-horse)")
        print(f"  JWT templates: {', '.join(JWT_TEMPLATES)}")
        print(f"  JWKS: {fapi.jwks_url}")
        print("Press Ctrl+C to stop.", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
