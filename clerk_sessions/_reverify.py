"""Step-up in one call: ``reverify``, ``with_reverification`` and ``needs_reverification``.

Clerk's five reverification operations are raw (``fapi-protocol.md`` §9): start at a level, pick
a factor from the supported ones, prepare it (send the code), attempt it, maybe do the same for
a second factor, then forget the session tokens whose ``fva`` claim is now stale. This module
does that over the async client's *public* operations, so the clients' methods are one line:

- :func:`reverify` drives the whole flow, asking ``codes(step)`` for each secret;
- :func:`with_reverification` runs a call, and on a reverification demand steps up and calls
  once more; :func:`with_reverification_blocking` is the same for the blocking client, whose
  ``call`` is a plain callable; both decide with :func:`reverification_level`;
- :func:`needs_reverification` says, from ``factor_verification_age``, whether a session is too
  old for a rule (clerk-js's presets or an explicit ``(level, max_age_minutes)``).

Nothing secret is kept: a code or password goes from ``codes`` straight into the attempt
request and is never stored on a step, logged, or put into an error.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import attrs
import orjson

from ._constants import DEFAULT_FIRST_FACTOR_STRATEGIES, DEFAULT_SECOND_FACTOR_STRATEGIES
from ._errors import (
    ClerkSessionsError,
    ConfigurationError,
    PermissionDeniedError,
    UnprocessableEntityError,
)
from ._logging import logger
from ._types import UNSET
from ._validate import count, is_number
from .models import Envelope, Session, SessionReverification, SignInFactor

if TYPE_CHECKING:
    from ._client import AsyncClerkSessions

__all__ = [
    "DEFAULT_FIRST_FACTOR_STRATEGIES",
    "DEFAULT_SECOND_FACTOR_STRATEGIES",
    "REVERIFICATION_PRESETS",
    "CodesCallback",
    "NoSupportedFactorError",
    "ReverificationStep",
    "needs_reverification",
    "reverification_level",
    "reverify",
    "with_reverification",
    "with_reverification_blocking",
]

T = TypeVar("T")

FIRST_FACTOR: Final = "first_factor"
SECOND_FACTOR: Final = "second_factor"
MULTI_FACTOR: Final = "multi_factor"
LEVELS: Final = (FIRST_FACTOR, SECOND_FACTOR, MULTI_FACTOR)


_STAGE_STRATEGIES: Final = {
    FIRST_FACTOR: DEFAULT_FIRST_FACTOR_STRATEGIES,
    SECOND_FACTOR: DEFAULT_SECOND_FACTOR_STRATEGIES,
}
_KNOWN_STRATEGIES: Final = frozenset(
    DEFAULT_FIRST_FACTOR_STRATEGIES + DEFAULT_SECOND_FACTOR_STRATEGIES
)
_STAGE_OF_STATUS: Final = {"needs_first_factor": FIRST_FACTOR, "needs_second_factor": SECOND_FACTOR}
_WRONG_SECRET_CODES: Final = frozenset({"form_code_incorrect", "form_password_incorrect"})

REVERIFICATION_PRESETS: Final[Mapping[str, tuple[str, int]]] = {
    # clerk-js TYPES_TO_OBJECTS (packages/shared/src/authorization.ts), fapi-protocol.md §9.
    "strict_mfa": (MULTI_FACTOR, 10),
    "strict": (SECOND_FACTOR, 10),
    "moderate": (SECOND_FACTOR, 60),
    "lax": (SECOND_FACTOR, 1_440),
}
"""Preset name → (level, minutes): the rules of clerk-js's ``has({reverification})``."""

