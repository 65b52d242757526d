"""The structuring fast path: per model, a generated function in front of cattrs' hook.

cattrs' generated hook calls one hook per field inside its own try block; on a realistic
getSession body most of those calls are scalar checks. :func:`compile_fast_hook` generates, for
each model, a function (source text, compiled once, on the model's first use) that checks
scalars inline and calls hooks only for nested values. What it buys: the 23 KB getSession body
structures about 2.5 times faster than with cattrs' hooks alone
(``make_converter(fast_path=False)``); the time it takes is the "structure" column of
``benchmarks/RESULTS.md``.

The contract: it is optimistic. On *any* failure it hands the same input to the cattrs hook
(``slow``), which does the work again with detailed validation and raises with the paths. Its
checks are exact-type (``v.__class__ is str``), never more lenient than the cattrs hook's, so
both agree on every input the fast path accepts. ``tests/test_fast_path.py`` (and the
fast-versus-cattrs tests of ``test_models.py`` and ``test_models_spec.py``) compare the two.

The policy (which types, what ``null`` means, unknown keys) is :mod:`._converter`'s; this
module only mirrors it for the inputs it accepts.
"""

from __future__ import annotations

import linecache
from collections.abc import Iterable
from typing import Any, cast, get_args

import attrs
import cattrs
import orjson

from ._model_base import FrozenMapping, OpenEnum
from ._typeinfo import (
    SDK_FIELDS,
    Hook,
    NoneType,
    is_dict,
    is_list,
    is_model,
    is_union,
    is_verification_union,
    type_name,
    variants_by_object,
)

__all__ = ["compile_fast_hook"]


class _Mismatch(Exception):
    """Raised inside a fast path to fall back to the detailed hook; never escapes it."""


_MISSING = object()
_FACTORY: type = type(attrs.Factory(list))  # attrs types Factory as a function
_INLINE_CHECKS: dict[Any, str] = {
    str: "{v}.__class__ is not str",
    int: "{v}.__class__ is not int",
    bool: "{v} is not True and {v} is not False",
    dict: "{v}.__class__ is not dict",
}


def decoder_keys(names: Iterable[str]) -> dict[str, str]:
    """Each name as the very ``str`` object orjson gives for that key when it decodes a body.

    orjson caches the keys it decodes (the same object each time), but builds its dicts with
    general keys, where a lookup by an equal string costs a full comparison and by the same
    object one pointer test. The generated code looks keys up by these objects: on the 23 KB
    getSession body, a tenth fewer instructions to structure it. (A key orjson's cache has since
    dropped is an equal string: still found, at the old cost.)"""
    wanted = list(names)
    decoded = orjson.loads(orjson.dumps(dict.fromkeys(wanted)))
    return {key: key for key in decoded} | {name: name for name in wanted if name not in decoded}


def _inline_key(tp: Any) -> Any:
    """The key of ``_INLINE_CHECKS`` for a type (``dict[str, Any]`` checks as ``dict``)."""
    return dict if is_dict(tp) else tp


def _lazy_hook(table: dict[Any, Any], name: Any, converter: cattrs.Converter, tp: Any) -> Hook:
    """A stand-in for a nested type's hook that fetches (generates) it on first use and puts it
    in its place (in a generated function's globals, or a dispatch table): the hooks of types
    no response has carried yet (sign-in and sign-up objects, most verification kinds) are
    never built."""

    def first_use(value: Any, type_: Any = None) -> Any:
        hook = table[name] = converter.get_structure_hook(tp)
        return hook(value, tp)

    return first_use


