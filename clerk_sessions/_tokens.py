"""The session-token cache: timing from the JWT itself, single flight, freshness, bounded size.

Rules (``fapi-protocol.md`` §7, each from a real bug in Clerk's own SDKs):

- an entry is timed by its JWT's ``iat``/``exp``, never by when it was stored;
- a token with less than ``leeway`` seconds left is never returned; once fewer than
  ``refresh_ahead`` seconds remain, one background refresh starts and callers keep getting the
  still-valid token until the new one is stored;
- concurrent callers for one key share one request (a ``concurrent.futures.Future``, so callers
  on different event loops — the sync facade's threads — share it too); failures are not cached;
- freshness never goes backwards: a token replaces another only if its ``oiat`` header (then its
  ``iat``) is not older;
- the cache holds at most ``max_entries`` keys (least recently used go first; expired ones are
  swept on insert).

The cache does no I/O: the client mints tokens and hands them in.
"""

from __future__ import annotations

import binascii
import concurrent.futures
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import orjson

from ._types import Unset

_SWEEP_INTERVAL = 60.0

CacheKey = tuple[int, str, str | None, str | Unset | None]
"""(client identity, session id, template, organization id); see :func:`cache_key`."""


def cache_key(
    client_identity: int,
    session_id: str,
    template: str | None,
    organization_id: str | Unset | None,
) -> CacheKey:
    # None and "" both select the personal account: one key (UNSET, falsy too, stays apart).
    personal = organization_id == ""
    return (client_identity, session_id, template, None if personal else organization_id)


class JwtTiming:
    """What the cache needs from a JWT: its lifetime and its freshness order."""

    __slots__ = ("expires_at", "issued_at", "origin_issued_at")

    def __init__(self, issued_at: float, expires_at: float, origin_issued_at: float | None):
        self.issued_at = issued_at
        self.expires_at = expires_at
        self.origin_issued_at = origin_issued_at
        """The ``oiat`` header: when the session state behind the token was issued."""

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


def _segment(segment: str) -> Any:
    # What base64.urlsafe_b64decode does, without its Python layers (most of its cost).
    standard = segment.replace("-", "+").replace("_", "/") + "=" * (-len(segment) % 4)
    return orjson.loads(binascii.a2b_base64(standard))


def jwt_timing(jwt: str) -> JwtTiming | None:
    """``iat``/``exp`` (and ``oiat``) of a JWT, unverified; None if it cannot be read."""
    try:
        header, payload, _signature = jwt.split(".")
        claims, head = _segment(payload), _segment(header)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return None
    if type(claims) is not dict or type(head) is not dict:  # orjson makes plain dicts
        return None
    iat: Any = claims.get("iat")
    exp: Any = claims.get("exp")
    oiat: Any = head.get("oiat")
    # JSON numbers only (orjson gives exactly int or float; a bool is neither).
    if type(iat) not in _NUMBERS or type(exp) not in _NUMBERS:
        return None
    return JwtTiming(float(iat), float(exp), float(oiat) if type(oiat) in _NUMBERS else None)


_NUMBERS = frozenset({int, float})


class _Entry:
    __slots__ = ("jwt", "refreshing", "timing")

    def __init__(self, jwt: str, timing: JwtTiming) -> None:
        self.jwt = jwt
        self.timing = timing
        self.refreshing = False


class TokenCache:
    """Thread-safe store of session tokens; shared by a client and its ``with_client_token``s."""

    def __init__(self, *, leeway: float, refresh_ahead: float, max_entries: int) -> None:
        self.leeway = leeway
        self.refresh_ahead = refresh_ahead
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        # Keys being fetched → futures of the callers waiting for that fetch. The leader has
        # none: a Future (a Condition and two locks) is made only for a caller that joins.
        self._inflight: dict[CacheKey, list[concurrent.futures.Future[Any]]] = {}
        self._lock = threading.Lock()
        self._last_sweep = float("-inf")
        # The last token refused per key (unreadable or about to expire): session responses
        # repeat their stale last_active_token on every call; decode it once, not every time.
        self._rejected: dict[CacheKey, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: CacheKey, now: float) -> tuple[str | None, bool]:
        """``(jwt, refresh_now)``: a usable token (or None), and whether the caller should start
        the one background refresh for it."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None, False
            remaining = entry.timing.expires_at - now
            if remaining <= self.leeway:
                return None, False
            self._entries.move_to_end(key)
            if (
                remaining <= self.refresh_ahead
                and not entry.refreshing
                and key not in self._inflight
            ):
                entry.refreshing = True
                return entry.jwt, True
            return entry.jwt, False

    def store(self, key: CacheKey, jwt: str, now: float) -> None:
        """Keep ``jwt`` for ``key`` unless the cached one is fresher (or this one is unreadable)."""
        current = self._entries.get(key)
        if current is not None and current.jwt == jwt:  # seen again (e.g. every getSession)
            return
        if self._rejected.get(key) == jwt:  # a stale last_active_token, seen again: no decode
            return
        timing = jwt_timing(jwt)
        if timing is None or timing.expires_at - now <= self.leeway:
            if len(self._rejected) >= self.max_entries:
                self._rejected.clear()
            self._rejected[key] = jwt
            return
        with self._lock:
            current = self._entries.get(key)
            if current is not None and current.timing.freshness > timing.freshness:
                current.refreshing = False
                return
            self._entries[key] = _Entry(jwt, timing)
            self._entries.move_to_end(key)
            self._evict(now)

    def _evict(self, now: float) -> None:
        # Expired entries go in a sweep at most once a minute (O(n), amortised); beyond the
        # cap the least recently used go one by one (O(1)), so a full cache stays cheap.
        if now - self._last_sweep >= _SWEEP_INTERVAL:
            self._last_sweep = now
            for stale in [k for k, e in self._entries.items() if e.timing.expires_at <= now]:
                del self._entries[stale]
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def store_and_finish(self, key: CacheKey, jwt: str, now: float, result: Any) -> None:
        """:meth:`store` the leader's new token, then :meth:`finish` with it (one call)."""
        self.store(key, jwt, now)
        with self._lock:
            waiters = self._inflight.pop(key, None)
        if waiters:
            for future in waiters:
                future.set_result(result)

    def refresh_failed(self, key: CacheKey) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.refreshing = False

    def join_or_lead(self, key: CacheKey) -> concurrent.futures.Future[Any] | None:
        """None if the caller must fetch ``key`` (it leads), else a future of that result."""
        with self._lock:
            waiters = self._inflight.get(key)
            if waiters is None:
                self._inflight[key] = []
                return None
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            waiters.append(future)
            return future

    def finish(self, key: CacheKey, result: Any = None, error: BaseException | None = None) -> None:
        """The leader is done: hand its result (or error) to every caller that joined."""
        with self._lock:
            waiters = self._inflight.pop(key, [])
        for future in waiters:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def drop(self, key: CacheKey) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def drop_matching(self, client_identity: int, session_id: str | None = None) -> None:
        """Forget a session's tokens (every template and organization), or a whole client's."""

        def matches(key: Hashable) -> bool:
            assert isinstance(key, tuple)
            return key[0] == client_identity and (session_id is None or key[1] == session_id)

        with self._lock:
            for key in [k for k in self._entries if matches(k)]:
                del self._entries[key]
