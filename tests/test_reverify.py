"""Step-up in one call (issue #13, items 1-3): ``reverify``, ``with_reverification`` and
``needs_reverification``, against the Frontend API emulator over loopback HTTP.

The functions of ``clerk_sessions._reverify`` are called directly with an
``AsyncClerkSessions`` (the clients' methods are one-line calls of them); the blocking variant
of ``with_reverification`` runs with a ``ClerkSessions``. What went over the wire is read from
the emulator's request log (codes and passwords are redacted there).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jwt
import orjson
import pytest

from clerk_sessions import (
    BadRequestError,
    ClerkSessionsError,
    ConfigurationError,
    PermissionDeniedError,
    ServerError,
    Session,
    SignInFactor,
    UnprocessableEntityError,
)
from clerk_sessions import _operations as ops
from clerk_sessions._reverify import (
    CodesCallback,
    NoSupportedFactorError,
    ReverificationStep,
    needs_reverification,
    reverification_level,
    reverify,
    with_reverification,
    with_reverification_blocking,
)
from clerk_sessions._wire import api_error
from clerk_sessions.models import SignInFactorStrategy
from clerk_sessions.testing import (
    TEST_CODE,
    FrontendAPIEmulator,
    RecordedRequest,
    SignedIn,
    UserRecord,
)

pytestmark = pytest.mark.anyio

WRONG = "000000"
PASSWORD = "canary-PASSWORD-3c8d"
STEP_UP = "session_reverification_required"


@pytest.fixture
async def emulator() -> AsyncIterator[FrontendAPIEmulator]:
    async with FrontendAPIEmulator() as fapi:
        yield fapi


class Codes:
    """A ``codes`` callable that records each step and answers from a list (or a function)."""

    def __init__(self, *answers: str | Callable[[ReverificationStep], str]) -> None:
        self.answers = list(answers)
        self.steps: list[ReverificationStep] = []

    def __call__(self, step: ReverificationStep) -> str:
        self.steps.append(step)
        answer = self.answers[min(len(self.steps), len(self.answers)) - 1]
        return answer(step) if callable(answer) else answer

    @property
    def seen(self) -> list[tuple[str, str, int]]:
        return [(s.stage, s.strategy, s.attempt) for s in self.steps]


class AsyncCodes(Codes):
    async def __call__(self, step: ReverificationStep) -> str:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().__call__(step)


def operation_of(request: RecordedRequest) -> str:
    """The operation a request was for (the log leaves it out when a fault answered)."""
    if request.operation is not None:
        return request.operation
    for op in ops.OPERATIONS.values():
        pattern = "^" + re.sub(r"{\w+}", "[^/]+", op.path) + "$"
        if op.method == request.method and re.match(pattern, request.path):
            return op.name
    return f"{request.method} {request.path}"


def wire(fapi: FrontendAPIEmulator, session_id: str) -> list[tuple[str, dict[str, str]]]:
    """(operation, form) of each request about ``session_id``, oldest first."""
    return [(operation_of(r), dict(r.form)) for r in fapi.requests if session_id in r.path]


def operations(fapi: FrontendAPIEmulator, session_id: str) -> list[str]:
    return [name for name, _ in wire(fapi, session_id)]


def fva_of(token: str) -> list[int]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return list(claims["fva"])


def email_id(user: UserRecord) -> str:
    return user.email_addresses[0].id


# -- reverify: one factor --------------------------------------------------------------------------


async def test_one_factor_with_an_email_code(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user(email="jane+clerk_test@example.com", password=PASSWORD)
    device = emulator.sign_in(user)
    sid = device.session_id
    codes = Codes(TEST_CODE)
    async with emulator.async_client(device) as clerk:
        done = await reverify(clerk, sid, codes=codes)

    assert done.response.status == "complete"
    assert done.response.level == "first_factor"
    assert codes.seen == [("first_factor", "email_code", 1)]
    step = codes.steps[0]
    assert step.error is None
    assert step.factor.email_address_id == email_id(user)
    assert (step.session_id, step.max_attempts) == (sid, 3)
    assert wire(emulator, sid) == [
        ("start_session_reverification", {"level": "first_factor"}),
        (
            "prepare_session_reverification_first_factor",
            {"strategy": "email_code", "email_address_id": email_id(user)},
        ),
        (
            "attempt_session_reverification_first_factor",
            {"strategy": "email_code", "code": "[redacted]"},
        ),
    ]


async def test_password_is_attempted_without_a_prepare(
    emulator: FrontendAPIEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    device = emulator.sign_in(emulator.create_user(password=PASSWORD))
    sid = device.session_id
    codes = Codes("wrong-" + PASSWORD, PASSWORD)
    caplog.set_level(logging.DEBUG, logger="clerk_sessions")
    async with emulator.async_client(device) as clerk:
        done = await reverify(clerk, sid, codes=codes, strategies=("password",))

    assert done.response.status == "complete"
    assert codes.seen == [("first_factor", "password", 1), ("first_factor", "password", 2)]
    refused = codes.steps[1].error
    assert isinstance(refused, UnprocessableEntityError)
    assert refused.code == "form_password_incorrect"
    assert operations(emulator, sid) == [
        "start_session_reverification",
        "attempt_session_reverification_first_factor",
        "attempt_session_reverification_first_factor",
    ]
    assert wire(emulator, sid)[-1][1] == {"strategy": "password", "password": "[redacted]"}
    shown = caplog.text + "".join(repr(s) for s in codes.steps) + str(refused)
    assert PASSWORD not in shown
    assert "password" in caplog.text  # the attempts were logged, without the secret


async def test_phone_code_first_factor_sends_the_factors_phone_number(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user(phone=["+12015550100", "+12015550142"])
    device = emulator.sign_in(user)
    sid = device.session_id
    codes = Codes(TEST_CODE)
    async with emulator.async_client(device) as clerk:
        done = await reverify(clerk, sid, codes=codes, strategies="phone_code")

    assert done.response.status == "complete"
    assert codes.seen == [("first_factor", "phone_code", 1)]
    assert wire(emulator, sid)[1] == (
        "prepare_session_reverification_first_factor",
        {"strategy": "phone_code", "phone_number_id": user.phone_numbers[0].id},
    )


# -- reverify: two factors -------------------------------------------------------------------------


async def test_two_factors_email_code_then_totp(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user(second_factors=["totp"])
    device = emulator.sign_in(user)
    sid = device.session_id
    codes = AsyncCodes(
        lambda s: TEST_CODE if s.stage == "first_factor" else emulator.totp_code(user)
    )
    async with emulator.async_client(device) as clerk:
        done = await reverify(clerk, sid, level="multi_factor", codes=codes)

    assert done.response.status == "complete"
    assert done.response.second_factor_verification is not None
    assert done.response.second_factor_verification.status == "verified"
    assert codes.seen == [("first_factor", "email_code", 1), ("second_factor", "totp", 1)]
    assert operations(emulator, sid) == [
        "start_session_reverification",
        "prepare_session_reverification_first_factor",
        "attempt_session_reverification_first_factor",
        "attempt_session_reverification_second_factor",  # TOTP: nothing to prepare
    ]
    assert wire(emulator, sid)[-1][1] == {"strategy": "totp", "code": "[redacted]"}


async def test_two_factors_with_an_sms_second_factor(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user(phone="+12015550100", second_factors=["phone_code"])
    device = emulator.sign_in(user)
    sid = device.session_id
    codes = Codes(TEST_CODE)
    async with emulator.async_client(device) as clerk:
        done = await reverify(clerk, sid, level="multi_factor", codes=codes)

    assert done.response.status == "complete"
    assert codes.seen == [("first_factor", "email_code", 1), ("second_factor", "phone_code", 1)]
    assert wire(emulator, sid)[3:] == [
        (
            "prepare_session_reverification_second_factor",
            {"strategy": "phone_code", "phone_number_id": user.phone_numbers[0].id},
        ),
        (
            "attempt_session_reverification_second_factor",
            {"strategy": "phone_code", "code": "[redacted]"},
        ),
    ]


async def test_second_factor_level_starts_at_the_second_stage_in_default_order(
    emulator: FrontendAPIEmulator,
) -> None:
    # Clerk lists phone_code first; the default order prefers an authenticator app.
    user = emulator.create_user(
        phone="+12015550100", second_factors=["phone_code", "totp", "backup_code"]
    )
    device = emulator.sign_in(user)
    codes = Codes(lambda s: emulator.totp_code(user))
    async with emulator.async_client(device) as clerk:
        done = await reverify(clerk, device.session_id, level="second_factor", codes=codes)

    assert done.response.status == "complete"
    assert codes.seen == [("second_factor", "totp", 1)]


async def test_a_backup_code_second_factor(emulator: FrontendAPIEmulator) -> None:
    user = emulator.create_user(second_factors=["backup_code"])
    backup = user.backup_codes[0]
    device = emulator.sign_in(user)
    codes = Codes(backup)
    async with emulator.async_client(device) as clerk:
        done = await reverify(clerk, device.session_id, level="second_factor", codes=codes)

    assert done.response.status == "complete"
    assert codes.seen == [("second_factor", "backup_code", 1)]
    assert backup not in user.backup_codes  # the emulator used it up: it really was sent


# -- reverify: wrong codes and errors --------------------------------------------------------------


async def test_a_wrong_code_asks_again_without_sending_a_new_code(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in()
    sid = device.session_id
    codes = Codes(WRONG, TEST_CODE)
    async with emulator.async_client(device) as clerk:
        done = await reverify(clerk, sid, codes=codes)

    assert done.response.status == "complete"
    assert codes.seen == [("first_factor", "email_code", 1), ("first_factor", "email_code", 2)]
    first, second = codes.steps
    assert first.error is None
    assert isinstance(second.error, UnprocessableEntityError)
    assert (second.error.status, second.error.code) == (422, "form_code_incorrect")
    assert second.factor == first.factor
    assert operations(emulator, sid).count("prepare_session_reverification_first_factor") == 1
    assert operations(emulator, sid).count("attempt_session_reverification_first_factor") == 2
    assert WRONG not in repr(second)
    assert TEST_CODE not in repr(second)


async def test_wrong_codes_max_attempts_times_raise_the_422(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in()
    sid = device.session_id
    codes = Codes(WRONG)
    async with emulator.async_client(device) as clerk:
        with pytest.raises(UnprocessableEntityError) as info:
            await reverify(clerk, sid, codes=codes, max_attempts=2)

    assert info.value.code == "form_code_incorrect"
    assert [s.attempt for s in codes.steps] == [1, 2]
    assert codes.steps[1].error is not info.value  # the step held the previous attempt's error
    assert operations(emulator, sid).count("attempt_session_reverification_first_factor") == 2
    flow = emulator.session(sid).reverification
    assert flow is not None
    assert flow.status == "needs_first_factor"


async def test_the_servers_own_attempt_limit_propagates_at_once(
    emulator: FrontendAPIEmulator,
) -> None:
    # The emulator, like Clerk, allows 3 tries of a code; the 4th is 400 verification_failed.
    device = emulator.sign_in()
    codes = Codes(WRONG)
    async with emulator.async_client(device) as clerk:
        with pytest.raises(BadRequestError) as info:
            await reverify(clerk, device.session_id, codes=codes, max_attempts=10)

    assert info.value.code == "verification_failed"
    assert [s.attempt for s in codes.steps] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (500, "internal_clerk_error", ServerError),
        (422, "form_param_value_invalid", UnprocessableEntityError),  # a 422, but not a wrong code
    ],
)
async def test_any_other_error_on_an_attempt_propagates_at_once(
    emulator: FrontendAPIEmulator, status: int, code: str, error: type[Exception]
) -> None:
    device = emulator.sign_in()
    sid = device.session_id
    emulator.fail("*/verify/attempt_first_factor", status, code=code)
    codes = Codes(TEST_CODE)
    async with emulator.async_client(device) as clerk:
        with pytest.raises(error) as info:
            await reverify(clerk, sid, codes=codes)

    assert getattr(info.value, "code", None) == code
    assert len(codes.steps) == 1
    attempts = [
        r.status
        for r in emulator.requests
        if operation_of(r) == "attempt_session_reverification_first_factor"
    ]
    assert attempts == [status]


async def test_an_error_from_codes_abandons_the_flow(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in()
    sid = device.session_id
    cancelled = KeyError("the person closed the prompt")

    def codes(step: ReverificationStep) -> str:
        raise cancelled

    async with emulator.async_client(device) as clerk:
        with pytest.raises(KeyError) as info:
            await reverify(clerk, sid, codes=codes)
    assert info.value is cancelled
    assert "attempt_session_reverification_first_factor" not in operations(emulator, sid)


# -- reverify: strategies --------------------------------------------------------------------------


async def test_strategies_choose_the_factor_in_the_given_order(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user(phone="+12015550100", password=PASSWORD)
    device = emulator.sign_in(user)
    sid = device.session_id
    codes = Codes(TEST_CODE)
    async with emulator.async_client(device) as clerk:
        await reverify(
            clerk, sid, codes=codes, strategies=["backup_code", "phone_code", "email_code"]
        )

    assert codes.seen == [("first_factor", "phone_code", 1)]
    assert codes.steps[0].factor.phone_number_id == user.phone_numbers[0].id


async def test_strategies_of_one_stage_leave_the_other_stage_its_defaults(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user(
        phone="+12015550100", second_factors=["phone_code", "totp", "backup_code"]
    )
    backup = user.backup_codes[-1]
    device = emulator.sign_in(user)
    codes = Codes(lambda s: TEST_CODE if s.stage == "first_factor" else backup)
    async with emulator.async_client(device) as clerk:
        done = await reverify(
            clerk, device.session_id, level="multi_factor", codes=codes, strategies=("backup_code",)
        )

    assert done.response.status == "complete"
    assert codes.seen == [("first_factor", "email_code", 1), ("second_factor", "backup_code", 1)]


async def test_no_supported_strategy_is_a_typed_error_that_says_what_to_pass(
    emulator: FrontendAPIEmulator,
) -> None:
    device = emulator.sign_in(emulator.create_user(phone="+12015550100"))  # no password
    sid = device.session_id
    codes = Codes(PASSWORD)
    async with emulator.async_client(device) as clerk:
        with pytest.raises(NoSupportedFactorError) as info:
            await reverify(clerk, sid, codes=codes, strategies=("password",))

    error = info.value
    assert isinstance(error, ClerkSessionsError)
    assert (error.stage, error.supported, error.wanted) == (
        "first_factor",
        ("email_code", "phone_code"),
        ("password",),
    )
    assert "pass strategies=('email_code', 'phone_code') to use one of them" in str(error)
    assert codes.steps == []
    assert operations(emulator, sid) == ["start_session_reverification"]


async def test_no_supported_second_factor(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in(emulator.create_user(second_factors=["backup_code"]))
    async with emulator.async_client(device) as clerk:
        with pytest.raises(NoSupportedFactorError) as info:
            await reverify(
                clerk, device.session_id, level="second_factor", codes=Codes(), strategies="totp"
            )
    assert (info.value.stage, info.value.supported) == ("second_factor", ("backup_code",))
    assert "backup_code" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": True},
        {"max_attempts": "3"},
        {"codes": TEST_CODE},
        {"strategies": ("passkey",)},
        {"strategies": ()},
        {"level": ""},
    ],
)
async def test_arguments_that_cannot_work_fail_before_any_request(
    emulator: FrontendAPIEmulator, kwargs: dict[str, Any]
) -> None:
    device = emulator.sign_in()
    arguments: dict[str, Any] = {"codes": Codes(TEST_CODE), **kwargs}
    async with emulator.async_client(device) as clerk:
        with pytest.raises(ConfigurationError):
            await reverify(clerk, device.session_id, **arguments)
    assert operations(emulator, device.session_id) == []


# -- reverify: codes callables ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async", "returns-awaitable"])
async def test_codes_may_be_sync_or_async(emulator: FrontendAPIEmulator, kind: str) -> None:
    device = emulator.sign_in()
    seen: list[int] = []

    def sync_codes(step: ReverificationStep) -> str:
        seen.append(step.attempt)
        return TEST_CODE

    async def async_codes(step: ReverificationStep) -> str:
        seen.append(step.attempt)
        await asyncio.sleep(0)
        return TEST_CODE

    def future_codes(step: ReverificationStep) -> Awaitable[str]:
        seen.append(step.attempt)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.set_result(TEST_CODE)
        return future

    choices: dict[str, CodesCallback] = {
        "sync": sync_codes,
        "async": async_codes,
        "returns-awaitable": future_codes,
    }
    codes = choices[kind]
    async with emulator.async_client(device) as clerk:
        done = await reverify(clerk, device.session_id, codes=codes)
    assert done.response.status == "complete"
    assert seen == [1]


@pytest.mark.parametrize("answer", [424242, None])
async def test_codes_must_return_a_str(emulator: FrontendAPIEmulator, answer: object) -> None:
    device = emulator.sign_in()
    async with emulator.async_client(device) as clerk:
        with pytest.raises(ConfigurationError, match="must return the email_code secret as a str"):
            await reverify(clerk, device.session_id, codes=lambda step: answer)  # type: ignore[arg-type,return-value]
    assert "attempt_session_reverification_first_factor" not in operations(
        emulator, device.session_id
    )


# -- reverify: the token cache ---------------------------------------------------------------------


async def test_success_drops_the_cached_tokens_whose_fva_is_stale(
    emulator: FrontendAPIEmulator,
) -> None:
    user = emulator.create_user(second_factors=["totp"])
    device = emulator.sign_in(user)
    sid = device.session_id
    emulator.clock.advance(30 * 60)
    codes = Codes(lambda s: TEST_CODE if s.stage == "first_factor" else emulator.totp_code(user))
    async with emulator.async_client(device) as clerk:
        before = await clerk.get_token(sid)
        assert await clerk.get_token(sid) == before  # cached
        await reverify(clerk, sid, level="multi_factor", codes=codes)
        after = await clerk.get_token(sid)
        other_view = await clerk.with_client_token(device.client_token).get_token(sid)

    assert fva_of(before) == [30, 30]
    assert fva_of(after) == [0, 0]
    assert other_view == after  # every view of the device lost the stale token
    assert operations(emulator, sid).count("create_session_token") == 2


# -- with_reverification ---------------------------------------------------------------------------


def totp_user(fapi: FrontendAPIEmulator) -> tuple[UserRecord, SignedIn, Codes]:
    user = fapi.create_user(second_factors=["totp"])
    device = fapi.sign_in(user)
    codes = Codes(lambda s: TEST_CODE if s.stage == "first_factor" else fapi.totp_code(user))
    return user, device, codes


async def test_a_clerk_step_up_demand_is_met_and_the_call_repeated(
    emulator: FrontendAPIEmulator,
) -> None:
    _user, device, codes = totp_user(emulator)
    sid = device.session_id
    emulator.fail(f"GET /v1/client/sessions/{sid}", 403, code=STEP_UP)
    async with emulator.async_client(device) as clerk:
        result = await with_reverification(clerk, sid, lambda: clerk.get_session(sid), codes=codes)

    assert isinstance(result.response, Session)
    assert result.response.id == sid
    assert codes.seen == [("second_factor", "totp", 1)]
    assert wire(emulator, sid)[:2] == [
        ("get_session", {}),
        ("start_session_reverification", {"level": "second_factor"}),
    ]
    assert operations(emulator, sid)[-1] == "get_session"
    assert [r.status for r in emulator.requests if operation_of(r) == "get_session"] == [403, 200]


def permission_denied(body: dict[str, Any]) -> PermissionDeniedError:
    """A 403 exactly as the SDK builds it from Clerk's answer."""
    error = api_error(ops.GET_SESSION, 403, {}, orjson.dumps(body), now=0.0)
    assert isinstance(error, PermissionDeniedError)
    return error