def _field_code(
    index: int, field: attrs.Attribute[Any], tp: Any, converter: cattrs.Converter, env: Any
) -> list[str]:
    """Source lines that set ``f<index>`` from ``o`` for one field, or raise.

    A field whose value is ``None`` adds one to ``missing`` when its key is absent: the
    object then has unknown keys exactly when ``len(o)`` exceeds the known keys present.
    """
    v, key = f"f{index}", f"__k{index}"  # the key as orjson decodes it (see decoder_keys)
    hook, type_ = f"__h{index}", f"__t{index}"
    absent = f"if {key} not in o: missing += 1"

    def use_hook(for_type: Any) -> None:
        env[hook] = _lazy_hook(env, hook, converter, for_type)
        env[type_] = for_type

    default: Any = field.default
    if default is attrs.NOTHING:  # mandatory: id, object, Token.jwt, Envelope.response
        check = _INLINE_CHECKS.get(tp)
        if check is not None and tp is not dict:
            return [f"{v} = o[{key}]", f"if {check.format(v=v)}: raise __M"]
        use_hook(tp)
        return [f"{v} = {hook}(o[{key}], {type_})"]
    if default is None and is_union(tp) and NoneType in get_args(tp):
        args = [arg for arg in get_args(tp) if arg is not NoneType]
        single = args[0] if len(args) == 1 else None
        check = _INLINE_CHECKS.get(_inline_key(single)) if single is not None else None
        if check is not None:
            return [
                f"{v} = get({key})",
                f"if {v} is None:",
                f"    {absent}",
                f"elif {check.format(v=v)}: raise __M",
            ]
        if isinstance(single, type) and issubclass(single, OpenEnum):
            env[f"__e{index}"] = single._value2member_map_
            use_hook(single)
            return [
                f"{v} = get({key})",
                f"if {v} is not None:",
                f"    m = __e{index}.get({v})",
                f"    {v} = m if m is not None else {hook}({v}, {type_})",
                f"elif {key} not in o: missing += 1",
            ]
        use_hook(single if single is not None else tp)  # a model, or a verification union
        if single is None and is_verification_union(tp):
            # The variant named by ``object`` directly (what the union's hook would pick
            # first); anything else (no or an ambiguous ``object``) goes to the union's hook.
            table = f"__vo{index}"
            by_object: dict[str, Hook] = {}
            env[table] = by_object
            for obj, variant in variants_by_object(tp).items():
                by_object[obj] = _lazy_hook(by_object, obj, converter, variant)
            return [
                f"{v} = get({key})",
                f"if type({v}) is dict:",
                f"    h = {table}.get({v}.get(__object))",
                f"    {v} = h({v}) if h is not None else {hook}({v}, {type_})",
                f"elif {v} is not None: {v} = {hook}({v}, {type_})",
                f"elif {key} not in o: missing += 1",
            ]
        return [
            f"{v} = get({key})",
            f"if {v} is not None: {v} = {hook}({v}, {type_})",
            f"elif {key} not in o: missing += 1",
        ]
    factory = getattr(default, "factory", None) if isinstance(default, _FACTORY) else None
    if factory is not None:
        if factory is list and is_list(tp):
            return _list_code(index, v, key, tp, converter, env)
        if factory is dict and is_dict(tp):
            return [
                f"{v} = get({key})",
                f"if {v} is None:",
                f"    {v} = {{}}",
                f"    {absent}",
                f"elif {v}.__class__ is not dict: raise __M",
            ]
    # Anything else (Token.object = "token"): the field's hook, or its default when absent.
    use_hook(tp)
    env[f"__d{index}"] = default
    fallback = f"__d{index}.factory()" if isinstance(default, _FACTORY) else f"__d{index}"
    return [
        f"{v} = get({key}, __missing)",
        f"if {v} is __missing:",
        f"    {v} = {fallback}",
        "    missing += 1",
        f"else: {v} = {hook}({v}, {type_})",
    ]


def _list_code(
    index: int, v: str, key: str, tp: Any, converter: cattrs.Converter, env: Any
) -> list[str]:
    """A list field inline: null is ``[]``, an empty list costs no call, items are checked
    in place (``list[str]``, ``list[int]``) or by the item's hook, in a new list either way."""
    (item_tp,) = get_args(tp) or (Any,)
    absent = f"    if {key} not in o: missing += 1"
    if item_tp in (str, int):
        return [
            f"{v} = get({key})",
            f"if {v} is None:",
            f"    {v} = []",
            absent,
            f"elif {v}.__class__ is not list: raise __M",
            "else:",
            f"    for x in {v}:",
            f"        if x.__class__ is not {item_tp.__name__}: raise __M",
            f"    {v} = {v}.copy()",
        ]
    item = f"__i{index}"
    env[item] = _lazy_hook(env, item, converter, item_tp)
    env[f"__it{index}"] = item_tp
    # A model's fast hook takes the value alone: map() then calls it from C.
    each = (
        f"list(map({item}, {v}))" if is_model(item_tp) else f"[{item}(x, __it{index}) for x in {v}]"
    )
    return [
        f"{v} = get({key})",
        f"if {v}.__class__ is list: {v} = {each} if {v} else []",
        f"elif {v} is None:",
        f"    {v} = []",
        absent,
        "else: raise __M",
    ]


