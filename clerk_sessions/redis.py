"""``RedisStore``: one token cache, one mint and one client token per device for every process.

A backend that acts for devices runs several processes (``uvicorn --workers 8``, replicas behind a
load balancer). With ``store=RedisStore("redis://...")`` on each of their clients
(``AsyncClerkSessions`` or ``ClerkSessions``), they share through Redis:

- session tokens: one process's token is every process's cache hit; each Redis key expires when
  its token does on the Frontend API's clock, never later; freshness never goes backwards;
- single flight: of N processes asking for the same token at once, one mints and the others wait
  for its result (pub/sub, no polling); a process waits at most half a call's budget for
  another's mint, then mints itself (one that died never holds the others for its lease);
- each device's current client token: a rotation is one atomic step, by the rule of one
  process (``Device.apply_rotation``: the answer that arrives last wins, never back to a token
  the device moved past), and every process sends the device's current token on its next
  request;
- sign-outs: the session's (or device's) tokens are deleted for every process at once;
- proven client-token strings: when Clerk vouches for a client-token string as a device's, its
  digest is stored, so another process that sees that string joins the device without asking.

Redis now holds bearer credentials (client tokens, session JWTs): protect it like a password
store — TLS with ``rediss://``, a password, and an ACL user limited to the prefix's keys and
channels and to the commands the store sends, e.g. ``ACL SETUSER clerk on >PASSWORD resetkeys
~clerk_sessions:* resetchannels &clerk_sessions:* -@all +@connection +ping +get +set +del +hget
+hmget +hset +pttl +pexpire +sadd +srem +smembers +sismember +incr +publish +subscribe +eval
+evalsha`` (then ``redis://clerk:PASSWORD@host``). Key names never contain a credential.

Key layout (``P`` is ``prefix``, ``H`` the first 16 hex digits of the SHA-256 of the Frontend API
URL, ``D`` the device key — a hash of the client's id, never a token — ``S`` the session id;
``:``, ``%`` and ``,`` inside an id or a template name are percent-encoded, so no two token keys
share a name):

=============================  ==========  ===================================================
``P:tok:H:D:S:V``              hash        a session token: ``jwt`` (the JWT), ``iat`` and
                                           ``oiat`` (its freshness; ``oiat`` empty if none).
                                           ``V`` is ``active`` (the session's active
                                           organization), ``o=<org id>``, ``o=`` (personal
                                           account) or ``t=<template>`` (``t=<template>,o=..``
                                           if both were given). Expires with the JWT.
``P:idx:H:D``                  set         the device's token keys (for sign-out); expires
                                           with its longest-lived token.
``P:lock:H:D:S:V``             string      the lease of the process minting that token
                                           (``<random id> <sign-out counter>``); ``PX`` 2 s
                                           until its taker confirms it, then the lease.
``P:gen:H:D``                  string      counts the device's sign-outs: a mint that began
                                           before one is not kept.
``P:dev:H:D``                  string      the device's current client token; forgotten after
                                           30 days unused.
``P:old:H:D``                  list        sha1 digests of the device's last client tokens
                                           it moved past (a late answer never takes one back).
``P:prv:H:D``                  set         digests of client-token strings Clerk vouched for
                                           as the device's (never the strings); expires 30
                                           days after the last one was added.
``P:done`` (channel)           pub/sub     ``H:D:S:V`` when a mint of that token is over.
``P:events`` (channel)         pub/sub     ``drop H:D[:S]`` on every sign-out.
=============================  ==========  ===================================================

Faults: slow is not down. Opening a connection has its own budget (``connect_timeout``, 2 s),
and each event loop's first connection is opened in the background as soon as the store is
used there (a call arriving meanwhile waits for it, within that budget); once Redis has failed
to answer, a connection is reopened within the call's own budget. Each call on an established
connection is bounded by ``timeout`` (250 ms), counted once the call has one of its loop's 8
connections: waiting for a busy pool is not an outage. A call that fails or takes longer
answers from this process, but Redis is only considered down after 3 consecutive failures
(calls that overlapped a failure already counted count once), after a failed health probe (one
PING, within the connect budget, sent after a first failure), or when a connection is refused or
cannot be opened within its budget. A call that timed out while this process's own event loop
was blocked (it ended more than 50 ms past its budget) is not blamed on Redis. Going down logs
one warning with the reason; until a back-off passes (1 s, doubling to 30 s) the store works as
the in-process store does, without touching Redis — tokens are cached in this process, this
process mints on its own, rotations are kept here. Then a probe is sent in the background (a
caller waits for it at most one call's budget): it writes the sign-outs, rotations, proofs and
lease releases kept meanwhile, and one info line says Redis is back. A process waiting for
another's mint is woken when Redis goes down (its pub/sub connection PINGs every 0.25 s while
someone waits). Nothing waits longer than its budget on, or raises because of, Redis.

A write whose answer was lost (timed out, or its connection dropped) may have been applied: a
mint lease taken that way is released (compare-and-delete) when the mint ends, and cannot
outlive 2 s if that fails too (a lease lives 2 s until its taker confirms it); a sign-out, a
rotation (replayed as a compare-and-set, which answers the device's current token) or a proof
whose answer was lost is sent again, in the background, until Redis answers it.

Standalone or replicated Redis (not Redis Cluster): the scripts touch keys of one device that
are not all declared. redis-py's asyncio connections belong to one event loop, so the store keeps
one connection pool per loop (and, from the first mint it waits for there, one pub/sub
connection): the blocking ``ClerkSessions`` runs one loop per calling thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import itertools
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final, TypeVar

try:
    import redis
    import redis.asyncio as aioredis
    from redis.asyncio.connection import parse_url
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import NoScriptError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "clerk_sessions.redis needs redis-py: pip install 'clerk-sessions[redis]'"
    ) from exc

from ._constants import (
    CLIENT_TOKEN_TTL,
    DEFAULT_REDIS_CONNECT_TIMEOUT,
    DEFAULT_REDIS_TIMEOUT,
    DEFAULT_TOKEN_CACHE_SIZE,
    LEASE_EXPIRY_SLACK,
    LISTENER_PING_INTERVAL,
    MAX_PENDING_WHILE_DOWN,
    REDIS_FAILURES_BEFORE_DOWN,
    REDIS_LOOP_STALL,
    REDIS_MAX_CONNECTIONS,
    REDIS_RETRY_INITIAL_DELAY,
    REDIS_RETRY_MAX_DELAY,
    REDIS_UNCONFIRMED_LEASE,
    RETIRED_CLIENT_TOKENS,
    SIGN_OUT_COUNTER_TTL,
)
from ._errors import ConfigurationError
from ._jwt import CachedToken, TokenKey, jwt_timing
from ._logging import logger
from ._runtime import bounded
from ._store import MemoryStore, Store
from ._types import UNSET
from ._validate import seconds

__all__ = ["RedisStore"]

T = TypeVar("T")

_DONE, _EVENTS = "done", "events"
# Replayed writes per round trip (a probe or a background flush).
_REPLAY_BATCH = 500


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)


_REDIS_VERSION = _version(getattr(redis, "__version__", "0"))
# ConnectionPool.get_connection's command name: required before redis-py 5.3, deprecated since.
_GET_CONNECTION_ARGS: tuple[str, ...] = ("PING",) if _REDIS_VERSION < (5, 3) else ()

# -- Lua: each operation that reads and writes is one atomic script (one round trip) -----------

# Keep ``jwt`` unless the kept token is fresher (clerk-js: higher oiat wins, ties go to the
# higher iat, a token without oiat loses) — CachedToken.fresher_than, in Lua.
_PUT_FUNCTION = """
local function put(tok, idx, jwt, oiat, iat, ttl)
  local kept = redis.call('HMGET', tok, 'oiat', 'iat')
  if kept[2] then
    local newer
    if (kept[1] ~= '') ~= (oiat ~= '') then
      newer = oiat ~= ''
    elseif oiat ~= '' and tonumber(oiat) ~= tonumber(kept[1]) then
      newer = tonumber(oiat) > tonumber(kept[1])
    else
      newer = tonumber(iat) >= tonumber(kept[2])
    end
    if not newer then return 0 end
  end
  redis.call('HSET', tok, 'jwt', jwt, 'oiat', oiat, 'iat', iat)
  redis.call('PEXPIRE', tok, ttl)
  redis.call('SADD', idx, tok)
  if redis.call('PTTL', idx) < tonumber(ttl) then redis.call('PEXPIRE', idx, ttl) end
  return 1
