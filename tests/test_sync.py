"""What is particular to ClerkSessions, the blocking facade.

Every behaviour test of the async client already runs against ClerkSessions too (the
``make_clerk``/``clerk`` fixtures are parametrised); this file covers what only the facade has:
threads, callers with a running loop, closing and finalising, and the generated code itself.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio.to_thread
import pytest

import clerk_sessions._bridge as bridge
from clerk_sessions import (
    APIConnectionError,
    AsyncClerkSessions,
    BlockingCallInEventLoopWarning,
    ClerkSessions,
    ConfigurationError,
    NotFoundError,
)
from clerk_sessions._store import MemoryStore
from clerk_sessions._transport import Transport

from . import payloads
from .conftest import REPO, FakeFrontendAPI

pytestmark = pytest.mark.anyio

GENERATOR = REPO / "tools" / "generate_sync.py"


def open_loops(clerk: ClerkSessions) -> list[asyncio.AbstractEventLoop]:
    """The client's per-thread event loops that are still open."""
    return [lane.loop for lane in clerk._runtime._lanes if not lane.loop.is_closed()]


# -- the generated code ----------------------------------------------------------------------------


def test_every_public_member_of_the_async_client_has_a_blocking_twin() -> None:
    public = {name for name in dir(AsyncClerkSessions) if not name.startswith("_")}
    expected = (public - {"aclose"}) | {"close"}
    assert expected <= set(dir(ClerkSessions))
    for name in public - {"aclose"}:
        async_member = inspect.getattr_static(AsyncClerkSessions, name)
        sync_member = inspect.getattr_static(ClerkSessions, name)
        if isinstance(async_member, property):
            assert isinstance(sync_member, property), name
            continue
        async_sig = inspect.signature(async_member)
        sync_sig = inspect.signature(sync_member)
        if name == "with_reverification":  # ``call`` is async there, a plain callable here
            async_sig = async_sig.replace(
                parameters=[p.replace(annotation="") for p in async_sig.parameters.values()]
            )
            sync_sig = sync_sig.replace(
                parameters=[p.replace(annotation="") for p in sync_sig.parameters.values()]
            )
        assert list(async_sig.parameters.values()) == list(sync_sig.parameters.values()), name
        assert inspect.getdoc(sync_member), name
        assert not inspect.iscoroutinefunction(sync_member), name
    async_init = inspect.signature(AsyncClerkSessions.__init__)
    blocking = [p for p in async_init.parameters.values() if p.name != "http_session"]
    assert async_init.replace(parameters=blocking) == inspect.signature(ClerkSessions.__init__)


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, check=False
    )


def test_generate_check_passes_on_the_committed_facade() -> None:
    result = run_generator("--check")
    assert result.returncode == 0, result.stderr


def test_generate_check_fails_after_a_hand_edit(tmp_path: Path) -> None:
    edited = tmp_path / "_sync.py"
    text = (REPO / "clerk_sessions" / "_sync.py").read_text(encoding="utf-8")
    edited.write_text(text + "\n# a hand edit at the very end\n", encoding="utf-8")
    result = run_generator("--check", "--output", str(edited))
    assert result.returncode == 1
    assert "out of date" in result.stderr
    assert "+# a hand edit at the very end" in result.stderr or "-# a hand edit" in result.stderr


def test_a_method_added_to_the_async_client_changes_the_generated_facade() -> None:
    """Forgetting to regenerate after adding a method makes ``--check`` (and CI) fail."""
    sys.path.insert(0, str(GENERATOR.parent))
    try:
        import generate_sync
    finally:
        sys.path.remove(str(GENERATOR.parent))
    source = (REPO / "clerk_sessions" / "_client.py").read_text(encoding="utf-8")
    added = source.replace(
        "    async def get_session(",
        "    async def get_everything(self, *, deep: bool = True) -> int:\n"
        '        """New."""\n'
        "        return 1\n\n"
        "    async def get_session(",
    )
    fresh = generate_sync.render_module(added)
    assert "def get_everything(self, *, deep: bool=True) -> int:" in fresh
    assert "return self._run(self._async.get_everything(deep=deep))" in fresh
    assert fresh != generate_sync.render_module(source)


# -- threads ---------------------------------------------------------------------------------------


async def test_one_client_serves_a_16_thread_pool(fapi: FakeFrontendAPI) -> None:
    calls = 64
    for _ in range(calls):
        fapi.reply(json=payloads.session_envelope())

    def work(clerk: ClerkSessions) -> list[str]:
        with ThreadPoolExecutor(16) as pool:
            return list(pool.map(lambda _: clerk.get_session("sess_1").response.id, range(calls)))

    with ClerkSessions(frontend_api_url=fapi.url, client_token="t") as clerk:
        ids = await anyio.to_thread.run_sync(work, clerk)
        loops = open_loops(clerk)
        assert 1 <= len(loops) <= 16  # one per pool thread that made a call
    assert all(loop.is_closed() for loop in loops)
    assert ids == ["sess_1"] * calls
    assert len(fapi.requests) == calls


