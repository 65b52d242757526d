"""Devices: what every view of one Clerk client (device) shares, once Clerk vouched for it.

Device identity is proven, not claimed (``api-contract.md``). A client-token JWT names its
client in its ``id`` claim, read without verifying: anyone can write a JWT with a victim's
client id. So the claim only says which device record a token *would* join. A token string
starts on a device of its own, named by the string itself (``token:<string>``, the name every
opaque token has: sharing it with whoever holds the same string gives nothing away). It joins
the device its claim names once Clerk vouched for it: Clerk answered a request carrying it with
anything but 401, or issued it in a rotation answer to a request that carried a token of the
device. Until then nothing it sends or receives touches the device: no cached session token,
client token, in-flight mint or sign-out is shared. A later view with a proven string (the same
one, or an earlier generation Clerk accepted) finds the device directly. With a shared store,
other processes' proofs count too: the store keeps digests of the proven strings per device.

Every view of a device — the client itself, each ``with_client_token`` result, the sync
facade's views, a batch's requests — uses the one :class:`Device` record: its current client
token (a rotation seen by any view is used by all), its key in the token cache (so cache
entries, single flight and sign-out invalidation are shared), and its ``on_client_token``.

The registry is bounded: views are cheap and may be made per web request, so a million views
over a thousand devices keep a thousand records, least recently used dropped first. A record
still held by a live view is found again (weakly indexed), so two views of one device never
split into two records.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from ._constants import RETIRED_CLIENT_TOKENS
from ._jwt import jwt_claims
from ._logging import log_callback_error
from ._wire import rotated_client_token

if TYPE_CHECKING:
    from ._store import Store

ClientTokenCallback = Callable[[str | None], Awaitable[None] | None]
"""Called with the new client token (``None`` when cleared); may be sync or async."""


def device_name(client_token: str | None) -> str:
    """The name of the device a token claims (``id:<client id>`` for a client-token JWT), else
    ``token:<token>``; for no token, a fresh random ``new:<hex>``: each signed-out view is a
    device of its own, in this process and in every other one sharing a store."""
    if not client_token:
        return f"new:{os.urandom(16).hex()}"  # secrets.token_hex(16), without importing it
    return claimed_name(client_token) or f"token:{client_token}"


def _retired_digest(client_token: str) -> bytes:
    return hashlib.blake2b(client_token.encode(), digest_size=16).digest()


def claimed_name(client_token: str) -> str | None:
    """``id:<client id>`` if the token is a JWT with an ``id`` claim (unverified), else None."""
    claims = jwt_claims(client_token)
    client_id = claims.get("id") if claims is not None else None
    if isinstance(client_id, str) and client_id:
        return f"id:{client_id}"
    return None


def token_digest(device: str, client_token: str) -> str:
    """What a shared store keeps of a proven string: a hash keyed by the device, never the
    string (a store that leaks still gives no token away)."""
    return hashlib.sha256(f"{device}\0{client_token}".encode()).hexdigest()[:32]


def device_key(name: str) -> str:
    """A device's name in stores and cache keys: a hash, so no key holds a client token."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


