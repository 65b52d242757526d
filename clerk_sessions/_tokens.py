"""The session-token cache: the whole get-or-fetch protocol, over a :class:`~._store.Store`.

Rules (``fapi-protocol.md`` §7 and §12, each from a real bug in Clerk's own SDKs):

- an entry is timed by its JWT's ``exp`` on the **server's** clock (``_clock.ServerClock``),
  never by when it was stored nor by this machine's calendar clock;
- a token with less than ``leeway`` seconds left is never returned; once fewer than
  ``refresh_ahead`` seconds remain, one background refresh starts and callers keep getting the
  still-valid token; a refresh that fails is not tried again for ``TOKEN_REFRESH_RETRY_DELAY``
  (no hot loop against a failing server);
- concurrent callers for one key share one request: a task the cache owns, not any caller's
  coroutine, so cancelling a caller (or its timeout) ends that caller's wait only; callers on
  other event loops (the sync facade's threads) share it too, and lead a new one if the loop
  it runs on has no caller left; a batch row runs the mint it starts itself (``inline``:
  cheaper), and callers that joined it lead anew if the batch is left; failures are not
  cached;
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
import contextlib
import math
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeGuard

from ._clock import ServerClock
from ._constants import TOKEN_REFRESH_RETRY_DELAY
from ._errors import APITimeoutError, AuthenticationError
from ._jwt import CachedToken, TokenKey, jwt_timing, token_key
from ._logging import logger
from ._runtime import bounded
from ._store import Store
from ._types import UNSET
from .models import Token

Minter = Callable[[TokenKey, bool], Awaitable[Token]]
"""``mint(key, force)``: one token request for ``key`` (within the client's timeout);
``force`` for ``skip_cache`` mints."""

Spawner = Callable[[Coroutine[Any, Any, None]], None]
"""Runs a coroutine in the background (a task on the running loop, or the sync portal)."""

_NEVER = float("inf")

# What a mint hands its waiting callers: (_TOKEN, token), (_ERROR, exception) or (_GONE, None)
# (stopped because no caller on its loop waited any more: a caller elsewhere leads anew).
_TOKEN: Any = object()
_ERROR: Any = object()
_GONE: Any = object()
_EXPIRED: Any = object()  # (a caller's own timer) it waited its whole timeout


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result((_EXPIRED, None))


class _Flight:
    """One shared mint: its task (on ``loop``) and the callers waiting, each on its own loop."""

    __slots__ = ("done", "keys", "loop", "task", "waiters")

    def __init__(self, key: TokenKey, loop: asyncio.AbstractEventLoop) -> None:
        self.keys = [key]
        """Its key, and the key of the device its string joined when its answer proved it
        (callers that learn of the proof share this mint rather than start another)."""
        self.loop = loop
        self.task: asyncio.Task[None] | None = None
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = []
        self.done = False


def _deliver(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any], outcome: tuple[Any, Any]
) -> None:
    """Hand ``outcome`` to a caller waiting on ``loop`` (maybe another thread's)."""

    def settle() -> None:
        if not waiter.done():  # it may have stopped waiting meanwhile
            waiter.set_result(outcome)

    try:
        running = asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover - always called from the mint's task
        running = None
    if loop is running:
        settle()
    else:
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits there
            loop.call_soon_threadsafe(settle)


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
        # Keys being minted -> the mint (a task of the cache, or a batch row) and its callers.
        self._inflight: dict[TokenKey, _Flight] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # every mint task not done yet
        # Devices of unproven client-token strings -> the device each turned out to be.
        self._joins: dict[str, str] = {}
        self._announcements: dict[str, Callable[[], Awaitable[None]]] = {}
        # Keys with a background refresh running (inf) or failed (not again before then).
        self._refresh_not_before: dict[TokenKey, float] = {}
        # The last session JWT seen per session, keyed by device key + session id (a plain
        # string: a tuple per token would be garbage the collector walks in a long batch): for
        # Clerk's minting protocol, and so that a session's unchanged last_active_token (in
        # every getSession) is not decoded again.
        self._seen: dict[str, str] = {}
        self.resolve: Callable[[TokenKey], Awaitable[TokenKey]] | None = None
        """``key`` with the device its string joined, once proven (asked of a shared store);
        set by the client."""
        self.generation = 0
        """Bumped by every sign-out: tokens minted or seen from requests begun before one are
        not kept (a late answer must not bring back a signed-out session's token)."""

    # -- the protocol ---------------------------------------------------------------------

    async def get(self, key: TokenKey, mint: Minter, timeout: float) -> str:
        """A usable token for ``key``: the kept one, or a new one minted (shared) by ``mint``
        within ``timeout`` seconds."""
        cached = await self.store.get(key)
        if cached is not None:
            remaining = cached.timing.expires_at - self.clock.now()
            if remaining > self.leeway:
                if remaining <= self.refresh_ahead:
                    self._refresh_ahead(key, mint, timeout)
                return cached.jwt
        return (await self.fetch(key, mint, timeout)).jwt

    async def fetch(
        self,
        key: TokenKey,
        mint: Minter,
        timeout: float,
        *,
        force: bool = False,
        since: float | None = None,
        inline: bool = False,
    ) -> Token:
        """Mint a token for ``key`` and keep it, sharing the request with concurrent callers;
        this caller waits at most ``timeout`` seconds (``APITimeoutError``).

        ``inline``: if this caller starts the mint, it runs in the caller's own coroutine, not
        in a task of the cache (a batch row: a task per row costs a tenth of a batch's time).
        Cancelling such a caller stops its mint; callers that joined it lead a new one.

        ``since`` (server time): a kept token issued since then is as new as a mint would be
        (a batch run by several processes mints each token once)."""
        if since is not None:
            cached = await self.store.get(key)
            if self._fresh(cached, self.leeway, since):
                return Token(jwt=cached.jwt)
        loop = asyncio.get_running_loop()
        deadline = self._monotonic() + timeout
        # An in-process mint ends within the client's timeout by itself (its request's
        # budget): a caller with at least that much needs no timer of its own.
        timed = self.store.shared or timeout < self.mint_lease
        while True:
            with self._lock:
                flight = self._inflight.get(key)
                lead = flight is None
                if flight is None:
                    flight = self._inflight[key] = _Flight(key, loop)
                    if not inline:
                        task = loop.create_task(self._fly(flight, key, mint, force, since))
                        flight.task = task
                        self._tasks.add(task)  # until done: close() waits for it
                        task.add_done_callback(self._tasks.discard)
                waiter = loop.create_future()
                flight.waiters.append((loop, waiter))
            if lead and inline:  # settles every waiter, this one included
                try:
                    fly = self._fly(flight, key, mint, force, since, inline=True)
                    await (bounded(fly, deadline - self._monotonic()) if timed else fly)
                except (asyncio.TimeoutError, TimeoutError):  # (3.10: not the same class)
                    _expire(waiter)
            timer = None
            if timed and not waiter.done():
                timer = loop.call_later(max(deadline - self._monotonic(), 0.0), _expire, waiter)
            try:
                outcome, value = await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                self._leave(flight, loop, waiter)
            if outcome is _TOKEN:
                return value  # type: ignore[no-any-return]
            if outcome is _ERROR:
                raise value
            if outcome is _EXPIRED:
                raise APITimeoutError(
                    f"get_token: no session token within {timeout:g} s (the shared mint is "
                    "still running for the callers with more time); pass a larger timeout."
                )
            # _GONE: the flight's own loop lost its last waiter and stopped it; lead anew

    def _leave(
        self, flight: _Flight, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any]
    ) -> None:
        """A caller stops waiting (answered, cancelled or out of time). The mint runs while a
        caller on its loop waits for it: that loop may stop running once its last caller has
        left (a blocking client's thread returns), so then the mint is abandoned at once and
        the callers on other loops lead a new one."""
        if flight.done:  # the usual case: answered (its waiter list is dead)
            return
        with self._lock:
            with contextlib.suppress(ValueError):
                flight.waiters.remove((loop, waiter))
            if flight.done or loop is not flight.loop:
                return
            if any(other is flight.loop for other, _ in flight.waiters):
                return
            flight.done = True
            self._forget(flight)
            others = list(flight.waiters)
        if flight.task is not None:
            flight.task.cancel()
        for other, pending in others:
            _deliver(other, pending, (_GONE, None))

    async def _fly(
        self,
        flight: _Flight,
        key: TokenKey,
        mint: Minter,
        force: bool,
        since: float | None,
        *,
        inline: bool = False,
    ) -> None:
        """The shared mint of ``key``: owned by the cache, not by any caller (cancelling a
        caller cancels its wait only); its outcome goes to every caller still waiting. Run
        ``inline`` by its first caller, its cancellation is that caller's (re-raised)."""
        generation = self.generation
        outcome: tuple[Any, Any] = (_GONE, None)
        try:
            if self.store.shared:
                token = await self._mint_once_for_all(key, mint, force, generation, since)
            else:
                token = await mint(key, force)
                keep = self._worth_keeping(token.jwt, generation)
                if keep is not None:
                    await self._keep(key, keep)
            outcome = (_TOKEN, token)
        except asyncio.CancelledError:
            if inline:  # the caller running it was cancelled: the others lead anew
                raise
            # _GONE: a waiter on another loop leads a new mint
        except Exception as exc:
            outcome = (_ERROR, exc)
            if isinstance(exc, AuthenticationError):  # the session is gone or not this device's
                with contextlib.suppress(Exception):
                    await self.drop(key[1], key[2])
        finally:
            await self._announce(key)  # a proof its answer brought, if not yet announced
            with self._lock:
                waiters = [] if flight.done else list(flight.waiters)  # done: abandoned
                flight.done = True
                self._forget(flight)
            for loop, waiter in waiters:
                if loop is flight.loop:  # the mint's own loop: no hop
                    if not waiter.done():
                        waiter.set_result(outcome)
                else:
                    _deliver(loop, waiter, outcome)

    async def _kept(self, key: TokenKey, cached: CachedToken | None) -> CachedToken | None:
        """``cached`` (kept for ``key``), or if there is none, the token kept for the device
        ``key``'s string joined: another process's mint may have proven it (and kept its
        token there) since this one looked."""
        if cached is not None or self.resolve is None:
            return cached
        joined = await self.resolve(key)
        return cached if joined is key else await self.store.get(joined)

    async def _announce(self, key: TokenKey) -> None:
        """Tell the other processes of a proof that a mint of ``key`` brought (now that its
        token, if any, is kept)."""
        if not self._announcements:
            return
        with self._lock:
            announce = self._announcements.pop(key[1], None)
        if announce is not None:
            with contextlib.suppress(Exception):  # a store never raises; a callback might
                await announce()

    def _forget(self, flight: _Flight) -> None:
        for key in flight.keys:  # (under the lock)
            if self._inflight.get(key) is flight:
                del self._inflight[key]

    async def _mint_once_for_all(
        self,
        key: TokenKey,
        mint: Minter,
        force: bool,
        generation: int,
        since: float | None,
    ) -> Token:
        """A shared store's single flight: one process mints, the others take its token.

        If the minting process fails or dies, its lease ends and a waiting one mints; a wait
        never takes more than half of a call's budget (the lease): then this process mints too,
        in the other half (a dead process's lease is never waited out)."""
        store, lease = self.store, self.mint_lease
        wait_until = self._monotonic() + lease / 2
        # A skip-cache mint takes another process's token only if that one was minted since
        # this began (iat is whole seconds), never the token it was asked to replace.
        minted_since = since if since is not None or not force else math.floor(self.clock.now())
        while True:
            if await store.begin_mint(key, lease):
                keep = None
                try:  # from here on, whatever happens (a cancellation too), the lease ends
                    # Another process may have finished this very mint between our lookup and
                    # our lease: take its token rather than mint twice.
                    kept = None if force else await self._kept(key, await store.get(key))
                    if self._fresh(kept, self.refresh_ahead, since):
                        return Token(jwt=kept.jwt)
                    token = await mint(key, force)
                    keep = self._worth_keeping(token.jwt, generation)
                finally:  # the token is kept, the lease released, the waiters woken
                    joined = self._joined_key(key)
                    if keep is not None and joined is not key:  # proven by this very mint
                        await store.put(joined, keep, self._ttl(keep))
                        keep = None  # the waiters find it under the device it joined
                    await self._announce(key)  # before the waiters wake and look
                    await store.end_mint(key, keep, 0.0 if keep is None else self._ttl(keep))
                return token
            left = wait_until - self._monotonic()
            if left <= 0:  # the other process is slow or gone: do not wait for its lease
                token = await mint(key, force)
                keep = self._worth_keeping(token.jwt, generation)
                if keep is not None:
                    await self._keep(key, keep)
                return token
            cached = await self._kept(key, await store.wait_mint(key, min(lease, left)))
            if self._fresh(cached, self.leeway, minted_since):
                return Token(jwt=cached.jwt)  # another process minted it

    def _refresh_ahead(self, key: TokenKey, mint: Minter, timeout: float) -> None:
        now = self._monotonic()
        with self._lock:
            if key in self._inflight or self._refresh_not_before.get(key, now) > now:
                return
            if len(self._refresh_not_before) >= self.max_entries:
                self._refresh_not_before.clear()
            self._refresh_not_before[key] = _NEVER
        self.spawn(self._refresh(key, mint, timeout))

    async def _refresh(self, key: TokenKey, mint: Minter, timeout: float) -> None:
        try:
            await self.fetch(key, mint, timeout)
        except Exception as exc:  # the kept token is still valid; a later lookup tries again
            with self._lock:
                self._refresh_not_before[key] = self._monotonic() + TOKEN_REFRESH_RETRY_DELAY
            logger.debug("background token refresh failed: %s", type(exc).__name__)
        else:
            with self._lock:
                self._refresh_not_before.pop(key, None)

    def stop(self) -> list[asyncio.Task[None]]:
        """The client closes: stop every mint in flight (their callers get a closed-client
        error rather than wait for their timeout). Returns those of the running loop, for the
        caller to wait for (a mint's end releases what it holds, e.g. a shared store's lease)."""
        with self._lock:
            tasks = list(self._tasks)
            # Not again those already stopped (abandoned): they are ending, releasing what
            # they hold, and a second cancellation would interrupt that.
            live = {flight.task for flight in self._inflight.values()}
        loop = asyncio.get_running_loop()
        here = []
        for task in tasks:
            if task.get_loop() is loop:
                if task in live:
                    task.cancel()
                here.append(task)
            elif task in live:
                with contextlib.suppress(RuntimeError):  # its loop is closed: nothing runs
                    task.get_loop().call_soon_threadsafe(task.cancel)
        return here

    # -- devices proven during a mint ------------------------------------------------------

    def joined(
        self,
        from_device: str,
        to_device: str,
        announce: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """The device ``from_device`` (a client-token string Clerk had not vouched for yet)
        turned out to be ``to_device``: tokens minted for it from now on are kept for the
        proven device (the first answer proves, and its result joins, ``api-contract.md``).

        ``announce`` tells the other processes. While a mint of ``from_device`` is in flight
        (the proof came from its answer) it runs once that token is kept, so no process learns
        of the proof before it can find the token (it would mint again); returns whether
        the caller must announce it now instead."""
        with self._lock:
            if len(self._joins) >= self.max_entries:
                self._joins.clear()
            self._joins[from_device] = to_device
            minting = False
            for key, flight in list(self._inflight.items()):
                if key[1] == from_device and not flight.done:
                    minting = True
                    alias = (key[0], to_device, *key[2:])
                    if alias not in self._inflight:
                        self._inflight[alias] = flight
                        flight.keys.append(alias)
            if announce is None or not minting:
                return announce is not None
            self._announcements[from_device] = announce
            return False

    async def _keep(self, key: TokenKey, token: CachedToken) -> None:
        """Keep a minted token for ``key``'s device, or for the device it joined if the mint
        proved its string (never under the unproven key: a sign-out drops the proven one)."""
        await self.store.put(self._joined_key(key), token, self._ttl(token))

    def _joined_key(self, key: TokenKey) -> TokenKey:
        to_device = self._joins.get(key[1]) if self._joins else None
        return key if to_device is None else (key[0], to_device, *key[2:])

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