end
"""

# KEYS: token, index. ARGV: jwt, oiat ('' = none), iat, ttl in ms.
_PUT = _PUT_FUNCTION + "return put(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])"

# KEYS: index, sign-out counter. ARGV: key prefix to delete ('' = the whole device), counter
# ttl in ms, channel, message.
_DROP = """
local dropped = 0
for _, tok in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if ARGV[1] == '' or string.sub(tok, 1, #ARGV[1]) == ARGV[1] then
    redis.call('DEL', tok)
    redis.call('SREM', KEYS[1], tok)
    dropped = dropped + 1
  end
end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return dropped
"""

# KEYS: lock, sign-out counter. ARGV: lease id, lease in ms. The lease holds its id and the
# counter when it began (so an end whose begin was never answered can still tell both). Returns
# {1, counter} to the leader.
_BEGIN = """
local began = redis.call('GET', KEYS[2]) or ''
if redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. began, 'NX', 'PX', ARGV[2]) then
  return {1, began}
end
return {0, ''}
"""

# KEYS: lock. ARGV: the lease (id and counter), lease in ms. Extends a lease still ours.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: token, index, lock, sign-out counter. ARGV: jwt ('' = failed), oiat, iat, ttl in ms,
# lease id ('' = none), counter when the lease began ('*' = none known: keep; '?' = read it from
# the lease, which may be ours: begin_mint's answer was lost), channel, message. Releases the
# lease only if it is ours (compare-and-delete).
_END = (
    _PUT_FUNCTION
    + """
