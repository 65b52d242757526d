"""One worker process of the soak test (``benchmarks/soak.py`` starts it; not run by hand).

``python benchmarks/soak_worker.py`` reads one JSON object on stdin (the configuration: the
emulator's URL, the Redis URL, the devices with their client tokens, the seed, the duration, the
output path), then runs one ``AsyncClerkSessions`` on a ``RedisStore`` for ``duration`` seconds:
``concurrency`` tasks pick random devices and make calls through a ``with_client_token`` view
made per "request" — ``get_token`` (default, personal account, an organization, a template),
``get_session``, ``touch_session``, a small ``refresh_tokens`` batch, and calls through forged
client tokens (an unsigned ``{"alg": "none"}`` JWT naming a victim device's client id). Some
calls are cancelled by the worker after a random short delay; every call has a timeout.

Each call's outcome goes to the output file as one JSON line: the operation, the device, the
hash of the client-token string the view was made with, start and end (wall clock), duration and
timeout, the outcome (``ok``, ``cancelled`` by the worker itself, ``wait_for_timeout``, or the
exception's class), and for a token its hash and unverified ``exp``. Tokens themselves are never
written. ``sample`` lines carry the process's RSS and open files. The worker stops by itself at
its deadline, when stdin reaches EOF (the parent died) or on SIGTERM/SIGINT; every loop is
bounded in count and time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import inspect
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clerk_sessions import (
    UNSET,
    AsyncClerkSessions,
    ClerkAPIError,
    ClerkSessionsError,
    Timeout,
    TokenRequest,
)
from clerk_sessions.redis import RedisStore

GET_TOKEN_HAS_TIMEOUT = "timeout" in inspect.signature(AsyncClerkSessions.get_token).parameters
"""``get_token(..., timeout=)`` bounds the call itself; an SDK without it is driven through
``asyncio.wait_for`` (so the soak can judge an older release too)."""
HARD_SLACK = 5.0
"""An outer ``wait_for`` at timeout + this bounds every call, even one that ignores its
timeout (such a call is recorded as past its timeout, not left hanging)."""
MAX_CALLS_PER_TASK = 1_000_000
FLUSH_EVERY = 0.5


def digest(text: str) -> str:
    """A short, one-way name for a credential: what the records carry instead of it."""
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_client_token(client_id: str, rng: random.Random) -> str:
    """An unsigned JWT (``alg: none``) whose payload names a real client's id."""
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    payload = _b64(
        orjson.dumps(
            {
                "id": client_id,
                "rotating_token": "".join(rng.choices("abcdefghijklmnop0123456789", k=32)),
                "iat": int(time.time()),
            }
        )
    )
    return f"{header}.{payload}."


def unverified_claims(jwt: str) -> dict[str, Any]:
    try:
        payload = jwt.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def rss_and_fds() -> tuple[int, int]:
    rss = 0
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
                break
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = -1
    return rss, fds


def object_counts() -> dict[str, int]:
    import gc
    from collections import Counter

    gc.collect()
    return dict(Counter(type(item).__name__ for item in gc.get_objects()))