# Older clerk-js examples spell levels in camelCase (``level: 'secondFactor'``).
_LEVEL_SPELLINGS: Final = {
    **{level: level for level in LEVELS},
    "firstFactor": FIRST_FACTOR,
    "secondFactor": SECOND_FACTOR,
    "multiFactor": MULTI_FACTOR,
}
# The reasons of Clerk's app-backend hint: "reverification-error" today, earlier
# "reverification-mismatch" (@clerk/shared authorization-errors).
_HINT_REASONS: Final = frozenset({"reverification-error", "reverification-mismatch"})
_HINT_ATTRIBUTES: Final = ("body", "payload", "data", "detail", "json")
_MAX_HINT_TEXT: Final = 64 * 1024


# -- the step handed to ``codes`` ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ReverificationStep:
    """What ``codes(step)`` is asked for: the secret of one attempt.

    ``stage`` is ``"first_factor"`` or ``"second_factor"``; ``strategy`` the factor's strategy
    (``email_code``, ``phone_code``, ``password``, ``totp``, ``backup_code``); ``factor`` the
    :class:`~clerk_sessions.SignInFactor` Clerk offered (``factor.safe_identifier`` is the masked
    address a code went to); ``attempt`` counts from 1 within the stage; ``error`` is the
    previous attempt's error (a 422 ``form_code_incorrect``/``form_password_incorrect``) or
    ``None``. The step holds no secret: the code is what ``codes`` returns, and it is not kept.
    """

    stage: str
    strategy: str
    factor: SignInFactor
    attempt: int
    error: UnprocessableEntityError | None = None
    max_attempts: int
    """The most attempts this stage makes (``reverify(max_attempts=...)``): "attempt 2 of 3"."""
    session_id: str


CodesCallback = Callable[[ReverificationStep], str | Awaitable[str]]
"""``codes(step)`` returns the code or password for ``step``, or an awaitable of it."""


class NoSupportedFactorError(ClerkSessionsError):
    """``reverify`` cannot go on: none of the strategies it may use is offered for this stage.

    ``stage`` is ``"first_factor"``/``"second_factor"``, ``supported`` the strategies Clerk
    offered (in its order) and ``wanted`` the ones ``reverify`` would have used.
    """

    def __init__(self, stage: str, supported: Sequence[str], wanted: Sequence[str]) -> None:
        self.stage = stage
        self.supported = tuple(supported)
        self.wanted = tuple(wanted)
        offered = ", ".join(self.supported) or "none"
        usable = [s for s in self.supported if s in _STAGE_STRATEGIES[stage]]
        if usable:
            hint = f"pass strategies={tuple(usable)!r} to use one of them"
        else:
            hint = (
                "none of them can be completed with a code or a password (reverify drives "
                f"{', '.join(_STAGE_STRATEGIES[stage])}); use the five reverification "
                "operations directly for the others"
            )
        super().__init__(
            f"Cannot reverify the {stage.replace('_', ' ')}: Clerk offers {offered}, and "
            f"reverify may use {', '.join(self.wanted)}; {hint}."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stage, self.supported, self.wanted))


# -- reverify --------------------------------------------------------------------------------------


