"""The cattrs converter that turns decoded JSON into the models of :mod:`clerk_sessions.models`.

``CONVERTER`` is built once at import; each model gets two hooks, generated on first use:
cattrs' ``make_dict_structure_fn`` hook (detailed validation, error paths) and, in front of it,
an optimistic fast path that checks scalars inline and hands any input it does not like to the
cattrs hook. :mod:`._fast_path` generates the fast path; this module keeps the policy (below)
that both follow. Structuring a response is a chain of plain function calls.
:func:`structure` is what the rest of the package calls: it turns any structuring failure into
:class:`~clerk_sessions.ResponseValidationError` carrying cattrs paths such as
``invalid type (expected str) @ $.response.id``.

Policy (the "why" is in ``models.py``'s docstring and ``fapi-protocol.md`` §11):

- Types are strict. cattrs' defaults coerce (``str(5)``, ``int("5")``, ``bool("false")``); the
  hooks here accept only the JSON type itself: ``int`` is never ``bool``, a ``float`` field
  takes ints but not bools, lists must be lists and objects must be dicts.
- Presence is lenient: ``null`` for an array is ``[]``, for a free-form object ``{}``.
- Open enums accept unknown strings (see ``OpenEnum``); verification unions pick a variant by
  ``object``, then ``strategy``, and fall back to ``UnknownVerification``.
- Unknown keys are tolerated and copied into ``unknown_fields``; the strict converter of
  :func:`make_converter` (``forbid_extra_keys=True``) rejects them instead, for tests that
  watch for spec drift.
- ``detailed_validation`` stays on: it is what produces the paths, and it only runs when the
  fast path has already failed.

Hooks for the simple types are registered before any model hook is generated, because cattrs
resolves a model's field hooks when it generates the model's hook.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast, get_args, get_origin, overload

import attrs
import cattrs
from cattrs.errors import (
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
    StructureHandlerNotFoundError,
)
from cattrs.gen import make_dict_structure_fn, override

from . import models
from ._errors import ResponseValidationError
from ._fast_path import compile_fast_hook
from ._model_base import FrozenMapping, OpenEnum, UnknownVerification
from ._redact import redact_text
from ._typeinfo import (
    SDK_FIELDS,
    Hook,
    NoneType,
    is_dict,
    is_list,
    is_model,
    is_optional,
    is_verification_union,
    type_name,
    variants_by_object,
)
from .models import VERIFICATION_DISCRIMINATORS

__all__ = ["CONVERTER", "make_converter", "structure"]

T = TypeVar("T")

# How many failure paths a ResponseValidationError message names (all are in ``.paths``).
MESSAGE_PATHS = 3


# --------------------------------------------------------------------------------------------
# Describing values and types in messages (never the value itself: it may be a secret)
# --------------------------------------------------------------------------------------------

_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    NoneType: "null",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _format_exception(exc: BaseException, tp: Any) -> str:
    """cattrs ``format_exception`` with readable type names and no echoed values."""
    expected = f"expected {type_name(tp)}" if tp is not None else None
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"extra fields found ({', '.join(sorted(exc.extra_fields))})"
    if isinstance(exc, TypeError):
        return f"invalid type ({expected or exc})"
    if isinstance(exc, ValueError):
        return f"invalid value ({expected})" if expected else "invalid value"
    return f"unexpected error ({type(exc).__name__}: {redact_text(str(exc))})"


# --------------------------------------------------------------------------------------------
# Scalar hooks: strict, no coercion
# --------------------------------------------------------------------------------------------


def _structure_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {_json_type(value)}")


def _structure_int(value: Any, _: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"expected an integer, got {_json_type(value)}")


def _structure_bool(value: Any, _: Any) -> bool:
    if value is True or value is False:
        return value
    raise TypeError(f"expected a boolean, got {_json_type(value)}")


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number, got {_json_type(value)}")


def _structure_open_enum(value: Any, cls: type[OpenEnum]) -> OpenEnum:
    if isinstance(value, str):
        member = cls._value2member_map_.get(value)
        return cast(OpenEnum, member) if member is not None else cls(value)
    raise TypeError(f"expected a string, got {_json_type(value)}")


def _structure_unknown_verification(value: Any, _: Any) -> UnknownVerification:
    if isinstance(value, dict):
        return UnknownVerification.from_raw(value)
    raise TypeError(f"expected a JSON object, got {_json_type(value)}")


# ``X | None`` for the common scalars, without the extra call of the generic version.


def _optional_str(value: Any, _: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string or null, got {_json_type(value)}")


def _optional_int(value: Any, _: Any) -> int | None:
    if value is None or type(value) is int:
        return value
    return _structure_int(value, int)


def _optional_bool(value: Any, _: Any) -> bool | None:
    if value is None or value is True or value is False:
        return value
    raise TypeError(f"expected a boolean or null, got {_json_type(value)}")


_OPTIONAL_SCALARS: dict[Any, Hook] = {str: _optional_str, int: _optional_int, bool: _optional_bool}


# --------------------------------------------------------------------------------------------
# Hook factories: generic types and models
# --------------------------------------------------------------------------------------------


def _optional_factory(tp: Any, converter: cattrs.Converter) -> Hook:
    (inner_tp,) = (arg for arg in get_args(tp) if arg is not NoneType)
    if inner_tp in _OPTIONAL_SCALARS:
        return _OPTIONAL_SCALARS[inner_tp]
    if isinstance(inner_tp, type) and issubclass(inner_tp, OpenEnum):
        lookup = inner_tp._value2member_map_
        enum_cls: type[OpenEnum] = inner_tp

        def structure_optional_enum(value: Any, _: Any) -> OpenEnum | None:
            if value is None:
                return None
            if isinstance(value, str):
                member = lookup.get(value)
                return cast(OpenEnum, member) if member is not None else enum_cls(value)
            raise TypeError(f"expected a string or null, got {_json_type(value)}")

        return structure_optional_enum
    inner = converter.get_structure_hook(inner_tp)

    def structure_optional(value: Any, _: Any) -> Any:
        return None if value is None else inner(value, inner_tp)

    return structure_optional


def _list_factory(tp: Any, converter: cattrs.Converter) -> Hook:
    (item_tp,) = get_args(tp) or (Any,)
    item = converter.get_structure_hook(item_tp)
    detailed = converter.detailed_validation

    def structure_list(value: Any, _: Any) -> list[Any]:
        if value is None:
            return []  # servers send null for empty arrays
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {_json_type(value)}")
        try:
            return [item(element, item_tp) for element in value]
        except Exception:
            if not detailed:
                raise
        # Slow path, only on failure: redo it element by element to say which ones failed.
        errors: list[Exception] = []
        for index, element in enumerate(value):
            try:
                item(element, item_tp)
            except Exception as exc:
                note = IterableValidationNote(f"@ index {index}", index, item_tp)
                noted: Any = exc  # add_note() and __notes__ are typed from Python 3.11 on
                noted.__notes__ = [*getattr(exc, "__notes__", []), note]
                errors.append(exc)
        raise IterableValidationError(f"While structuring {type_name(tp)}", errors, tp)

    if item_tp not in (str, int):
        return structure_list

    def structure_scalar_list(value: Any, _: Any) -> list[Any]:
        # list[str] / list[int]: check the items in place instead of one hook call per item.
        if value.__class__ is list:
            for element in value:
                if element.__class__ is not item_tp:
                    break
            else:
                return value.copy()
        return structure_list(value, _)  # null, or something to reject in detail

    return structure_scalar_list


def _dict_factory(tp: Any, converter: cattrs.Converter) -> Hook:
    args = get_args(tp)
    if args and args[1] is not Any:  # the models only have free-form dict[str, Any]
        raise StructureHandlerNotFoundError(f"no strict hook for {tp!r}", tp)

    def structure_free_form(value: Any, _: Any) -> dict[str, Any]:
        if value is None:
            return {}  # servers send null for empty metadata
        if isinstance(value, dict):
            return value
        raise TypeError(f"expected a JSON object, got {_json_type(value)}")

    return structure_free_form


def _model_factory(*, forbid_extra_keys: bool, track_unknown_fields: bool, fast_path: bool) -> Any:
    def factory(tp: Any, converter: cattrs.Converter) -> Hook:
        cls = get_origin(tp) or tp
        names = {a.name for a in attrs.fields(cls)}
        tracks = "unknown_fields" in names and track_unknown_fields
        # SDK-side fields never come from JSON: unknown_fields is filled below from the extra
        # keys, retries_taken by the client after the call.
        overrides: dict[str, Any] = {}
        for sdk_field in SDK_FIELDS & names:
            overrides[sdk_field] = override(omit=True)
        known = frozenset(names - SDK_FIELDS)
        label = type_name(tp)
        use_fast_path = fast_path and not forbid_extra_keys
        inner: Hook | None = None

        def cattrs_hook() -> Hook:
            # Behind a fast path this hook only runs once an input has failed, so it is
            # generated on first use: that keeps ~half the compile work out of import time.
            nonlocal inner
            if inner is None:
                inner = make_dict_structure_fn(
                    tp, converter, _cattrs_forbid_extra_keys=forbid_extra_keys, **overrides
                )
            return inner

        if not use_fast_path:
            cattrs_hook()

        def structure_model(value: Any, _: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected a JSON object for {label}, got {_json_type(value)}")
            obj = (inner or cattrs_hook())(value, tp)
            # A superset test allocates nothing; the dict is only built when there are extras.
            if tracks and not known.issuperset(value):
                obj.unknown_fields = FrozenMapping(
                    {k: v for k, v in value.items() if k not in known}
                )
            return obj

        if not use_fast_path:
            return structure_model
        # In front of it, the generated fast path (see _fast_path), which falls back to it.
        return compile_fast_hook(tp, cls, converter, structure_model, known if tracks else None)

    return factory


def _verification_union_factory(tp: Any, converter: cattrs.Converter) -> Hook:
    """Pick the variant of a verification ``oneOf``; never fail on an unknown kind.

    Order: ``object`` when it names exactly one listed variant; else ``strategy`` when exactly
    one listed variant enumerates it; else the longest matching free-form strategy prefix
    (``oauth_``, ``from_oauth_``); else :class:`UnknownVerification`. A known variant is then
    structured strictly, so a wrong type for one of its fields still fails.
    """
    args = get_args(tp)
    nullable = NoneType in args
    variants = [a for a in args if a is not NoneType and a is not UnknownVerification]
    strategy_owners: dict[str, list[Any]] = {}
    prefixes: list[tuple[str, Any]] = []
    for variant in variants:
        disc = VERIFICATION_DISCRIMINATORS[variant]
        for strategy in disc.strategies:
            strategy_owners.setdefault(strategy, []).append(variant)
        if disc.strategy_prefix:
            prefixes.append((disc.strategy_prefix, variant))
    by_object = variants_by_object(tp)
    by_strategy = {k: owners[0] for k, owners in strategy_owners.items() if len(owners) == 1}
    prefixes.sort(key=lambda pair: -len(pair[0]))
    hooks: dict[Any, Hook] = {}  # a variant's hook is built when the variant first occurs

    def structure_verification(value: Any, _: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise TypeError("expected a verification object, got null")
        if not isinstance(value, dict):
            raise TypeError(f"expected a verification object, got {_json_type(value)}")
        obj = value.get("object")
        variant = by_object.get(obj) if type(obj) is str else None
        if variant is None:
            strategy = value.get("strategy")
            if type(strategy) is str:
                variant = by_strategy.get(strategy)
                if variant is None:
                    for prefix, candidate in prefixes:
                        if strategy.startswith(prefix):
                            variant = candidate
                            break
        if variant is None:
            return UnknownVerification.from_raw(value)
        hook = hooks.get(variant)
        if hook is None:
            hook = hooks[variant] = converter.get_structure_hook(variant)
        return hook(value, variant)

    return structure_verification


# --------------------------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------------------------


def _model_types() -> list[Any]:
    """Every structurable public type of models.py: classes and envelope aliases."""
    found = []
    for name in models.__all__:
        obj = getattr(models, name)
        if obj is models.Envelope:
            continue  # only its parametrised aliases can be structured
        if is_model(obj):
            found.append(obj)
    return found


def make_converter(
    *,
    forbid_extra_keys: bool = False,
    track_unknown_fields: bool = True,
    detailed_validation: bool = True,
    fast_path: bool = True,
) -> cattrs.Converter:
    """A converter for the models; each model's hook is generated when first needed.

    ``forbid_extra_keys=True`` gives the strict variant that rejects keys the spec does not
    declare (for tests that detect spec drift). ``track_unknown_fields``, ``detailed_validation``
    and ``fast_path`` exist to measure their cost and to test the fast path against cattrs'
    own hooks; the package keeps all three on.
    """
    converter = cattrs.Converter(
        detailed_validation=detailed_validation, forbid_extra_keys=forbid_extra_keys
    )
    # Simple types first: model hooks resolve their field hooks when they are generated.
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(float, _structure_float)
    # Registered by class (singledispatch), so it wins over the ``str`` hook for str enums.
    converter.register_structure_hook(OpenEnum, _structure_open_enum)
    converter.register_structure_hook(UnknownVerification, _structure_unknown_verification)
    converter.register_structure_hook_factory(is_list, _list_factory)
    converter.register_structure_hook_factory(is_dict, _dict_factory)
    converter.register_structure_hook_factory(is_optional, _optional_factory)
    converter.register_structure_hook_factory(
        is_model,
        _model_factory(
            forbid_extra_keys=forbid_extra_keys,
            track_unknown_fields=track_unknown_fields,
            fast_path=fast_path,
        ),
    )
    # Last registered is consulted first: verification unions before plain optionals.
    converter.register_structure_hook_factory(is_verification_union, _verification_union_factory)
    # Hooks are generated on first use, each once: importing the package compiles none, and
    # the types no response carries (sign-in and sign-up objects...) are never compiled.
    return converter


CONVERTER = make_converter()
_HOOKS: dict[Any, Hook] = {}


@overload
def structure(
    data: Any, tp: type[T], *, operation: str | None = None, status: int | None = None
) -> T: ...


@overload
def structure(
    data: Any, tp: Any, *, operation: str | None = None, status: int | None = None
) -> Any: ...  # unions such as ``Client | None`` are not ``type[T]`` to a type checker


def structure(
    data: Any,
    tp: type[T] | Any,
    *,
    operation: str | None = None,
    status: int | None = None,
) -> T | Any:
    """Structure decoded JSON into ``tp`` or raise :class:`ResponseValidationError`.

    The error's ``paths`` list every problem (``invalid type (expected str) @ $.response.id``);
    its message names the first ones. The cattrs exception is chained as ``__cause__``.
    """
    try:
        hook = _HOOKS.get(tp)
        if hook is None:  # first use of this type: cattrs' dispatch, once
            hook = _HOOKS[tp] = CONVERTER.get_structure_hook(tp)
        return hook(data, tp)
    except StructureHandlerNotFoundError:
        raise  # a programming error (unsupported type), not a bad response
    except Exception as exc:
        paths = cattrs.transform_error(exc, path="$", format_exception=_format_exception)
        shown = "; ".join(paths[:MESSAGE_PATHS])
        more = len(paths) - MESSAGE_PATHS
        if more > 0:
            shown += f" (and {more} more)"
        raise ResponseValidationError(
            f"the response does not match the documented shape: {shown}",
            status=status,
            paths=paths,
            operation=operation,
        ) from exc