async def test_it_works_from_a_thread_that_runs_its_own_event_loop(
    fapi: FakeFrontendAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jupyter, or sync code called from async code: no deadlock, no error, one warning."""
    monkeypatch.setattr(bridge, "_warned_running_loop", False)
    fapi.reply(json=payloads.session_envelope())
    fapi.reply(json=payloads.session_envelope())

    def in_a_running_loop(clerk: ClerkSessions) -> list[str]:
        async def notebook_cell() -> list[str]:
            with pytest.warns(BlockingCallInEventLoopWarning, match="AsyncClerkSessions"):
                first = clerk.get_session("sess_1").response.id
            second = clerk.get_session("sess_1").response.id  # warned once only (else: error)
            return [first, second]

        return asyncio.run(notebook_cell())

    with ClerkSessions(frontend_api_url=fapi.url, client_token="t") as clerk:
        assert await anyio.to_thread.run_sync(in_a_running_loop, clerk) == ["sess_1", "sess_1"]


async def test_calling_the_facade_from_inside_its_own_call_works(
    fapi: FakeFrontendAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An on_client_token callback runs inside the call's loop; a nested blocking call there
    goes to the client's portal thread instead of deadlocking (with the one-time warning)."""
    monkeypatch.setattr(bridge, "_warned_running_loop", False)
    nested: list[str] = []

    def reenter(token: str | None) -> None:
        with pytest.warns(BlockingCallInEventLoopWarning):
            nested.append(clerk.get_session("sess_1").response.id)

    clerk = ClerkSessions(frontend_api_url=fapi.url, client_token="t", on_client_token=reenter)
    fapi.reply(json=payloads.session_envelope(), headers={"Authorization": "rotated"})
    fapi.reply(json=payloads.session_envelope())
    try:
        await anyio.to_thread.run_sync(clerk.get_session, "sess_1")
    finally:
        await anyio.to_thread.run_sync(clerk.close)
    assert nested == ["sess_1"]
    assert [r.headers["Authorization"] for r in fapi.requests] == ["t", "rotated"]


# -- errors cross the bridge unchanged -------------------------------------------------------------


async def test_exceptions_are_the_async_clients_own(fapi: FakeFrontendAPI) -> None:
    fapi.reply(404, payloads.clerk_errors("resource_not_found", "gone", "Session not found"))
    with (
        ClerkSessions(frontend_api_url=fapi.url, client_token="t") as clerk,
        pytest.raises(NotFoundError) as info,
    ):
        await anyio.to_thread.run_sync(clerk.get_session, "sess_9")
    error = info.value
    assert (error.status, error.code, error.long_message) == (
        404,
        "resource_not_found",
        "Session not found",
    )
    assert error.clerk_trace_id == "trace_abc123"
    with ClerkSessions(frontend_api_url=fapi.url) as clerk, pytest.raises(ValueError, match="non"):
        await anyio.to_thread.run_sync(clerk.get_session, " ")


def test_constructor_errors_are_the_same() -> None:
    with pytest.raises(ConfigurationError, match="secret key"):
        ClerkSessions(publishable_key="sk_test_x")


def test_the_sync_client_does_not_offer_an_aiohttp_session() -> None:
    """An aiohttp ClientSession is bound to the loop that made it; the blocking client runs
    loops of its own, so the generated signature leaves ``http_session`` out."""
    assert "http_session" in inspect.signature(AsyncClerkSessions).parameters
    assert "http_session" not in inspect.signature(ClerkSessions).parameters


# -- closing and finalising ------------------------------------------------------------------------


def test_a_client_that_never_made_a_call_creates_no_loop() -> None:
    with ClerkSessions(frontend_api_url="https://clerk.example.com") as clerk:
        assert clerk.frontend_api_url == "https://clerk.example.com"
        assert "ClerkSessions(" in repr(clerk)
        assert open_loops(clerk) == []


async def test_close_closes_every_loop_and_is_idempotent(fapi: FakeFrontendAPI) -> None:
    fapi.reply(json=payloads.session_envelope())
    clerk = ClerkSessions(frontend_api_url=fapi.url, client_token="t")
    await anyio.to_thread.run_sync(clerk.get_session, "sess_1")
    loops = open_loops(clerk)
    assert len(loops) == 1
    await anyio.to_thread.run_sync(clerk.close)
    await anyio.to_thread.run_sync(clerk.close)
    assert loops[0].is_closed()
    with pytest.raises(APIConnectionError, match="closed"):
        clerk.get_session("sess_1")


async def test_a_forgotten_client_is_finalised_without_leaks(
    fapi: FakeFrontendAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Dropped without close(): the finalizer closes each pool on its loop, then the loops.
    The suite runs with warnings as errors, so a ResourceWarning would fail it too."""
    fapi.reply(json=payloads.session_envelope())
    loops: list[asyncio.AbstractEventLoop] = []

    def use_and_forget() -> None:
        clerk = ClerkSessions(frontend_api_url=fapi.url, client_token="t")
        clerk.get_session("sess_1")
        loops.extend(open_loops(clerk))
        del clerk
        gc.collect()

    with caplog.at_level(logging.DEBUG):
        await anyio.to_thread.run_sync(use_and_forget)
    assert len(loops) == 1
    assert loops[0].is_closed()
    assert "Unclosed" not in caplog.text


async def test_a_thread_that_ended_leaves_its_loop_to_be_closed(fapi: FakeFrontendAPI) -> None:
    fapi.reply(json=payloads.session_envelope())
    fapi.reply(json=payloads.session_envelope())
    with ClerkSessions(frontend_api_url=fapi.url, client_token="t") as clerk:

        def in_a_short_lived_thread() -> list[asyncio.AbstractEventLoop]:
            worker = threading.Thread(target=clerk.get_session, args=("sess_1",))
            worker.start()
            worker.join()
            first = open_loops(clerk)
            clerk.get_session("sess_1")  # a new thread's first call sweeps the ended one's loop
            return first

        first = await anyio.to_thread.run_sync(in_a_short_lived_thread)
        assert len(first) == 1
        assert first[0].is_closed()
        assert len(open_loops(clerk)) == 1


def test_a_forgotten_client_does_not_hang_or_complain_at_interpreter_exit(tmp_path: Path) -> None:
    script = tmp_path / "forget.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, threading, asyncio
            sys.path.insert(0, {str(REPO)!r})
            from aiohttp import web
            from clerk_sessions import ClerkSessions

            ready = threading.Event()
            def serve():
                async def main():
                    app = web.Application()
                    not_found = lambda r: web.json_response({{"errors": []}}, status=404)
                    app.router.add_get("/{{t:.*}}", not_found)
                    runner = web.AppRunner(app); await runner.setup()
                    site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
                    serve.port = runner.addresses[0][1]; ready.set()
                    await asyncio.Event().wait()
                asyncio.run(main())
            threading.Thread(target=serve, daemon=True).start(); ready.wait()
            url = f"http://127.0.0.1:{{serve.port}}"
            clerk = ClerkSessions(frontend_api_url=url, client_token="t")
            try:
                clerk.get_session("sess_1")
            except Exception as exc:
                print(type(exc).__name__)
            # no close(): the interpreter exits with the client alive
            """
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "NotFoundError"
    assert "Unclosed" not in result.stderr
    assert "ResourceWarning" not in result.stderr


async def test_closing_during_a_call_from_another_thread_fails_that_call_cleanly(
    fapi: FakeFrontendAPI,
) -> None:
    arrived = fapi.hang()
    clerk = ClerkSessions(frontend_api_url=fapi.url, client_token="t")
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await anyio.to_thread.run_sync(clerk.get_session, "sess_1")
        except APIConnectionError as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await arrived.wait()
        await anyio.to_thread.run_sync(clerk.close)
    assert len(outcome) == 1
    assert "closed during the call" in str(outcome[0])
    assert open_loops(clerk) == []


async def test_a_derived_client_shares_the_loop_and_closes_with_its_parent(
    fapi: FakeFrontendAPI,
) -> None:
    fapi.reply(json=payloads.session_envelope())
    fapi.reply(json=payloads.session_envelope())
    parent = ClerkSessions(frontend_api_url=fapi.url, client_token="parent")
    child = parent.with_client_token("child")
    assert isinstance(child, ClerkSessions)
    assert child._runtime is parent._runtime
    # Made by the constructor path the owner uses: the same attributes, nothing copied over.
    assert vars(child).keys() == vars(parent).keys()
    assert child._root is parent
    assert child._finalizer is None
    assert child.with_client_token("grandchild")._root is parent
    await anyio.to_thread.run_sync(child.get_session, "sess_1")
    await anyio.to_thread.run_sync(child.close)  # the child stops; the pool stays open
    await anyio.to_thread.run_sync(parent.get_session, "sess_1")
    assert [r.headers["Authorization"] for r in fapi.requests] == ["child", "parent"]
    with pytest.raises(APIConnectionError):
        await anyio.to_thread.run_sync(child.get_session, "sess_1")
    await anyio.to_thread.run_sync(parent.close)


# -- async iterators become plain iterators --------------------------------------------------------


def test_async_iterators_become_plain_iterators_and_are_closed_early() -> None:
    runtime = bridge.LoopRuntime(Transport(), MemoryStore(max_entries=10))
    closed: list[bool] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            for n in range(5):
                await asyncio.sleep(0)
                yield n
        finally:
            closed.append(True)

    try:
        iterator: Iterator[int] = runtime.iterate(numbers())
        assert list(iterator) == [0, 1, 2, 3, 4]
        partial = runtime.iterate(numbers())
        assert next(partial) == 0
        partial.close()  # the consumer stops early: the async generator is closed on its loop
        assert closed == [True, True]
    finally:
        runtime.close()