def step_up_body(meta: dict[str, Any] | None = None, *, top: bool = False) -> dict[str, Any]:
    error: dict[str, Any] = {"code": STEP_UP, "message": "m", "long_message": "needs step-up"}
    body: dict[str, Any] = {"errors": [error]}
    if meta is not None:
        if top:
            body["meta"] = meta
        else:
            error["meta"] = meta
    return body


@pytest.mark.parametrize("top", [False, True], ids=["error-meta", "body-meta"])
async def test_the_level_named_by_the_error_wins(emulator: FrontendAPIEmulator, top: bool) -> None:
    _user, device, codes = totp_user(emulator)
    sid = device.session_id
    demand = permission_denied(
        step_up_body({"reverification": {"level": "multi_factor", "after_minutes": 10}}, top=top)
    )
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise demand
        return "done"

    async with emulator.async_client(device) as clerk:
        assert await with_reverification(clerk, sid, call, codes=codes, level="first_factor") == (
            "done"
        )
    assert wire(emulator, sid)[0] == ("start_session_reverification", {"level": "multi_factor"})
    assert codes.seen == [("first_factor", "email_code", 1), ("second_factor", "totp", 1)]


class BackendForbidden(Exception):
    """What an app's HTTP client might raise for its backend's 403 (body kept as parsed JSON)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("403 Forbidden")
        self.body = body


def clerk_hint(reverification: object) -> dict[str, Any]:
    """The body Clerk's backend helpers answer with (fapi-protocol.md §9)."""
    return {
        "clerk_error": {
            "type": "forbidden",
            "reason": "reverification-error",
            "metadata": {"reverification": reverification},
        }
    }


