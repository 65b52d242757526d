"""``python -m clerk_sessions.testing [--port N]``: run the emulator as a standalone server.

It prints the URL, a publishable key and a signed-in demo device, then serves until interrupted.
Point any client at it with ``--frontend-api-url`` / ``CLERK_FRONTEND_API_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from . import FrontendAPIEmulator


async def _serve(args: argparse.Namespace) -> None:
    async with FrontendAPIEmulator(
        host=args.host,
        port=args.port,
        token_lifetime=args.token_lifetime,
        rotate_client_tokens=args.rotate_client_tokens,
        require_expired_token=args.require_expired_token,
        session_minter=args.session_minter,
        seed=args.seed,
    ) as fapi:
        user = fapi.create_user(
            email="jane+clerk_test@example.com",
            phone="+12015550100",
            password="correct-horse",
            second_factors=("phone_code",),
        )
        fapi.create_organization("Acme", slug="acme", members={user.id: "org:admin"})
        device = fapi.sign_in(user)
        # This is a local test server: its demo credentials are meant to be copied.
        print(f"Clerk Frontend API emulator on {fapi.url}", flush=True)
        print(f"  CLERK_FRONTEND_API_URL={fapi.url}")
        print(f"  CLERK_PUBLISHABLE_KEY={fapi.publishable_key}")
        print(f"  CLERK_CLIENT_TOKEN={device.client_token}")
        print(f"  session id: {device.session_id} (user {user.id}, password correct-horse)")
        print(f"  JWKS: {fapi.jwks_url}")
        print("Press Ctrl+C to stop.", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
