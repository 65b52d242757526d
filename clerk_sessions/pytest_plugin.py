"""pytest fixtures for testing code that uses clerk_sessions (registered via ``pytest11``).

- ``clerk_emulator``: a running ``FrontendAPIEmulator`` (served from a background thread, so it
  works in sync tests and in any async test, whatever the async plugin);
- ``clerk_device``: a fresh user signed in on a fresh device (``SignedIn``);
- ``clerk_sync_client``: a ``ClerkSessions`` acting for ``clerk_device``;
- ``clerk_client``: an ``AsyncClerkSessions`` acting for ``clerk_device``. It is an async
  fixture: run async tests with anyio's plugin (``@pytest.mark.anyio``, bundled with anyio) or
  pytest-asyncio in auto mode.

Both clients run on the emulator's clock (``clerk_emulator.clock``): after
``clerk_emulator.clock.advance(3600)`` they see their cached tokens expired, as the server does.

The emulator is imported only when a fixture is used, so without the ``testing`` extra pytest
runs as before (a fixture then fails with the install hint).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from clerk_sessions import AsyncClerkSessions, ClerkSessions
    from clerk_sessions.testing import FrontendAPIEmulator, SignedIn


@pytest.fixture
def clerk_emulator() -> Iterator[FrontendAPIEmulator]:
    from clerk_sessions.testing import FrontendAPIEmulator

    with FrontendAPIEmulator() as emulator:
        yield emulator


@pytest.fixture
def clerk_device(clerk_emulator: FrontendAPIEmulator) -> SignedIn:
    return clerk_emulator.sign_in()


@pytest.fixture
def clerk_sync_client(
    clerk_emulator: FrontendAPIEmulator, clerk_device: SignedIn
) -> Iterator[ClerkSessions]:
    with clerk_emulator.sync_client(clerk_device) as client:
        yield client


@pytest.fixture
async def clerk_client(
    clerk_emulator: FrontendAPIEmulator, clerk_device: SignedIn
) -> AsyncIterator[AsyncClerkSessions]:
    async with clerk_emulator.async_client(clerk_device) as client:
        yield client
