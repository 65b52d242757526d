"""The soak test: worker processes sharing one Redis hammer one Frontend API emulator while
faults are injected on a seeded schedule; a checker judges the outcome from the emulator's own
records (``python -m nox -s soak -- --duration 60``).

What runs:

- a real ``redis-server`` on a free loopback port (``clerk_sessions.testing.RedisServer``);
- the emulator in this process (a background thread), with users, organizations, a JWT
  template and ``--devices`` devices signed in up front (``sign_in``, and tickets for some);
- ``--workers`` processes (``benchmarks/soak_worker.py``), each one ``AsyncClerkSessions`` on a
  ``RedisStore``, making calls for random devices for ``--duration`` seconds (see the worker);
- the fault schedule, from ``--seed``: 503s, dropped connections, 429 with ``Retry-After``,
  slow answers, a phase of client-token rotation with stale tokens rejected, Redis frozen
  (SIGSTOP/SIGCONT) and killed then restarted on the same port, the server's clock moved
  +1 h and back (never during the rotation phase: a jump would age every rotated-away token
  past its grace at once), and forged client tokens (the workers make them).

The checker (:func:`judge`, pure: ``tests/test_soak.py`` feeds it synthetic records) prints a
table and writes a JSON summary; the exit status is 1 if any row fails. Everything listens and
connects on 127.0.0.1 only; every process started here is stopped on the way out (Ctrl-C and
failures included).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import hashlib
import math
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORKER = Path(__file__).resolve().parent / "soak_worker.py"
TEMPLATE = "soak"
TOKEN_REFRESH_AHEAD = 15.0
"""The SDK's default ``token_refresh_ahead``: a token is replaced when this much is left."""
TOKEN_LEEWAY = 10.0
"""The SDK's default ``token_leeway``: a token with less left is never handed out."""
TOKEN_ROUTES = ("create_session_token", "create_session_token_with_template")


def digest(text: str) -> str:
    """The worker's hash of a credential (the records never hold the credential itself)."""
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# --- the checker (pure) ------------------------------------------------------------------------


@dataclass
class Limits:
    """What the checker allows, all stated in its output."""

    timeout_slack: float = 0.5
    """Seconds a call may overrun its timeout: scheduling on a loaded 2-core machine."""
    clock_grace: float = 2.0
    """Seconds after a forward jump of the server's clock during which an expired token is
    reported on its own row, not failed: the SDK learns the server's clock only from answers
    (the median of five), so a cache hit just after the jump cannot know yet."""
    rss_slack_bytes: int = 24 * 1024 * 1024
    rss_slack_fraction: float = 0.15
    fd_slack: int = 24
    redis_recovery: float = 5.0
    """Seconds after an injected Redis fault still counted as inside it (the store retries
    after a back-off of 1 s, doubling)."""


@dataclass
class Truth:
    """The emulator's records and what this process did, as plain data.

    ``issued``: token hash → {client_id, session_id, exp, iat, issued_at (server clock),
    source}; ``client_tokens``: client-token hash → client id; ``mints``: the 200 answers of the
    token routes, each {t, client_id, session_id, variant}; ``rejections``: the 401s of refused
    client tokens, each {t, kind, client_id}; ``clock``: [(real time, server offset)] from the
    start, one entry per change; ``faults``: each {kind, start, end, route, hits};
    ``devices``: each {client_id, session_id}; ``start``/``end``: the run, real time.
    """

    issued: dict[str, dict[str, Any]]
    client_tokens: dict[str, str]
    mints: list[dict[str, Any]]
    rejections: list[dict[str, Any]]
    clock: list[tuple[float, float]]
    faults: list[dict[str, Any]]
    devices: list[dict[str, Any]]
    start: float
    end: float
    workers: int
    token_lifetime: float


@dataclass
class Row:
    check: str
    value: str
    limit: str
    ok: bool | None
    """None: reported, not judged."""
    details: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "info" if self.ok is None else "PASS" if self.ok else "FAIL"


@dataclass
class Report:
    rows: list[Row]
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(row.ok is not False for row in self.rows)

    def row(self, check: str) -> Row:
        return next(row for row in self.rows if row.check.strip() == check)


def _offset_at(clock: list[tuple[float, float]], at: float) -> float:
    """The server clock's offset from real time at real time ``at``."""
    if not clock:
        return 0.0
    times = [t for t, _ in clock]
    index = bisect.bisect_right(times, at) - 1
    return clock[max(index, 0)][1] if index >= 0 else clock[0][1]


def _forward_jumps(clock: list[tuple[float, float]]) -> list[float]:
    return [
        t for (t, offset), (_, before) in zip(clock[1:], clock, strict=False) if offset > before
    ]