class Device:
    """One Clerk client (device): its current client token and its rotation rule (§3)."""

    __slots__ = (
        "__weakref__",
        "_lock",
        "_registry",
        "callback",
        "claim",
        "joined",
        "key",
        "name",
        "retired",
        "token",
    )

    def __init__(
        self,
        name: str,
        token: str | None,
        registry: DeviceRegistry | None,
        claim: str | None = None,
    ) -> None:
        self._registry = registry
        self.name = name
        self.key = device_key(name)
        self.token = token
        self.claim = claim
        """The device this one's token claims to be (``id:...``) until Clerk vouches for it:
        then it has ``joined`` that device. None for a proven device."""
        self.joined: Device | None = None
        self.callback: ClientTokenCallback | None = None
        self.retired: list[bytes] = []
        """Digests of earlier tokens of the device (Clerk accepted or issued each): still
        proven. Digests, not strings: 16 bytes instead of a kilobyte-sized JWT each, times 8,
        times 10,000 devices (and no more copies of bearer credentials in memory)."""
        self._lock = threading.Lock()  # the sync facade rotates from many threads

    def resolve(self) -> Device:
        """The device this record stands for: itself, or the one it joined once proven."""
        device = self
        while device.joined is not None:
            device = device.joined
        return device

    def proven(self, token: str) -> bool:
        """Whether ``token`` is a string Clerk vouched for as this device's."""
        return self.claim is None and (token == self.token or self.moved_past(token))

    def moved_past(self, token: str | None) -> bool:
        """Whether ``token`` is one of the device's earlier tokens (it rotated away from it)."""
        return token is not None and _retired_digest(token) in self.retired

    def __repr__(self) -> str:  # never the token, nor the name (it may be a token)
        return f"Device(key={self.key!r}, client_token=<{'set' if self.token else 'none'}>)"

    def adopt(self, token: str | None) -> None:
        """A proven ``token`` joins: use it, unless the device rotated away from it."""
        with self._lock:
            if token is None or token == self.token or self.moved_past(token):
                return
            self._replace(token)

    def take(self, current: str | None) -> None:
        """The device's token as a shared store holds it (another process may have rotated)."""
        if current == self.token:
            return
        with self._lock:
            self._replace(current)
        if self._registry is not None:
            self._registry.rotated(self)

    async def apply_rotation(
        self,
        response_headers: Mapping[str, str],
        sent: str | None,
        shared: tuple[str, Store] | None = None,
    ) -> None:
        """Take a rotated token from a response: the answer that arrives last wins.

        Clerk supersedes the token it issued before whenever it issues one, so when two
        requests of a device are in flight with one token, the answer Clerk produced last holds
        the token that works; keeping the first (a compare-and-set on the sent token) leaves
        the device on a superseded token, and its next call past the grace is signed out. An
        answer is still ignored if it repeats a token the device moved past (never backwards),
        or if it answers a request sent before the token was cleared (no resurrection). With a
        ``shared`` (host, store), the store applies the same rule across processes atomically,
        and this process takes whatever it then holds."""
        rotated, new_token = rotated_client_token(response_headers)
        if not rotated:
            return
        if sent is None:  # a device's first token (a sign-in): it had no shared identity yet
            shared = None
        with self._lock:
            if not self._newer(sent, new_token):
                return
            if shared is None:
                self._replace(new_token)
        if shared is not None:
            host, store = shared
            current = await store.swap_client_token(host, self.key, sent, new_token)
            with self._lock:
                if current == self.token or self.moved_past(current):
                    return  # this process already holds it, or moved past it meanwhile
                self._replace(current)
            if current != new_token:  # another process's rotation won: not ours to report
                if self._registry is not None:
                    self._registry.rotated(self)
                return
            if new_token is not None:  # Clerk issued it: proven for the other processes too
                await store.add_proven(host, self.key, [token_digest(self.key, new_token)])
        if self._registry is not None:
            self._registry.rotated(self)
        await self.report(new_token)

    def _newer(self, sent: str | None, new_token: str | None) -> bool:
        """Whether an answer to a request sent with ``sent`` that carries ``new_token`` moves
        the device on (the rule of ``apply_rotation``; called with the lock held)."""
        if new_token == self.token or self.moved_past(new_token):
            return False
        if sent == self.token:
            return True
        return self.token is not None and self.moved_past(sent)

    async def report(self, new_token: str | None) -> None:
        """Tell ``on_client_token``. The rotation has happened (the server answered, and every
        view already sends the new token): a callback that raises (a full disk) must not lose
        the call's result nor undo it, so its error is logged with its traceback and the next
        rotation calls it again."""
        callback = self.callback
        if callback is None:
            return
        try:
            result = callback(new_token)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            log_callback_error(
                "on_client_token",
                exc,
                "the client token was rotated all the same (read it from client_token) and the "
                "callback is called again on the next rotation",
                new_token,
            )

    def _replace(self, token: str | None) -> None:
        if self.token:
            self.retired.append(_retired_digest(self.token))
            del self.retired[:-RETIRED_CLIENT_TOKENS]
        self.token = token