async def reverify(
    client: AsyncClerkSessions,
    session_id: str,
    *,
    level: str = FIRST_FACTOR,
    codes: CodesCallback,
    strategies: Sequence[str] | str | None = None,
    max_attempts: int = 3,
) -> Envelope[SessionReverification]:
    """Step the session up at ``level``, asking ``codes(step)`` for each code or password.

    Starts reverification, then for each stage the status asks for (``needs_first_factor``,
    ``needs_second_factor``) picks the first offered factor in ``strategies`` order, prepares it
    when it sends something (``email_code``, ``phone_code``), and attempts it with
    ``codes(step)``; a wrong code or password (422 ``form_code_incorrect``/
    ``form_password_incorrect``) asks ``codes`` again, without sending a new code, up to
    ``max_attempts`` attempts per stage, then raises that 422. Any other error propagates at
    once. On ``complete`` the session's cached tokens are dropped (their ``fva`` claim is stale)
    and the final envelope is returned.

    ``strategies``: an order of preference used for both stages; each stage takes the ones that
    belong to it (first factor: ``email_code``, ``phone_code``, ``password``; second factor:
    ``totp``, ``phone_code``, ``backup_code``), and a stage none of them belongs to keeps its
    default order. ``None``: the defaults above, in that order. A stage whose usable strategies
    Clerk does not offer raises :class:`NoSupportedFactorError`.

    ``codes`` may be a plain or an async callable; a plain one runs on the event loop, so make
    it async if it waits for a person or the network. Raise from it to abandon the flow.
    """
    _check_codes(codes)
    wanted = _check_strategies(strategies)
    attempts = _check_max_attempts(max_attempts)
    if not isinstance(level, str) or not level.strip():
        raise ConfigurationError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    envelope = await client.start_session_reverification(session_id, level=level)
    done: set[str] = set()
    while True:
        status = envelope.response.status
        if status == "complete":
            break
        stage = _STAGE_OF_STATUS.get(str(status)) if status is not None else None
        if stage is None or stage in done:
            shown = None if status is None else str(status)
            after = " and ".join(sorted(done)) or "start"
            raise ClerkSessionsError(
                f"Reverification of session {session_id} cannot go on: Clerk answered status "
                f"{shown!r} after the {after} step (expected needs_first_factor, "
                "needs_second_factor or complete)."
            )
        done.add(stage)
        envelope = await _run_stage(
            client, session_id, stage, envelope.response, codes, wanted[stage], attempts
        )
    await client._drop_session_tokens(session_id)
    return envelope


async def _run_stage(
    client: AsyncClerkSessions,
    session_id: str,
    stage: str,
    flow: SessionReverification,
    codes: CodesCallback,
    wanted: Sequence[str],
    max_attempts: int,
) -> Envelope[SessionReverification]:
    offered = (
        flow.supported_first_factors if stage == FIRST_FACTOR else flow.supported_second_factors
    )
    factor = _pick_factor(offered, wanted)
    if factor is None:
        supported = [str(f.strategy) for f in offered if f.strategy is not None]
        raise NoSupportedFactorError(stage, supported, wanted)
    strategy = str(factor.strategy)
    await _prepare(client, session_id, stage, strategy, factor)
    error: UnprocessableEntityError | None = None
    for attempt in range(1, max_attempts + 1):
        step = ReverificationStep(
            stage=stage,
            strategy=strategy,
            factor=factor,
            attempt=attempt,
            error=error,
            max_attempts=max_attempts,
            session_id=session_id,
        )
        secret = await _ask(codes, step)
        try:
            envelope = await _attempt(client, session_id, stage, strategy, secret)
        except UnprocessableEntityError as exc:
            if exc.code not in _WRONG_SECRET_CODES or attempt >= max_attempts:
                raise
            logger.debug(
                "reverify %s %s: attempt %d refused (%s)", stage, strategy, attempt, exc.code
            )
            error = exc
            continue
        logger.debug("reverify %s %s: verified on attempt %d", stage, strategy, attempt)
        return envelope
    raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


def _pick_factor(offered: Sequence[SignInFactor], wanted: Sequence[str]) -> SignInFactor | None:
    for strategy in wanted:
        for factor in offered:
            if factor.strategy == strategy:
                return factor
    return None


async def _prepare(
    client: AsyncClerkSessions, session_id: str, stage: str, strategy: str, factor: SignInFactor
) -> None:
    """Send the code for strategies that send one (password, TOTP and backup codes do not)."""
    if stage == FIRST_FACTOR:
        if strategy == "email_code":
            await client.prepare_session_reverification_first_factor(
                session_id, strategy=strategy, email_address_id=factor.email_address_id or UNSET
            )
        elif strategy == "phone_code":
            await client.prepare_session_reverification_first_factor(
                session_id, strategy=strategy, phone_number_id=factor.phone_number_id or UNSET
            )
    elif strategy == "phone_code":
        await client.prepare_session_reverification_second_factor(
            session_id, strategy=strategy, phone_number_id=factor.phone_number_id or UNSET
        )