def _sets_slots_plainly(cls: type) -> bool:
    """Whether assigning every slot builds the same object as ``__init__`` does: a slotted
    attrs class without validators, converters, setattr hooks or init hooks (all models)."""
    return (
        "__slots__" in cls.__dict__
        and getattr(cls, "__setattr__", None) is object.__setattr__
        and not hasattr(cls, "__attrs_pre_init__")
        and not hasattr(cls, "__attrs_post_init__")
        and all(
            f.init and f.validator is None and f.converter is None and f.alias == f.name
            for f in attrs.fields(cls)
        )
    )


def compile_fast_hook(
    tp: Any, cls: type, converter: cattrs.Converter, slow: Hook, known: frozenset[str] | None
) -> Hook:
    """The fast hook of model ``tp`` (its class ``cls``; ``tp`` may be ``Envelope[Session]``).

    It takes the value alone (``hook(value)``) or as a cattrs hook (``hook(value, tp)``).
    ``slow`` is the model's full hook, called with any input the fast path declines;
    ``known`` is the set of JSON keys the model declares when unknown keys are to be kept in
    ``unknown_fields``, else ``None``. Nested values go through ``converter``'s hooks.
    """
    typevars = dict(zip(getattr(cls, "__parameters__", ()), get_args(tp), strict=False))
    env: dict[str, Any] = {
        "__cls": cls,
        "__new": object.__new__,
        "__slow": slow,
        "__M": _Mismatch,
        "__missing": _MISSING,
        "__frozen": FrozenMapping,
    }
    fields = attrs.fields(attrs.resolve_types(cls))
    keys = decoder_keys([*(field.name for field in fields), "object", *(known or ())])
    env["__known"] = None if known is None else frozenset(keys[name] for name in known)
    env["__object"] = keys["object"]
    body: list[str] = []
    values: list[tuple[str, str]] = []  # (attribute, expression)
    for index, field in enumerate(fields):
        env[f"__k{index}"] = keys[field.name]
        if field.name in SDK_FIELDS:
            if not isinstance(field.default, _FACTORY):
                env[f"__sdk{index}"] = field.default
                values.append((field.name, f"__sdk{index}"))
            continue
        field_tp = typevars.get(field.type, field.type)
        code = _field_code(index, field, field_tp, converter, env)
        body += [f"{code[0]}  # {field.name!r}", *code[1:]]
        values.append((field.name, f"f{index}"))
    if _sets_slots_plainly(cls) and len(values) == len(fields):
        # Half the cost of a keyword call to __init__ for a model of 40 fields.
        build = ["obj = __new(__cls)", *(f"obj.{name} = {value}" for name, value in values)]
    else:
        kwargs = ", ".join(f"{name}={value}" for name, value in values if value[0] == "f")
        build = [f"obj = __cls({kwargs})"]
    name = f"fast_structure_{cls.__name__}"
    lines = [
        f"def {name}(o, _=None):",
        "    if o.__class__ is not dict:",
        "        return __slow(o, None)",
        "    get = o.get",
        "    missing = 0",
        "    try:",
        *(f"        {line}" for line in body),
        *(f"        {line}" for line in build),
        "    except Exception:",
        "        return __slow(o, None)  # redo it in detail: raises with the paths",
    ]
    if known is not None:
        env["__n"] = len(known)
        lines += [
            "    if len(o) != __n - missing:  # keys beyond the known ones present",
            "        extra = {k: v for k, v in o.items() if k not in __known}",
            "        obj.unknown_fields = __frozen(extra)",
        ]
    lines.append("    return obj")
    source = "\n".join(lines) + "\n"
    filename = f"<clerk_sessions fast structure {type_name(tp)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env)  # our own generated source
    return cast(Hook, env[name])