local began = ARGV[6]
local mine = false
if ARGV[5] ~= '' then
  local lease = redis.call('GET', KEYS[3])
  local id = ARGV[5] .. ' '
  if lease and string.sub(lease, 1, #id) == id then
    mine = true
    if began == '?' then began = string.sub(lease, #id + 1) end
  end
end
local kept = 0
if ARGV[1] ~= '' and began ~= '?' then
  if began == '*' or (redis.call('GET', KEYS[4]) or '') == began then
    kept = put(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
  end
end
if mine then redis.call('DEL', KEYS[3]) end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return kept
"""
)

# KEYS: device. ARGV: this process's token ('' = none), ttl in ms.
_CLIENT_TOKEN = """
local current = redis.call('GET', KEYS[1])
if current then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return current
end
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return false
"""

# KEYS: device, the digests of the tokens it moved past. ARGV: the token the request was sent
# with ('' = none), the rotated one ('' = cleared), ttl in ms, '1' for a live answer ('0' for a
# replay), the sent and the rotated token's sha1, how many moved-past digests to keep. Returns
# the device's token afterwards; sending it again is safe (it then answers the current token).
# The rule of ``_devices.Device.apply_rotation``: the answer that arrives last wins if its
# request carried the current token or (live answers only) one the device moved past, unless it
# repeats a token the device moved past. A replay (written while Redis was unreachable, maybe
# long ago) replaces only the token its request carried.
_SWAP = """
local current = redis.call('GET', KEYS[1])
local function moved_past(digest)
  for _, seen in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    if seen == digest then return true end
  end
  return false
end
if current and current ~= ARGV[1] then
  if ARGV[4] ~= '1' or ARGV[1] == '' or not moved_past(ARGV[5]) then return current end
end
if current and current == ARGV[2] then return current end
if ARGV[2] ~= '' and moved_past(ARGV[6]) then return current end
local past = current or ARGV[1]  -- none stored yet: the request's token is moved past
if past ~= '' then
  redis.call('LPUSH', KEYS[2], redis.sha1hex(past))
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return ARGV[2]
"""

# KEYS: the device's proofs. ARGV: ttl in ms, then the digests.
_PROVE = """
for i = 2, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


_SHA = {
    script: _sha1(script)
    for script in (_PUT, _DROP, _BEGIN, _EXTEND, _END, _CLIENT_TOKEN, _SWAP, _PROVE)
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _part(value: str) -> str:
    """An id or template name as one key segment (``:`` separates segments)."""
    if ":" not in value and "%" not in value and "," not in value:
        return value
    return value.replace("%", "%25").replace(":", "%3A").replace(",", "%2C")


def _variant(template: str | None, organization_id: object) -> str:
    if template is None:
        if organization_id is UNSET:
            return "active"
        return "o=" if organization_id is None else "o=" + _part(str(organization_id))
    if organization_id is UNSET:
        return "t=" + _part(template)
    org = "" if organization_id is None else _part(str(organization_id))
    return f"t={_part(template)},o={org}"


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _freshness(token: CachedToken) -> tuple[str, str]:
    timing = token.timing
    oiat = timing.origin_issued_at
    return ("" if oiat is None else repr(oiat)), repr(timing.issued_at)


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, (TimeoutError, asyncio.TimeoutError, RedisTimeoutError))


def _refused(exc: BaseException) -> bool:
    """Nothing listens there (redis-py wraps the OSError): Redis is down, not slow."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (ConnectionRefusedError, FileNotFoundError)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class _Failed:
    """Redis did not answer: the caller answers from this process.

    ``maybe_applied``: the command may have run (its answer was lost: a timeout or a dropped
    connection after sending), so its effect must be undone or made sure of. ``verdict``: what
    the failure said about Redis (``"down"``: refused or no connection within its budget;
    ``"failed"``: counts towards the consecutive failures; ``"stalled"``: this process's loop
    was blocked, not counted; ``""``: nothing, e.g. Redis was already down)."""

    __slots__ = ("maybe_applied", "reason", "started", "verdict")

    def __init__(
        self, reason: str, verdict: str, *, maybe_applied: bool = False, started: float = 0.0
    ) -> None:
        self.reason = reason
        self.verdict = verdict
        self.maybe_applied = maybe_applied
        self.started = started


_FAILED: Final = _Failed("Redis is down", "")

# The connection a call took (outside its budget) for the commands it sends within its budget.
_pinned: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "clerk_sessions_redis_connection", default=None
)


class _PinnedPool(aioredis.BlockingConnectionPool):
    """The store's pool: a call takes (and, if need be, opens) a connection within the connect
    budget, then the commands it sends within its call budget use that very connection."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        pinned = _pinned.get()
        if pinned is not None:
            return pinned
        get: Any = super().get_connection  # untyped in redis-py
        return await get(*args, **kwargs)

    async def release(self, connection: Any) -> None:
        if connection is not None and connection is _pinned.get():
            return  # the call releases it when its work is over
        await super().release(connection)


class _Loop:
    """What the store holds on one event loop: its connections, pub/sub listener and waiters."""

    __slots__ = (
        "client",
        "listener_client",
        "listener_ready",
        "listeners",
        "loop",
        "owned",
        "pinned",
        "ready",
        "slots",
        "tasks",
        "waiters",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, client: aioredis.Redis, owned: bool, slots: int
    ) -> None:
        self.loop = loop
        self.client = client
        self.owned = owned
        """The store made ``client`` (and closes it); else it is the caller's."""
        self.pinned = isinstance(client.connection_pool, _PinnedPool)
        """Calls run on the connection they took (the store's pools; a caller's pool is only
        warmed before each call, and the call then takes what its pool gives)."""
        # Calls wait here, outside their time budget, for a free connection: a busy pool is not
        # an outage. Each call holding one is bounded, so the wait is too.
        self.slots = asyncio.Semaphore(slots)
        self.ready: asyncio.Task[None] | None = None
        """The loop's first connection, opened in the background when the state is made."""
        self.tasks: set[asyncio.Task[Any]] = set()
        """Background work: the warm-up, health probes, flushes, lease extensions."""
        self.listener_client: aioredis.Redis | None = None
        self.listeners: set[asyncio.Task[None]] = set()
        """The listener, and any stopped one still closing its connection."""
        self.listener_ready: asyncio.Future[BaseException | None] | None = None
        # Token key suffix (H:D:S:V) -> futures of the callers waiting for that mint.
        self.waiters: dict[str, set[asyncio.Future[None]]] = {}

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = self.loop.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # pragma: no cover - a bug
            logger.debug("RedisStore background task failed: %r", task.exception())

    def wake(self, suffix: str) -> None:
        for future in self.waiters.pop(suffix, ()):
            if not future.done():
                future.set_result(None)

    def wake_all(self) -> None:
        for suffix in list(self.waiters):
            self.wake(suffix)

    def stop_listening(self) -> None:
        """Redis is down: wake every waiter (they answer from this process) and stop the
        listener (its connection may hang on a frozen server)."""
        self.wake_all()
        current = asyncio.current_task()
        for listener in self.listeners:
            if listener is not current:  # a listener that found Redis down ends by itself
                listener.cancel()

    async def aclose(self) -> None:
        self.stop_listening()
        current = asyncio.current_task()
        background = [task for task in self.tasks if task is not current]
        for task in background:
            task.cancel()
        await asyncio.gather(*self.listeners, *background, return_exceptions=True)
        if self.listener_client is not None:
            await self.listener_client.connection_pool.disconnect()
        if self.owned:
            await self.client.aclose()
            await self.client.connection_pool.disconnect()


def _seconds(name: str, value: object) -> float:
    return seconds(f"RedisStore {name}", value, positive=True)


class RedisStore(Store):
    """Session tokens, single flight and devices' client tokens shared on Redis (see module).

    ``url_or_client``: a ``redis://`` or ``rediss://`` URL (``unix://`` too), or a
    ``redis.asyncio.Redis``: it is used on the first event loop the store runs on, and equivalent
    clients (same connection settings) are made for other loops; the store never closes it.
    ``prefix`` starts every key: processes with the same Redis and prefix share. ``timeout``
    bounds each Redis call on an established connection (seconds; 0.25). ``connect_timeout``
    bounds opening a connection (TCP, TLS, AUTH) and the health probe (seconds; 2.0): each event
    loop's first connection is opened in the background as soon as the store is used there.
    Redis is considered down after 3 consecutive failed calls, a failed health probe or a
    refused connection, never after one slow answer. ``_clock`` (tests): the monotonic clock of
    the back-off.

    Close it with :meth:`aclose` when the clients using it are closed.
    """

    shared = True

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        prefix: str = "clerk_sessions",
        timeout: float = DEFAULT_REDIS_TIMEOUT,
        connect_timeout: float = DEFAULT_REDIS_CONNECT_TIMEOUT,
        _clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if _REDIS_VERSION < (5, 0, 2):
            raise ConfigurationError(
                "RedisStore needs redis-py 5.0.2 or later (5.0.1's asyncio BlockingConnectionPool "
                "deadlocks when a connection fails to open): pip install 'clerk-sessions[redis]'."
            )
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError("RedisStore prefix must be a non-empty string.")
        self.timeout = _seconds("timeout", timeout)
        self.connect_timeout = _seconds("connect_timeout", connect_timeout)
        self._url: str | None = None
        self._given: aioredis.Redis | None = None
        if isinstance(url_or_client, str):
            self._where = _describe_url(url_or_client)
            self._url = url_or_client
        elif isinstance(url_or_client, aioredis.Redis):
            self._where = _describe_client(url_or_client)
            self._given = url_or_client
        else:
            raise ConfigurationError(
                "RedisStore needs a redis:// or rediss:// URL or a redis.asyncio.Redis client, "
                f"got {type(url_or_client).__name__}."
            )
        self.prefix = prefix
        self._clock = _clock
        self._done_channel = f"{prefix}:{_DONE}"
        self._events_channel = f"{prefix}:{_EVENTS}"
        self._loops: dict[asyncio.AbstractEventLoop, _Loop] = {}
        self._given_loop: asyncio.AbstractEventLoop | None = None
        self._hosts: dict[str, str] = {}
        self._leases: dict[tuple[str, object], tuple[str, str]] = {}
        self._lock = threading.Lock()
        # Health: ``_down`` and ``_failures`` are read on every call without the lock.
        self._down = False
        self._closed = False
        self._failures = 0
        """Consecutive counted failures while up (reset by any answer)."""
        self._last_failure_at = float("-inf")
        """When the last counted failure was counted (time.monotonic): a call that began
        before it overlapped it and is not counted again."""
        self._health_probe_at: float | None = None
        """When the running health probe started (None: none runs)."""
        self._recovery: tuple[asyncio.Task[bool], float] | None = None
        """The probe trying Redis again while down, and when it started."""
        self._down_since = 0.0
        self._retry_at = 0.0
        self._delay = REDIS_RETRY_INITIAL_DELAY
        self._flushing_at: float | None = None
        # While down: this process's tokens, and what to write to Redis when it is back (also
        # while up: writes whose answer was lost, sent again in the background).
        self._fallback = MemoryStore(DEFAULT_TOKEN_CACHE_SIZE)
        self._pending_drops: dict[tuple[str, str, str | None], None] = {}
        self._pending_rotations: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        self._pending_proofs: dict[tuple[str, str], dict[str, None]] = {}
        self._pending_releases: dict[str, tuple[tuple[str, ...], tuple[str | int, ...]]] = {}

    def __repr__(self) -> str:  # never a password (URLs may carry one)
        state = "closed" if self._closed else "down" if self._down else "up"
        return f"RedisStore({self._where}, prefix={self.prefix!r}, redis={state})"

    @property
    def available(self) -> bool:
        """Redis is in use (False while down: the store works in-process). One slow or failed
        call does not make it False: see the class docstring."""
        return not self._down

    # -- keys -------------------------------------------------------------------------------

    def _device(self, host: str, device: str) -> str:
        hashed = self._hosts.get(host)
        if hashed is None:
            if len(self._hosts) >= 1000:
                self._hosts.clear()
            hashed = self._hosts[host] = hashlib.sha256(host.encode()).hexdigest()[:16]
        return f"{hashed}:{device}"

    def _suffix(self, key: TokenKey) -> tuple[str, str]:
        """(``H:D``, ``H:D:S:V``) of a token key."""
        host, device, session_id, template, organization_id = key
        hd = self._device(host, device)
        return hd, f"{hd}:{_part(session_id)}:{_variant(template, organization_id)}"

    # -- the Store interface ----------------------------------------------------------------

    async def get(self, key: TokenKey) -> CachedToken | None:
        if self._down and not await self._recovered():
            return await self._fallback.get(key)
        _hd, suffix = self._suffix(key)
        name = f"{self.prefix}:tok:{suffix}"
        raw = await self._attempt(lambda client: client.hget(name, "jwt"))
        if isinstance(raw, _Failed):
            return await self._fallback.get(key)
        if raw is None:
            return None
        jwt = _text(raw)
        timing = jwt_timing(jwt)
        return None if timing is None else CachedToken(jwt, timing)

    async def put(self, key: TokenKey, token: CachedToken, ttl: float) -> None:
        if ttl <= 0:
            return
        if self._down and not await self._recovered():
            await self._fallback.put(key, token, ttl)
            return
        hd, suffix = self._suffix(key)
        p = self.prefix
        oiat, iat = _freshness(token)
        keys = (f"{p}:tok:{suffix}", f"{p}:idx:{hd}")
        if isinstance(await self._script(_PUT, keys, (token.jwt, oiat, iat, _ms(ttl))), _Failed):
            await self._fallback.put(key, token, ttl)

    async def drop(self, host: str, device: str, session_id: str | None) -> None:
        await self._fallback.drop(host, device, session_id)
        if self._down and not await self._recovered():
            self._remember_drop(host, device, session_id)
            return
        if isinstance(
            await self._script(_DROP, *self._drop_args(host, device, session_id)), _Failed
        ):
            self._remember_drop(host, device, session_id)  # sent again (a drop is idempotent)
            self._flush_soon()

    def _drop_args(
        self, host: str, device: str, session_id: str | None
    ) -> tuple[tuple[str, ...], tuple[str | int, ...]]:
        hd = self._device(host, device)
        p = self.prefix
        scope = "" if session_id is None else f"{p}:tok:{hd}:{_part(session_id)}:"
        event = f"drop {hd}" if session_id is None else f"drop {hd}:{_part(session_id)}"
        return (
            (f"{p}:idx:{hd}", f"{p}:gen:{hd}"),
            (scope, _ms(SIGN_OUT_COUNTER_TTL), self._events_channel, event),
        )

    def _end_keys(self, key: TokenKey) -> tuple[str, tuple[str, ...]]:
        hd, suffix = self._suffix(key)
        p = self.prefix
        return suffix, (f"{p}:tok:{suffix}", f"{p}:idx:{hd}", f"{p}:lock:{suffix}", f"{p}:gen:{hd}")

    async def begin_mint(self, key: TokenKey, lease: float) -> bool:
        if self._down and not await self._recovered():
            return True
        hd, suffix = self._suffix(key)
        p = self.prefix
        lock = f"{p}:lock:{suffix}"
        lease_id = uuid.uuid4().hex
        # Until this process hears that it won, the lease is short: if the answer is lost, a
        # lease it may hold never blocks the other processes for long.
        first = min(lease, REDIS_UNCONFIRMED_LEASE)
        answer = await self._script(_BEGIN, (lock, f"{p}:gen:{hd}"), (lease_id, _ms(first)))
        if isinstance(answer, _Failed):
            if answer.maybe_applied:  # the lease may be ours: end_mint releases it if it is
                self._hold_lease(lock, lease_id, "?")
            return True
        won, generation = answer
        if int(won) != 1:
            return False
        generation = _text(generation)
        self._hold_lease(lock, lease_id, generation)
        if lease > first:
            value, ms = f"{lease_id} {generation}", _ms(lease)
            extend = functools.partial(self._script, _EXTEND, (lock,), (value, ms))
            self._state().spawn(self._background(extend))
        return True

    def _hold_lease(self, lock: str, lease_id: str, generation: str) -> None:
        with self._lock:
            if len(self._leases) >= MAX_PENDING_WHILE_DOWN:
                self._leases.clear()  # leases of calls cancelled mid-begin; theirs expire
            self._leases[(lock, asyncio.current_task())] = (lease_id, generation)

    async def wait_mint(self, key: TokenKey, timeout: float) -> CachedToken | None:
        if self._down and not await self._recovered():
            return await self._fallback.get(key)
        try:
            state = self._state()
        except Exception as exc:  # pragma: no cover - a client that cannot make a pool
            self._mark_down(f"cannot use the Redis client: {type(exc).__name__}")
            return await self._fallback.get(key)
        if not await self._listening(state):
            return await self._fallback.get(key)
        _hd, suffix = self._suffix(key)
        future: asyncio.Future[None] = state.loop.create_future()
        waiters = state.waiters.setdefault(suffix, set())
        waiters.add(future)
        try:
            # Subscribed first, then look: a mint that ends from now on is announced to us.
            lock = f"{self.prefix}:lock:{suffix}"
            left = await self._attempt(lambda client: client.pttl(lock))
            if isinstance(left, _Failed):
                return await self._fallback.get(key)
            if left != -2:  # -2: no lock, the mint is over (or its lease ended)
                wait = timeout if left < 0 else min(timeout, left / 1000 + LEASE_EXPIRY_SLACK)
                await asyncio.wait((future,), timeout=wait)
        finally:
            waiters.discard(future)
            if not waiters and state.waiters.get(suffix) is waiters:
                del state.waiters[suffix]
        return await self.get(key)

    async def end_mint(self, key: TokenKey, token: CachedToken | None, ttl: float) -> None:
        suffix, keys = self._end_keys(key)
        with self._lock:
            lease_id, generation = self._leases.pop((keys[2], asyncio.current_task()), ("", "*"))
        if token is not None and ttl <= 0:
            token = None
        if self._down and not await self._recovered():
            if token is not None:
                await self._fallback.put(key, token, ttl)
            if lease_id:
                self._remember_release(keys, lease_id, suffix)
            return
        jwt, oiat, iat = ("", "", "") if token is None else (token.jwt, *_freshness(token))
        args = (jwt, oiat, iat, _ms(ttl), lease_id, generation, self._done_channel, suffix)
        if isinstance(await self._script(_END, keys, args), _Failed):
            if token is not None:
                await self._fallback.put(key, token, ttl)
            if lease_id:  # released (compare-and-delete) as soon as Redis answers
                self._remember_release(keys, lease_id, suffix)
                self._flush_soon()

    async def client_token(self, host: str, device: str, known: str | None) -> str | None:
        if self._down and not await self._recovered():
            return known
        name = f"{self.prefix}:dev:{self._device(host, device)}"
        answer = await self._script(_CLIENT_TOKEN, (name,), (known or "", _ms(CLIENT_TOKEN_TTL)))
        if isinstance(answer, _Failed):
            return known
        return None if answer is None else _text(answer)

    async def swap_client_token(
        self, host: str, device: str, sent: str | None, rotated: str | None
    ) -> str | None:
        if self._down and not await self._recovered():
            self._remember_rotation(host, device, sent, rotated)
            return rotated
        keys, args = self._swap_args(host, device, sent, rotated, live=True)
        answer = await self._script(_SWAP, keys, args)
        if isinstance(answer, _Failed):
            # Not assumed applied (nor lost): it is sent again (compare-and-set) until Redis
            # answers it, and every request reads the device's token from Redis anyway.
            self._remember_rotation(host, device, sent, rotated)
            self._flush_soon()
            return rotated
        return None if answer is None else _text(answer)

    def _swap_args(
        self, host: str, device: str, sent: str | None, rotated: str | None, *, live: bool
    ) -> tuple[tuple[str, str], tuple[str | int, ...]]:
        name = self._device(host, device)
        keys = (f"{self.prefix}:dev:{name}", f"{self.prefix}:old:{name}")
        args = (
            sent or "",
            rotated or "",
            _ms(CLIENT_TOKEN_TTL),
            "1" if live else "0",
            _sha1(sent or ""),
            _sha1(rotated or ""),
            RETIRED_CLIENT_TOKENS,
        )
        return keys, args

    async def is_proven(self, host: str, device: str, digest: str) -> bool:
        if self._down and not await self._recovered():
            return False
        name = f"{self.prefix}:prv:{self._device(host, device)}"
        answer = await self._attempt(lambda client: client.sismember(name, digest))
        return not isinstance(answer, _Failed) and bool(answer)

    async def add_proven(self, host: str, device: str, digests: Sequence[str]) -> None:
        digests = [d for d in digests if d]
        if not digests:
            return
        if self._down and not await self._recovered():
            self._remember_proofs(host, device, digests)
            return
        name = f"{self.prefix}:prv:{self._device(host, device)}"
        answer = await self._script(_PROVE, (name,), (_ms(CLIENT_TOKEN_TTL), *digests))
        if isinstance(answer, _Failed):
            self._remember_proofs(host, device, digests)
            self._flush_soon()

    async def aclose(self) -> None:
        """Close the connections this store made, on every event loop it ran on (a client
        passed in stays open: it is the caller's). The store then works in-process."""
        with self._lock:
            self._closed = self._down = True
            states = list(self._loops.values())
            self._loops.clear()
        current = asyncio.get_running_loop()
        for state in states:
            if state.loop is current:
                await state.aclose()
            elif state.loop.is_running():
                done = asyncio.run_coroutine_threadsafe(state.aclose(), state.loop)
                try:
                    await asyncio.wait_for(asyncio.wrap_future(done), 5.0)
                except Exception as exc:  # that loop is busy or stopping: its sockets go with it
                    logger.debug(
                        "RedisStore: could not close on another loop: %s", type(exc).__name__
                    )
            # else: a loop that is not running (closed, or a blocking client's idle thread)
            # cannot be run from here: see aclose_loop, run on that loop before it closes.

    async def aclose_loop(self) -> None:
        """Close what the store holds on the running event loop (call it on each of a blocking
        client's loops before that loop closes); other loops keep working."""
        with self._lock:
            state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.aclose()

    # -- Redis calls, bounded, and the health they report -----------------------------------

    def _state(self) -> _Loop:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._new_state(loop)
        return state

    def _new_state(self, loop: asyncio.AbstractEventLoop) -> _Loop:
        with self._lock:
            state = self._loops.get(loop)
            if state is not None:
                return state
            for dead in [other for other in self._loops if other.is_closed()]:
                del self._loops[dead]  # a loop closed without aclose_loop: nothing to run it on
            given = self._given
            if given is not None and self._given_loop in (None, loop):
                self._given_loop = loop
                limit = getattr(given.connection_pool, "max_connections", REDIS_MAX_CONNECTIONS)
                state = _Loop(loop, given, False, min(limit, REDIS_MAX_CONNECTIONS))
            else:
                # One connection more than the calls in flight: the warm-up and health probe.
                pool = self._pool(
                    socket_timeout=self.connect_timeout,
                    max_connections=REDIS_MAX_CONNECTIONS + 1,
                    pinned=True,
                )
                state = _Loop(
                    loop, aioredis.Redis(connection_pool=pool), True, REDIS_MAX_CONNECTIONS
                )
            self._loops[loop] = state
            if not self._down:  # the loop's first connection, opened off the hot path
                state.ready = state.spawn(self._background(lambda: self._warm(state)))
            return state

    def _pool(
        self, *, socket_timeout: float | None, max_connections: int, pinned: bool = False
    ) -> Any:
        """A blocking pool to this store's Redis: no retries by redis-py (they would stretch a
        call past its budget; the store has its own back-off). Budgets are the store's
        (asyncio deadlines); the socket timeouts only back them up."""
        settings: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "retry": Retry(NoBackoff(), 0),
            "retry_on_timeout": False,
            "health_check_interval": 0,
            "max_connections": max_connections,
            "timeout": None,  # waiting for a connection is bounded by the caller's slots
        }
        pool_class = _PinnedPool if pinned else aioredis.BlockingConnectionPool
        if self._url is not None:
            return pool_class.from_url(self._url, **settings)
        assert self._given is not None
        given = self._given.connection_pool
        kwargs = {**given.connection_kwargs, **settings}
        return pool_class(connection_class=given.connection_class, **kwargs)

    async def _background(self, work: Callable[[], Awaitable[T]]) -> T | None:
        """Background work (its own task): never on a connection a call took; never raises."""
        _pinned.set(None)
        try:
            return await work()
        except Exception as exc:  # pragma: no cover - the work reports its own failures
            logger.debug("RedisStore background work failed: %s", type(exc).__name__)
            return None

    async def _warm(self, state: _Loop) -> None:
        """Open the loop's first connection within the connect budget (calls arriving meanwhile
        wait for it), so that no call's own budget pays for it."""
        started = time.monotonic()
        pool: Any = state.client.connection_pool
        try:
            connection = await bounded(
                pool.get_connection(*_GET_CONNECTION_ARGS), self.connect_timeout
            )
        except Exception as exc:
            self._judge(self._failure(exc, self.connect_timeout, started, connecting=True))
            return
        await pool.release(connection)

    async def _attempt(
        self, work: Callable[[aioredis.Redis], Awaitable[T]], *, probe: bool = False
    ) -> T | _Failed:
        """``work`` on the running loop's client within ``timeout``, or a _Failed (the caller
        then answers from this process). ``probe``: a health or recovery probe, with the
        connect budget, whose failure its caller judges."""
        try:
            state = self._state()
        except Exception as exc:  # pragma: no cover - a client that cannot make a pool
            self._mark_down(f"cannot use the Redis client: {type(exc).__name__}")
            return _FAILED
        async with state.slots:
            if self._down and not probe:  # went down while this call waited for a slot
                return _FAILED
            answer = await self._run(state, work, probe)
        if isinstance(answer, _Failed):
            if not probe:
                self._judge(answer)
            return answer
        if self._failures and not probe:
            self._answered()
        if not probe and (
            self._pending_drops
            or self._pending_rotations
            or self._pending_proofs
            or self._pending_releases
        ):
            self._flush_soon()
        return answer

    async def _run(
        self, state: _Loop, work: Callable[[aioredis.Redis], Awaitable[T]], probe: bool
    ) -> T | _Failed:
        ready = state.ready
        if ready is not None and not ready.done():  # the loop's first connection is opening
            try:
                await bounded(asyncio.shield(ready), self.connect_timeout)
            except Exception:  # the warm-up judges its own failure; this call answers here
                return _Failed("the first connection is not open yet", "")
            if self._down and not probe:
                return _FAILED
        # A connection to open is given the connect budget, unless Redis already failed to
        # answer (then a frozen Redis must not hold a call longer than the call budget).
        budget = self.connect_timeout if probe or not self._failures else self.timeout
        started = time.monotonic()
        pool: Any = state.client.connection_pool
        try:
            connection = await bounded(pool.get_connection(*_GET_CONNECTION_ARGS), budget)
        except Exception as exc:
            return self._failure(exc, budget, started, connecting=True)
        budget = self.connect_timeout if probe else self.timeout
        started = time.monotonic()
        if state.pinned:
            pin = _pinned.set(connection)
        else:  # a caller's pool: warmed, and its last released connection is taken first
            await pool.release(connection)
        try:
            return await bounded(work(state.client), budget)
        except Exception as exc:
            return self._failure(exc, budget, started, connecting=False)
        finally:
            if state.pinned:
                _pinned.reset(pin)
                await pool.release(connection)

    async def _script(
        self, script: str, keys: tuple[str, ...], args: tuple[str | int, ...], probe: bool = False
    ) -> Any:
        sha = _SHA[script]

        async def run(client: aioredis.Redis) -> Any:
            try:
                return await client.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:  # a new or restarted server: EVAL caches it there
                return await client.eval(script, len(keys), *keys, *args)

        return await self._attempt(run, probe=probe)

    def _failure(
        self, exc: BaseException, budget: float, started: float, *, connecting: bool
    ) -> _Failed:
        """What a failed call says about Redis (see _Failed)."""
        elapsed = time.monotonic() - started
        ms = f"{budget * 1000:g} ms"
        if _timed_out(exc):
            reason = f"no connection within {ms}" if connecting else f"no answer within {ms}"
            if elapsed > budget + REDIS_LOOP_STALL:
                # The deadline fired this late: the loop (or the process) was not running, so
                # Redis may well have answered in time. Not Redis's failure.
                verdict = "stalled"
                reason += (
                    f" (it took {elapsed * 1000:.0f} ms: this process's event loop was blocked)"
                )
            elif connecting and budget >= self.connect_timeout:
                verdict = "down"
            else:
                verdict = "failed"
        elif connecting and _refused(exc):
            reason, verdict = "connection refused", "down"
        else:
            reason = f"{'cannot connect: ' if connecting else ''}{type(exc).__name__}"
            verdict = "failed"
        return _Failed(reason, verdict, maybe_applied=not connecting, started=started)

    def _judge(self, failed: _Failed) -> None:
        """A call's failure: counted towards the consecutive failures, or down at once, or (its
        loop was stalled) only logged."""
        if failed.verdict == "down":
            self._mark_down(failed.reason)
        elif failed.verdict == "stalled":
            logger.debug(
                "A Redis call answered from this process: %s. Not counted as a Redis failure.",
                failed.reason,
            )
        elif failed.verdict == "failed":
            self._count(failed)

    def _count(self, failed: _Failed) -> None:
        with self._lock:
            if self._closed or self._down:
                return
            overlapped = failed.started < self._last_failure_at
            if not overlapped:
                self._failures += 1
                self._last_failure_at = time.monotonic()
            failures = self._failures
            probe = (
                not overlapped
                and failures < REDIS_FAILURES_BEFORE_DOWN
                and self._free(self._health_probe_at)
            )
            if probe:
                self._health_probe_at = time.monotonic()
        if overlapped:
            logger.debug(
                "A Redis call answered from this process (%s); it overlapped a failure already "
                "counted, so it is not counted again.",
                failed.reason,
            )
        elif failures >= REDIS_FAILURES_BEFORE_DOWN:
            self._mark_down(f"{failures} consecutive failures, the last: {failed.reason}")
        else:
            logger.debug(
                "A Redis call answered from this process (%s): %d of %d consecutive failures "
                "before Redis is considered down.",
                failed.reason,
                failures,
                REDIS_FAILURES_BEFORE_DOWN,
            )
            if probe:
                self._state().spawn(self._background(self._health_probe))

    def _free(self, started: float | None) -> bool:
        """No probe (or flush) runs, or the one that started then is stale (its loop, e.g. a
        blocking client's idle thread, stopped running it)."""
        if started is None:
            return True
        return time.monotonic() - started > 2 * self.connect_timeout + self.timeout

    def _answered(self) -> None:
        with self._lock:
            failures, self._failures = self._failures, 0
        if failures:
            logger.debug("Redis answered again after %d failed call(s).", failures)

    async def _health_probe(self) -> None:
        """After a first failure: one PING, within the connect budget. No PONG: Redis is down
        (a slow Redis answers it; a frozen or unreachable one does not)."""
        try:
            answer = await self._attempt(lambda client: client.ping(), probe=True)
        finally:
            with self._lock:
                self._health_probe_at = None
        if not isinstance(answer, _Failed):
            if not self._down:
                logger.debug("Redis answered its health probe: a slow answer, not an outage.")
        elif answer.verdict == "stalled":
            logger.debug("Redis health probe inconclusive: %s.", answer.reason)
        elif answer.verdict:
            self._mark_down(f"its health probe failed: {answer.reason}")

    def _mark_down(self, reason: str) -> None:
        with self._lock:
            if self._closed or self._down:
                return
            self._down = True
            self._failures = 0
            self._down_since = time.monotonic()
            self._delay = REDIS_RETRY_INITIAL_DELAY
            self._retry_at = self._clock() + self._delay
            delay = self._delay
            states = list(self._loops.values())
        logger.warning(
            "Redis is unavailable (%s): clerk_sessions keeps working in this process alone "
            "(tokens cached and minted here, client-token rotations kept here) and will try "
            "Redis again in %g s.",
            reason,
            delay,
        )
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - always called from a coroutine
            current = None
        for state in states:  # waiters everywhere answer from their process now
            if state.loop is current:
                state.stop_listening()
            else:
                with contextlib.suppress(RuntimeError):  # RuntimeError: that loop is closed
                    state.loop.call_soon_threadsafe(state.stop_listening)

    async def _recovered(self) -> bool:
        """Redis is down: whether it is back. Once the back-off has passed, one probe runs in
        the background (within the connect budget); the caller that started it waits for it at
        most one call's budget (the others do not wait), then answers from this process if it
        is not over."""
        state = self._state()
        with self._lock:
            if not self._down:
                return True
            if self._closed:
                return False
            recovery = self._recovery
            if recovery is not None and not recovery[0].done() and not self._free(recovery[1]):
                return False  # another caller's probe runs: answer from this process meanwhile
            if self._clock() < self._retry_at:
                return False
            task = state.spawn(self._probe())
            self._recovery = (task, time.monotonic())
        await asyncio.wait((task,), timeout=self.timeout)
        return not self._down

    async def _probe(self) -> bool:
        _pinned.set(None)
        try:
            while True:
                with self._lock:
                    batch = self._pending_batch()
                answer = await self._replay(*batch, probe=True)
                if isinstance(answer, _Failed):
                    self._recovery_failed(answer)
                    return False
                with self._lock:
                    self._forget_replayed(*batch)
                    if self._has_pending():
                        continue  # more to write (or more arrived): write it before going back
                    if self._closed:
                        return False
                    if not self._down:  # a probe that was taken for stale got there first
                        return True
                    self._down = False
                    self._failures = 0
                    self._last_failure_at = float("-inf")
                    self._delay = REDIS_RETRY_INITIAL_DELAY
                    self._fallback = MemoryStore(DEFAULT_TOKEN_CACHE_SIZE)
                    down_for = time.monotonic() - self._down_since
                logger.info(
                    "Redis is back (after %.1f s): clerk_sessions shares tokens and client "
                    "tokens again.",
                    down_for,
                )
                return True
        finally:
            with self._lock:
                if self._recovery is not None and self._recovery[0] is asyncio.current_task():
                    self._recovery = None

    def _recovery_failed(self, failed: _Failed) -> None:
        with self._lock:
            if self._closed:
                return
            if failed.verdict == "stalled":  # not Redis's fault: try again on the next call
                self._retry_at = self._clock()
                delay = 0.0
            else:
                self._delay = min(self._delay * 2, REDIS_RETRY_MAX_DELAY)
                self._retry_at = self._clock() + self._delay
                delay = self._delay
        logger.debug("Redis is still unavailable (%s); next try in %g s.", failed.reason, delay)

    # -- writes kept for later: while down, or when their answer was lost --------------------

    def _has_pending(self) -> bool:
        return bool(
            self._pending_drops
            or self._pending_rotations
            or self._pending_proofs
            or self._pending_releases
        )

    def _pending_batch(self) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        """Up to _REPLAY_BATCH kept writes of each kind (called with the lock held)."""
        return (
            list(itertools.islice(self._pending_drops, _REPLAY_BATCH)),
            list(itertools.islice(self._pending_rotations.items(), _REPLAY_BATCH)),
            [
                (device, list(digests))
                for device, digests in itertools.islice(self._pending_proofs.items(), _REPLAY_BATCH)
            ],
            list(itertools.islice(self._pending_releases.items(), _REPLAY_BATCH)),
        )

    def _forget_replayed(
        self, drops: list[Any], rotations: list[Any], proofs: list[Any], releases: list[Any]
    ) -> None:
        """Written: forget them, unless newer ones replaced them meanwhile (lock held)."""
        for drop in drops:
            self._pending_drops.pop(drop, None)
        for device, rotation in rotations:
            if self._pending_rotations.get(device) == rotation:
                del self._pending_rotations[device]
        for device, digests in proofs:
            kept = self._pending_proofs.get(device)
            if kept is not None:
                for digest in digests:
                    kept.pop(digest, None)
                if not kept:
                    del self._pending_proofs[device]
        for lock, release in releases:
            if self._pending_releases.get(lock) == release:
                del self._pending_releases[lock]

    async def _replay(
        self,
        drops: list[tuple[str, str, str | None]],
        rotations: list[tuple[tuple[str, str], tuple[str | None, str | None]]],
        proofs: list[tuple[tuple[str, str], list[str]]],
        releases: list[tuple[str, tuple[tuple[str, ...], tuple[str | int, ...]]]],
        *,
        probe: bool,
    ) -> Any:
        """Kept writes in one round trip (or a PING if there are none). Each is safe to send
        twice: drops are idempotent, rotations and releases compare-and-set, proofs add."""
        if not (drops or rotations or proofs or releases):
            return await self._attempt(lambda client: client.ping(), probe=probe)

        async def replay(client: aioredis.Redis) -> Any:
            async with client.pipeline(transaction=False) as pipe:
                for host, device, session_id in drops:
                    keys, args = self._drop_args(host, device, session_id)
                    pipe.eval(_DROP, len(keys), *keys, *args)
                for (host, device), (sent, rotated) in rotations:
                    keys, args = self._swap_args(host, device, sent, rotated, live=False)
                    pipe.eval(_SWAP, len(keys), *keys, *args)
                for (host, device), digests in proofs:
                    name = f"{self.prefix}:prv:{self._device(host, device)}"
                    pipe.eval(_PROVE, 1, name, _ms(CLIENT_TOKEN_TTL), *digests)
                for _lock, (keys, args) in releases:
                    pipe.eval(_END, len(keys), *keys, *args)
                return await pipe.execute()

        return await self._attempt(replay, probe=probe)

    def _flush_soon(self) -> None:
        """Send the kept writes again in the background (while up: while down, the probe does)."""
        with self._lock:
            if self._down or self._closed or not self._free(self._flushing_at):
                return
            self._flushing_at = time.monotonic()
        try:
            self._state().spawn(self._background(self._flush))
        except Exception:  # pragma: no cover - a client that cannot make a pool
            with self._lock:
                self._flushing_at = None

    async def _flush(self) -> None:
        try:
            while not self._down:
                with self._lock:
                    batch = self._pending_batch()
                if not any(batch):
                    return
                if isinstance(await self._replay(*batch, probe=False), _Failed):
                    return  # judged like any call; the next answered call flushes again
                with self._lock:
                    self._forget_replayed(*batch)
                logger.debug(
                    "Redis: %d kept write(s) written (their first answer was lost).",
                    sum(len(kind) for kind in batch),
                )
        finally:
            with self._lock:
                self._flushing_at = None

    def _remember_drop(self, host: str, device: str, session_id: str | None) -> None:
        with self._lock:
            if len(self._pending_drops) < MAX_PENDING_WHILE_DOWN:
                self._pending_drops[(host, device, session_id)] = None

    def _remember_rotation(
        self, host: str, device: str, sent: str | None, rotated: str | None
    ) -> None:
        with self._lock:
            first = self._pending_rotations.get((host, device))
            if first is None and len(self._pending_rotations) >= MAX_PENDING_WHILE_DOWN:
                return
            # From the token Redis last knew to the newest one this process rotated to.
            self._pending_rotations[(host, device)] = (
                sent if first is None else first[0],
                rotated,
            )

    def _remember_proofs(self, host: str, device: str, digests: Sequence[str]) -> None:
        with self._lock:
            kept = self._pending_proofs.get((host, device))
            if kept is None:
                if len(self._pending_proofs) >= MAX_PENDING_WHILE_DOWN:
                    return
                kept = self._pending_proofs[(host, device)] = {}
            for digest in digests:
                if len(kept) < MAX_PENDING_WHILE_DOWN:
                    kept[digest] = None

    def _remember_release(self, keys: tuple[str, ...], lease_id: str, suffix: str) -> None:
        """A lease that may be ours, to release (compare-and-delete, and wake the waiters) when
        Redis answers; an unconfirmed one expires within REDIS_UNCONFIRMED_LEASE anyway."""
        args = ("", "", "", 1, lease_id, "?", self._done_channel, suffix)
        with self._lock:
            if len(self._pending_releases) < MAX_PENDING_WHILE_DOWN:
                self._pending_releases[keys[2]] = (keys, args)

    # -- single flight: the pub/sub listener of each loop -----------------------------------

    async def _listening(self, state: _Loop) -> bool:
        """The loop's listener is subscribed to the ``done`` channel (started if needed)."""
        ready = state.listener_ready
        if ready is None:
            if state.listener_client is None:
                try:
                    pool = self._pool(socket_timeout=None, max_connections=2)  # reads wait
                except Exception as exc:  # pragma: no cover - a client that cannot make a pool
                    self._mark_down(f"cannot use the Redis client: {type(exc).__name__}")
                    return False
                state.listener_client = aioredis.Redis(connection_pool=pool)
            ready = state.listener_ready = state.loop.create_future()
            listener = state.loop.create_task(self._listen(state, ready))
            state.listeners.add(listener)
            listener.add_done_callback(state.listeners.discard)
        if ready.done():
            return ready.result() is None  # a failure there was judged by its first waiter
        # Subscribing opens a connection: the connect budget, unless Redis already failed.
        budget = self.connect_timeout if not self._failures else self.timeout
        started = time.monotonic()
        try:
            error = await bounded(asyncio.shield(ready), budget)
        except Exception as exc:  # no subscription within the budget
            error = exc
        if error is None:
            return True
        state.stop_listening()
        self._judge(self._failure(error, budget, started, connecting=True))
        return False

    async def _listen(self, state: _Loop, ready: asyncio.Future[BaseException | None]) -> None:
        """Wake the loop's waiters when their mint is announced. While some wait, PING Redis
        every ``LISTENER_PING_INTERVAL``: a frozen Redis announces nothing, and no waiter
        should wait out a lease because of it."""
        assert state.listener_client is not None
        pubsub = state.listener_client.pubsub()
        loop = state.loop
        pinged_at: float | None = None
        pinged = 0.0  # time.monotonic() of the PING, for the failure's verdict
        try:
            await pubsub.subscribe(self._done_channel)
            while True:
                if pinged_at is None:
                    wait = LISTENER_PING_INTERVAL
                else:
                    wait = max(0.0, pinged_at + self.timeout - loop.time())
                message = await pubsub.get_message(timeout=wait)
                if message is None:
                    if pinged_at is not None and loop.time() >= pinged_at + self.timeout:
                        if wait > 0:
                            continue  # read once more without waiting: a PONG that came while
                            # this loop was blocked is read now, not taken for an outage
                        raise TimeoutError("no PONG")  # frozen or too slow
                    if pinged_at is None and state.waiters:
                        await pubsub.ping()
                        pinged_at, pinged = loop.time(), time.monotonic()
                    continue
                kind = _text(message["type"])
                if kind == "message":
                    state.wake(_text(message["data"]))
                elif kind == "pong":
                    pinged_at = None
                elif kind == "subscribe" and not ready.done():
                    ready.set_result(None)
        except Exception as exc:
            if not ready.done():
                ready.set_result(exc)  # the waiter starting it reports the failure
            elif isinstance(exc, TimeoutError):  # counted like a call (waiters look again)
                self._judge(self._failure(exc, self.timeout, pinged, connecting=False))
            else:  # the connection broke: waiters look again (a new listener), or mint here
                logger.debug("Redis pub/sub listener stopped: %s", type(exc).__name__)
        finally:
            if not ready.done():
                ready.set_result(asyncio.CancelledError())
            if state.listener_ready is ready:  # the next waiter starts a new listener
                state.listener_ready = None
            state.wake_all()
            close: Callable[[], Awaitable[None]] = pubsub.aclose  # untyped in some redis-py
            await close()


def _describe_url(url: str) -> str:
    """``redis://host:port/db`` for repr and errors: never the password (nor the username)."""
    try:
        options = dict(parse_url(url))
    except (ValueError, TypeError):
        raise ConfigurationError(
            "RedisStore needs a redis://, rediss:// or unix:// URL such as "
            "redis://localhost:6379/0; the URL given cannot be read (not shown: it may hold "
            "a password)."
        ) from None
    scheme = url.split("://", 1)[0].lower()
    secret = "***@" if options.get("password") or options.get("username") else ""
    if scheme == "unix":
        return f"unix://{secret}{options.get('path', '')}"
    host = options.get("host", "localhost")
    return f"{scheme}://{secret}{host}:{options.get('port', 6379)}/{options.get('db', 0)}"


def _describe_client(client: aioredis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    return f"<redis.asyncio.Redis {where}/{kwargs.get('db', 0)}>"
