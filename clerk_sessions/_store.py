"""Where session tokens are kept: the :class:`Store` interface and its in-process default.

The token cache (``_tokens.TokenCache``) owns the protocol — timing on the server's clock,
single flight, refresh-ahead, freshness — and keeps the tokens themselves in a store. The
default, :class:`MemoryStore`, lives in this process. A shared store (Redis) lets every process
of a deployment see the same tokens; its methods are async and nothing above this interface
assumes that an entry lives in this process.

Keys name the Frontend API host, the device (a hash, never a token: ``_devices.device_key``),
the session, the JWT template and the organization.
"""

from __future__ import annotations

import abc
import threading
from collections import OrderedDict

from ._jwt import CachedToken, TokenKey

_SWEEP_INTERVAL = 60.0


class Store(abc.ABC):
    """Keeps session tokens for the token cache. Implement it to share tokens elsewhere.

    Every method may be called concurrently, from several event loops (the blocking client runs
    one per thread); none may raise because the backing service is unavailable — answer as if
    the entry were absent, and let the cache mint.
    """

    @abc.abstractmethod
    async def get(self, key: TokenKey) -> CachedToken | None:
        """The token kept for ``key``, or None."""

    @abc.abstractmethod
    async def put(self, key: TokenKey, token: CachedToken, ttl: float) -> None:
        """Keep ``token`` for ``key`` unless the one kept is fresher (``token.fresher_than``).

        ``ttl`` is how long the token lives on the server's clock: a shared store should expire
        the entry then, never later.
        """

    @abc.abstractmethod
    async def drop(self, host: str, device: str, session_id: str | None) -> None:
        """Forget a session's tokens (every template and organization), or a whole device's
        (``session_id=None``): the session was signed out."""

    async def aclose(self) -> None:  # noqa: B027 - optional: most stores hold nothing to close
        """Release what the store holds (called when the client that created it closes)."""


class MemoryStore(Store):
    """The in-process store: bounded (least recently used go first), expired entries swept.

    Thread-safe: the sync facade's threads share it. Its coroutines never await, so a cached
    token costs a dict lookup.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[TokenKey, CachedToken] = OrderedDict()
        self._lock = threading.Lock()
        self._last_sweep = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryStore(entries={len(self._entries)}, max_entries={self.max_entries})"

    async def get(self, key: TokenKey) -> CachedToken | None:
        with self._lock:
            token = self._entries.get(key)
            if token is not None:
                self._entries.move_to_end(key)
            return token

    async def put(self, key: TokenKey, token: CachedToken, ttl: float) -> None:
        now = token.timing.expires_at - ttl
        with self._lock:
            current = self._entries.get(key)
            if current is not None and current.fresher_than(token):
                return
            self._entries[key] = token
            self._entries.move_to_end(key)
            self._evict(now)

    async def drop(self, host: str, device: str, session_id: str | None) -> None:
        with self._lock:
            for key in [
                k
                for k in self._entries
                if k[1] == device and k[0] == host and (session_id is None or k[2] == session_id)
            ]:
                del self._entries[key]

    def _evict(self, now: float) -> None:
        # Expired entries go in a sweep at most once a minute (O(n), amortised); beyond the cap
        # the least recently used go one by one (O(1)), so a full store stays cheap.
        if now - self._last_sweep >= _SWEEP_INTERVAL:
            self._last_sweep = now
            for stale in [k for k, t in self._entries.items() if t.timing.expires_at <= now]:
                del self._entries[stale]
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