def _in_windows(at: float, windows: Iterable[tuple[float, float]]) -> bool:
    return any(start <= at <= end for start, end in windows)


def _during(call: Mapping[str, Any], faults: Iterable[Mapping[str, Any]]) -> str:
    """The injected Redis faults a call overlapped, as a note for its example line."""
    names = [
        f["kind"]
        for f in faults
        if f["kind"] in ("redis_pause", "redis_kill")
        and call["t0"] <= f["end"]
        and f["start"] <= call["t1"]
    ]
    return f", during {' and '.join(names)}" if names else ""


def _examples(items: list[str], limit: int = 5) -> list[str]:
    return items[:limit] + ([f"... and {len(items) - limit} more"] if len(items) > limit else [])


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items())) or "none"


def judge(
    calls: list[dict[str, Any]],
    batch_items: list[dict[str, Any]],
    samples: list[dict[str, Any]],
    truth: Truth,
    limits: Limits | None = None,
) -> Report:
    """Judge a run from the workers' call records and the emulator's ground truth."""
    limits = limits or Limits()
    rows: list[Row] = []
    duration = max(truth.end - truth.start, 1e-9)
    redis_windows = [
        (fault["start"], fault["end"] + limits.redis_recovery)
        for fault in truth.faults
        if fault["kind"] in ("redis_pause", "redis_kill")
    ]
    device_of_client = {d["client_id"]: index for index, d in enumerate(truth.devices)}

    # Every token any caller was handed, with when and to which view.
    handed: list[dict[str, Any]] = [
        call
        for call in calls
        if call.get("outcome") == "ok" and call.get("token") and call["op"] == "get_token"
    ]
    handed += [item for item in batch_items if item.get("outcome") == "ok" and item.get("token")]

    # 1. Expired tokens, by the server's clock at hand-out, from the emulator's exp.
    jumps = _forward_jumps(truth.clock)
    expired: list[str] = []
    after_jump: list[float] = []
    after_jump_workers: Counter[str] = Counter()
    unknown_tokens: list[str] = []
    min_left = math.inf
    under_leeway = 0
    for call in handed:
        record = truth.issued.get(call["token"])
        if record is None:
            unknown_tokens.append(f"w{call['w']} {call.get('op', 'batch')} dev {call['dev']}")
            continue
        server_now = call["t1"] + _offset_at(truth.clock, call["t1"])
        left = record["exp"] - server_now
        since = min((call["t1"] - t for t in jumps if call["t1"] >= t), default=math.inf)
        if left <= 0 and since <= limits.clock_grace:
            after_jump.append(since)
            after_jump_workers[f"w{call['w']}"] += 1
            continue
        min_left = min(min_left, left)
        under_leeway += left < TOKEN_LEEWAY
        if left <= 0:
            expired.append(
                f"w{call['w']} {call.get('op', 'batch item')} dev {call['dev']} "
                f"{call.get('variant', '')}: expired {-left:.1f}s before hand-out"
                + (f", {since:.2f}s after a +clock jump" if since < math.inf else "")
            )
    rows.append(
        Row(
            "expired tokens handed out",
            f"{len(expired)} of {len(handed)}",
            "0",
            not expired,
            [
                *_examples(expired),
                f"least time left at hand-out: {min_left:.1f}s; with under the SDK's "
                f"{TOKEN_LEEWAY:g}s leeway: {under_leeway}",
            ],
        )
    )
    rows.append(
        Row(
            f"  expired within {limits.clock_grace:g}s after a +clock jump",
            str(len(after_jump)),
            "reported",
            None,
            [
                f"the last {max(after_jump):.2f}s after the jump; by worker: "
                f"{_counts(after_jump_workers)}"
            ]
            if after_jump
            else [],
        )
    )
    rows.append(
        Row(
            "tokens the emulator never issued",
            str(len(unknown_tokens)),
            "0",
            not unknown_tokens,
            _examples(unknown_tokens),
        )
    )

    # 2. Unproven client tokens: a view whose token the emulator never issued gets nothing.
    # A worker makes such views on purpose (forged) and also, unknowingly, when the SDK
    # reported a forged token as a device's ``client_token`` (the worker keeps what it reports,
    # as an app persists it): both are judged here, from the emulator's list of issued tokens.
    forged_ok: list[str] = []
    forged_total = 0
    handed_back: set[str] = set()
    forged_by: Counter[str] = Counter()
    for call in calls:
        if not call.get("view") or call["view"] in truth.client_tokens:
            continue
        forged_total += 1
        source = "forged" if call.get("forged") else "handed back by the SDK"
        if not call.get("forged"):
            handed_back.add(call["view"])
        forged_by[f"{call['op']} {call.get('outcome', '?')}"] += 1
        if call.get("outcome") != "ok":
            continue
        how = " answered"
        record = truth.issued.get(call.get("token") or "")
        if record is not None:
            server_t0 = call["t0"] + _offset_at(truth.clock, call["t0"])
            victim = device_of_client.get(record["client_id"])
            when = "cached before the call" if record["issued_at"] < server_t0 else "minted"
            how = f" got a token of dev {victim}'s client ({when})"
        forged_ok.append(f"w{call['w']} {call['op']} ({source}) dev {call['dev']}:{how}")
    rows.append(
        Row(
            "unproven client token answered",
            f"{len(forged_ok)} of {forged_total}",
            "0",
            not forged_ok,
            [f"outcomes: {_counts(forged_by)}", *_examples(forged_ok)],
        )
    )
    rows.append(
        Row(
            "forged token reported as client_token",
            str(len(handed_back)),
            "0",
            not handed_back,
            [
                "distinct unproven tokens a worker read back from view.client_token of a "
                "proven view (an app would persist them)"
            ]
            if handed_back
            else [],
        )
    )

    # 2b. A proven view handed another device's token.
    crossed: list[str] = []
    for call in handed:
        record = truth.issued.get(call["token"])
        owner = truth.client_tokens.get(call.get("view") or "")
        if record is None or owner is None:
            continue
        if record["client_id"] != owner or record["session_id"] != call["sid"]:
            crossed.append(f"w{call['w']} dev {call['dev']} got a token of {record['client_id']}")
    rows.append(
        Row("token of another device", str(len(crossed)), "0", not crossed, _examples(crossed))
    )

    # 3. Lost rotations: the emulator refused a rotated-away (real) client token.
    stale = [r for r in truth.rejections if r["kind"] == "stale_client_token"]
    stale_redis = [r for r in stale if _in_windows(r["t"], redis_windows)]
    unknown_rejected = [r for r in truth.rejections if r["kind"] == "unknown_client_token"]
    rows.append(
        Row(
            "lost rotations (stale client token, 401)",
            str(len(stale)),
            "0",
            not stale,
            [
                f"during an injected Redis fault (+{limits.redis_recovery:g}s): "
                f"{len(stale_redis)}, outside any: {len(stale) - len(stale_redis)}",
                f"devices: {len({r['client_id'] for r in stale})}",
                f"unknown-token 401s (forged, or a device that adopted a forged token): "
                f"{len(unknown_rejected)}",
            ],
        )
    )
    legit_401 = [
        call
        for call in [*calls, *batch_items]
        if call.get("status") == 401 and call.get("view") in truth.client_tokens
    ]
    reasons = Counter(call.get("reason", call.get("code", "?")) for call in legit_401)
    rows.append(
        Row(
            "proven client token answered 401",
            str(len(legit_401)),
            "0",
            not legit_401,
            [
                f"reasons: {_counts(reasons)}",
                *_examples(
                    [
                        f"w{c['w']} {c.get('op', 'batch')} dev {c['dev']}: {c.get('reason', '')}"
                        for c in legit_401
                    ]
                ),
            ],
        )
    )

    # 4. Calls past their timeout (worker-measured; self-cancelled calls ended early anyway).
    late = [
        call
        for call in calls
        if not call.get("shutdown")
        and call.get("outcome") != "cancelled"
        and call["dur"] > call["timeout"] + limits.timeout_slack
    ]
    late.sort(key=lambda call: call["timeout"] - call["dur"])
    rows.append(
        Row(
            f"calls past their timeout (+{limits.timeout_slack:g}s slack)",
            f"{len(late)} of {len(calls)}",
            "0",
            not late,
            _examples(
                [
                    f"w{c['w']} {c['op']}: {c['dur']:.2f}s for a {c['timeout']:.2f}s timeout "
                    f"({c['outcome']}{_during(c, truth.faults)})"
                    for c in late
                ]
            ),
        )
    )

    # 5. Exceptions outside ClerkSessionsError (a worker's own cancellations are expected).
    foreign: Counter[str] = Counter()
    foreign_examples: list[str] = []
    self_cancelled = 0
    for call in [*calls, *batch_items]:
        outcome = call.get("outcome", "?")
        if outcome == "ok" or call.get("shutdown"):
            continue
        if outcome == "cancelled":
            self_cancelled += 1
            continue
        if outcome == "wait_for_timeout":
            # wait_for's own timeout, unless the call raised a TimeoutError well before it.
            if call["dur"] >= call.get("bound", call["timeout"]) - 0.25:
                continue
            outcome = "TimeoutError (raised by the SDK)"
        elif call.get("clerk_error"):
            continue
        elif outcome == "CancelledError":
            outcome = "CancelledError (in a call nobody cancelled)"
        foreign[outcome] += 1
        foreign_examples.append(f"w{call['w']} {call.get('op', 'batch item')}: {outcome}")
    rows.append(
        Row(
            "exceptions outside ClerkSessionsError",
            str(sum(foreign.values())),
            "0",
            not foreign,
            [f"by type: {_counts(foreign)}", *_examples(foreign_examples)],
        )
    )
    outcomes = Counter(call.get("outcome", "?") for call in calls)
    rows.append(
        Row(
            "  calls cancelled by the worker itself",
            str(self_cancelled),
            "expected",
            None,
            [f"all outcomes: {_counts(outcomes)}"],
        )
    )

    # 6. Mints: at most one per (device, session, variant) per token lifetime, plus faults.
    mints_by_key: Counter[tuple[str, str, str]] = Counter(
        (m["client_id"], m["session_id"], m["variant"]) for m in truth.mints
    )
    used: set[tuple[str, str, str]] = set(mints_by_key)
    extra_by_key: Counter[tuple[str, str, str]] = Counter()
    for call in [*calls, *batch_items]:
        dev = call.get("dev", -1)
        if not 0 <= dev < len(truth.devices) or call.get("variant") is None:
            continue
        if call.get("view") and call["view"] not in truth.client_tokens:
            continue  # a forged view's calls are judged above
        key = (truth.devices[dev]["client_id"], truth.devices[dev]["session_id"], call["variant"])
        used.add(key)
        if call.get("kind") == "batch_item" or call.get("outcome") != "ok":
            extra_by_key[key] += 1  # a batch always mints; an aborted call may orphan one
    effective = max(truth.token_lifetime - TOKEN_REFRESH_AHEAD, 1.0)
    per_lifetime = math.floor(duration / effective) + 1
    kinds = Counter(f["kind"] for f in truth.faults)
    # Each clock jump makes every key mint once more; while Redis is frozen or gone each worker
    # mints on its own (one per worker), and a killed Redis forgets every token (one more).
    per_key_fault = (
        kinds["clock"]
        + truth.workers * kinds["redis_pause"]
        + (truth.workers + 1) * kinds["redis_kill"]
    )
    slow_mint_hits = sum(
        f.get("hits", 0)
        for f in truth.faults
        if f["kind"] == "delay" and "tokens" in f.get("route", "")
    )
    bound_by_key = {key: per_lifetime + per_key_fault + extra_by_key[key] for key in used}
    total_mints = sum(mints_by_key.values())
    bound = sum(bound_by_key.values()) + slow_mint_hits
    over = sorted(
        ((mints_by_key[key] - b, key) for key, b in bound_by_key.items() if mints_by_key[key] > b),
        reverse=True,
    )
    rows.append(
        Row(
            "mints within bound",
            f"{total_mints} of {bound} ({total_mints / bound if bound else 0:.2f})",
            "<= 1.00",
            total_mints <= bound,
            [
                f"bound per key: {per_lifetime} lifetime(s) of {effective:g}s + {per_key_fault} "
                f"(1 per clock jump, {truth.workers} per Redis freeze, {truth.workers + 1} per "
                f"Redis kill) + the key's batch items and aborted calls; total + "
                f"{slow_mint_hits} slow-answer hits on token routes",
                f"keys: {len(used)}, over their own bound: {len(over)}",
                *_examples(
                    [
                        f"{cid[:14]}.. {sid[:14]}.. {variant}: {mints_by_key[(cid, sid, variant)]}"
                        f" mints, bound {bound_by_key[(cid, sid, variant)]}"
                        for _excess, (cid, sid, variant) in over
                    ]
                ),
            ],
        )
    )

    # 7. Resources. Open files flat from warm-up to the end. RSS flat over the second half:
    # the SDK's caches (devices, session tokens, proofs: each bounded at 10,000) fill after the
    # warm-up and then stay at their bound, so growth from warm-up to the end is reported, and
    # a leak (growth that goes on once they are full) is what fails.
    by_worker: dict[int, list[dict[str, Any]]] = defaultdict(list)
    peaks: dict[int, tuple[int, int]] = {}
    for sample in samples:
        if sample["phase"] in ("warmup", "run", "end"):
            by_worker[sample["w"]].append(sample)
        rss, fds = peaks.get(sample["w"], (0, 0))
        peaks[sample["w"]] = (max(rss, sample["rss"]), max(fds, sample["fds"]))
    rss_ok = fds_ok = True
    rss_details: list[str] = []
    fds_details: list[str] = []
    for worker in range(truth.workers):
        series = sorted(by_worker.get(worker, []), key=lambda sample: sample["t"])
        start = next((sample for sample in series if sample["phase"] == "warmup"), None)
        end = next((sample for sample in reversed(series) if sample["phase"] == "end"), None)
        if start is None or end is None:
            rss_ok = fds_ok = False
            rss_details.append(f"w{worker}: no warm-up/end sample")
            continue
        halfway = (start["t"] + end["t"]) / 2
        before_end = [sample for sample in series if sample is not end] or [start]
        middle = min(before_end, key=lambda sample: abs(sample["t"] - halfway))
        allowed = max(limits.rss_slack_bytes, int(middle["rss"] * limits.rss_slack_fraction))
        grew = end["rss"] - middle["rss"]
        rss_ok &= grew <= allowed
        rss_details.append(
            f"w{worker}: {start['rss'] / 2**20:.1f} (warm-up) -> {middle['rss'] / 2**20:.1f} "
            f"(halfway) -> {end['rss'] / 2**20:.1f} MiB (end; peak "
            f"{peaks[worker][0] / 2**20:.1f}, allowed +{allowed / 2**20:.1f} after halfway)"
        )
        fds_ok &= end["fds"] - start["fds"] <= limits.fd_slack
        fds_details.append(
            f"w{worker}: {start['fds']} -> {end['fds']} (peak {peaks[worker][1]}, "
            f"allowed +{limits.fd_slack})"
        )
    rows.append(
        Row(
            "worker RSS flat (halfway -> end)",
            "flat" if rss_ok else "grew",
            f"+max({limits.rss_slack_bytes // 2**20} MiB, {limits.rss_slack_fraction:.0%})",
            rss_ok,
            rss_details,
        )
    )
    rows.append(
        Row(
            "worker open files flat (warm-up -> end)",
            "flat" if fds_ok else "grew",
            f"+{limits.fd_slack}",
            fds_ok,
            fds_details,
        )
    )

    # Throughput (reported).
    ends = sorted(call["t1"] for call in calls)
    peak = 0
    for index, at in enumerate(ends):  # the busiest 5 s window
        peak = max(peak, bisect.bisect_right(ends, at + 5.0) - index)
    rows.append(
        Row(
            "calls/s (all workers)",
            f"{len(calls) / duration:.0f} avg, {peak / 5:.0f} peak (5 s)",
            "reported",
            None,
            [
                f"{len(calls)} calls + {len(batch_items)} batch items in {duration:.1f}s",
                f"faults: {_counts(Counter(f['kind'] for f in truth.faults))}",
            ],
        )
    )
    summary = {
        "ok": all(row.ok is not False for row in rows),
        "duration": duration,
        "calls": len(calls),
        "batch_items": len(batch_items),
        "calls_per_second": len(calls) / duration,
        "peak_calls_per_second_5s": peak / 5,
        "mints": total_mints,
        "mint_bound": bound,
        "limits": vars(limits),
        "rows": [
            {
                "check": row.check.strip(),
                "value": row.value,
                "limit": row.limit,
                "status": row.status,
                "details": row.details,
            }
            for row in rows
        ],
    }
    return Report(rows, summary)