async def _attempt(
    client: AsyncClerkSessions, session_id: str, stage: str, strategy: str, secret: str
) -> Envelope[SessionReverification]:
    if stage == SECOND_FACTOR:
        return await client.attempt_session_reverification_second_factor(
            session_id, strategy=strategy, code=secret
        )
    if strategy == "password":
        return await client.attempt_session_reverification_first_factor(
            session_id, strategy=strategy, password=secret
        )
    return await client.attempt_session_reverification_first_factor(
        session_id, strategy=strategy, code=secret
    )


async def _ask(codes: CodesCallback, step: ReverificationStep) -> str:
    answer: object = codes(step)
    if inspect.isawaitable(answer):
        answer = await answer
    if not isinstance(answer, str):
        # An int would lose a code's leading zeros; None is most likely a forgotten return.
        raise ConfigurationError(
            f"codes(step) must return the {step.strategy} secret as a str, got "
            f"{type(answer).__name__} (raise from codes to abandon the reverification)"
        )
    return answer


def _check_codes(codes: object) -> None:
    if not callable(codes):
        raise ConfigurationError(
            "codes must be a callable codes(step) -> str (plain or async) that returns the code "
            f"or password for each step, got {type(codes).__name__}"
        )


def _check_max_attempts(max_attempts: object) -> int:
    return count("max_attempts", max_attempts, unit="attempts per factor")


def _check_strategies(strategies: Sequence[str] | str | None) -> dict[str, tuple[str, ...]]:
    """Each stage's strategies in order of preference (see ``reverify``'s docstring)."""
    if strategies is None:
        return dict(_STAGE_STRATEGIES)
    given = (strategies,) if isinstance(strategies, str) else tuple(strategies)
    unknown = [s for s in given if s not in _KNOWN_STRATEGIES]
    if unknown or not given:
        raise ConfigurationError(
            f"strategies must name at least one of {', '.join(sorted(_KNOWN_STRATEGIES))} "
            f"(the strategies reverify can complete with a code or password), got {strategies!r}"
        )
    chosen = {}
    for stage, allowed in _STAGE_STRATEGIES.items():
        mine = tuple(dict.fromkeys(s for s in given if s in allowed))
        chosen[stage] = mine or allowed
    return chosen


# -- with_reverification ---------------------------------------------------------------------------


async def with_reverification(
    client: AsyncClerkSessions,
    session_id: str,
    call: Callable[[], Awaitable[T]],
    *,
    codes: CodesCallback,
    level: str = SECOND_FACTOR,
    strategies: Sequence[str] | str | None = None,
    is_reverification_error: Callable[[BaseException], object] | None = None,
) -> T:
    """``await call()``; if it demands reverification, :func:`reverify` and call once more.

    A demand is a :class:`~clerk_sessions.PermissionDeniedError` with ``reverification_required``,
    or an exception for which ``is_reverification_error(exc)`` is true (e.g. your backend's 403
    with Clerk's ``reverification-error`` hint). The level is the one the demand names (see
    :func:`reverification_level`), else ``level``. A second demand, and any other exception,
    propagates unchanged (the same object). ``call`` may also return a plain value.
    """
    _check_call(call)
    _check_codes(codes)
    _check_predicate(is_reverification_error)
    try:
        return await _resolve(call())
    except Exception as exc:
        wanted = reverification_level(exc, is_reverification_error, level)
        if wanted is None:
            raise
    await reverify(client, session_id, level=wanted, codes=codes, strategies=strategies)
    return await _resolve(call())


class _BlockingClient(Protocol):
    """What :func:`with_reverification_blocking` uses of ``ClerkSessions`` (``_bridge``)."""

    _async: AsyncClerkSessions

    def _run(self, coro: Coroutine[Any, Any, T]) -> T: ...


