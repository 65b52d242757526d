"""Runtime support for the generated models (``models.py``): hand-written, imported by it.

- :class:`OpenEnum`: a ``str`` enum that accepts values it does not know. Clerk adds enum values
  often (new session statuses, sign-in statuses, strategies); an SDK that rejects them breaks on
  the server's schedule. Unknown values become pseudo-members named ``UNKNOWN`` whose value is
  the raw string, so they compare equal to it, hash like it and round-trip.
- :class:`FrozenMapping` and :data:`EMPTY_MAPPING`: what a model's ``unknown_fields`` holds (a
  read-only, picklable mapping) and its shared empty default.
- :class:`UnknownVerification`: the fallback member of every verification union, for a
  verification object whose ``object``/``strategy`` the SDK cannot place.
- :class:`Discriminator`: how the converter tells verification variants apart.
- :func:`redacted_repr`: the attrs ``repr=`` of fields that hold secrets.
"""

from __future__ import annotations

import enum
import operator
import reprlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import attrs

from ._redact import REDACTED

__all__ = [
    "EMPTY_MAPPING",
    "Discriminator",
    "FrozenMapping",
    "ModelBase",
    "OpenEnum",
    "UnknownVerification",
    "redacted_repr",
]


class ModelBase:
    """The base of every generated model: ``repr`` and ``==`` exactly as attrs writes them
    (fields with ``repr=False``/``eq=False`` left out, ``repr=`` callables applied), but defined
    once. attrs would compile both again for each of the fifty-odd models: 40% of their
    import time. The models are unhashable, like any mutable attrs class with ``eq``."""

    __slots__ = ()

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={show(getattr(self, name))}" for name, show in _shown(type(self))
        )
        return f"{type(self).__qualname__.rsplit('>.', 1)[-1]}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = _compared(type(self))
        return bool(key(self) == key(other))

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result


_SHOWN: dict[type, tuple[tuple[str, Callable[[Any], str]], ...]] = {}
_COMPARED: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def _shown(cls: type) -> tuple[tuple[str, Callable[[Any], str]], ...]:
    shown = _SHOWN.get(cls)
    if shown is None:
        shown = _SHOWN[cls] = tuple(
            (f.name, f.repr if callable(f.repr) else repr) for f in attrs.fields(cls) if f.repr
        )
    return shown


def _compared(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    key = _COMPARED.get(cls)
    if key is None:
        names = [f.name for f in attrs.fields(cls) if f.eq]
        if len(names) >= 2:
            key = operator.attrgetter(*names)  # a tuple of the values, like attrs compares
        else:
            key = lambda obj: tuple(getattr(obj, name) for name in names)  # noqa: E731
        _COMPARED[cls] = key
    return key


class FrozenMapping(Mapping[str, Any]):
    """A read-only mapping of JSON keys to values: what ``unknown_fields`` holds.

    Unlike ``types.MappingProxyType`` it can be pickled and deep-copied, so models can be too.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data) if data else {}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def __reduce__(self) -> str | tuple[Any, ...]:
        if not self._data:
            return "EMPTY_MAPPING"  # unpickles to the shared instance
        return (type(self), (self._data,))


EMPTY_MAPPING: Final[Mapping[str, Any]] = FrozenMapping()
"""Read-only empty mapping: the default ``unknown_fields`` of every model."""

# Pseudo-members are cached per enum class so that ``SessionStatus("replaced")`` is the same
# object each time (identity, cheap equality). The cache is bounded: a misbehaving server that
# sends a fresh value in every response must not grow memory without limit. Beyond the bound,
# pseudo-members are still created, just not cached (equality and hashing do not need identity).
_MAX_UNKNOWN_PER_ENUM: Final = 64
_unknown_members: dict[type[OpenEnum], dict[str, OpenEnum]] = {}
_unknown_lock = threading.Lock()


class OpenEnum(str, enum.Enum):
    """A string enum that also accepts values it does not define.

    ``SessionStatus("replaced")`` returns a pseudo-member with ``name == "UNKNOWN"`` and
    ``value == "replaced"``; it is an instance of the enum class, equals ``"replaced"``, hashes
    like it, and ``SessionStatus(member.value) == member``. Use :attr:`is_known` to tell it from a
    defined member. Non-string values are still rejected (``ValueError``), so a wrong *type* in a
    response is an error while an unknown *value* is not.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        value = str.__str__(value)  # a str subclass (e.g. another enum's member) → plain str
        known = cls._value2member_map_.get(value)
        if known is not None:
            return known
        cache = _unknown_members.get(cls)
        if cache is not None:
            member = cache.get(value)
            if member is not None:
                return member
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        with _unknown_lock:
            cache = _unknown_members.setdefault(cls, {})
            if len(cache) < _MAX_UNKNOWN_PER_ENUM:
                member = cache.setdefault(value, member)
        return member

    @property
    def is_known(self) -> bool:
        """True for a value this SDK version defines, False for a pseudo-member."""
        return type(self)._value2member_map_.get(self._value_) is self

    # Behave like the plain string in text (as ``enum.StrEnum`` does from Python 3.11 on), so
    # ``f"{status}"`` and ``str(status)`` give ``"active"``, not ``"SessionStatus.ACTIVE"``.
    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(str.__str__(self), format_spec)


def redacted_repr(value: object) -> str:
    """attrs ``repr=`` for secret fields: an empty value is shown as is, anything else masked."""
    if not value:
        return repr(value)
    return f"'{REDACTED}'"


class Discriminator:
    """How a verification variant is recognised in a ``oneOf``.

    ``objects``: its ``object`` values; ``strategies``: its enumerated ``strategy`` values;
    ``strategy_prefix``: the literal prefix of its ``strategy`` pattern (``oauth_``) when the
    strategy is free-form. Read-only by convention.
    """

    __slots__ = ("objects", "strategies", "strategy_prefix")

    def __init__(
        self,
        *,
        objects: tuple[str, ...] = (),
        strategies: tuple[str, ...] = (),
        strategy_prefix: str | None = None,
    ) -> None:
        self.objects = objects
        self.strategies = strategies
        self.strategy_prefix = strategy_prefix

    def __repr__(self) -> str:
        return (
            f"Discriminator(objects={self.objects!r}, strategies={self.strategies!r}, "
            f"strategy_prefix={self.strategy_prefix!r})"
        )


@attrs.define(kw_only=True, repr=False, eq=False)
class UnknownVerification(ModelBase):
    """A verification object of a kind this SDK version does not know.

    ``raw`` is the JSON object as received; ``status``, ``strategy`` and ``object`` are copied
    from it when they are strings (``None`` otherwise), so code can still branch on them.
    """

    raw: dict[str, Any] = attrs.field(factory=dict)
    status: str | None = None
    strategy: str | None = None
    object: str | None = None

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> UnknownVerification:
        def text(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) else None

        return cls(raw=raw, status=text("status"), strategy=text("strategy"), object=text("object"))
