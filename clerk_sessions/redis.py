"""``RedisStore``: one token cache, one mint and one client token per device for every process.

A backend that acts for devices runs several processes (``uvicorn --workers 8``, replicas behind a
load balancer). With ``store=RedisStore("redis://...")`` on each of their clients
(``AsyncClerkSessions`` or ``ClerkSessions``), they share through Redis:

- session tokens: one process's token is every process's cache hit; each Redis key expires when
  its token does on the Frontend API's clock, never later; freshness never goes backwards;
- single flight: of N processes asking for the same token at once, one mints and the others wait
  for its result (pub/sub, no polling); if that process dies, its lease expires and another mints;
- each device's current client token: a rotation is one compare-and-set (the stored token is
  replaced only if it is the one the answered request was sent with), and every process sends
  the device's current token on its next request;
- sign-outs: the session's (or device's) tokens are deleted for every process at once.

Redis now holds bearer credentials (client tokens, session JWTs): protect it like a password
store — TLS with ``rediss://``, a password, and an ACL user limited to the prefix's keys and
channels and to the commands the store sends, e.g. ``ACL SETUSER clerk on >PASSWORD resetkeys
~clerk_sessions:* resetchannels &clerk_sessions:* -@all +@connection +ping +get +set +del +hget
+hmget +hset +pttl +pexpire +sadd +srem +smembers +incr +publish +subscribe +eval +evalsha``
(then ``redis://clerk:PASSWORD@host``). Key names never contain a credential.

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
``P:lock:H:D:S:V``             string      the lease of the process minting that token (a
                                           random id), ``PX`` the lease.
``P:gen:H:D``                  string      counts the device's sign-outs: a mint that began
                                           before one is not kept.
``P:dev:H:D``                  string      the device's current client token; forgotten after
                                           30 days unused.
``P:done`` (channel)           pub/sub     ``H:D:S:V`` when a mint of that token is over.
``P:events`` (channel)         pub/sub     ``drop H:D[:S]`` on every sign-out.
=============================  ==========  ===================================================

Faults. Every Redis call is bounded (``timeout``, 50 ms, counted once the call has one of its
loop's 8 connections: waiting for a busy pool is not an outage); a call that fails or takes longer
marks Redis down: one warning is logged, and until a back-off passes (1 s, doubling to 30 s) the
store works as the in-process store does, without touching Redis — tokens are cached in this
process, this process mints on its own, rotations are kept here. Sign-outs and rotations made
meanwhile are written to Redis when it answers again (before it is used again), then one info
line says it is back. A process waiting for another's mint is woken when Redis goes down (its
pub/sub connection PINGs every 0.25 s while someone waits). Nothing waits on, or raises because
of, Redis.

Standalone or replicated Redis (not Redis Cluster): the scripts touch keys of one device that
are not all declared. redis-py's asyncio connections belong to one event loop, so the store keeps
one connection pool per loop (and, from the first mint it waits for there, one pub/sub
connection): the blocking ``ClerkSessions`` runs one loop per calling thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

try:
    import redis
    import redis.asyncio as aioredis
    from redis.asyncio.connection import parse_url
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import NoScriptError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "clerk_sessions.redis needs redis-py: pip install 'clerk-sessions[redis]'"
    ) from exc

from ._constants import (
    CLIENT_TOKEN_TTL,
    DEFAULT_REDIS_TIMEOUT,
    DEFAULT_TOKEN_CACHE_SIZE,
    LEASE_EXPIRY_SLACK,
    LISTENER_PING_INTERVAL,
    MAX_PENDING_WHILE_DOWN,
    REDIS_MAX_CONNECTIONS,
    REDIS_RETRY_INITIAL_DELAY,
    REDIS_RETRY_MAX_DELAY,
    SIGN_OUT_COUNTER_TTL,
)
from ._errors import ConfigurationError
from ._jwt import CachedToken, TokenKey, jwt_timing
from ._logging import logger
from ._store import MemoryStore, Store
from ._types import UNSET

__all__ = ["RedisStore"]

T = TypeVar("T")

_DONE, _EVENTS = "done", "events"


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)


_REDIS_VERSION = _version(getattr(redis, "__version__", "0"))

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

# KEYS: lock, sign-out counter. ARGV: lease id, lease in ms. Returns {1, counter} to the leader.
_BEGIN = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2]) or ''}
end
return {0, ''}
"""

