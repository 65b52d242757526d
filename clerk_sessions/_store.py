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
from collections.abc import Sequence

from ._jwt import CachedToken, TokenKey

_SWEEP_INTERVAL = 60.0


class Store(abc.ABC):
    """Keeps session tokens for the token cache. Implement it to share tokens elsewhere.

    Every method may be called concurrently, from several event loops (the blocking client runs
    one per thread); none may raise because the backing service is unavailable — answer as if
    the entry were absent (or this process were alone), and let the cache mint.

    A store shared by several processes (``shared = True``) also coordinates them: one process
    mints a token while the others wait for it (``begin_mint``/``wait_mint``/``end_mint``), and
    it holds each device's current client token (``client_token``/``swap_client_token``). The
    in-process defaults below make this process the only one.
    """

    shared: bool = False
    """Other processes use this store too: ask it for devices' client tokens and mints."""

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

    # -- one mint for all processes (in-process default: this process always mints) ----------

    async def begin_mint(self, key: TokenKey, lease: float) -> bool:
        """True if this process should mint ``key`` now (it holds the lease for at most
        ``lease`` seconds, so a process that dies mid-mint does not block the others for
        long); False if another process is minting it (then ``wait_mint``)."""
        return True

    async def wait_mint(self, key: TokenKey, timeout: float) -> CachedToken | None:
        """Wait, without polling, until the process minting ``key`` is done or ``timeout``
        seconds pass; then the token kept for ``key``, or None (mint here instead)."""
        return await self.get(key)

    async def end_mint(self, key: TokenKey, token: CachedToken | None, ttl: float) -> None:
        """This process's mint of ``key`` is over: keep ``token`` (None: it failed), release the
        lease, and wake the processes waiting for it."""
        if token is not None:
            await self.put(key, token, ttl)

    # -- devices' client tokens (in-process default: each process keeps its own) -------------

    async def client_token(self, host: str, device: str, known: str | None) -> str | None:
        """The device's current client token; ``known`` (this process's) becomes it if the
        store has none yet."""
        return known

    async def swap_client_token(
        self, host: str, device: str, sent: str | None, rotated: str | None
    ) -> str | None:
        """Clerk rotated the device's token in an answer to a request sent with ``sent``: store
        ``rotated`` by the rule of ``Device.apply_rotation`` (the answer that arrives last wins,
        if ``sent`` is the current token or one the device moved past; never back to one it
        moved past), in one atomic step. Returns the device's token afterwards."""
        return rotated

    # -- proven client-token strings (in-process default: no other process proves any) -------

    async def is_proven(self, host: str, device: str, digest: str) -> bool:
        """Whether a process sharing this store saw Clerk vouch for the client-token string
        whose digest (``_devices.token_digest``) is ``digest`` as a token of ``device``."""
        return False

    async def add_proven(self, host: str, device: str, digests: Sequence[str]) -> None:  # noqa: B027
        """Clerk vouched for these strings (their digests, never the strings) as tokens of
        ``device``: tell the other processes. A shared store expires them with the device's
        client token (``CLIENT_TOKEN_TTL`` unused)."""

    async def aclose(self) -> None:  # noqa: B027 - optional: most stores hold nothing to close
        """Release what the store holds (called when the client that created it closes)."""

    async def aclose_loop(self) -> None:  # noqa: B027 - optional, like aclose
        """Release what the store holds on the running event loop: the blocking client calls
        it on each of its loops before closing that loop (even for a store it does not own:
        connections belong to one loop)."""


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