class Worker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.index: int = config["index"]
        self.rng = random.Random(f"{config['seed']}:{self.index}")
        self.devices: list[dict[str, Any]] = config["devices"]
        # The newest client token this worker knows for each device (what an app would keep
        # in its database from ``on_client_token``); the sign-in token is the oldest.
        self.latest: list[str] = [device["client_token"] for device in self.devices]
        self.template: str = config["template"]
        self.out = Path(config["out"]).open("wb")  # noqa: SIM115  (closed in run())
        self.buffer: list[bytes] = []
        self.last_flush = time.monotonic()
        self.stopping = asyncio.Event()
        self.seq = 0
        self.background: set[asyncio.Task[Any]] = set()
        trace = os.environ.get("SOAK_TRACEMALLOC")
        self.trace_dir = Path(trace) if trace else None
        self.baseline: Any = None
        self.types: dict[str, int] = {}

    # --- records ---

    def emit(self, record: dict[str, Any]) -> None:
        self.buffer.append(orjson.dumps(record) + b"\n")
        if time.monotonic() - self.last_flush >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.out.write(b"".join(self.buffer))
            self.out.flush()
            self.buffer.clear()
        self.last_flush = time.monotonic()

    def sample(self, phase: str) -> None:
        rss, fds = rss_and_fds()
        self.emit(
            {
                "kind": "sample",
                "w": self.index,
                "phase": phase,
                "t": time.time(),
                "rss": rss,
                "fds": fds,
            }
        )

    def write_allocation_growth(self) -> None:
        """With ``SOAK_TRACEMALLOC=DIR``: the lines whose allocations grew most since the
        warm-up, and the object types whose counts grew most (``gc``), for finding what holds
        a worker's memory (diagnosis only: tracing slows calls ten times)."""
        if self.trace_dir is None or self.baseline is None:
            return
        import tracemalloc

        growth = tracemalloc.take_snapshot().compare_to(self.baseline, "traceback")
        lines = []
        for stat in growth[:25]:
            lines.append(f"{stat.size_diff / 1024:+.0f} KiB in {stat.count_diff:+d} blocks")
            lines.extend(f"    {line}" for line in stat.traceback.format(limit=8))
        counts = object_counts()
        grown = sorted(counts, key=lambda name: self.types.get(name, 0) - counts[name])[:30]
        lines.append("object types grown most since the warm-up:")
        lines.extend(f"    {name}: {self.types.get(name, 0)} -> {counts[name]}" for name in grown)
        (self.trace_dir / f"worker-{self.index}.txt").write_text("\n".join(lines) + "\n")

    # --- one call ---

    async def timed(
        self,
        base: dict[str, Any],
        make: Callable[[], Awaitable[Any]],
        timeout: float,
        *,
        sdk_timeout: bool,
    ) -> Any:
        """Run one call, maybe cancelling it after a random short delay; record its outcome."""
        self.seq += 1
        record = {"kind": "call", "w": self.index, "seq": self.seq, "timeout": timeout, **base}
        # Without the SDK's own per-call timeout, wait_for is the timeout; with it, wait_for
        # only bounds a call that would ignore it.
        bound = timeout + HARD_SLACK if sdk_timeout else timeout
        record["bound"] = bound
        cancel_after = None
        if self.rng.random() < self.config["cancel_probability"]:
            cancel_after = self.rng.uniform(0.0, self.config["cancel_max_delay"])
        task = asyncio.ensure_future(asyncio.wait_for(make(), bound))
        record["t0"] = time.time()
        started = time.monotonic()
        result: Any = None
        try:
            if cancel_after is None:
                result = await asyncio.shield(task)
            else:
                done, _ = await asyncio.wait({task}, timeout=cancel_after)
                if not done:
                    task.cancel()
                    record["self_cancelled"] = True
                result = await task
            record["outcome"] = "ok"
        except asyncio.CancelledError:
            if record.get("self_cancelled"):
                record["outcome"] = "cancelled"
            else:
                record["outcome"] = "CancelledError"
                record["exc_module"] = "asyncio"
                if not task.done():  # our own shutdown: not a call's outcome
                    task.cancel()
                    record["shutdown"] = True
        except TimeoutError:
            # wait_for's own timeout (an SDK timeout is an APITimeoutError, a ClerkSessionsError)
            record["outcome"] = "wait_for_timeout"
            record["hard_bound"] = sdk_timeout
        except Exception as exc:  # every other outcome is data for the checker
            record["outcome"] = type(exc).__name__
            record["exc_module"] = type(exc).__module__
            record["clerk_error"] = isinstance(exc, ClerkSessionsError)
            if isinstance(exc, ClerkAPIError):
                record["status"] = exc.status
                record["code"] = exc.code
                long_message = exc.long_message or ""
                if "rotated" in long_message:
                    record["reason"] = "rotated_client_token"
                elif "does not hold a client token" in long_message:
                    record["reason"] = "unknown_client_token"
        record["t1"] = time.time()
        record["dur"] = time.monotonic() - started
        if record["outcome"] == "ok" and isinstance(result, str):
            record["token"] = digest(result)
            record["exp"] = unverified_claims(result).get("exp")
            record["sid_claim"] = unverified_claims(result).get("sid")
        self.emit(record)
        return result if record["outcome"] == "ok" else None

    def pick_device(self) -> int:
        return self.rng.randrange(len(self.devices))

    def view_token(self, device: int) -> str:
        """The client token a "request" brings: mostly the newest this worker knows, now and
        then the device's sign-in token (an old token still in a caller's hands)."""
        if self.rng.random() < self.config["old_token_probability"]:
            return str(self.devices[device]["client_token"])
        return self.latest[device]

    def note_rotation(self, device: int, view: AsyncClerkSessions) -> None:
        token = view.client_token
        if token:
            self.latest[device] = token

    def timeout(self) -> float:
        low, high = self.config["timeout_range"]
        return round(self.rng.uniform(low, high), 3)

    async def token_call(
        self, clerk: AsyncClerkSessions, device: int, token: str, *, forged_of: int | None
    ) -> None:
        record_device = device if forged_of is None else forged_of
        spec = self.devices[record_device]
        view = clerk.with_client_token(token)
        variant_roll = self.rng.random()
        kwargs: dict[str, Any] = {}
        if variant_roll < 0.45:
            variant = "active"
        elif variant_roll < 0.65:
            variant, kwargs["organization_id"] = "personal", None
        elif variant_roll < 0.85 and spec.get("org_id"):
            variant, kwargs["organization_id"] = f"o={spec['org_id']}", spec["org_id"]
        else:
            variant, kwargs["template"] = f"t={self.template}", self.template
        timeout = self.timeout()
        if GET_TOKEN_HAS_TIMEOUT:
            kwargs["timeout"] = timeout
        base = {
            "op": "get_token",
            "dev": record_device,
            "sid": spec["session_id"],
            "variant": variant,
            "view": digest(token),
            "forged": forged_of is not None,
        }
        await self.timed(
            base,
            lambda: view.get_token(spec["session_id"], **kwargs),
            timeout,
            sdk_timeout=GET_TOKEN_HAS_TIMEOUT,
        )
        if forged_of is None:
            self.note_rotation(device, view)

    async def session_call(
        self, clerk: AsyncClerkSessions, device: int, token: str, op: str, forged: bool
    ) -> None:
        spec = self.devices[device]
        view = clerk.with_client_token(token)
        timeout = self.timeout()
        sid = spec["session_id"]
        make: Callable[[], Awaitable[Any]]
        if op == "get_session":
            make = lambda: view.get_session(sid, timeout=timeout)  # noqa: E731
        else:
            # The session's own organization (or personal): touching never moves it, so the
            # "active" tokens keep meaning one organization.
            org = spec.get("org_id")
            intent = "focus" if self.rng.random() < 0.3 else UNSET
            make = lambda: view.touch_session(  # noqa: E731
                sid, active_organization_id=org, intent=intent, timeout=timeout
            )
        base = {
            "op": op,
            "dev": device,
            "sid": sid,
            "view": digest(token),
            "forged": forged,
        }
        await self.timed(base, make, timeout, sdk_timeout=True)
        if not forged:
            self.note_rotation(device, view)

    async def batch_call(self, clerk: AsyncClerkSessions) -> None:
        size = self.rng.randint(2, self.config["batch_max"])
        picks = [self.pick_device() for _ in range(size)]
        timeout = self.timeout() + 1.0
        items: list[dict[str, Any]] = []

        async def run() -> None:
            requests = [
                TokenRequest(self.devices[d]["session_id"], client_token=self.latest[d])
                for d in picks
            ]
            async for result in clerk.refresh_tokens(requests, concurrency=4):
                device = picks[requests.index(result.request)]
                item: dict[str, Any] = {
                    "kind": "batch_item",
                    "w": self.index,
                    "dev": device,
                    "sid": result.request.session_id,
                    "variant": "active",
                    "view": digest(result.request.client_token or ""),
                    "t1": time.time(),
                }
                if result.ok and result.token is not None:
                    item["outcome"] = "ok"
                    item["token"] = digest(result.token)
                    item["exp"] = unverified_claims(result.token).get("exp")
                else:
                    error = result.error
                    item["outcome"] = type(error).__name__
                    item["exc_module"] = type(error).__module__
                    item["clerk_error"] = isinstance(error, ClerkSessionsError)
                    if isinstance(error, ClerkAPIError):
                        item["status"], item["code"] = error.status, error.code
                items.append(item)

        base = {"op": "refresh_tokens", "dev": -1, "size": size, "view": "", "forged": False}
        await self.timed(base, run, timeout, sdk_timeout=False)
        for item in items:
            self.emit(item)

    async def request(self, clerk: AsyncClerkSessions) -> None:
        """One "web request": a view made for it, one to three calls."""
        roll = self.rng.random()
        mix = self.config["mix"]
        device = self.pick_device()
        if roll < mix["forged"]:
            victim = device
            forged = forged_client_token(self.devices[victim]["client_id"], self.rng)
            if self.rng.random() < 0.75:
                await self.token_call(clerk, victim, forged, forged_of=victim)
            else:
                await self.session_call(clerk, victim, forged, "get_session", True)
            return
        roll -= mix["forged"]
        if roll < mix["batch"]:
            await self.batch_call(clerk)
            return
        token = self.view_token(device)
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            op_roll = self.rng.random()
            if op_roll < mix["get_token"]:
                await self.token_call(clerk, device, token, forged_of=None)
            elif op_roll < mix["get_token"] + mix["get_session"]:
                await self.session_call(clerk, device, token, "get_session", False)
            else:
                await self.session_call(clerk, device, token, "touch_session", False)
            token = self.latest[device]

    async def loop(self, clerk: AsyncClerkSessions, deadline: float) -> None:
        for _ in range(MAX_CALLS_PER_TASK):
            if self.stopping.is_set() or time.monotonic() >= deadline:
                return
            await self.request(clerk)

    async def sampler(self, deadline: float) -> None:
        warmup_at = time.monotonic() + self.config["warmup"]
        sampled_warmup = False
        for _ in range(100_000):
            now = time.monotonic()
            if self.stopping.is_set() or now >= deadline:
                return
            if not sampled_warmup and now >= warmup_at:
                self.sample("warmup")
                sampled_warmup = True
                if self.trace_dir is not None:
                    import tracemalloc

                    self.baseline = tracemalloc.take_snapshot()
                    self.types = object_counts()
            elif sampled_warmup:
                self.sample("run")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 2.0 if sampled_warmup else 0.25)

    async def watch_stdin(self, reader: asyncio.StreamReader) -> None:
        """EOF on stdin: the parent is gone (or says stop): stop."""
        with contextlib.suppress(Exception):
            await reader.read()
        self.stopping.set()

    async def run(self) -> None:
        if self.trace_dir is not None:
            import tracemalloc

            tracemalloc.start(8)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        store_options: dict[str, Any] = {}
        if self.config.get("redis_timeout") is not None:
            store_options["timeout"] = self.config["redis_timeout"]
        store = RedisStore(self.config["redis_url"], **store_options)
        clerk = AsyncClerkSessions(
            frontend_api_url=self.config["url"],
            client_token=self.devices[0]["client_token"],
            store=store,
            timeout=Timeout(total=self.config["client_timeout"], connect=2.0),
            max_retries=2,
        )
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print("ready", flush=True)
        go = b""
        with contextlib.suppress(TimeoutError):
            go = await asyncio.wait_for(reader.readline(), 120)
        if go.strip() != b"go":
            self.stopping.set()
        stdin_task = asyncio.ensure_future(self.watch_stdin(reader))
        deadline = time.monotonic() + self.config["duration"]
        self.emit(
            {
                "kind": "start",
                "w": self.index,
                "t": time.time(),
                "get_token_timeout": GET_TOKEN_HAS_TIMEOUT,
            }
        )
        try:
            tasks = [
                asyncio.ensure_future(self.loop(clerk, deadline))
                for _ in range(self.config["concurrency"])
            ]
            sampler = asyncio.ensure_future(self.sampler(deadline))
            # Every call is bounded (timeout + HARD_SLACK), so the loops end soon after the
            # deadline; past that they are cancelled.
            await asyncio.wait(tasks, timeout=self.config["duration"] + 3 * HARD_SLACK + 10)
            self.stopping.set()
            for task in [*tasks, sampler]:
                task.cancel()
            await asyncio.gather(*tasks, sampler, return_exceptions=True)
            self.sample("end")
            self.write_allocation_growth()
        finally:
            stdin_task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(clerk.aclose(), 10)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(store.aclose(), 10)
            self.emit({"kind": "done", "w": self.index, "t": time.time()})
            self.flush()
            self.out.close()


def main() -> None:
    config = orjson.loads(sys.stdin.buffer.readline())
    asyncio.run(Worker(config).run())


if __name__ == "__main__":
    main()
