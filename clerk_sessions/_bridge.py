"""How blocking code runs the async core: an event loop per calling thread.

A thread that calls a :class:`~clerk_sessions.ClerkSessions` gets its own private event loop (a
"lane"), reused for every later call from that thread; the request runs right there, so a sync
call costs about what the async call costs: no hop to a shared loop thread (what that hop would
cost per call is in ``benchmarks/RESULTS.md``). The transport keeps one aiohttp session per
loop, created on that loop and used only there, for the client's whole life: no "Event loop is
closed", no "Timeout context manager should be used inside a task".

A thread that is already running a loop (Jupyter, sync code called from async code) cannot run
a second one, so its calls go to one anyio blocking portal per client instead, with a one-time
warning that the async client fits better there.

``close()`` (or the finalizer of a forgotten client, or interpreter exit) cancels calls still in
flight, closes each loop's session on that loop, closes the loops and stops the portal.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ._client import AsyncClerkSessions
from ._errors import APIConnectionError
from ._store import Store
from ._transport import Transport
from ._types import ReverificationLevel

if TYPE_CHECKING:  # anyio's portal is imported when a client first needs one
    from anyio.from_thread import BlockingPortal

    from ._reverify import CodesCallback

T = TypeVar("T")
Self = TypeVar("Self", bound="SyncClient")

# close() waits this long for a call in flight on another thread to notice its cancellation.
_CLOSE_WAIT_SECONDS = 5.0


class BlockingCallInEventLoopWarning(RuntimeWarning):
    """A sync client was called from a thread that is running an event loop.

    It works (the call runs on the client's portal thread), but it blocks that loop for the
    whole request: in async code, use :class:`~clerk_sessions.AsyncClerkSessions` instead.
    """


_warned_running_loop = False


def _warn_blocking_call_in_event_loop() -> None:
    global _warned_running_loop
    if _warned_running_loop:
        return
    _warned_running_loop = True
    warnings.warn(
        "ClerkSessions was called from a thread that is running an event loop; the call works "
        "but blocks that loop until it returns. In async code, use AsyncClerkSessions.",
        BlockingCallInEventLoopWarning,
        stacklevel=5,
    )


def _closed_error() -> APIConnectionError:
    return APIConnectionError("This client is closed; create a new one.")


class _Lane:
    """One thread's event loop. ``lock`` is held while the loop runs a call (or is closed)."""

    __slots__ = ("lock", "loop", "task", "thread")

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.lock = threading.Lock()
        self.thread = threading.current_thread()
        self.task: asyncio.Task[Any] | None = None


class LoopRuntime:
    """The loops a sync client (and the clients derived from it) run their calls on."""

    def __init__(self, transport: Transport, store: Store) -> None:
        self._transport = transport
        self._store = store
        self._local = threading.local()
        self._lanes: list[_Lane] = []
        self._lock = threading.Lock()
        self._closed = False
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None

    def run(self, coro: Coroutine[Any, Any, T], *, request: bool = True) -> T:
        """Run ``coro`` to completion for the calling thread and return (or raise) its result."""
        if self._closed:
            coro.close()
            raise _closed_error()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._run_in_lane(coro)
        if request:
            _warn_blocking_call_in_event_loop()
        return self._run_in_portal(coro)

    def _run_in_lane(self, coro: Coroutine[Any, Any, T]) -> T:
        lane: _Lane | None = getattr(self._local, "lane", None)
        if lane is None:
            try:
                lane = self._new_lane()
            except BaseException:
                coro.close()
                raise
        with lane.lock:
            if self._closed or lane.loop.is_closed():
                coro.close()
                raise _closed_error()
            task: asyncio.Task[T] = lane.loop.create_task(coro)
            lane.task = task
            try:
                return lane.loop.run_until_complete(task)
            except asyncio.CancelledError:
                if self._closed:  # close() from another thread cancelled this call
                    raise APIConnectionError("The client was closed during the call.") from None
                raise
            except BaseException:
                if not task.done():  # KeyboardInterrupt: do not leave the request running
                    task.cancel()
                    lane.loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
                raise
            finally:
                lane.task = None

    def _new_lane(self) -> _Lane:
        with self._lock:
            if self._closed:
                raise _closed_error()
            lane = _Lane()
            dead = [old for old in self._lanes if not old.thread.is_alive()]
            self._lanes = [old for old in self._lanes if old.thread.is_alive()]
            self._lanes.append(lane)
        self._local.lane = lane
        for old in dead:  # threads that ended (e.g. a pool shrank) leave their loop to us
            self._close_lane(old)
        return lane

    def _run_in_portal(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            portal = self._portal or self._start_portal()
        except BaseException:
            coro.close()
            raise
        result: T = portal.call(_await, coro)
        return result

    def _start_portal(self) -> BlockingPortal:
        with self._lock:
            if self._closed:
                raise _closed_error()
            if self._portal is None:
                from anyio.from_thread import start_blocking_portal

                self._portal_cm = start_blocking_portal("asyncio", name="clerk-sessions-portal")
                self._portal = self._portal_cm.__enter__()
            return self._portal

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background on the portal's loop (which, unlike a calling
        thread's loop, keeps running between calls): background token refreshes."""
        try:
            portal = self._portal or self._start_portal()
        except BaseException:
            coro.close()
            raise
        portal.start_task_soon(_await, coro)

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        """A plain iterator over an async iterator, driven from the thread that started it."""
        owner = threading.get_ident()
        try:
            while True:
                if threading.get_ident() != owner:
                    raise RuntimeError("Consume a ClerkSessions iterator from one thread only.")
                try:
                    yield self.run(_anext(iterator))
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None and not self._closed:
                self.run(aclose(), request=False)

    def close(self) -> None:
        """Cancel calls in flight, close every loop's session and loop, stop the portal."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            lanes, self._lanes = self._lanes, []
            portal, portal_cm = self._portal, self._portal_cm
            self._portal = self._portal_cm = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._close_all(lanes, portal, portal_cm)
        else:  # this thread runs a loop, so it cannot run the lanes' loops: a helper thread can
            closer = threading.Thread(
                target=self._close_all, args=(lanes, portal, portal_cm), name="clerk-sessions-close"
            )
            closer.start()
            closer.join()

    def _close_all(
        self,
        lanes: list[_Lane],
        portal: BlockingPortal | None,
        portal_cm: AbstractContextManager[BlockingPortal] | None,
    ) -> None:
        for lane in lanes:
            self._close_lane(lane)
        if portal is not None and portal_cm is not None:
            portal.call(self._aclose_loop)
            portal_cm.__exit__(None, None, None)

    async def _aclose_loop(self) -> None:
        """What the client holds on the running loop: its HTTP session, the store's
        connections."""
        await self._transport.aclose_loop()
        await self._store.aclose_loop()

    def _close_lane(self, lane: _Lane) -> None:
        if lane.loop.is_running() and lane.thread is threading.current_thread():
            raise RuntimeError("close() cannot be called from inside one of the client's calls.")
        task = lane.task
        if task is not None and not lane.loop.is_closed():
            lane.loop.call_soon_threadsafe(task.cancel)
        if not lane.lock.acquire(timeout=_CLOSE_WAIT_SECONDS):
            return  # a call that ignores cancellation; its thread will find the client closed
        try:
            if not lane.loop.is_closed():
                lane.loop.run_until_complete(self._aclose_loop())
                lane.loop.close()
        finally:
            lane.lock.release()


async def _await(coro: Coroutine[Any, Any, T]) -> T:
    return await coro


async def _anext(iterator: AsyncIterator[T]) -> T:
    return await iterator.__anext__()


class SyncClient:
    """Runtime of the generated :class:`~clerk_sessions.ClerkSessions` (see ``_sync.py``)."""

    _async: AsyncClerkSessions
    _runtime: LoopRuntime
    _root: SyncClient | None
    _finalizer: weakref.finalize[Any, Any] | None

    def __init__(self, core: AsyncClerkSessions) -> None:
        transport = core._shared.transport  # its own pool: the facade takes no http_session
        transport.allow_many_loops()
        self._init_view(core, LoopRuntime(transport, core._shared.store), root=None)
        core._shared.run_background_on(self._runtime.spawn)
        # Closes the pools and loops even if close() is never called (and at interpreter exit).
        self._finalizer = weakref.finalize(self, self._runtime.close)

    def _init_view(
        self, core: AsyncClerkSessions, runtime: LoopRuntime, *, root: SyncClient | None
    ) -> None:
        """Every attribute a client has, set in one place for the owner and its views alike."""
        self._async = core
        self._runtime = runtime
        self._root = root  # a view keeps its owner (and the owner's finalizer) alive
        # The owner's closes the loops and pools (__init__ sets it); a view has none.
        self._finalizer = None

    def _derive(self: Self, core: AsyncClerkSessions) -> Self:
        """A view for ``core`` (a view of this client's core, from ``with_client_token``): it
        runs on this client's loops and pools and owns none of them. Made as
        ``AsyncClerkSessions._view`` makes one: a bare instance that :meth:`_init_view` fills."""
        view = type(self).__new__(type(self))
        view._init_view(core, self._runtime, root=self._root or self)
        return view

    def with_reverification(
        self,
        session_id: str,
        call: Callable[[], T],
        *,
        codes: CodesCallback,
        level: ReverificationLevel = "second_factor",
        strategies: Sequence[str] | str | None = None,
        is_reverification_error: Callable[[BaseException], object] | None = None,
    ) -> T:
        """``call()``; if it fails with a step-up demand (a ``PermissionDeniedError`` with
        ``reverification_required``, or an exception ``is_reverification_error`` accepts),
        :meth:`reverify` at the level the demand names (else ``level``) and call once more.
        Any other exception passes through untouched. ``call`` runs on the calling thread, so
        it may use this client."""
        from . import _reverify

        return _reverify.with_reverification_blocking(
            self,
            session_id,
            call,
            codes=codes,
            level=level,
            strategies=strategies,
            is_reverification_error=is_reverification_error,
        )

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runtime.run(coro)

    def _iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        return self._runtime.iterate(iterator)

    def close(self) -> None:
        """Close the connection pools and the client's event loops.

        A client from :meth:`with_client_token` only stops being usable; the pools it shares
        close with the client it came from.
        """
        if self._finalizer is not None:
            self._finalizer()
        else:
            self._async._close_view()

    def __enter__(self: Self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._async).replace(type(self._async).__name__, type(self).__name__, 1)
