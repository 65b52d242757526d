"""The soak test's checker (``benchmarks/soak.py``), fed synthetic records: a clean run passes
and each kind of failure fails its own row; and the emulator's read-only records it judges from
(issued tokens, issued client tokens, why a client token was refused)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from benchmarks.soak import Limits, Report, Truth, digest, fault_schedule, judge
from clerk_sessions import AuthenticationError
from clerk_sessions.testing import FrontendAPIEmulator

pytestmark = pytest.mark.anyio

START = 1_000_000.0
CLIENT, SESSION = "client_a", "sess_a"
VIEW, TOKEN = digest("client-token-a"), digest("session-jwt-a")


def clean_run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], Truth]:
    """One worker, one device: a token handed out with 50 s left, one mint, flat resources."""
    calls = [
        {
            "kind": "call",
            "w": 0,
            "op": "get_token",
            "dev": 0,
            "sid": SESSION,
            "variant": "active",
            "view": VIEW,
            "forged": False,
            "t0": START + 1.0,
            "t1": START + 1.1,
            "dur": 0.1,
            "timeout": 1.0,
            "bound": 1.0,
            "outcome": "ok",
            "token": TOKEN,
        },
        {
            "kind": "call",
            "w": 0,
            "op": "get_session",
            "dev": 0,
            "sid": SESSION,
            "view": VIEW,
            "forged": False,
            "t0": START + 2.0,
            "t1": START + 2.2,
            "dur": 0.2,
            "timeout": 1.0,
            "bound": 6.0,
            "outcome": "ok",
        },
    ]
    samples = [
        {"kind": "sample", "w": 0, "phase": "warmup", "t": START + 1, "rss": 50 << 20, "fds": 20},
        {"kind": "sample", "w": 0, "phase": "run", "t": START + 5, "rss": 50 << 20, "fds": 20},
        {"kind": "sample", "w": 0, "phase": "end", "t": START + 9, "rss": 51 << 20, "fds": 21},
    ]
    truth = Truth(
        issued={
            TOKEN: {
                "client_id": CLIENT,
                "session_id": SESSION,
                "exp": int(START + 51),
                "iat": int(START - 9),
                "issued_at": START - 9,
                "source": "mint",
            }
        },
        client_tokens={VIEW: CLIENT},
        mints=[{"t": START + 1.0, "client_id": CLIENT, "session_id": SESSION, "variant": "active"}],
        rejections=[],
        clock=[(START, 0.0)],
        faults=[],
        devices=[{"client_id": CLIENT, "session_id": SESSION}],
        start=START,
        end=START + 10,
        workers=1,
        token_lifetime=60,
    )
    return calls, samples, truth


def failing(report: Report) -> set[str]:
    return {row.check.strip() for row in report.rows if row.ok is False}


def test_a_clean_run_passes_every_row() -> None:
    calls, samples, truth = clean_run()
    report = judge(calls, [], samples, truth)
    assert report.ok, [(row.check, row.value, row.details) for row in report.rows]
    assert report.summary["ok"] is True
    assert report.summary["mints"] == 1


def test_an_expired_token_fails_its_row_judged_by_the_servers_clock() -> None:
    calls, samples, truth = clean_run()
    # The server's clock is 60 s ahead when the token is handed out: 50 s left becomes -10 s.
    truth.clock = [(START, 0.0), (START + 0.5, 60.0), (START + 5.0, 0.0)]
    truth.faults = [{"kind": "clock", "start": START + 0.5, "end": START + 0.5, "seconds": 60}]
    report = judge(calls, [], samples, truth, Limits(clock_grace=0.0))
    assert failing(report) == {"expired tokens handed out"}
    assert report.row("expired tokens handed out").value == "1 of 1"


def test_a_token_expired_just_after_a_clock_jump_is_reported_apart() -> None:
    calls, samples, truth = clean_run()
    truth.clock = [(START, 0.0), (START + 1.0, 3600.0)]
    report = judge(calls, [], samples, truth, Limits(clock_grace=2.0))
    assert report.ok
    assert report.row("expired within 2s after a +clock jump").value == "1"


def test_a_token_handed_to_a_forged_client_token_fails_its_row() -> None:
    calls, samples, truth = clean_run()
    forged = copy.deepcopy(calls[0])
    forged.update(view=digest("eyJhbGciOiJub25lIn0.eyJpZCI6ImNsaWVudF9hIn0."), forged=True)
    report = judge([*calls, forged], [], samples, truth)
    assert failing(report) == {"unproven client token answered"}
    row = report.row("unproven client token answered")
    assert row.value == "1 of 1"
    assert "cached before the call" in row.details[1]


def test_a_forged_token_refused_is_what_should_happen() -> None:
    calls, samples, truth = clean_run()
    forged = copy.deepcopy(calls[0])
    forged.update(view=digest("forged"), forged=True, outcome="AuthenticationError")
    forged.update(clerk_error=True, status=401, reason="unknown_client_token")
    del forged["token"]
    assert judge([*calls, forged], [], samples, truth).ok


def test_a_forged_token_the_sdk_reports_as_client_token_fails_its_row() -> None:
    calls, samples, truth = clean_run()
    calls[1]["view"] = digest("forged, read back from view.client_token")
    report = judge(calls, [], samples, truth)
    assert "forged token reported as client_token" in failing(report)


def test_a_call_past_its_timeout_fails_its_row_beyond_the_slack() -> None:
    calls, samples, truth = clean_run()
    calls[1]["dur"] = 1.4  # within 0.5 s of its 1 s timeout: scheduling
    assert judge(calls, [], samples, truth).ok
    calls[1]["dur"] = 1.6
    report = judge(calls, [], samples, truth)
    assert failing(report) == {"calls past their timeout (+0.5s slack)"}


def test_a_foreign_exception_fails_its_row_but_own_cancellations_do_not() -> None:
    calls, samples, truth = clean_run()
    cancelled = copy.deepcopy(calls[1])
    cancelled.update(outcome="cancelled", self_cancelled=True)
    assert judge([*calls, cancelled], [], samples, truth).ok

    foreign = copy.deepcopy(calls[1])
    foreign.update(outcome="KeyError", exc_module="builtins", clerk_error=False)
    report = judge([*calls, foreign], [], samples, truth)
    assert failing(report) == {"exceptions outside ClerkSessionsError"}

    leaked = copy.deepcopy(calls[1])
    leaked.update(outcome="CancelledError")  # a call the worker did not cancel
    report = judge([*calls, leaked], [], samples, truth)
    assert failing(report) == {"exceptions outside ClerkSessionsError"}


def test_a_stale_client_token_rejection_is_a_lost_rotation() -> None:
    calls, samples, truth = clean_run()
    truth.rejections = [{"t": START + 3, "kind": "stale_client_token", "client_id": CLIENT}]
    report = judge(calls, [], samples, truth)
    assert failing(report) == {"lost rotations (stale client token, 401)"}
    truth.rejections = [{"t": START + 3, "kind": "unknown_client_token", "client_id": None}]
    assert judge(calls, [], samples, truth).ok  # a forged token's 401


def test_mints_beyond_one_per_lifetime_fail_and_growth_fails_the_resource_rows() -> None:
    calls, samples, truth = clean_run()
    truth.mints = truth.mints * 3  # 10 s, one key: one lifetime allows one mint
    samples[2].update(rss=200 << 20, fds=99)
    report = judge(calls, [], samples, truth)
    assert failing(report) == {
        "mints within bound",
        "worker RSS flat (halfway -> end)",
        "worker open files flat (warm-up -> end)",
    }


def test_caches_filling_before_halfway_pass_the_rss_row_and_growth_after_it_fails() -> None:
    calls, samples, truth = clean_run()
    samples[1].update(rss=200 << 20)  # bounded caches full by halfway, then flat
    samples[2].update(rss=210 << 20)
    assert judge(calls, [], samples, truth).ok
    samples[2].update(rss=260 << 20)  # still growing once they are full: a leak
    assert failing(judge(calls, [], samples, truth)) == {"worker RSS flat (halfway -> end)"}


def test_the_fault_schedule_is_seeded_and_keeps_clock_jumps_out_of_the_rotation_phase() -> None:
    schedule = fault_schedule(7, 60)
    assert schedule == fault_schedule(7, 60)
    assert schedule != fault_schedule(8, 60)
    on = next(event.at for event in schedule if event.kind == "rotation_on")
    off = next(event.at for event in schedule if event.kind == "rotation_off")
    jumps = [event for event in schedule if event.kind == "clock"]
    assert sum(event.params["seconds"] for event in jumps) == 0
    assert all(not on <= event.at <= off for event in jumps)
    assert {"redis_pause", "redis_kill"} <= {event.kind for event in schedule}
    assert all(0 < event.at < 60 for event in schedule)


# --- the emulator's records the checker reads ---------------------------------------------------


async def test_the_emulator_records_every_token_it_signs_and_every_client_token() -> None:
    async with FrontendAPIEmulator() as fapi:
        fapi.create_jwt_template("t", {"x": 1})
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            minted = await clerk.create_session_token(device.session_id)
            templated = await clerk.create_session_token_with_template(device.session_id, "t")
            await clerk.touch_session(device.session_id)
        issued = fapi.issued_tokens
        assert [record.source for record in issued] == ["sign_in", "mint", "template", "touch"]
        by_jwt = {record.jwt: record for record in issued}
        assert by_jwt[minted.jwt].client_id == device.client_id
        assert by_jwt[templated.jwt].template == "t"
        record = by_jwt[minted.jwt]
        assert record.session_id == device.session_id
        assert record.exp - record.iat == 60
        assert minted.jwt not in repr(record)
        assert fapi.issued_client_tokens()[device.client_token] == (device.client_id, 1)


async def test_the_request_log_says_why_a_client_token_was_refused() -> None:
    async with FrontendAPIEmulator(rotate_client_tokens=True) as fapi:
        device = fapi.sign_in()
        async with fapi.async_client(device) as clerk:
            await clerk.get_session(device.session_id)  # rotates: the first token is stale
        fapi.reject_stale_client_tokens = True
        fapi.clock.advance(60)  # past the grace
        forged = "eyJhbGciOiJub25lIn0.eyJpZCI6ImNsaWVudF94In0."
        for token in (device.client_token, forged):
            async with fapi.async_client(token, max_retries=0) as clerk:
                with pytest.raises(AuthenticationError):
                    await clerk.get_session(device.session_id)
        refused = [r for r in fapi.requests if r.status == 401]
        assert [(r.auth_rejected, r.rejected_client_id) for r in refused] == [
            ("stale_client_token", device.client_id),
            ("unknown_client_token", None),
        ]
        assert fapi.requests[0].auth_rejected is None