async def test_an_app_backend_demand_via_the_predicate_takes_the_hints_level(
    emulator: FrontendAPIEmulator,
) -> None:
    # A realistic protected action: the "backend" checks the session token's fva claim the way
    # Clerk's helpers do, and answers 403 with Clerk's hint. The retry only passes if reverify
    # stepped up both factors and dropped the cached token (whose fva is stale).
    _user, device, codes = totp_user(emulator)
    sid = device.session_id
    emulator.clock.advance(20 * 60)
    async with emulator.async_client(device) as clerk:

        async def transfer_money() -> str:
            token = await clerk.get_token(sid)
            if needs_reverification(fva_of(token), "strict_mfa"):
                raise BackendForbidden(clerk_hint({"level": "multi_factor", "afterMinutes": 10}))
            return "transferred"

        result = await with_reverification(
            clerk,
            sid,
            transfer_money,
            codes=codes,
            level="first_factor",
            is_reverification_error=lambda exc: isinstance(exc, BackendForbidden),
        )

    assert result == "transferred"
    assert wire(emulator, sid)[1] == ("start_session_reverification", {"level": "multi_factor"})
    assert codes.seen == [("first_factor", "email_code", 1), ("second_factor", "totp", 1)]


async def test_a_predicate_may_name_the_level(emulator: FrontendAPIEmulator) -> None:
    _user, device, codes = totp_user(emulator)
    sid = device.session_id
    attempts: list[int] = []

    async def call() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise BackendForbidden({})
        return len(attempts)

    async with emulator.async_client(device) as clerk:
        result = await with_reverification(
            clerk, sid, call, codes=codes, is_reverification_error=lambda exc: "first_factor"
        )
    assert result == 2
    assert wire(emulator, sid)[0] == ("start_session_reverification", {"level": "first_factor"})
    assert codes.seen == [("first_factor", "email_code", 1)]


