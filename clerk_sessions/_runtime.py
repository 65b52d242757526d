"""Where a client gets time and chance from: one object, given at construction.

Every clock read, sleep and random draw in the request path and the token cache goes through a
:class:`Runtime`, so tests (and the emulator's helpers, whose clients follow the emulator's
clock) swap them by passing ``_runtime=Runtime(...)`` to the constructor instead of patching
private attributes.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Runtime:
    """Clocks, sleep and randomness of one client and all its views (read-only by convention).

    - ``monotonic``: intervals — call deadlines, back-off, the token cache's timing (with the
      server-clock offset, see ``_clock``);
    - ``wall``: the local calendar clock — HTTP dates (``Retry-After``), and what
      ``clock_skew`` is measured against;
    - ``sleep``: back-off waits;
    - ``random``: a float in [0, 1) for retry jitter.
    """

    __slots__ = ("monotonic", "random", "sleep", "wall")

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.monotonic = monotonic
        self.wall = wall
        self.sleep = sleep
        self.random = random

    def __repr__(self) -> str:
        return (
            f"Runtime(monotonic={self.monotonic!r}, wall={self.wall!r}, sleep={self.sleep!r}, "
            f"random={self.random!r})"
        )


DEFAULT_RUNTIME = Runtime()


if sys.version_info >= (3, 11):
    _deadline = asyncio.timeout
else:  # pragma: no cover - Python 3.10
    _deadline = None


async def bounded(work: Awaitable[T], seconds: float) -> T:
    """``await work``, cancelled after ``seconds`` (``TimeoutError``). On 3.11+ a deadline on
    the running task: no task of its own, unlike ``asyncio.wait_for``."""
    if _deadline is not None:
        async with _deadline(seconds):
            return await work
    return await asyncio.wait_for(work, seconds)  # pragma: no cover - Python 3.10
