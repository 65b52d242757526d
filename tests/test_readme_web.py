"""The README's FastAPI example, run as written: a view per request, one mint per device.

The code block is read from README.md and executed (with the emulator's publishable key in place
of ``pk_live_…``, and the two functions the README leaves to the reader), then served through
httpx's ASGI transport with FastAPI's own lifespan. If the README's pattern stopped sharing the
token cache between views, this test would count a mint per request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from clerk_sessions.testing import FrontendAPIEmulator, SignedIn

from .conftest import REPO

pytestmark = pytest.mark.anyio

_INTRO = "A backend acting for many devices (FastAPI style):"


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    after = text[text.index(_INTRO) :]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match is not None, "the README's FastAPI example has no python block"
    return match.group(1)


@pytest.fixture
def fapi() -> Iterator[FrontendAPIEmulator]:
    with FrontendAPIEmulator() as emulator:
        yield emulator


async def test_the_readme_web_example_mints_once_for_many_requests(
    fapi: FrontendAPIEmulator,
) -> None:
    device: SignedIn = fapi.sign_in()
    jwts_sent: list[str] = []

    def current_device() -> Any:  # the app's own auth dependency, left to the reader
        return SimpleNamespace(client_token=device.client_token, session_id=device.session_id)

    async def call_orders_api(jwt: str) -> dict[str, int]:
        jwts_sent.append(jwt)
        return {"orders": 0}

    source = readme_example()
    assert '"pk_live_…"' in source
    namespace: dict[str, Any] = {
        "current_device": current_device,
        "call_orders_api": call_orders_api,
    }
    exec(
        compile(source.replace('"pk_live_…"', repr(fapi.publishable_key)), "README", "exec"),
        namespace,
    )
    app = namespace["app"]

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            for _ in range(50):
                response = await http.get("/proxy/orders")
                assert response.status_code == 200
    mints = [r for r in fapi.requests if r.operation == "create_session_token"]
    assert len(mints) == 1  # 50 requests, 50 views, one device: one token
    assert len(set(jwts_sent)) == 1
    assert len(jwts_sent) == 50


def test_the_readme_web_example_survives_a_lifespan_that_runs_twice(
    fapi: FrontendAPIEmulator,
) -> None:
    """Two test-client blocks in one test session (Starlette's ``TestClient`` does this): each
    runs the lifespan on an event loop of its own, so the module-level client is entered,
    closed, and entered again."""
    import asyncio

    device: SignedIn = fapi.sign_in()

    async def call_orders_api(jwt: str) -> dict[str, int]:
        assert jwt.count(".") == 2
        return {"orders": 0}

    namespace: dict[str, Any] = {
        "current_device": lambda: SimpleNamespace(
            client_token=device.client_token, session_id=device.session_id
        ),
        "call_orders_api": call_orders_api,
    }
    source = readme_example().replace('"pk_live_…"', repr(fapi.publishable_key))
    exec(compile(source, "README", "exec"), namespace)
    app = namespace["app"]

    async def one_block() -> int:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                return (await http.get("/proxy/orders")).status_code

    assert [asyncio.run(one_block()) for _ in range(2)] == [200, 200]