async def test_a_second_demand_propagates(emulator: FrontendAPIEmulator) -> None:
    _user, device, codes = totp_user(emulator)
    sid = device.session_id
    emulator.fail(f"GET /v1/client/sessions/{sid}", 403, code=STEP_UP, times=2)
    async with emulator.async_client(device) as clerk:
        with pytest.raises(PermissionDeniedError) as info:
            await with_reverification(clerk, sid, lambda: clerk.get_session(sid), codes=codes)
    assert info.value.reverification_required
    assert operations(emulator, sid).count("start_session_reverification") == 1
    assert operations(emulator, sid).count("get_session") == 2


@pytest.mark.parametrize(
    "make_error",
    [
        lambda: ValueError("not a step-up"),
        lambda: permission_denied({"errors": [{"code": "user_locked", "message": "locked"}]}),
        lambda: BackendForbidden(clerk_hint({"level": "second_factor"})),  # predicate says no
    ],
    ids=["value-error", "other-403", "predicate-false"],
)
async def test_other_exceptions_pass_through_untouched(
    emulator: FrontendAPIEmulator, make_error: Callable[[], Exception]
) -> None:
    device = emulator.sign_in()
    sid = device.session_id
    error = make_error()
    codes = Codes(TEST_CODE)

    async def call() -> None:
        raise error

    async with emulator.async_client(device) as clerk:
        with pytest.raises(type(error)) as info:
            await with_reverification(
                clerk, sid, call, codes=codes, is_reverification_error=lambda exc: False
            )
    assert info.value is error
    assert info.value.__context__ is None
    assert codes.steps == []
    assert operations(emulator, sid) == []