class DeviceRegistry:
    """The devices of one client and its views: found by token, then by name."""

    def __init__(self, max_devices: int) -> None:
        self.max_devices = max_devices
        # Recently used tokens -> their device (strong: keeps per-request views' devices alive
        # between requests); every device any live view holds, by name (weak: never split).
        self._by_token: OrderedDict[str, Device] = OrderedDict()
        self._by_name: weakref.WeakValueDictionary[str, Device] = weakref.WeakValueDictionary()
        # Devices of strings not proven yet, by their key (a mint names its device by key).
        self._unproven: weakref.WeakValueDictionary[str, Device] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Device records alive (held by a view or recently used)."""
        return len(self._by_name)

    def device_for(self, client_token: str | None) -> Device:
        """The device of a view made with ``client_token``: the proven device if Clerk vouched
        for this string, else the string's own (which may join it later: :meth:`join`)."""
        if not client_token:
            return Device(device_name(None), client_token, self)
        with self._lock:
            device = self._by_token.get(client_token)
            if device is not None:
                self._by_token.move_to_end(client_token)
                return device.resolve()
        claim = claimed_name(client_token)  # decoded outside the lock
        own = f"token:{client_token}"
        with self._lock:
            named = self._by_name.get(claim) if claim is not None else None
            if named is not None and named.proven(client_token):
                device = named  # an earlier generation, still in the record's memory
            else:
                device = self._by_name.get(own)
                if device is None:
                    device = self._by_name[own] = Device(own, client_token, self, claim)
                    if claim is not None:
                        self._unproven[device.key] = device
                device = device.resolve()
            # Only what Clerk vouched for (or an opaque string, its own device) is kept in the
            # index: a string nobody proved lives as long as its views (weakly indexed by
            # name), so a stream of forged tokens cannot fill the index and push the real
            # devices out of it.
            if device.claim is None:
                self._remember(client_token, device)
        return device

    def unproven(self, key: str) -> Device | None:
        """The device of a string not proven yet whose key is ``key``, if alive."""
        return self._unproven.get(key)

    def join(self, device: Device) -> Device:
        """Clerk vouched for ``device``'s token string: it joins the device its claim names
        (made now if this process has none), whose token it becomes unless that device has
        rotated away from it. Returns the proven device (``device`` itself if it claimed
        nothing)."""
        with self._lock:
            claim = device.claim
            if claim is None or device.joined is not None:
                return device.resolve()
            named = self._by_name.get(claim)
            if named is None:
                named = self._by_name[claim] = Device(claim, device.token, self)
            device.joined = named
            if device.token:  # an unproven device never rotated: it has no earlier tokens
                self._remember(device.token, named)
        if device.callback is not None:  # the latest callback given for a device wins
            named.callback = device.callback
        named.adopt(device.token)
        return named

    def rotated(self, device: Device) -> None:
        """Index a device under its new token (a later view made with it finds the record)."""
        token = device.token
        if not token:
            return
        name = device_name(token)  # the same as before for a client JWT (its id)
        with self._lock:
            self._remember(token, device)
            if device.name.startswith("new:"):
                # A signed-out view's first token names the device from now on, as it names
                # it for every other view and process that holds this token. Nothing was
                # cached under the anonymous key: a device without a token mints nothing.
                device.name, device.key = name, device_key(name)
            # An opaque token's successor too: a view made with it later must find this
            # record by name, even once it left the token index.
            self._by_name.setdefault(name, device)

    def _remember(self, token: str, device: Device) -> None:
        self._by_token[token] = device
        self._by_token.move_to_end(token)
        while len(self._by_token) > self.max_devices:
            self._by_token.popitem(last=False)
