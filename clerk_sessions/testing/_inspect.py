"""A look inside a client, for tests: what it shares, keeps and still has running.

Tests (ours and users') assert through the server or the emulator wherever they can; what only
the client knows — which device a view acts for, how many tokens it keeps, whether background
work is done — is read here, in one documented place, instead of through private attributes
that change between releases.
"""

from __future__ import annotations

import asyncio
from typing import Any

import attrs

from clerk_sessions._client import AsyncClerkSessions
from clerk_sessions._store import MemoryStore, Store
from clerk_sessions._sync import ClerkSessions

__all__ = ["ClientInspection", "inspect", "settle"]


@attrs.frozen
class ClientInspection:
    """What :func:`inspect` reads from a client or view, at the moment it is called."""

    device: str
    """The key of the device (Clerk client) this client or view acts for: views made with
    tokens of one proven device have the same key, and share its cache entries and rotations."""
    devices: int
    """Device records the client and its views keep (bounded: the least recently used go)."""
    kept_tokens: int | None
    """Session tokens the in-process store keeps (None for another store, e.g. Redis)."""
    store: Store
    """Where session tokens are kept."""
    session_minter: bool
    """Whether the client sends the previous token when minting (Clerk's Session Minter)."""
    family: object = attrs.field(repr=False)
    """The same object for a client and every view of it (one pool, cache and server clock)."""
    background: int
    """Background tasks still running (refreshes ahead of expiry, store writes)."""

    def shares_state_with(self, other: ClientInspection) -> bool:
        """Whether both were read from one client family (one pool, cache and server clock)."""
        return self.family is other.family


def _core(client: AsyncClerkSessions | ClerkSessions | Any) -> AsyncClerkSessions:
    core = getattr(client, "_async", client)
    if not isinstance(core, AsyncClerkSessions):
        raise TypeError(
            f"inspect() takes an AsyncClerkSessions or ClerkSessions, got {type(client).__name__}"
        )
    return core


def inspect(client: AsyncClerkSessions | ClerkSessions) -> ClientInspection:
    """Read what ``client`` (or a view of it) shares, keeps and still runs."""
    core = _core(client)
    shared = core._shared
    store = shared.tokens.store
    return ClientInspection(
        device=core._current_device().key,
        devices=len(shared.devices),
        kept_tokens=len(store) if isinstance(store, MemoryStore) else None,
        store=store,
        session_minter=shared.session_minter,
        family=shared,
        background=sum(not task.done() for task in shared.background),
    )


async def settle(client: AsyncClerkSessions) -> None:
    """Wait until the background work ``client`` started on this loop is done (a refresh ahead
    of expiry, say): there is no other way to know it finished. Failures are the client's to
    log, not raised here."""
    loop = asyncio.get_running_loop()
    shared = _core(client)._shared
    mine = [task for task in shared.background if task.get_loop() is loop]
    await asyncio.gather(*mine, return_exceptions=True)