async def test_call_must_be_a_callable_not_a_coroutine(emulator: FrontendAPIEmulator) -> None:
    device = emulator.sign_in()
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        with pytest.raises(ConfigurationError, match="not a coroutine"):
            await with_reverification(clerk, sid, clerk.get_session(sid), codes=Codes())  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="codes"):
            await with_reverification(clerk, sid, lambda: clerk.get_session(sid), codes="424242")  # type: ignore[arg-type]
    assert operations(emulator, sid) == []


def test_the_blocking_variant_runs_call_outside_the_clients_loop() -> None:
    with FrontendAPIEmulator() as fapi:
        _user, device, codes = totp_user(fapi)
        sid = device.session_id
        fapi.fail(f"GET /v1/client/sessions/{sid}", 403, code=STEP_UP)
        loops: list[bool] = []
        with fapi.sync_client(device) as clerk:

            def call() -> Any:
                try:
                    asyncio.get_running_loop()
                    loops.append(True)
                except RuntimeError:
                    loops.append(False)
                return clerk.get_session(sid)  # the blocking client, inside call

            result = with_reverification_blocking(clerk, sid, call, codes=codes)

            def async_call() -> Any:  # an async function given to the blocking client
                return asyncio.sleep(0)

            with pytest.raises(ConfigurationError, match="plain callable"):
                with_reverification_blocking(clerk, sid, async_call, codes=codes)

    assert result.response.id == sid
    assert loops == [False, False]
    assert codes.seen == [("second_factor", "totp", 1)]
    assert [r.status for r in fapi.requests if operation_of(r) == "get_session"] == [403, 200]