def render(report: Report, out: TextIO) -> None:
    widths = [
        max(len(row.check) for row in report.rows),
        max(len(row.value) for row in report.rows),
        max(len(row.limit) for row in report.rows),
    ]
    header = f"{'check':<{widths[0]}}  {'value':<{widths[1]}}  {'limit':<{widths[2]}}  status"
    print(header, file=out)
    print("-" * len(header), file=out)
    for row in report.rows:
        print(
            f"{row.check:<{widths[0]}}  {row.value:<{widths[1]}}  {row.limit:<{widths[2]}}  "
            f"{row.status}",
            file=out,
        )
        for detail in row.details:
            print(f"{'':<{widths[0]}}    {detail}", file=out)
    print(f"\nsoak: {'PASS' if report.ok else 'FAIL'}", file=out)


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Event:
    at: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def fault_schedule(seed: int, duration: float) -> list[Event]:
    """The faults of a run, from its seed; times in seconds from the start.

    Network faults every 1.5-3.5 s from the warm-up on; one rotation phase (client tokens
    rotated on every answer, stale ones rejected); Redis frozen once and killed once; the
    server's clock moved an hour (ahead or back) and back again, outside the rotation phase.
    """
    rng = random.Random(f"schedule:{seed}")
    events: list[Event] = []
    warmup = min(5.0, duration * 0.15)
    quiet = min(5.0, duration * 0.1)
    at = warmup
    routes = ["*/tokens", "*/tokens/*", "GET /v1/client/sessions/*", "*/touch"]
    for _ in range(10_000):
        at += rng.uniform(1.5, 3.5)
        if at >= duration - quiet:
            break
        kind = rng.choice(["fail", "fail", "drop", "rate_limit", "delay"])
        route = rng.choice(routes)
        params: dict[str, Any] = {"route": route, "times": rng.randint(1, 5)}
        if kind == "rate_limit":
            params["retry_after"] = 1
        if kind == "delay":
            params["seconds"] = round(rng.uniform(0.5, 2.5), 2)
            params["times"] = rng.randint(1, 3)
        events.append(Event(round(at, 3), kind, params))

    def jitter(fraction: float) -> float:
        return round(duration * (fraction + rng.uniform(-0.02, 0.02)), 3)

    rotation_start, rotation_length = jitter(0.18), max(3.0, min(12.0, duration * 0.22))
    events.append(Event(rotation_start, "rotation_on"))
    events.append(Event(round(rotation_start + rotation_length, 3), "rotation_off"))
    events.append(Event(jitter(0.47), "redis_pause", {"seconds": round(rng.uniform(1.0, 2.5), 2)}))
    sign = rng.choice((1, -1))
    events.append(Event(jitter(0.58), "clock", {"seconds": 3600 * sign}))
    events.append(Event(jitter(0.68), "clock", {"seconds": -3600 * sign}))
    events.append(Event(jitter(0.8), "redis_kill", {"down": round(rng.uniform(0.5, 1.0), 2)}))
    return sorted(events, key=lambda event: event.at)


