"""Devices: what every view of one Clerk client (device) shares.

A device is named by the ``id`` claim of its client-token JWT (read without verifying; two
generations of one device's token share it, ``fapi-protocol.md`` §14), else by the token string.
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

from ._jwt import jwt_claims
from ._wire import rotated_client_token

if TYPE_CHECKING:
    from ._store import Store

ClientTokenCallback = Callable[[str | None], Awaitable[None] | None]
"""Called with the new client token (``None`` when cleared); may be sync or async."""

# Tokens a device rotated away from, remembered so that a view made later with one of them
# (an old token still in a caller's hands) uses the device's current token instead.
_RETIRED_TOKENS = 8


def device_name(client_token: str | None) -> str:
    """``id:<client id>`` for a client-token JWT, ``token:<token>`` for another token, or a
    fresh random ``new:<hex>`` for no token: each signed-out view is a device of its own, in
    this process and in every other one sharing a store (a counter would collide there)."""
    if not client_token:
        return f"new:{os.urandom(16).hex()}"  # secrets.token_hex(16), without importing it
    claims = jwt_claims(client_token)
    client_id = claims.get("id") if claims is not None else None
    if isinstance(client_id, str) and client_id:
        return f"id:{client_id}"
    return f"token:{client_token}"


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
        "key",
        "name",
        "retired",
        "token",
    )

    def __init__(self, name: str, token: str | None, registry: DeviceRegistry | None) -> None:
        self._registry = registry
        self.name = name
        self.key = device_key(name)
        self.token = token
        self.callback: ClientTokenCallback | None = None
        self.retired: list[str] = []
        self._lock = threading.Lock()  # the sync facade rotates from many threads

    def __repr__(self) -> str:  # never the token, nor the name (it may be a token)
        return f"Device(key={self.key!r}, client_token=<{'set' if self.token else 'none'}>)"

    def adopt(self, token: str) -> None:
        """A view was made with ``token``: use it, unless the device rotated away from it."""
        with self._lock:
            if token == self.token or token in self.retired:
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
        """Take a rotated token from a response, unless that response answers a request sent
        with an older token than the current one (a late reply must not undo a newer
        rotation). With a ``shared`` (host, store), the same rule holds across processes: the
        store's compare-and-set decides, and this process takes whatever it then holds."""
        rotated, new_token = rotated_client_token(response_headers)
        if not rotated:
            return
        if sent is None:  # a device's first token (a sign-in): it had no shared identity yet
            shared = None
        with self._lock:
            if self.token != sent or new_token == self.token:
                return
            if shared is None:
                self._replace(new_token)
        if shared is not None:
            host, store = shared
            current = await store.swap_client_token(host, self.key, sent, new_token)
            with self._lock:
                if self.token != sent:  # another view of this process moved on meanwhile
                    return
                self._replace(current)
            if current != new_token:  # another process's rotation won: not ours to report
                if self._registry is not None:
                    self._registry.rotated(self)
                return
        if self._registry is not None:
            self._registry.rotated(self)
        callback = self.callback
        if callback is not None:
            result = callback(new_token)
            if inspect.isawaitable(result):
                await result

    def _replace(self, token: str | None) -> None:
        if self.token:
            self.retired.append(self.token)
            del self.retired[:-_RETIRED_TOKENS]
        self.token = token


class DeviceRegistry:
    """The devices of one client and its views: found by token, then by name."""

    def __init__(self, max_devices: int) -> None:
        self.max_devices = max_devices
        # Recently used tokens → their device (strong: keeps per-request views' devices alive
        # between requests); every device any live view holds, by name (weak: never split).
        self._by_token: OrderedDict[str, Device] = OrderedDict()
        self._by_name: weakref.WeakValueDictionary[str, Device] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Device records alive (held by a view or recently used)."""
        return len(self._by_name)

    def device_for(self, client_token: str | None) -> Device:
        if not client_token:
            return Device(device_name(None), client_token, self)
        with self._lock:
            device = self._by_token.get(client_token)
            if device is not None:
                self._by_token.move_to_end(client_token)
                return device
        name = device_name(client_token)  # decoded outside the lock
        with self._lock:
            device = self._by_name.get(name)
            if device is None:
                device = self._by_name[name] = Device(name, client_token, self)
            self._remember(client_token, device)
        device.adopt(client_token)
        return device

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