# -- reverification_level --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (None, "second_factor"),
        ({"reverification": {"level": "first_factor"}}, "first_factor"),
        ({"reverification": "strict_mfa"}, "multi_factor"),
        ({"reverification": {"level": "multiFactor", "afterMinutes": 5}}, "multi_factor"),
        ({"reverification": {"level": "zeroth_factor"}}, "second_factor"),  # unknown: default
    ],
)
def test_reverification_level_of_a_clerk_403(meta: dict[str, Any] | None, expected: str) -> None:
    assert reverification_level(permission_denied(step_up_body(meta)), None, "second_factor") == (
        expected
    )


def test_reverification_level_of_other_exceptions() -> None:
    def yes(exc: BaseException) -> bool:
        return True

    hint = clerk_hint({"level": "first_factor", "afterMinutes": 1})
    assert reverification_level(ValueError("x"), None, "second_factor") is None
    assert reverification_level(BackendForbidden(hint), None, "second_factor") is None
    assert reverification_level(BackendForbidden(hint), yes, "second_factor") == "first_factor"
    # Clerk's hint as the JSON text of the exception, and the older reason name.
    text = orjson.dumps(clerk_hint("strict_mfa")).decode()
    assert reverification_level(RuntimeError(text), yes, "first_factor") == "multi_factor"
    older = {"clerk_error": {**hint["clerk_error"], "reason": "reverification-mismatch"}}
    assert reverification_level(BackendForbidden(older), yes, "second_factor") == "first_factor"
    assert reverification_level(RuntimeError("{not json"), yes, "second_factor") == "second_factor"
    assert reverification_level(RuntimeError("x"), lambda e: "strict", "first_factor") == (
        "second_factor"
    )
    assert reverification_level(RuntimeError("x"), lambda e: None, "first_factor") is None


