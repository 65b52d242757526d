"""What the converter and its fast path ask of a model type: predicates (is it a list, a model,
a verification union...), readable type names, and which verification variant an ``object``
value names. Shared by :mod:`._converter` and :mod:`._fast_path`; imports neither.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin

import attrs

from ._model_base import UnknownVerification
from .models import VERIFICATION_DISCRIMINATORS

__all__ = [
    "SDK_FIELDS",
    "Hook",
    "NoneType",
    "is_dict",
    "is_list",
    "is_model",
    "is_optional",
    "is_union",
    "is_verification_union",
    "type_name",
    "variants_by_object",
]

Hook = Callable[[Any, Any], Any]

# Model fields the SDK fills, never read from the JSON.
SDK_FIELDS = frozenset({"unknown_fields", "retries_taken"})
NoneType = type(None)


def is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def is_verification_union(tp: Any) -> bool:
    return is_union(tp) and UnknownVerification in get_args(tp)


def is_optional(tp: Any) -> bool:
    """``X | None`` with a single ``X`` (verification unions are handled separately)."""
    if not is_union(tp):
        return False
    args = get_args(tp)
    return len(args) == 2 and NoneType in args


def is_list(tp: Any) -> bool:
    return tp is list or get_origin(tp) is list


def is_dict(tp: Any) -> bool:
    return tp is dict or get_origin(tp) is dict


def is_model(tp: Any) -> bool:
    cls = get_origin(tp) or tp
    return isinstance(cls, type) and attrs.has(cls) and cls is not UnknownVerification


def type_name(tp: Any) -> str:
    """``SessionStatus | None``, ``list[EmailAddress]``, ``Envelope[Session]``..."""
    if is_union(tp):
        return " | ".join(type_name(arg) for arg in get_args(tp))
    origin = get_origin(tp)
    if origin is not None:
        args = ", ".join(type_name(arg) for arg in get_args(tp))
        return f"{type_name(origin)}[{args}]"
    if tp is NoneType:
        return "None"
    return getattr(tp, "__name__", None) or repr(tp)


def variants_by_object(tp: Any) -> dict[str, Any]:
    """The variants of a verification union that an ``object`` value names unambiguously."""
    owners: dict[str, list[Any]] = {}
    for variant in get_args(tp):
        if variant is not NoneType and variant is not UnknownVerification:
            for obj in VERIFICATION_DISCRIMINATORS[variant].objects:
                owners.setdefault(obj, []).append(variant)
    return {obj: found[0] for obj, found in owners.items() if len(found) == 1}
