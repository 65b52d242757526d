"""``refresh``: session ids in (a file or stdin), one JSON line per minted token out."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, TextIO

import attrs
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clerk_sessions._batch import TokenResult
from clerk_sessions._client import AsyncClerkSessions
from clerk_sessions._errors import APIConnectionError

from ._exit import EXIT_API_ERROR, EXIT_NETWORK_ERROR, EXIT_OK, UsageError, error_payload
from ._output import Output
from ._parser import organization

# Ids read ahead of the requests: bounds memory for endless input (a million ids, or a pipe).
_READ_AHEAD = 4096


def session_ids(lines: Iterable[str]) -> Iterable[str]:
    """Ids, one a line; blank lines and ``#`` comments (whole-line or trailing) skipped."""
    for line in lines:
        session_id = line.split("#", 1)[0].strip()
        if session_id:
            yield session_id


@attrs.frozen
class _End:
    error: BaseException | None = None


async def read_session_ids(stream: TextIO, *, close: bool) -> AsyncIterator[str]:
    """The ids of ``stream``, read on a daemon thread so a slow pipe never stalls requests in
    flight, and Ctrl-C is never stuck behind a blocked read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | _End] = asyncio.Queue()
    room = threading.Semaphore(_READ_AHEAD)
    stopped = threading.Event()

    def post(item: str | _End) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone: nobody is reading any more
            stopped.set()

    def reader() -> None:
        end = _End()
        try:
            for session_id in session_ids(stream):
                room.acquire()
                if stopped.is_set():
                    return
                post(session_id)
        except Exception as error:  # e.g. input that is not text: ends the batch with it
            end = _End(error)
        finally:
            if close:
                stream.close()
        post(end)

    threading.Thread(target=reader, name="clerk-sessions-input", daemon=True).start()
    try:
        while not isinstance(item := await queue.get(), _End):
            room.release()
            yield item
        if item.error is not None:
            raise UsageError(f"cannot read the session ids: {item.error}") from item.error
    finally:
        stopped.set()
        room.release()  # a reader waiting for room sees ``stopped`` and ends


def _open(name: str) -> tuple[TextIO, bool, int | None]:
    """(stream, whether we close it, how many ids it holds if that is cheap to know)."""
    if name == "-":
        return sys.stdin, False, None
    path = Path(name)
    try:
        total = None
        if path.is_file():  # a regular file: count first, so the bar can show a total
            with path.open(encoding="utf-8") as handle:
                total = sum(1 for _ in session_ids(handle))
        return path.open(encoding="utf-8"), True, total
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(
            f"cannot read {name}: {getattr(error, 'strerror', None) or error}"
        ) from None


def result_line(result: TokenResult, out: Output) -> dict[str, Any]:
    if result.error is None:
        return {"session_id": result.request.session_id, "ok": True, "jwt": result.token}
    return {
        "session_id": result.request.session_id,
        "ok": False,
        "error": error_payload(result.error, out.secrets),
    }


async def refresh(clerk: AsyncClerkSessions, args: argparse.Namespace, out: Output) -> int:
    stream, close, total = _open(args.file)
    # The bar is for a person watching stderr while stdout goes to a file or a pipe; when
    # stdout is the terminal too, the JSON lines scrolling by are the progress.
    progress = Progress(
        TextColumn("refreshing tokens"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=out.err,
        disable=not out.err.is_terminal or out.out.is_terminal,
        redirect_stdout=False,
        redirect_stderr=False,
        transient=True,
    )
    if stream is sys.stdin and stream.isatty():
        out.err.print("reading session ids, one a line; end with Ctrl-D", style="dim")
    done = 0
    failures: Counter[str] = Counter()
    network_failures = 0
    started = time.monotonic()
    with progress:
        task = progress.add_task("refresh", total=total, failed=0)
        async for result in clerk.refresh_tokens(
            read_session_ids(stream, close=close),
            concurrency=args.concurrency,
            template=args.template,
            organization_id=organization(args),
        ):
            out.json_line(result_line(result, out))
            done += 1
            if result.error is not None:
                failures[type(result.error).__name__] += 1
                network_failures += isinstance(result.error, APIConnectionError)
            progress.update(task, advance=1, failed=failures.total())
    sys.stdout.flush()
    elapsed = time.monotonic() - started
    failed = failures.total()
    rate = f" ({done / elapsed:,.0f}/s)" if elapsed > 0 and done else ""
    summary = f"refreshed {done - failed:,} of {done:,} tokens in {elapsed:.2f} s{rate}"
    if failed:
        summary += "; failed: " + ", ".join(f"{n} {name}" for name, n in failures.most_common())
    out.err.print(summary, style="red" if failed else "green")
    if not failed:
        return EXIT_OK
    return EXIT_NETWORK_ERROR if network_failures == failed else EXIT_API_ERROR
