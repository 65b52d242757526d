"""Many workers, one truth: real worker processes sharing one emulator and one Redis.

Each worker (``tests/worker_process.py``) is a separate Python process with its own
``AsyncClerkSessions`` on a ``RedisStore``. The test sends them JSON commands and reads their
answers line by line, so "at the same time" means every worker has its command before any
answer is read; nothing waits on the clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clerk_sessions.testing import FrontendAPIEmulator, RedisServer, SignedIn

from .worker_process import Worker

pytestmark = pytest.mark.serial  # real worker processes, judged at a normal load


@pytest.fixture
def fapi() -> Iterator[FrontendAPIEmulator]:
    with FrontendAPIEmulator() as emulator:
        yield emulator


@pytest.fixture
def device(fapi: FrontendAPIEmulator) -> SignedIn:
    return fapi.sign_in()


@pytest.fixture
def workers(
    fapi: FrontendAPIEmulator, redis_server: RedisServer, device: SignedIn
) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for _ in range(3):
            started.append(Worker(fapi.url, redis_server.url, device.client_token, timeout=5))
        yield started
    finally:
        for worker in started:
            worker.close()


def mints(fapi: FrontendAPIEmulator) -> int:
    return sum(1 for r in fapi.requests if r.operation == "create_session_token")


def test_three_workers_with_twenty_callers_each_make_one_mint(
    fapi: FrontendAPIEmulator, workers: list[Worker], device: SignedIn
) -> None:
    for worker in workers:
        worker.send(op="get_token", session_id=device.session_id, n=20)
    answers = [worker.read() for worker in workers]
    jwts = {jwt for answer in answers for jwt in answer["jwts"]}
    assert len(jwts) == 1  # 60 callers in 3 processes got the one token
    assert mints(fapi) == 1


def test_a_rotation_in_one_worker_is_sent_by_the_next_request_of_another(
    redis_server: RedisServer, device: SignedIn
) -> None:
    with FrontendAPIEmulator(rotate_client_tokens=True) as fapi:
        signed_in = fapi.sign_in()
        first = Worker(fapi.url, redis_server.url, signed_in.client_token, timeout=5)
        second = Worker(fapi.url, redis_server.url, signed_in.client_token, timeout=5)
        try:
            assert first.ask(op="get_session", session_id=signed_in.session_id) == {
                "status": "active"
            }
            assert second.ask(op="get_session", session_id=signed_in.session_id) == {
                "status": "active"
            }
            assert first.ask(op="get_session", session_id=signed_in.session_id) == {
                "status": "active"
            }
        finally:
            first.close()
            second.close()
        sessions = [r for r in fapi.requests if r.operation == "get_session"]
    # Each request carried the token the one before it rotated to, whichever process sent it.
    assert [r.token_generation for r in sessions] == [1, 2, 3]


def test_a_sign_out_in_one_worker_is_seen_by_the_others(
    fapi: FrontendAPIEmulator, workers: list[Worker], device: SignedIn
) -> None:
    first, second, third = workers
    jwt = first.ask(op="get_token", session_id=device.session_id, n=1)["jwts"][0]
    assert second.ask(op="get_token", session_id=device.session_id, n=1)["jwts"] == [jwt]
    assert mints(fapi) == 1
    assert first.ask(op="end_session", session_id=device.session_id) == {"status": "ended"}
    # Neither other worker serves the ended session's cached token: each asks the server,
    # which refuses to mint for an ended session.
    assert second.ask(op="get_token", session_id=device.session_id, n=1) == {
        "error": "AuthenticationError"
    }
    assert third.ask(op="get_token", session_id=device.session_id, n=1) == {
        "error": "AuthenticationError"
    }


def test_killing_redis_mid_run_breaks_nothing(
    fapi: FrontendAPIEmulator, workers: list[Worker], device: SignedIn, redis_server: RedisServer
) -> None:
    first, second, _ = workers
    assert len(first.ask(op="get_token", session_id=device.session_id, n=5)["jwts"]) == 5
    redis_server.kill()
    for worker in (first, second):
        answer = worker.ask(op="get_token", session_id=device.session_id, n=5)
        assert len(answer["jwts"]) == 5  # served from each process, Redis gone
        assert worker.ask(op="get_session", session_id=device.session_id) == {"status": "active"}
    redis_server.restart()
    assert len(second.ask(op="get_token", session_id=device.session_id, n=5)["jwts"]) == 5


def test_three_workers_refreshing_the_same_sessions_mint_each_once(
    fapi: FrontendAPIEmulator, redis_server: RedisServer
) -> None:
    device = fapi.sign_in()
    sessions = [device.session_id] + [fapi.sign_in(device=device).session_id for _ in range(19)]
    started = [Worker(fapi.url, redis_server.url, device.client_token, timeout=5) for _ in range(3)]
    try:
        for worker in started:
            worker.send(op="refresh", session_ids=sessions)
        answers = [worker.read() for worker in started]
    finally:
        for worker in started:
            worker.close()
    assert [answer["ok"] for answer in answers] == [20, 20, 20]
    assert mints(fapi) == 20


def test_a_worker_killed_mid_mint_hands_over_to_another(
    fapi: FrontendAPIEmulator, redis_server: RedisServer, device: SignedIn
) -> None:
    """Its lease on the mint expires (one call's timeout: 1 s here) and another worker mints."""
    first = Worker(fapi.url, redis_server.url, device.client_token, timeout=1)
    second = Worker(fapi.url, redis_server.url, device.client_token, timeout=1)
    try:
        held = fapi.delay("POST /v1/client/sessions/*/tokens", 60)  # never answered
        first.send(op="get_token", session_id=device.session_id, n=1)
        assert held.hit.wait(30)  # the first worker holds the mint's lease, awaiting its answer
        first.process.kill()
        first.process.wait()
        answer = second.ask(op="get_token", session_id=device.session_id, n=1)
    finally:
        first.close()
        second.close()
    assert len(answer["jwts"]) == 1  # the heir minted once the dead worker's lease expired
    assert held.hits == 1  # only the dead worker's request was held