# KEYS: token, index, lock, sign-out counter. ARGV: jwt ('' = failed), oiat, iat, ttl in ms,
# lease id ('' = none), counter when the lease began ('*' = unknown), channel, message.
_END = (
    _PUT_FUNCTION
    + """
local kept = 0
if ARGV[1] ~= '' and (ARGV[6] == '*' or (redis.call('GET', KEYS[4]) or '') == ARGV[6]) then
  kept = put(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
end
if ARGV[5] ~= '' and redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
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

# KEYS: device. ARGV: the token the request was sent with ('' = none), the rotated one ('' =
# cleared), ttl in ms. Replaces only the token the request carried (or none known); returns
# the device's token afterwards.
_SWAP = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return current end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return ARGV[2]
"""


def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


_SHA = {script: _sha1(script) for script in (_PUT, _DROP, _BEGIN, _END, _CLIENT_TOKEN, _SWAP)}

if sys.version_info >= (3, 11):
    _deadline = asyncio.timeout
else:  # pragma: no cover - Python 3.10
    _deadline = None


async def _bounded(work: Awaitable[T], seconds: float) -> T:
    if _deadline is not None:
        async with _deadline(seconds):
            return await work
    return await asyncio.wait_for(work, seconds)  # pragma: no cover - Python 3.10


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


class _Failed:
    """Redis did not answer (the store is now down): answer from this process."""


_FAILED: Final = _Failed()


class _Loop:
    """What the store holds on one event loop: its connections, pub/sub listener and waiters."""

    __slots__ = (
        "client",
        "listener_client",
        "listener_ready",
        "listeners",
        "loop",
        "owned",
        "slots",
        "waiters",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, client: aioredis.Redis, owned: bool, slots: int
    ) -> None:
        self.loop = loop
        self.client = client
        self.owned = owned
        """The store made ``client`` (and closes it); else it is the caller's."""
        # Calls wait here, outside their time budget, for a free connection: a busy pool is not
        # an outage. Each call holding one is bounded, so the wait is too.
        self.slots = asyncio.Semaphore(slots)
        self.listener_client: aioredis.Redis | None = None
        self.listeners: set[asyncio.Task[None]] = set()
        """The listener, and any stopped one still closing its connection."""
        self.listener_ready: asyncio.Future[BaseException | None] | None = None
        # Token key suffix (H:D:S:V) -> futures of the callers waiting for that mint.
        self.waiters: dict[str, set[asyncio.Future[None]]] = {}

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
        await asyncio.gather(*self.listeners, return_exceptions=True)
        if self.listener_client is not None:
            await self.listener_client.connection_pool.disconnect()
        if self.owned:
            await self.client.aclose()
            await self.client.connection_pool.disconnect()


class RedisStore(Store):
    """Session tokens, single flight and devices' client tokens shared on Redis (see module).

    ``url_or_client``: a ``redis://`` or ``rediss://`` URL (``unix://`` too), or a
    ``redis.asyncio.Redis``: it is used on the first event loop the store runs on, and equivalent
    clients (same connection settings) are made for other loops; the store never closes it.
    ``prefix`` starts every key: processes with the same Redis and prefix share. ``timeout``
    bounds each Redis call (seconds). ``_clock`` (tests): the monotonic clock of the back-off.

    Close it with :meth:`aclose` when the clients using it are closed.
    """

    shared = True

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        prefix: str = "clerk_sessions",
        timeout: float = DEFAULT_REDIS_TIMEOUT,
        _clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if _REDIS_VERSION < (5, 0, 2):
            raise ConfigurationError(
                "RedisStore needs redis-py 5.0.2 or later (5.0.1's asyncio BlockingConnectionPool "
                "deadlocks when a connection fails to open): pip install 'clerk-sessions[redis]'."
            )
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError("RedisStore prefix must be a non-empty string.")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout < float("inf")
        ):
            raise ConfigurationError(
                f"RedisStore timeout must be a positive number of seconds, got {timeout!r}."
            )
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
        self.timeout = float(timeout)
        self._clock = _clock
        self._done_channel = f"{prefix}:{_DONE}"
        self._events_channel = f"{prefix}:{_EVENTS}"
        self._loops: dict[asyncio.AbstractEventLoop, _Loop] = {}
        self._given_loop: asyncio.AbstractEventLoop | None = None
        self._hosts: dict[str, str] = {}
        self._leases: dict[tuple[str, object], tuple[str, str]] = {}
        self._lock = threading.Lock()
        # Health: ``_down`` is read on every call without the lock (one attribute).
        self._down = False
        self._closed = False
        self._probing = False
        self._retry_at = 0.0
        self._delay = REDIS_RETRY_INITIAL_DELAY
        # While down: this process's tokens, and what to write to Redis when it is back.
        self._fallback = MemoryStore(DEFAULT_TOKEN_CACHE_SIZE)
        self._pending_drops: dict[tuple[str, str, str | None], None] = {}
        self._pending_rotations: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    def __repr__(self) -> str:  # never a password (URLs may carry one)
        state = "closed" if self._closed else "down" if self._down else "up"
        return f"RedisStore({self._where}, prefix={self.prefix!r}, redis={state})"

    @property
    def available(self) -> bool:
        """Redis answered the last call (False while down: the store works in-process)."""
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
        if raw is _FAILED:
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
        if await self._script(_PUT, keys, (token.jwt, oiat, iat, _ms(ttl))) is _FAILED:
            await self._fallback.put(key, token, ttl)

    async def drop(self, host: str, device: str, session_id: str | None) -> None:
        await self._fallback.drop(host, device, session_id)
        if self._down and not await self._recovered():
            self._remember_drop(host, device, session_id)
            return
        if await self._script(_DROP, *self._drop_args(host, device, session_id)) is _FAILED:
            self._remember_drop(host, device, session_id)

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

    async def begin_mint(self, key: TokenKey, lease: float) -> bool:
        if self._down and not await self._recovered():
            return True
        hd, suffix = self._suffix(key)
        p = self.prefix
        lock = f"{p}:lock:{suffix}"
        lease_id = uuid.uuid4().hex
        answer = await self._script(_BEGIN, (lock, f"{p}:gen:{hd}"), (lease_id, _ms(lease)))
        if isinstance(answer, _Failed):
            return True
        won, generation = answer
        if int(won) != 1:
            return False
        with self._lock:
            if len(self._leases) >= MAX_PENDING_WHILE_DOWN:
                self._leases.clear()  # leases of calls cancelled mid-begin; theirs expire
            self._leases[(lock, asyncio.current_task())] = (lease_id, _text(generation))
        return True

    async def wait_mint(self, key: TokenKey, timeout: float) -> CachedToken | None:
        if self._down and not await self._recovered():
            return await self._fallback.get(key)
        try:
            state = self._state()
        except Exception as exc:  # pragma: no cover - a client that cannot make a pool
            self._failed(exc, probe=False)
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
        hd, suffix = self._suffix(key)
        p = self.prefix
        lock = f"{p}:lock:{suffix}"
        with self._lock:
            lease_id, generation = self._leases.pop((lock, asyncio.current_task()), ("", "*"))
        if token is not None and ttl <= 0:
            token = None
        if self._down and not await self._recovered():
            if token is not None:
                await self._fallback.put(key, token, ttl)
            return
        jwt, oiat, iat = ("", "", "") if token is None else (token.jwt, *_freshness(token))
        keys = (f"{p}:tok:{suffix}", f"{p}:idx:{hd}", lock, f"{p}:gen:{hd}")
        args = (jwt, oiat, iat, _ms(ttl), lease_id, generation, self._done_channel, suffix)
        if await self._script(_END, keys, args) is _FAILED and token is not None:
            await self._fallback.put(key, token, ttl)

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
        name = f"{self.prefix}:dev:{self._device(host, device)}"
        args = (sent or "", rotated or "", _ms(CLIENT_TOKEN_TTL))
        answer = await self._script(_SWAP, (name,), args)
        if isinstance(answer, _Failed):
            self._remember_rotation(host, device, sent, rotated)
            return rotated
        return None if answer is None else _text(answer)

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
                pool = self._pool(socket_timeout=self.timeout)
                state = _Loop(
                    loop, aioredis.Redis(connection_pool=pool), True, pool.max_connections
                )
            self._loops[loop] = state
            return state

    def _pool(self, *, socket_timeout: float | None, max_connections: int = 0) -> Any:
        """A blocking pool to this store's Redis: short connect timeout, no retries by redis-py
        (they would stretch a call past its budget; the store has its own back-off)."""
        settings: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": self.timeout,
            "retry": Retry(NoBackoff(), 0),
            "retry_on_timeout": False,
            "health_check_interval": 0,
            "max_connections": max_connections or REDIS_MAX_CONNECTIONS,
            "timeout": None,  # waiting for a connection is bounded by the caller's slots
        }
        if self._url is not None:
            return aioredis.BlockingConnectionPool.from_url(self._url, **settings)
        assert self._given is not None
        given = self._given.connection_pool
        kwargs = {**given.connection_kwargs, **settings}
        return aioredis.BlockingConnectionPool(connection_class=given.connection_class, **kwargs)

    async def _attempt(
        self, work: Callable[[aioredis.Redis], Awaitable[T]], *, probe: bool = False
    ) -> T | _Failed:
        """``work`` on the running loop's client within ``timeout``, or _FAILED (Redis is
        then down; the caller answers from this process)."""
        try:
            state = self._state()
            async with state.slots:
                if self._down and not probe:  # went down while this call waited for a slot
                    return _FAILED
                return await _bounded(work(state.client), self.timeout)
        except Exception as exc:  # whatever Redis (or the network) did, the caller goes on
            self._failed(exc, probe=probe)
            return _FAILED

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

    def _failed(self, exc: BaseException, *, probe: bool) -> None:
        with self._lock:
            if self._closed:
                return
            if self._down and not probe:
                return  # a call that was in flight when Redis went down: already counted
            first = not self._down
            self._delay = (
                REDIS_RETRY_INITIAL_DELAY if first else min(self._delay * 2, REDIS_RETRY_MAX_DELAY)
            )
            self._down = True
            self._probing = False
            self._retry_at = self._clock() + self._delay
            delay = self._delay
            states = list(self._loops.values())
        reason = (
            f"no answer within {self.timeout * 1000:g} ms"
            if isinstance(exc, (TimeoutError, asyncio.TimeoutError))
            else type(exc).__name__
        )
        if first:
            logger.warning(
                "Redis is unavailable (%s): clerk_sessions keeps working in this process alone "
                "(tokens cached and minted here, client-token rotations kept here) and will try "
                "Redis again in %g s.",
                reason,
                delay,
            )
        else:
            logger.debug("Redis is still unavailable (%s); next try in %g s.", reason, delay)
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
        """Redis is down: whether it is back, trying it if the back-off has passed (one caller
        tries; the others answer from this process meanwhile)."""
        with self._lock:
            if not self._down:
                return True
            if self._closed or self._probing or self._clock() < self._retry_at:
                return False
            self._probing = True
        try:
            return await self._probe()
        except BaseException:  # cancelled mid-probe: another caller tries
            with self._lock:
                self._probing = False
            raise

    async def _probe(self) -> bool:
        while True:
            with self._lock:
                drops = list(self._pending_drops)
                rotations = list(self._pending_rotations.items())
            if await self._replay(drops, rotations) is _FAILED:
                return False
            with self._lock:
                for drop in drops:
                    self._pending_drops.pop(drop, None)
                for device, rotation in rotations:
                    if self._pending_rotations.get(device) == rotation:
                        del self._pending_rotations[device]
                if self._pending_drops or self._pending_rotations:
                    continue  # more arrived meanwhile: write those too before going back
                if self._closed:
                    return False
                self._down = self._probing = False
                self._delay = REDIS_RETRY_INITIAL_DELAY
                self._fallback = MemoryStore(DEFAULT_TOKEN_CACHE_SIZE)
            logger.info("Redis is back: clerk_sessions shares tokens and client tokens again.")
            return True

    async def _replay(
        self,
        drops: list[tuple[str, str, str | None]],
        rotations: list[tuple[tuple[str, str], tuple[str | None, str | None]]],
    ) -> Any:
        """The probe: sign-outs and rotations made while Redis was down (or a PING)."""
        if not drops and not rotations:
            return await self._attempt(lambda client: client.ping(), probe=True)

        async def replay(client: aioredis.Redis) -> Any:
            async with client.pipeline(transaction=False) as pipe:
                for host, device, session_id in drops:
                    keys, args = self._drop_args(host, device, session_id)
                    pipe.eval(_DROP, len(keys), *keys, *args)
                for (host, device), (sent, rotated) in rotations:
                    name = f"{self.prefix}:dev:{self._device(host, device)}"
                    ttl = _ms(CLIENT_TOKEN_TTL)
                    pipe.eval(_SWAP, 1, name, sent or "", rotated or "", ttl)
                return await pipe.execute()

        return await self._attempt(replay, probe=True)

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

    # -- single flight: the pub/sub listener of each loop -----------------------------------

    async def _listening(self, state: _Loop) -> bool:
        """The loop's listener is subscribed to the ``done`` channel (started if needed)."""
        ready = state.listener_ready
        if ready is None:
            if state.listener_client is None:
                try:
                    pool = self._pool(socket_timeout=None, max_connections=2)  # reads wait
                except Exception as exc:  # pragma: no cover - a client that cannot make a pool
                    self._failed(exc, probe=False)
                    return False
                state.listener_client = aioredis.Redis(connection_pool=pool)
            ready = state.listener_ready = state.loop.create_future()
            listener = state.loop.create_task(self._listen(state, ready))
            state.listeners.add(listener)
            listener.add_done_callback(state.listeners.discard)
        if ready.done():
            error = ready.result()
        else:
            try:
                error = await _bounded(asyncio.shield(ready), self.timeout)
            except Exception as exc:  # no subscription within the budget
                error = exc
        if error is None:
            return True
        state.stop_listening()
        self._failed(error, probe=False)
        return False

    async def _listen(self, state: _Loop, ready: asyncio.Future[BaseException | None]) -> None:
        """Wake the loop's waiters when their mint is announced. While some wait, PING Redis
        every ``LISTENER_PING_INTERVAL``: a frozen Redis announces nothing, and no waiter
        should wait out a lease because of it."""
        assert state.listener_client is not None
        pubsub = state.listener_client.pubsub()
        loop = state.loop
        pinged_at: float | None = None
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
                        raise TimeoutError("no PONG")  # frozen or too slow: down
                    if pinged_at is None and state.waiters:
                        await pubsub.ping()
                        pinged_at = loop.time()
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
            elif isinstance(exc, TimeoutError):
                self._failed(exc, probe=False)
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