# -- needs_reverification --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ages", "rule", "expected"),
    [
        ([5, 5], "strict", False),
        ([5, 10], "strict", True),  # fresh means younger than the limit
        ([50, 5], "strict", False),  # second_factor looks at the second factor only
        ([5, -1], "strict", False),  # no second factor: the first counts
        ([15, -1], "strict", True),
        ([-1, -1], "strict", True),
        ([15, 5], "strict_mfa", True),
        ([5, 5], "strict_mfa", False),
        ([5, -1], "strict_mfa", False),
        ([-1, 5], "strict_mfa", True),
        ([30, 59], "moderate", False),
        ([30, 61], "moderate", True),
        ([1439, 1439], "lax", False),
        ([0, 1440], "lax", True),
        ([4, -1], ("first_factor", 5), False),
        ([5, 0], ("first_factor", 5), True),
        ([10, 40], ("multi_factor", 30), True),
        ([10, 20], ["multi_factor", 30], False),
        ([10, 20], ("second_factor", 20.5), False),
        ([], "lax", True),  # no ages known: never verified
        ([5], ("second_factor", 10), False),
    ],
)
def test_needs_reverification_rules(ages: list[int], rule: Any, expected: bool) -> None:
    assert needs_reverification(ages, rule) is expected


@pytest.mark.parametrize(
    "rule",
    [
        "paranoid",
        ("first_factor", 0),
        ("first_factor", -5),
        ("first_factor", True),
        ("first_factor", float("nan")),
        ("first_factor", float("inf")),
        ("zeroth_factor", 5),
        ("first_factor",),
        10,
        None,
    ],
)
def test_a_bad_rule_is_a_configuration_error(rule: Any) -> None:
    with pytest.raises(ConfigurationError, match="rule must be"):
        needs_reverification([0, 0], rule)


