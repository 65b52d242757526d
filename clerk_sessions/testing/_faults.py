"""Fault injection rules: which request gets which failure (pure; the server applies them)."""

from __future__ import annotations

import fnmatch
import random
import threading

import attrs

_DEFAULT_CODES = {
    400: "bad_request",
    401: "authentication_invalid",
    403: "forbidden",
    404: "resource_not_found",
    408: "request_timeout",
    409: "conflict",
    422: "form_param_value_invalid",
    429: "too_many_requests",
    500: "internal_clerk_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def default_code(status: int) -> str:
    return _DEFAULT_CODES.get(status, "internal_clerk_error" if status >= 500 else "bad_request")


@attrs.define(eq=False)
class Fault:
    """One rule. ``route`` is a glob matched against ``"METHOD /path"`` and against ``"/path"``,
    e.g. ``"*/tokens"`` or ``"GET /v1/client/sessions/*"``.

    It fires ``times`` times (``None``: for ever), each time with ``probability``. ``latency``
    delays the answer, ``held`` holds it until the test calls ``release()`` (two requests in
    flight at once, without timing); then at most one failure is sent: ``drop`` (close the
    socket), ``status`` (a Clerk error body, or an HTML page with ``html``; ``retry_after`` adds
    the header), or ``truncate`` (the real answer, cut in half).
    """

    route: str
    times: int | None = 1
    probability: float = 1.0
    latency: float = 0.0
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: int | None = None
    """Whole seconds, as Clerk sends it (clerk-js reads integers only)."""
    html: bool = False
    drop: bool = False
    truncate: bool = False
    hits: int = 0
    """How many requests this rule has hit so far."""
    hit: threading.Event = attrs.field(factory=threading.Event, repr=False)
    """Set when the rule first hits a request: ``fault.hit.wait(5)`` in a test waits for the
    request to arrive (e.g. before killing the process that sent it), without polling."""
    held: bool = False
    released: threading.Event = attrs.field(factory=threading.Event, repr=False)
    """Set by ``release()``: a ``held`` answer goes on (also set when the emulator stops)."""

    def release(self) -> None:
        """Let the requests this ``held`` rule holds be answered."""
        self.released.set()

    def __attrs_post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {self.probability}")
        if self.times is not None and self.times < 1:
            raise ValueError(
                f"times must be at least 1 (or None for every request), got {self.times}"
            )
        if self.retry_after is not None and (
            not isinstance(self.retry_after, int) or self.retry_after < 0
        ):
            raise ValueError(f"retry_after is whole seconds >= 0, got {self.retry_after!r}")
        if self.latency < 0:
            raise ValueError(f"latency must not be negative, got {self.latency}")
        if sum((self.status is not None, self.drop, self.truncate)) > 1:
            raise ValueError("a fault sends at most one of: status, drop, truncate")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, path: str) -> bool:
        return fnmatch.fnmatchcase(f"{method} {path}", self.route) or fnmatch.fnmatchcase(
            path, self.route
        )


class FaultPlan:
    """The rules in the order they were added; the first live match wins."""

    def __init__(self, rng: random.Random) -> None:
        self._rules: list[Fault] = []
        self._rng = rng

    def add(self, fault: Fault) -> Fault:
        self._rules.append(fault)
        return fault

    def clear(self) -> None:
        self.release_all()
        self._rules.clear()

    def release_all(self) -> None:
        for fault in self._rules:
            fault.released.set()

    def pick(self, method: str, path: str) -> Fault | None:
        for fault in self._rules:
            if fault.exhausted or not fault.matches(method, path):
                continue
            if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                continue
            fault.hits += 1
            fault.hit.set()
            return fault
        return None