def with_reverification_blocking(
    client: _BlockingClient,
    session_id: str,
    call: Callable[[], T],
    *,
    codes: CodesCallback,
    level: str = SECOND_FACTOR,
    strategies: Sequence[str] | str | None = None,
    is_reverification_error: Callable[[BaseException], object] | None = None,
) -> T:
    """:func:`with_reverification` for the blocking client: ``call`` is a plain callable, run
    on the calling thread (outside the client's loop, so it may use the blocking client);
    only the step-up runs on the client's loop."""
    _check_call(call)
    _check_codes(codes)
    _check_predicate(is_reverification_error)
    try:
        return _plain(call())
    except Exception as exc:
        wanted = reverification_level(exc, is_reverification_error, level)
        if wanted is None:
            raise
    client._run(
        reverify(client._async, session_id, level=wanted, codes=codes, strategies=strategies)
    )
    return _plain(call())


def reverification_level(
    exc: BaseException,
    is_reverification_error: Callable[[BaseException], object] | None,
    default: str,
) -> str | None:
    """The level to reverify at if ``exc`` demands reverification, else ``None``.

    - A :class:`~clerk_sessions.PermissionDeniedError` with ``reverification_required``: the
      level its ``meta`` names (``meta.reverification.level``, in the body's or an error's
      meta), else ``default``.
    - Otherwise, when ``is_reverification_error(exc)`` is truthy: a level it returns as a str
      (``"multi_factor"``, or a preset such as ``"strict_mfa"``), else the level of Clerk's
      ``reverification-error`` hint if the exception carries it (a mapping, or its JSON text,
      in ``exc.args`` or one of ``exc.body``/``payload``/``data``/``detail``/``json``), else
      ``default``.
    """
    if isinstance(exc, PermissionDeniedError) and exc.reverification_required:
        metas = [exc.meta, *(error.meta for error in exc.errors)]
        for meta in metas:
            found = _level_in_config(meta.get("reverification")) if meta else None
            if found is not None:
                return found
        return default
    if is_reverification_error is None:
        return None
    verdict = is_reverification_error(exc)
    if isinstance(verdict, str) and verdict:
        return _LEVEL_SPELLINGS.get(verdict) or _preset_level(verdict) or verdict
    if not verdict:
        return None
    return _hint_level(exc) or default


def _level_in_config(config: object) -> str | None:
    """The level of a clerk-js ``ReverificationConfig``: a preset name or ``{level, ...}``."""
    if isinstance(config, str):
        return _preset_level(config) or _LEVEL_SPELLINGS.get(config)
    if isinstance(config, Mapping):
        level = config.get("level")
        if isinstance(level, str):
            return _LEVEL_SPELLINGS.get(level)
    return None


def _preset_level(name: str) -> str | None:
    preset = REVERIFICATION_PRESETS.get(name)
    return preset[0] if preset is not None else None


def _hint_level(exc: BaseException) -> str | None:
    candidates = [*exc.args, *(getattr(exc, name, None) for name in _HINT_ATTRIBUTES)]
    for candidate in candidates:
        if isinstance(candidate, str | bytes) and 0 < len(candidate) <= _MAX_HINT_TEXT:
            if candidate.lstrip()[:1] not in ("{", b"{"):
                continue
            try:
                candidate = orjson.loads(candidate)
            except orjson.JSONDecodeError:
                continue
        if not isinstance(candidate, Mapping):
            continue
        hint = candidate.get("clerk_error", candidate)
        if isinstance(hint, Mapping) and hint.get("reason") in _HINT_REASONS:
            metadata = hint.get("metadata")
            if isinstance(metadata, Mapping):
                found = _level_in_config(metadata.get("reverification"))
                if found is not None:
                    return found
    return None


async def _resolve(result: Awaitable[T] | T) -> T:
    if inspect.isawaitable(result):
        return await result
    return result


