"""The generated fast path of ``clerk_sessions._fast_path`` (unknown keys found by counting,
hooks built on use), against cattrs' own hooks, and the models' shared ``repr`` and ``==``
(``ModelBase``).

The fast path tells an object with unknown keys from one without by counting the known keys
it found (``len(o)`` against the known keys present), not by a set test per object; these
cases put absent, null and unknown keys together, where a miscount would show.
"""

from __future__ import annotations

import copy
from typing import Any

import attrs
import pytest

from clerk_sessions import models as m
from clerk_sessions._converter import _model_types, make_converter, structure
from clerk_sessions._model_base import ModelBase
from tests.spec_strategies import realistic_get_session, realistic_session, realistic_user

DETAILED_ONLY = make_converter(fast_path=False)
KNOWN_USER_FIELDS = {a.name for a in attrs.fields(m.User)}
USER_FIELDS = sorted(set(realistic_user(0)) & KNOWN_USER_FIELDS - {"id", "object"})


def known_user() -> dict[str, Any]:
    """A realistic user without the keys the model does not know (enterprise_accounts)."""
    return {k: v for k, v in realistic_user(0).items() if k in KNOWN_USER_FIELDS}


def both(data: dict[str, Any], tp: Any) -> tuple[Any, Any]:
    return structure(data, tp), DETAILED_ONLY.structure(data, tp)


@pytest.mark.parametrize("name", USER_FIELDS)
@pytest.mark.parametrize("change", ["absent", "null"])
@pytest.mark.parametrize("extras", [{}, {"brand_new": 1}, {"brand_new": None, "other": [1]}])
def test_unknown_keys_are_found_whatever_else_is_absent_or_null(
    name: str, change: str, extras: dict[str, Any]
) -> None:
    user = known_user()
    if change == "absent":
        del user[name]
    else:
        user[name] = None
    user.update(extras)
    fast, slow = both(user, m.User)
    assert fast == slow
    assert dict(fast.unknown_fields) == dict(slow.unknown_fields) == extras


def test_an_object_of_only_unknown_keys_keeps_them_all() -> None:
    fast, slow = both({"id": "sess_1", "object": "session", "a": 1, "b": None}, m.Session)
    assert dict(fast.unknown_fields) == dict(slow.unknown_fields) == {"a": 1, "b": None}


def test_a_defaulted_field_that_is_absent_counts_as_absent() -> None:
    token = structure({"jwt": "a.b.c", "extra": True}, m.Token)  # "object" defaults
    assert token.object == "token"
    assert dict(token.unknown_fields) == {"extra": True}
    assert structure({"jwt": "a.b.c"}, m.Token).unknown_fields == {}


def test_unknown_keys_in_nested_objects_and_list_items_are_kept() -> None:
    session = realistic_session(0)
    session["user"]["email_addresses"][0]["brand_new"] = "x"
    session["user"]["phone_numbers"] = None
    session["public_user_data"]["brand_new"] = 2
    fast, slow = both(session, m.Session)
    assert fast == slow
    assert fast.user is not None
    assert fast.public_user_data is not None
    assert fast.user.email_addresses[0].unknown_fields == {"brand_new": "x"}
    assert fast.user.phone_numbers == []
    assert fast.public_user_data.unknown_fields == {"brand_new": 2}


@pytest.mark.parametrize("tp", _model_types(), ids=lambda tp: getattr(tp, "__name__", repr(tp)))
def test_every_models_hook_can_be_generated(tp: Any) -> None:
    # Hooks are generated on first use; a fresh converter must still manage every model.
    converter = make_converter()
    assert callable(converter.get_structure_hook(tp))


def _models_in(value: Any) -> list[Any]:
    """Every model object in a structured value, depth first."""
    if isinstance(value, list):
        return [found for item in value for found in _models_in(item)]
    if not isinstance(value, ModelBase):
        return []
    found = [value]
    for field in attrs.fields(type(value)):
        found += _models_in(getattr(value, field.name))
    return found


def test_repr_and_eq_are_what_attrs_would_generate() -> None:
    envelope = structure(realistic_get_session(), m.Envelope[m.Session])
    for obj in _models_in(envelope):
        cls = type(obj)
        fields = attrs.fields(cls)
        twin_cls = attrs.make_class(
            cls.__name__,
            {f.name: attrs.field(repr=f.repr, eq=f.eq) for f in fields},
            kw_only=True,
        )
        values = {f.name: getattr(obj, f.name) for f in fields}
        assert repr(obj) == repr(twin_cls(**values))
        assert obj == copy.copy(obj)
        for f in fields:
            changed = copy.copy(obj)
            object.__setattr__(changed, f.name, object())
            assert (changed == obj) is not f.eq
            assert (changed != obj) is f.eq