def test_needs_reverification_wants_a_session_or_ages() -> None:
    with pytest.raises(TypeError, match="Session"):
        needs_reverification(object())  # type: ignore[arg-type]


async def test_needs_reverification_of_a_real_session(emulator: FrontendAPIEmulator) -> None:
    _user, device, codes = totp_user(emulator)
    sid = device.session_id
    async with emulator.async_client(device) as clerk:
        fresh = (await clerk.get_session(sid)).response
        emulator.clock.advance(15 * 60)
        stale = (await clerk.get_session(sid)).response
        await reverify(clerk, sid, level="second_factor", codes=codes)
        stepped_up = (await clerk.get_session(sid)).response

    assert fresh.factor_verification_age == [0, 0]
    assert not needs_reverification(fresh)
    assert stale.factor_verification_age == [15, 15]
    assert needs_reverification(stale)
    assert not needs_reverification(stale, "moderate")
    assert stepped_up.factor_verification_age == [15, 0]
    assert not needs_reverification(stepped_up)  # strict: the second factor
    assert needs_reverification(stepped_up, "strict_mfa")  # the first factor is 15 min old


def test_a_step_holds_no_secret_and_is_frozen() -> None:
    step = ReverificationStep(
        stage="first_factor",
        strategy="email_code",
        factor=SignInFactor(
            strategy=SignInFactorStrategy("email_code"), safe_identifier="j***@example.com"
        ),
        attempt=1,
        max_attempts=3,
        session_id="sess_1",
    )
    assert "stage='first_factor'" in repr(step)
    assert "attempt=1" in repr(step)
    with pytest.raises(AttributeError):
        step.attempt = 2  # type: ignore[misc]
