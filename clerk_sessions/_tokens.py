"""The session-token cache: the whole get-or-fetch protocol, over a :class:`~._store.Store`.

Rules (``fapi-protocol.md`` §7 and §12, each from a real bug in Clerk's own SDKs):

- an entry is timed by its JWT's ``exp`` on the **server's** clock (``_clock.ServerClock``),
  never by when it was stored nor by this machine's calendar clock;
- a token with less than ``leeway`` seconds left is never returned; once fewer than
  ``refresh_ahead`` seconds remain, one background refresh starts and callers keep getting the
  still-valid token; a refresh that fails is not tried again for ``TOKEN_REFRESH_RETRY_DELAY``
  (no hot loop against a failing server);
- concurrent callers for one key share one request (a ``concurrent.futures.Future``, so callers
  on different event loops — the sync facade's threads — share it too); failures are not
  cached; if the caller leading a shared request is cancelled, one of the callers that joined it
  takes over instead of failing;
- freshness never goes backwards: a token replaces another only if its ``oiat`` header (then its
  ``iat``) is not older (the store enforces it);
- a sign-out drops the session's (or device's) tokens, and a mint that was already in flight
  when it happened is returned but not kept.

The cache also remembers the last session JWT it saw per session (minted, or a session's
``last_active_token``, even expired): Clerk's 2026 minting protocol sends it back (§7b).
The cache does no HTTP: the client hands it a mint function.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeGuard

from ._clock import ServerClock
from ._constants import TOKEN_REFRESH_RETRY_DELAY
from ._errors import AuthenticationError
from ._jwt import CachedToken, TokenKey, jwt_timing, token_key
from ._logging import logger
from ._store import Store
from ._types import UNSET
from .models import Token

Minter = Callable[[TokenKey, bool], Awaitable[Token]]
"""``mint(key, force)``: one token request for ``key``; ``force`` for ``skip_cache`` mints."""

Spawner = Callable[[Coroutine[Any, Any, None]], None]
"""Runs a coroutine in the background (a task on the running loop, or the sync portal)."""

_LEADER_GONE: Any = object()  # the leader was cancelled: a joined caller leads instead
_NEVER = float("inf")


class TokenCache:
    """Session tokens of one client and all its views (thread-safe; one per client)."""

    def __init__(
        self,
        host: str,
        store: Store,
        clock: ServerClock,
        monotonic: Callable[[], float],
        spawn: Spawner,
        *,
        leeway: float,
        refresh_ahead: float,
        max_entries: int,
        mint_lease: float,
    ) -> None:
        self.host = host
        """The Frontend API whose tokens these are (the first part of every key)."""
        self.store = store
        self.clock = clock
        self.leeway = leeway
        self.refresh_ahead = refresh_ahead
        self.max_entries = max_entries
        self.spawn = spawn
        self.mint_lease = mint_lease
        """Seconds another process waits for this one's mint before minting itself."""
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # Keys being minted → futures of the callers waiting for that mint. The leader has
        # none: a Future (a Condition and two locks) is made only for a caller that joins.
        self._inflight: dict[TokenKey, list[concurrent.futures.Future[Any]]] = {}
        # Keys with a background refresh running (inf) or failed (not again before then).
        self._refresh_not_before: dict[TokenKey, float] = {}
        # The last session JWT seen per session, keyed by device key + session id (a plain
        # string: a tuple per token would be garbage the collector walks in a long batch): for
        # Clerk's minting protocol, and so that a session's unchanged last_active_token (in
        # every getSession) is not decoded again.
        self._seen: dict[str, str] = {}
        self.generation = 0
        """Bumped by every sign-out: tokens minted or seen from requests begun before one are
        not kept (a late answer must not bring back a signed-out session's token)."""

    # -- the protocol ---------------------------------------------------------------------

    async def get(self, key: TokenKey, mint: Minter) -> str:
        """A usable token for ``key``: the kept one, or a new one minted (shared) by ``mint``."""
        cached = await self.store.get(key)
        if cached is not None:
            remaining = cached.timing.expires_at - self.clock.now()
            if remaining > self.leeway:
                if remaining <= self.refresh_ahead:
                    self._refresh_ahead(key, mint)
                return cached.jwt
        return (await self.fetch(key, mint)).jwt

    async def fetch(
        self, key: TokenKey, mint: Minter, *, force: bool = False, since: float | None = None
    ) -> Token:
        """Mint a token for ``key`` and keep it, sharing the request with concurrent callers.

        ``since`` (server time): a kept token issued since then is as new as a mint would be
        (a batch run by several processes mints each token once)."""
        if since is not None:
            cached = await self.store.get(key)
            if self._fresh(cached, self.leeway, since):
                return Token(jwt=cached.jwt)
        while True:
            joined = self._join_or_lead(key)
            if joined is None:
                break
            result = await asyncio.wrap_future(joined)
            if result is not _LEADER_GONE:
                return result  # type: ignore[no-any-return]
        generation = self.generation
        try:
            if self.store.shared:
                token = await self._mint_once_for_all(key, mint, force, generation, since)
            else:
                token = await mint(key, force)
                keep = self._worth_keeping(token.jwt, generation)
                if keep is not None:
                    await self.store.put(key, keep, self._ttl(keep))
        except asyncio.CancelledError:
            self._finish(key, _LEADER_GONE)
            raise
        except BaseException as exc:
            self._finish(key, error=exc)
            if isinstance(exc, AuthenticationError):  # the session is gone or not this device's
                await self.drop(key[1], key[2])
            raise
        self._finish(key, token)
        return token

    async def _mint_once_for_all(
        self, key: TokenKey, mint: Minter, force: bool, generation: int, since: float | None
    ) -> Token:
        """A shared store's single flight: one process mints, the others take its token.

        If the minting process fails or dies, its lease ends and a waiting one mints."""
        store, lease = self.store, self.mint_lease
        while True:
            if await store.begin_mint(key, lease):
                # Another process may have finished this very mint between our lookup and our
                # lease: take its token rather than mint twice.
                kept = None if force else await store.get(key)
                if self._fresh(kept, self.refresh_ahead, since):
                    await store.end_mint(key, None, 0.0)
                    return Token(jwt=kept.jwt)
                keep = None
                try:
                    token = await mint(key, force)
                    keep = self._worth_keeping(token.jwt, generation)
                finally:  # the token is kept, the lease released, the waiters woken
                    await store.end_mint(key, keep, 0.0 if keep is None else self._ttl(keep))
                return token
            cached = await store.wait_mint(key, lease)
            if self._fresh(cached, self.leeway):
                return Token(jwt=cached.jwt)  # another process minted it

    def _refresh_ahead(self, key: TokenKey, mint: Minter) -> None:
        now = self._monotonic()
        with self._lock:
            if key in self._inflight or self._refresh_not_before.get(key, now) > now:
                return
            if len(self._refresh_not_before) >= self.max_entries:
                self._refresh_not_before.clear()
            self._refresh_not_before[key] = _NEVER
        self.spawn(self._refresh(key, mint))

    async def _refresh(self, key: TokenKey, mint: Minter) -> None:
        try:
            await self.fetch(key, mint)
        except Exception as exc:  # the kept token is still valid; a later lookup tries again
            with self._lock:
                self._refresh_not_before[key] = self._monotonic() + TOKEN_REFRESH_RETRY_DELAY
            logger.debug("background token refresh failed: %s", type(exc).__name__)
        else:
            with self._lock:
                self._refresh_not_before.pop(key, None)

    def _join_or_lead(self, key: TokenKey) -> concurrent.futures.Future[Any] | None:
        """None if the caller must mint ``key`` (it leads), else a future of that result."""
        with self._lock:
            waiters = self._inflight.get(key)
            if waiters is None:
                self._inflight[key] = []
                return None
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            waiters.append(future)
            return future

    def _finish(
        self, key: TokenKey, result: Any = None, error: BaseException | None = None
    ) -> None:
        """The leader is done: hand its result (or error) to every caller that joined."""
        with self._lock:
            waiters = self._inflight.pop(key, None)
        if waiters:
            for future in waiters:
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)

    # -- what the cache keeps ---------------------------------------------------------------

    def _worth_keeping(self, jwt: str, generation: int) -> CachedToken | None:
        """A newly minted token, if the store should keep it (its ``iat`` is also a sample
        of the server's clock)."""
        timing = jwt_timing(jwt)
        if timing is None:
            return None
        self.clock.observe_issued_at(timing.issued_at)
        # (the client noted it as the session's last token when the mint answered)
        if generation != self.generation:  # signed out while this token was being minted
            return None
        token = CachedToken(jwt, timing)
        return token if self._ttl(token) > self.leeway else None

    def _ttl(self, token: CachedToken) -> float:
        """Seconds ``token`` has left on the server's clock."""
        return token.timing.expires_at - self.clock.now()

    def _fresh(
        self, token: CachedToken | None, margin: float, since: float | None = None
    ) -> TypeGuard[CachedToken]:
        """``token`` has more than ``margin`` seconds left (and was issued at ``since`` or
        later, when given)."""
        return (
            token is not None
            and (since is None or token.timing.issued_at >= since)
            and self._ttl(token) > margin
        )

    def seen(self, device: str, session_id: str, jwt: str) -> bool:
        """Whether ``jwt`` is the last token seen for the session (nothing new to learn)."""
        return self._seen.get(device + session_id) == jwt  # device keys have a fixed length

    def note_seen(self, device: str, session_id: str, jwt: str) -> None:
        if len(self._seen) >= self.max_entries:
            self._seen.clear()  # bounded; a forgotten session falls back to getSession (§7b)
        self._seen[device + session_id] = jwt

    def last_token(self, device: str, session_id: str) -> str | None:
        """The last session JWT seen for the session, even expired (§7b ``expired_token``)."""
        return self._seen.get(device + session_id)

    async def seed(
        self, device: str, session_id: str, jwt: str, *, active: bool, generation: int
    ) -> None:
        """A session's ``last_active_token`` from a response sent at ``generation``."""
        self.note_seen(device, session_id, jwt)
        if not active or generation != self.generation:
            return
        timing = jwt_timing(jwt)
        if timing is None:
            return
        ttl = timing.expires_at - self.clock.now()
        if ttl > self.leeway:
            key = token_key(self.host, device, session_id, None, UNSET)
            await self.store.put(key, CachedToken(jwt, timing), ttl)

    async def drop(self, device: str, session_id: str | None) -> None:
        """Sign-out: forget the session's tokens (or the device's), here and in the store."""
        with self._lock:
            self.generation += 1
        await self.store.drop(self.host, device, session_id)
