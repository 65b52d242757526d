"""What ``on_retry`` callbacks receive.

Its own module, loaded by the first retry (or the first ``import`` of it): an attrs class costs
its generated methods at import, and most processes never retry.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class RetryEvent:
    """What ``on_retry`` receives before the SDK sleeps and tries again."""

    operation: str
    retry: int
    """1 for the first retry."""
    max_retries: int
    reason: str
    """e.g. ``"HTTP 503"``, ``"timeout"``, ``"connection error"``, ``"connection dropped"``
    (closed before any response)."""
    delay: float
    """Seconds the SDK sleeps before the retry."""

    def __str__(self) -> str:
        return (
            f"retrying {self.operation} ({self.retry} of {self.max_retries}) after "
            f"{self.reason}, in {self.delay:.2f}s"
        )
