"""Sentinels and small value types shared by the public API."""

from __future__ import annotations

import enum
from typing import Final, Literal, TypeVar

import attrs

__all__ = ["UNSET", "Timeout", "Unset"]

T = TypeVar("T")


class Unset(enum.Enum):
    """Type of :data:`UNSET`: "not given", distinct from ``None`` (which is sent as ``key=``)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> Literal[False]:
        return False

    # Enum's __hash__ is a Python function (hash of the name); UNSET sits in every token cache
    # key, hashed on each lookup and store. A singleton compares by identity: hash it so, in C.
    __hash__ = object.__hash__


UNSET: Final = Unset.UNSET
"""Leave an optional field out of the request (as opposed to ``None``, sent empty)."""


@attrs.frozen
class Timeout:
    """Split timeouts in seconds.

    ``total`` bounds the whole call; ``connect`` bounds getting a connection, including the wait
    for a free slot in the pool. Both must be positive: there is deliberately no "no timeout".
    """

    total: float
    connect: float | None = None

    def __attrs_post_init__(self) -> None:
        from ._validate import seconds  # _validate needs _errors, which needs this module

        seconds("Timeout.total", self.total, positive=True)
        if self.connect is not None:
            seconds("Timeout.connect", self.connect, positive=True)


# Request enums: the spec's values for autocompletion, ``str`` so a value Clerk adds later can be
# sent without waiting for an SDK release (the server validates it either way).
TouchIntent = Literal["focus", "select_session", "select_org"] | str
ReverificationLevel = Literal["first_factor", "second_factor", "multi_factor"] | str
FirstFactorPrepareStrategy = Literal["email_code", "phone_code", "passkey", "enterprise_sso"] | str
FirstFactorAttemptStrategy = Literal["email_code", "password", "phone_code", "passkey"] | str
SecondFactorPrepareStrategy = Literal["phone_code"] | str
SecondFactorAttemptStrategy = Literal["phone_code", "totp", "backup_code"] | str