def _plain(result: T) -> T:
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # no "was never awaited" warning on top of this error
        raise ConfigurationError(
            "call returned an awaitable: the blocking ClerkSessions.with_reverification takes a "
            "plain callable; use AsyncClerkSessions.with_reverification for async calls"
        )
    return result


def _check_call(call: object) -> None:
    if inspect.iscoroutine(call):
        call.close()
        raise ConfigurationError(
            "call must be a callable, not a coroutine: it may run twice (e.g. "
            "lambda: clerk.get_session(session_id), or an async def without arguments)"
        )
    if not callable(call):
        raise ConfigurationError(f"call must be a callable, got {type(call).__name__}")


def _check_predicate(predicate: object) -> None:
    if predicate is not None and not callable(predicate):
        raise ConfigurationError(
            "is_reverification_error must be a callable exc -> bool (or a level), got "
            f"{type(predicate).__name__}"
        )


# -- needs_reverification --------------------------------------------------------------------------


def needs_reverification(
    session: Session | Sequence[int], rule: str | tuple[str, float] = "strict"
) -> bool:
    """True if the session's factors were verified too long ago for ``rule``.

    ``session`` is a :class:`~clerk_sessions.Session` (its ``factor_verification_age``) or the
    ``[first, second]`` ages themselves (a session JWT's ``fva`` claim), in minutes; ``-1`` means
    never verified or not enabled. ``rule`` is a clerk-js preset (``strict``: second factor
    within 10 minutes, ``strict_mfa``: both factors within 10, ``moderate``: 60, ``lax``: 1440)
    or ``(level, max_age_minutes)`` with level ``first_factor``, ``second_factor`` or
    ``multi_factor``. As in clerk-js, a factor is fresh when its age is below
    ``max_age_minutes``; ``second_factor`` uses the first factor for a user without a second
    factor, and ``multi_factor`` then needs only the first. Unknown ages count as never.
    """
    level, max_age = _check_rule(rule)
    first, second = _ages(session)

    def fresh(age: int) -> bool:
        return age >= 0 and max_age > age

    if level == FIRST_FACTOR:
        ok = fresh(first)
    elif level == SECOND_FACTOR:
        ok = fresh(second) if second >= 0 else fresh(first)
    else:
        ok = fresh(first) and (second < 0 or fresh(second))
    return not ok


def _check_rule(rule: object) -> tuple[str, float]:
    if isinstance(rule, str):
        preset = REVERIFICATION_PRESETS.get(rule)
        if preset is None:
            raise ConfigurationError(
                f"rule must be one of {', '.join(REVERIFICATION_PRESETS)} or "
                f"(level, max_age_minutes), got {rule!r}"
            )
        return preset
    if isinstance(rule, Sequence) and len(rule) == 2:
        level, max_age = rule
        if level in LEVELS and is_number(max_age) and 0 < max_age < math.inf:
            return str(level), float(max_age)
    raise ConfigurationError(
        f"rule must be a preset ({', '.join(REVERIFICATION_PRESETS)}) or (level, "
        f"max_age_minutes) with level one of {', '.join(LEVELS)} and a positive number of "
        f"minutes, got {rule!r}"
    )


def _ages(session: object) -> tuple[int, int]:
    if isinstance(session, Sequence) and not isinstance(session, str | bytes):
        ages: object = session
    else:
        ages = getattr(session, "factor_verification_age", None)
        if ages is None:
            raise TypeError(
                "needs_reverification takes a Session (from get_session or a client payload) "
                f"or its [first, second] factor ages, got {type(session).__name__}"
            )
    values = list(ages) if isinstance(ages, Sequence) else []
    values += [-1, -1]

    def minutes(value: object) -> int:
        if not is_number(value):
            return -1  # fail closed: an age we cannot read is "never verified"
        return int(value)

    return minutes(values[0]), minutes(values[1])
