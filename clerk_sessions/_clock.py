"""The Frontend API's clock, estimated from its answers (``fapi-protocol.md`` §12).

A JWT's ``iat``/``exp`` are on the server's clock. Comparing them with this machine's clock
breaks both ways: behind, it serves tokens the server has expired; ahead, it never caches. So
every answer is a sample of the server's clock — the ``Date`` header, and a newly minted JWT's
``iat`` — and the token cache asks :meth:`ServerClock.now` instead of ``time.time()``.

Design:

- A sample is ``server seconds - local monotonic seconds`` at receipt. Both sources have
  one-second resolution (truncated), so a sample is taken at the *end* of its second: the
  estimate errs towards a later server time, so a token is judged to expire early, never late.
- The estimate is the median of the last few samples: one odd value (a proxy's cached
  ``Date``) never moves it; a real change (a server or the emulator clock moving) wins once it
  makes up most of the window. With an even count the middle value nearer the current
  estimate wins (averaging the two would let one odd value move it halfway).
- Between samples, time advances on the monotonic clock, which never jumps when the local
  calendar clock is stepped; ``skew`` reports ``server - local calendar`` for people.
- A ``Date`` value (or an ``iat``) equal to the previous one is skipped: an answer costs one
  comparison unless the server's second changed, so a busy batch samples about once a second.
"""

from __future__ import annotations

import email.utils
from collections import deque

from ._runtime import Runtime

# Samples kept: the median of five ignores up to two odd ones and follows a real change after
# three answers.
SAMPLES: int = 5


class ServerClock:
    """``now()`` on the server's clock, for one Frontend API host (thread-safe enough: a
    sample is one deque append; the estimate is replaced by one attribute store)."""

    __slots__ = ("_last_date", "_last_issued_at", "_monotonic", "_offset", "_samples", "_wall")

    def __init__(self, runtime: Runtime) -> None:
        self._monotonic = runtime.monotonic
        self._wall = runtime.wall
        self._samples: deque[float] = deque(maxlen=SAMPLES)
        self._offset: float | None = None  # server - monotonic, once a sample exists
        self._last_date: str | None = None
        self._last_issued_at: float | None = None

    def now(self) -> float:
        """The server's current time (seconds since the epoch), or the local clock's before the
        first answer."""
        offset = self._offset
        if offset is None:
            return self._wall()
        return self._monotonic() + offset

    @property
    def skew(self) -> float | None:
        """Estimated ``server - local`` seconds; ``None`` before the first answer."""
        if self._offset is None:
            return None
        return self._monotonic() + self._offset - self._wall()

    def observe_date(self, value: str | None) -> None:
        """A response's ``Date`` header (RFC 7231 IMF-fixdate; anything unreadable is ignored)."""
        if value is None or value == self._last_date:
            return
        self._last_date = value
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return
        if parsed.tzinfo is None:  # "-0000": UTC by RFC 5322; a naive datetime is no instant
            return
        self._add(parsed.timestamp())

    def observe_issued_at(self, issued_at: float) -> None:
        """A freshly minted JWT's ``iat`` (the server's clock when it signed the token)."""
        if issued_at != self._last_issued_at:
            self._last_issued_at = issued_at
            self._add(issued_at)

    def _add(self, server_second: float) -> None:
        samples = self._samples
        samples.append(server_second + 1.0 - self._monotonic())
        ordered = sorted(samples)
        middle = len(ordered) // 2
        if len(ordered) % 2 or self._offset is None:
            self._offset = ordered[middle]
        else:  # even: of the two middle values, the one nearer the estimate so far
            low, high = ordered[middle - 1], ordered[middle]
            current = self._offset
            self._offset = low if abs(low - current) <= abs(high - current) else high