def _variant(request: Any) -> str:
    if request.operation == "create_session_token_with_template":
        return "t=" + request.path.rsplit("/", 1)[-1]
    if "organization_id" not in request.form:
        return "active"
    org = request.form["organization_id"]
    return f"o={org}" if org else "personal"


class Soak:
    """One run: its processes, its emulator and its records; ``close`` stops all of it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.directory = Path(tempfile.mkdtemp(prefix="clerk-soak-"))
        self.workers: list[subprocess.Popen[bytes]] = []
        self.redis: Any = None
        self.fapi: Any = None
        self._fapi_context: contextlib.ExitStack = contextlib.ExitStack()
        self.mints: list[dict[str, Any]] = []
        self.rejections: list[dict[str, Any]] = []
        self.requests_seen = 0
        self.faults: list[dict[str, Any]] = []
        self.clock: list[tuple[float, float]] = []
        self.devices: list[dict[str, Any]] = []

    # --- set-up ---

    def start_redis(self) -> None:
        from clerk_sessions.testing import RedisServer

        for attempt in range(3):  # the free port may be taken between picking and binding
            server = RedisServer(self.directory)
            self.redis = server
            try:
                server.start()
                return
            except RuntimeError:
                server.close()
                if attempt == 2:
                    raise

    def start_emulator(self) -> None:
        from clerk_sessions.testing import FrontendAPIEmulator

        fapi = FrontendAPIEmulator(token_lifetime=self.args.token_lifetime, seed=self.args.seed)
        self.fapi = self._fapi_context.enter_context(fapi)

    def sign_in_devices(self) -> None:
        from clerk_sessions._jwt import jwt_claims

        fapi, rng = self.fapi, random.Random(f"devices:{self.args.seed}")
        fapi.create_jwt_template(
            TEMPLATE,
            {"email": "{{user.primary_email_address}}", "org": "{{org.slug}}"},
            lifetime=self.args.token_lifetime,
        )
        users = [fapi.create_user() for _ in range(max(1, self.args.devices // 4))]
        orgs = [
            fapi.create_organization(f"Org {index}", slug=f"org-{index}")
            for index in range(max(1, len(users) // 8))
        ]
        org_of = {}
        for index, user in enumerate(users):
            org = orgs[index % len(orgs)]
            fapi.add_member(org.id, user.id, "org:admin" if index % 3 == 0 else "org:member")
            org_of[user.id] = org.id
        with fapi.sync_client("") as signer:
            for index in range(self.args.devices):
                user = users[index % len(users)]
                active = org_of[user.id] if rng.random() < 0.5 else None
                if index % 10 == 0:  # a ticket sign-in, as a backend signs a device in
                    view = signer.with_client_token("")
                    ticket = fapi.create_sign_in_token(user, org_id=active)
                    envelope = view.sign_in_with_ticket(ticket)
                    token = view.client_token
                    claims = jwt_claims(token) or {}
                    device = {
                        "client_token": token,
                        "client_id": claims["id"],
                        "session_id": envelope.response.created_session_id,
                    }
                else:
                    signed = fapi.sign_in(user, active_organization_id=active)
                    device = {
                        "client_token": signed.client_token,
                        "client_id": signed.client_id,
                        "session_id": signed.session_id,
                    }
                device["org_id"] = org_of[user.id]
                device["active_org"] = active
                self.devices.append(device)

    def start_workers(self) -> list[Path]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key.lower() not in ("http_proxy", "https_proxy", "all_proxy")
        }
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env.pop("CLERK_SESSIONS_LOG", None)
        outputs = []
        for index in range(self.args.workers):
            out = self.directory / f"worker-{index}.jsonl"
            outputs.append(out)
            config = {
                "index": index,
                "seed": self.args.seed,
                "url": self.fapi.url,
                "redis_url": self.redis.url,
                "redis_timeout": self.args.redis_timeout,
                "devices": self.devices,
                "template": TEMPLATE,
                "duration": self.args.duration,
                "warmup": min(5.0, self.args.duration * 0.15),
                "concurrency": self.args.concurrency,
                "client_timeout": 5.0,
                "timeout_range": [0.3, 3.0],
                "cancel_probability": 0.08,
                "cancel_max_delay": 0.05,
                "old_token_probability": 0.1,
                "batch_max": 12,
                "mix": {"forged": 0.05, "batch": 0.02, "get_token": 0.6, "get_session": 0.25},
                "out": str(out),
            }
            log = (self.directory / f"worker-{index}.log").open("wb")
            process = subprocess.Popen(
                [sys.executable, str(WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
            )
            log.close()
            self.workers.append(process)
            assert process.stdin is not None
            process.stdin.write(orjson.dumps(config) + b"\n")
            process.stdin.flush()
        for index, process in enumerate(self.workers):  # bounded: 120 s for all to be ready
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], 120)
            line = process.stdout.readline() if ready else b""
            if line.strip() != b"ready":
                raise RuntimeError(f"worker {index} did not start: {self._worker_log(index)}")
        for process in self.workers:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.flush()
        return outputs

    def _worker_log(self, index: int) -> str:
        path = self.directory / f"worker-{index}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # --- the run ---

    def drain(self) -> None:
        """Move the emulator's newest request records into compact ground truth (stamped with
        real time: the log itself keeps no times), so the parent's memory stays flat."""
        log = self.fapi.requests
        count = len(log)
        chunk = log[:count]
        del log[:count]  # appends made meanwhile land after ``count`` and stay
        now = time.time()
        self.requests_seen += count
        for request in chunk:
            if request.auth_rejected is not None:
                self.rejections.append(
                    {
                        "t": now,
                        "kind": request.auth_rejected,
                        "client_id": request.rejected_client_id,
                    }
                )
            if request.operation in TOKEN_ROUTES and request.status == 200:
                self.mints.append(
                    {
                        "t": now,
                        "client_id": request.client_id,
                        "session_id": request.path.split("/")[4],
                        "variant": _variant(request),
                    }
                )

    def apply(self, event: Event, started: float) -> None:
        fapi, params, now = self.fapi, event.params, time.time()
        record: dict[str, Any] = {"kind": event.kind, "start": now, "end": now, **params}
        if event.kind == "fail":
            record["fault"] = fapi.fail(params["route"], 503, times=params["times"])
        elif event.kind == "drop":
            record["fault"] = fapi.drop_connection(params["route"], times=params["times"])
        elif event.kind == "rate_limit":
            record["fault"] = fapi.rate_limit(
                params["route"], retry_after=params["retry_after"], times=params["times"]
            )
        elif event.kind == "delay":
            record["fault"] = fapi.delay(params["route"], params["seconds"], times=params["times"])
        elif event.kind == "rotation_on":
            fapi.rotate_client_tokens = fapi.reject_stale_client_tokens = True
        elif event.kind == "rotation_off":
            fapi.rotate_client_tokens = fapi.reject_stale_client_tokens = False
        elif event.kind == "redis_pause":
            self.redis.pause()
            self._sleep(params["seconds"])
            self.redis.resume()
            record["end"] = time.time()
        elif event.kind == "redis_kill":
            self.redis.kill()
            self._sleep(params["down"])
            self.redis.start()  # same port, empty
            record["end"] = time.time()
        elif event.kind == "clock":
            fapi.clock.advance(params["seconds"])
            self.clock.append((time.time(), fapi.clock.now() - time.time()))
        self.faults.append(record)

    def _sleep(self, seconds: float) -> None:
        """Sleep, draining the request log meanwhile."""
        until = time.monotonic() + seconds
        for _ in range(int(seconds / 0.05) + 2):
            left = until - time.monotonic()
            if left <= 0:
                return
            self.drain()
            time.sleep(min(0.05, left))

    def run(self) -> Report:
        args = self.args
        self.start_redis()
        self.start_emulator()
        self.sign_in_devices()
        self.drain()
        self.mints.clear()  # set-up, not the run
        self.rejections.clear()
        outputs = self.start_workers()
        started = time.time()
        self.clock.append((started, self.fapi.clock.now() - started))
        schedule = fault_schedule(args.seed, args.duration)
        print(
            f"soak: {args.workers} workers x {args.concurrency} tasks, {args.devices} devices, "
            f"{args.duration:g}s, seed {args.seed}, {len(schedule)} scheduled faults; "
            f"emulator {self.fapi.url}, redis {self.redis.url}",
            flush=True,
        )
        pending = list(schedule)
        ticks = int(args.duration / 0.05) + 100
        for _ in range(ticks):
            elapsed = time.time() - started
            if elapsed >= args.duration:
                break
            while pending and pending[0].at <= elapsed:
                self.apply(pending.pop(0), started)
            self.drain()
            time.sleep(0.05)
        # Leave the world sane for the workers' last calls: rotation off, Redis answering.
        self.fapi.rotate_client_tokens = self.fapi.reject_stale_client_tokens = False
        if self.redis.paused:
            self.redis.resume()
        if not self.redis.running:
            self.redis.start()
        self.wait_for_workers(started)
        ended = time.time()
        self.drain()
        for fault in self.faults:
            rule = fault.pop("fault", None)
            if rule is not None:
                fault["hits"] = rule.hits
        calls, items, samples = read_records(outputs)
        truth = Truth(
            issued={
                digest(record.jwt): {
                    "client_id": record.client_id,
                    "session_id": record.session_id,
                    "exp": record.exp,
                    "iat": record.iat,
                    "issued_at": record.issued_at,
                    "source": record.source,
                }
                for record in self.fapi.issued_tokens
            },
            client_tokens={
                digest(token): client_id
                for token, (client_id, _generation) in self.fapi.issued_client_tokens().items()
            },
            mints=self.mints,
            rejections=self.rejections,
            clock=self.clock,
            faults=self.faults,
            devices=[
                {"client_id": d["client_id"], "session_id": d["session_id"]} for d in self.devices
            ],
            start=started,
            end=ended,
            workers=args.workers,
            token_lifetime=args.token_lifetime,
        )
        limits = Limits(timeout_slack=args.timeout_slack)
        report = judge(calls, items, samples, truth, limits)
        if args.keep is not None:  # everything the checker saw, for a closer look
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in [*outputs, *self.directory.glob("*.log")]:
                shutil.copy(path, args.keep / path.name)
            (args.keep / "truth.json").write_bytes(orjson.dumps(vars(truth), default=str))
        report.summary["requests_seen_by_emulator"] = self.requests_seen
        report.summary["seed"] = args.seed
        report.summary["args"] = vars(args)
        report.summary["faults"] = self.faults
        return report

    def wait_for_workers(self, started: float) -> None:
        """Workers stop at their own deadline; past a bound they are told to, then killed."""
        deadline = started + self.args.duration + 60
        for process in self.workers:
            for _ in range(100_000):
                if process.poll() is not None or time.time() > deadline:
                    break
                self.drain()
                time.sleep(0.1)
        for index, process in enumerate(self.workers):
            if process.poll() is None:
                print(f"soak: worker {index} still running past its deadline: stopping it")
            elif process.returncode != 0:
                print(
                    f"soak: worker {index} exited {process.returncode}: {self._worker_log(index)}"
                )

    def close(self) -> None:
        """Stop every process this run started, whatever state it is in."""
        for process in self.workers:
            if process.poll() is None and process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()  # EOF: the worker stops by itself
        for process in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                if self.redis.paused:
                    self.redis.resume()
            self.redis.close()
        self._fapi_context.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def read_records(
    outputs: Iterable[Path],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    for path in outputs:
        if not path.exists():
            continue
        for line in _lines(path):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a worker killed mid-line
            kind = record.get("kind")
            if kind == "call":
                calls.append(record)
            elif kind == "batch_item":
                items.append(record)
            elif kind == "sample":
                samples.append(record)
    return calls, items, samples


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--workers", type=int, default=3, help="worker processes (default 3)")
    parser.add_argument("--devices", type=int, default=200, help="devices (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="the fault schedule and the calls")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy the records and ground truth here"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="tasks per worker")
    parser.add_argument("--token-lifetime", type=int, default=60, help="session JWTs, s")
    parser.add_argument(
        "--redis-timeout",
        type=float,
        default=None,
        help="RedisStore(timeout=) in seconds (default: the SDK's)",
    )
    parser.add_argument(
        "--timeout-slack",
        type=float,
        default=0.5,
        help="seconds a call may overrun its timeout (scheduling on a loaded machine)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.duration <= 0 or args.workers < 1 or args.devices < 1 or args.concurrency < 1:
        raise SystemExit("--duration, --workers, --devices and --concurrency must be positive")
    # SIGTERM (a CI runner giving up) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    soak = Soak(args)
    try:
        report = soak.run()
    except KeyboardInterrupt:
        print("soak: interrupted; stopping every process it started", file=sys.stderr)
        return 130
    finally:
        soak.close()
    render(report, sys.stdout)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(report.summary, default=str, option=orjson.OPT_INDENT_2))
        print(f"summary: {args.json}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
