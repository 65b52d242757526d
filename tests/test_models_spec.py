"""The models against the specs: coverage of every schema and property of ``fapi-sessions.yml``
and ``fapi-sign-in.yml``, real-payload fixtures vs the spec, generated payloads (hypothesis), the
ticket sign-in's answer, and the generator's ``--check`` contract and merge rule.

Everything here needs both specs (``../shared/spec/`` or ``$CLERK_SESSIONS_SPEC_DIR``). Without
them the tests skip, naming the path looked at, except in CI (``$CI`` set), where they fail: a
CI that lost the specs must not go green by skipping.
The schema → class table below is written out independently of the generator's tables, so a
naming or typing mistake in the generator cannot hide behind itself.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clerk_sessions import Envelope, SignIn
from clerk_sessions import models as m
from clerk_sessions._converter import CONVERTER, make_converter, structure
from clerk_sessions._model_base import OpenEnum, UnknownVerification
from clerk_sessions.models import VERIFICATION_DISCRIMINATORS
from tests.spec_strategies import (
    GENERATOR_PATH,
    REPO_ROOT,
    SchemaStrategies,
    _nullable_intent,
    generator,
    realistic_get_session,
    validation_errors,
)
from tests.test_models import realistic_sign_in_envelope

pytestmark = pytest.mark.spec

FIXTURES = Path(__file__).parent / "fixtures" / "real"
SCHEMAS = "#/components/schemas/"
NoneType = type(None)
SESSIONS_SPEC = "fapi-sessions.yml"
SIGN_IN_SPEC = "fapi-sign-in.yml"
SIGN_IN_URI = "urn:clerk-fapi-sign-in-spec"

# Every component schema of the specs → its public name in clerk_sessions.models.
SCHEMA_CLASSES: Mapping[str, str] = {
    "ClerkError": "ClerkError",
    "ClerkErrors": "ClerkErrors",
    "Client.Client-2": "Client",
    "Client.EmailAddress": "EmailAddress",
    "Client.Organization": "Organization",
    "Client.OrganizationMembership": "OrganizationMembership",
    "Client.Passkey": "Passkey",
    "Client.PhoneNumber": "PhoneNumber",
    "Client.PublicUserData": "PublicUserData",
    "Client.SAMLAccount": "SamlAccount",
    "Client.Session-2": "Session",
    "Client.SessionBase-2": "SessionBase",
    "Client.SessionReverification": "SessionReverification",
    "Client.SessionTask": "SessionTask",
    "Client.SignIn-2": "SignIn",
    "Client.SignUp": "SignUp",
    "Client.SignUp.Verifications": "SignUpVerifications",
    "Client.User": "User",
    "Client.Web3Wallet": "Web3Wallet",
    "ExternalAccountWithVerification": "ExternalAccount",
    "Stubs.Identification.Link": "IdentificationLink",
    "Stubs.SAMLConnection.SAMLAccount": "SamlConnection",
    "Stubs.SignInFactor": "SignInFactor",
    "Stubs.SignUpVerification.AdditionalFields": "SignUpVerificationFields",
    "Stubs.Verification.Admin": "AdminVerification",
    "Stubs.Verification.BackupCode": "BackupCodeVerification",
    "Stubs.Verification.FromOauth": "FromOauthVerification",
    "Stubs.Verification.GoogleOneTap": "GoogleOneTapVerification",
    "Stubs.Verification.Invitation": "InvitationVerification",
    "Stubs.Verification.Link": "LinkVerification",
    "Stubs.Verification.OTP": "OtpVerification",
    "Stubs.Verification.Oauth": "OauthVerification",
    "Stubs.Verification.Passkey": "PasskeyVerification",
    "Stubs.Verification.Password": "PasswordVerification",
    "Stubs.Verification.SAML": "SamlVerification",
    "Stubs.Verification.SCIM": "ScimVerification",
    "Stubs.Verification.TOTP": "TotpVerification",
    "Stubs.Verification.Ticket": "TicketVerification",
    "Stubs.Verification.TrustedDevice": "TrustedDeviceVerification",
    "Stubs.Verification.Web3Signature": "Web3SignatureVerification",
    "Token": "Token",
    "verification_google_one_tap": "ExternalAccountGoogleOneTapVerification",
    "verification_oauth": "ExternalAccountOauthVerification",
}
ENVELOPE_ALIASES: Mapping[str, tuple[str, Any]] = {
    "Client.ClientWrappedSession": ("ClientWrappedSession", m.Session),
    "Client.ClientWrappedSessionReverification": (
        "ClientWrappedSessionReverification",
        m.SessionReverification,
    ),
    "Client.TouchWrappedSession": ("TouchWrappedSession", m.Session),
    "Client.DeleteSession": ("DeleteSession", m.Client | None),
    "Client.ClientWrappedSignIn": ("ClientWrappedSignIn", m.SignIn),  # fapi-sign-in.yml only
}
# The schemas one spec has and the other has not (every other schema is in both).
ONLY_IN: Mapping[str, frozenset[str]] = {
    SESSIONS_SPEC: frozenset(
        {*ENVELOPE_ALIASES, "Client.SessionReverification"} - {"Client.ClientWrappedSignIn"}
    ),
    SIGN_IN_SPEC: frozenset({"Client.ClientWrappedSignIn"}),
}
# Each spec's own (spec, schema) pairs of SCHEMA_CLASSES.
SPEC_SCHEMAS = [
    (spec_name, schema_name)
    for spec_name, other in ((SESSIONS_SPEC, SIGN_IN_SPEC), (SIGN_IN_SPEC, SESSIONS_SPEC))
    for schema_name in sorted(SCHEMA_CLASSES)
    if schema_name not in ONLY_IN[other]
]
INLINE_CLASSES: Mapping[tuple[str, str], str] = {
    ("Client.SignIn-2", "user_data"): "SignInUserData",
    ("Stubs.Verification.TrustedDevice", "trusted_device_challenge"): "TrustedDeviceChallenge",
}


from .conftest import spec_missing  # noqa: E402 - shared by every spec test


@functools.cache
def _spec_docs() -> dict[str, dict[str, Any]] | str:
    gen = generator()
    try:
        return gen.load_specs()  # type: ignore[no-any-return]
    except gen.SpecNotFoundError as exc:
        return str(exc)


@pytest.fixture(scope="module")
def spec_docs() -> dict[str, dict[str, Any]]:
    """Both specs, parsed, by file name (sessions first)."""
    docs = _spec_docs()
    if isinstance(docs, str):
        spec_missing(docs)
    assert list(docs) == [SESSIONS_SPEC, SIGN_IN_SPEC]
    return docs


@pytest.fixture(scope="module")
def spec(spec_docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sessions spec (the fixtures and the sessions validator are checked against it)."""
    return spec_docs[SESSIONS_SPEC]


@pytest.fixture(scope="module")
def sign_in_spec(spec_docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return spec_docs[SIGN_IN_SPEC]


@pytest.fixture(scope="module")
def merged(spec_docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the models are generated from: both specs' schemas, each once."""
    return generator().merge_specs(spec_docs)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def schemas(merged: dict[str, Any]) -> dict[str, Any]:
    return merged["components"]["schemas"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def sign_in_errors(sign_in_spec: dict[str, Any]) -> Callable[[Any, str], list[str]]:
    """``validation_errors`` against fapi-sign-in.yml (same nullable reading as the sessions
    one, see spec_strategies)."""
    from openapi_schema_validator import OAS30Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resource = Resource.from_contents(_nullable_intent(sign_in_spec), default_specification=DRAFT4)
    registry = Registry().with_resource(SIGN_IN_URI, resource)

    def errors(payload: Any, schema_name: str) -> list[str]:
        validator = OAS30Validator(
            {"$ref": f"{SIGN_IN_URI}{SCHEMAS}{schema_name}"}, registry=registry
        )
        found = []
        for error in validator.iter_errors(payload):
            path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
            found.append(f"{path}: {error.message[:200]}")
        return found

    return errors


def test_missing_specs_skip_locally_but_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="spec not found"):
        spec_missing("spec not found at /nowhere")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        spec_missing("spec not found at /nowhere")


# --------------------------------------------------------------------------------------------
# Every schema and property is modelled with a compatible type
# --------------------------------------------------------------------------------------------


def ref_name(schema: Mapping[str, Any]) -> str:
    ref = schema["$ref"]
    assert ref.startswith(SCHEMAS), ref
    return str(ref[len(SCHEMAS) :])


def object_parts(schemas: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """All properties of an object schema, following allOf (Session-2 = SessionBase-2 + more)."""
    if "$ref" in schema:
        return object_parts(schemas, schemas[ref_name(schema)])
    props: dict[str, Any] = dict(schema.get("properties", {}))
    for member in schema.get("allOf", ()):
        props.update(object_parts(schemas, member))
    return props


def hint_args(tp: Any) -> list[Any]:
    """The non-None members of a type (a union's members, or the type itself)."""
    if get_origin(tp) in (Union, types.UnionType):
        return [a for a in get_args(tp) if a is not NoneType]
    return [tp]


def refs_of(schema: Mapping[str, Any]) -> list[list[str]]:
    """The referenced schemas of a property: one list per alternative (oneOf) or [[...]]."""
    if "$ref" in schema:
        return [[ref_name(schema)]]
    if "oneOf" in schema:
        return [alt for member in schema["oneOf"] for alt in refs_of(member)]
    if "allOf" in schema:
        return [[ref_name(member) for member in schema["allOf"] if "$ref" in member]]
    return []


def is_variant(schema_name: str) -> bool:
    return schema_name.startswith(("Stubs.Verification.", "verification_"))


def check_type(
    schemas: Mapping[str, Any], owner: str, name: str, schema: Mapping[str, Any], tp: Any
) -> None:
    """The field type ``tp`` can hold what the property ``schema`` describes."""
    where = f"{owner}.{name}: {tp!r}"
    args = hint_args(tp)
    alternatives = refs_of(schema)
    if alternatives and not any(is_variant(alt[0]) for alt in alternatives):
        # A nested object: exactly its class (nullability aside).
        assert alternatives == [[alternatives[0][0]]], where
        assert args == [getattr(m, SCHEMA_CLASSES[alternatives[0][0]])], where
        return
    if alternatives:
        # A verification union: each listed variant (or its sign-up subclass), then the fallback.
        assert args[-1] is UnknownVerification, where
        assert len(args) == len(alternatives) + 1, where
        for member, alt in zip(args, alternatives, strict=False):
            assert issubclass(member, getattr(m, SCHEMA_CLASSES[alt[0]])), where
            if "Stubs.SignUpVerification.AdditionalFields" in alt:
                assert {"next_action", "supported_strategies"} <= set(attrs.fields_dict(member))
        return
    kind = schema.get("type")
    (arg,) = args
    if kind == "array":
        assert get_origin(arg) is list, where
        check_type(schemas, owner, f"{name}[]", schema["items"], get_args(arg)[0])
    elif kind == "object" and "properties" in schema:
        assert arg is getattr(m, INLINE_CLASSES[(owner, name)]), where
        check_properties(schemas, f"{owner}.{name}", schema, arg)
    elif kind == "object":
        assert arg == dict[str, Any], where
    elif "enum" in schema and len(schema["enum"]) > 1 and name not in ("object", "id"):
        assert isinstance(arg, type), where
        assert issubclass(arg, OpenEnum), where
        for value in schema["enum"]:
            assert arg(value).is_known, f"{where}: {value!r} is not a member"
    else:
        python = {"string": str, "integer": int, "boolean": bool, "number": float}[kind]
        assert arg is python or (python is str and issubclass(arg, OpenEnum)), where


def object_required(schemas: Mapping[str, Any], schema: Mapping[str, Any]) -> set[str]:
    if "$ref" in schema:
        return object_required(schemas, schemas[ref_name(schema)])
    required = set(schema.get("required", ()))
    for member in schema.get("allOf", ()):
        required |= object_required(schemas, member)
    return required


def check_properties(
    schemas: Mapping[str, Any], owner: str, schema: Mapping[str, Any], cls: type
) -> None:
    props = object_parts(schemas, schema)
    hints = typing.get_type_hints(cls)
    fields = attrs.fields_dict(cls)
    missing = sorted(set(props) - set(fields))
    assert not missing, f"{cls.__name__} lacks {missing}"
    required = object_required(schemas, schema)
    for name, prop in props.items():
        check_type(schemas, owner, name, prop, hints[name])
        mandatory = fields[name].default is attrs.NOTHING
        identity = name in ("id", "object") and name in required
        if (cls, name) == (m.Token, "object"):
            assert fields[name].default == "token"
        elif (cls, name) == (m.Token, "jwt"):
            assert mandatory
        else:
            assert mandatory == identity, f"{cls.__name__}.{name}: only identity is mandatory"
            check_presence(f"{cls.__name__}.{name}", prop, fields[name], hints[name], mandatory)


def check_presence(
    where: str, prop: Mapping[str, Any], field: attrs.Attribute[Any], tp: Any, mandatory: bool
) -> None:
    """The leniency rules: [] for arrays, {} or None for free-form objects, else None."""
    optional = NoneType in get_args(tp)
    factory = getattr(field.default, "factory", None)
    nested = ("properties", "allOf", "oneOf", "$ref")
    free_form = prop.get("type") == "object" and not any(key in prop for key in nested)
    if mandatory:
        assert not optional, where
    elif prop.get("type") == "array":
        assert (optional, factory) == (False, list), where
    elif free_form and not prop.get("nullable"):
        assert (optional, factory) == (False, dict), where
    else:
        assert optional, where
        assert field.default is None, where


def test_every_schema_has_a_model(
    schemas: dict[str, Any], spec_docs: dict[str, dict[str, Any]]
) -> None:
    assert set(schemas) == set(SCHEMA_CLASSES) | set(ENVELOPE_ALIASES)
    assert len(schemas) == 48
    for name in SCHEMA_CLASSES.values():
        assert attrs.has(getattr(m, name)), name
    for spec_name, doc in spec_docs.items():  # each spec: every class, and its own envelopes
        own = set(doc["components"]["schemas"])
        other = next(name for name in spec_docs if name != spec_name)
        assert own == set(schemas) - ONLY_IN[other], spec_name


def test_the_shared_schemas_are_identical_so_nothing_was_merged(
    spec_docs: dict[str, dict[str, Any]], merged: dict[str, Any]
) -> None:
    """Today both specs carry the same copies; an additive difference would be merged and noted
    (test_generator_merges_an_additive_difference), any other would stop the generator."""
    sessions, sign_in = (doc["components"]["schemas"] for doc in spec_docs.values())
    assert merged[generator().MERGE_NOTES_KEY] == {}
    for name in set(sessions) & set(sign_in):
        assert sessions[name] == sign_in[name], name
    assert "# Merged" not in (REPO_ROOT / "clerk_sessions" / "models.py").read_text("utf-8")


def schemas_reachable(schemas: Mapping[str, Any], root: str) -> set[str]:
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        text = json.dumps(schemas[name])
        todo.extend(re.findall(r'"#/components/schemas/([^"]+)"', text))
    return seen


def test_the_sign_in_response_and_all_it_references_are_modelled(
    sign_in_spec: dict[str, Any],
) -> None:
    """createSignIn answers Client.ClientWrappedSignIn: Envelope[SignIn], the SDK's row for it."""
    from clerk_sessions._operations import SIGN_IN_WITH_TICKET

    operation = sign_in_spec["paths"]["/v1/client/sign_ins"]["post"]
    assert operation["operationId"] == SIGN_IN_WITH_TICKET.operation_id == "createSignIn"
    ok = operation["responses"]["200"]
    if "$ref" in ok:
        ok = sign_in_spec["components"]["responses"][ok["$ref"].rsplit("/", 1)[1]]
    envelope = ref_name(ok["content"]["application/json"]["schema"])
    assert envelope == "Client.ClientWrappedSignIn"
    assert m.ClientWrappedSignIn == Envelope[SignIn] == SIGN_IN_WITH_TICKET.response_type
    schemas = sign_in_spec["components"]["schemas"]
    reachable = schemas_reachable(schemas, envelope)
    assert {"Client.SignIn-2", "Client.Client-2", "Stubs.Verification.Ticket"} <= reachable
    for name in sorted(reachable - {envelope}):
        cls = getattr(m, SCHEMA_CLASSES[name])
        check_properties(schemas, name, schemas[name], cls)


@pytest.mark.parametrize(("spec_name", "schema_name"), SPEC_SCHEMAS)
def test_every_property_is_a_field_of_a_compatible_type(
    spec_docs: dict[str, dict[str, Any]], spec_name: str, schema_name: str
) -> None:
    """Each spec's own copy of each schema (not only the merged one) is fully modelled."""
    schemas = spec_docs[spec_name]["components"]["schemas"]
    cls = getattr(m, SCHEMA_CLASSES[schema_name])
    check_properties(schemas, schema_name, schemas[schema_name], cls)


@pytest.mark.parametrize("schema_name", sorted(ENVELOPE_ALIASES))
def test_envelope_schemas_are_envelope_aliases(schemas: dict[str, Any], schema_name: str) -> None:
    alias, response = ENVELOPE_ALIASES[schema_name]
    assert set(schemas[schema_name]["properties"]) == {"response", "client"}
    assert getattr(m, alias) == m.Envelope[response]
    hints = typing.get_type_hints(m.Envelope)
    assert hint_args(hints["client"]) == [m.Client]


def test_single_valued_enums_are_plain_strings(schemas: dict[str, Any]) -> None:
    hints = typing.get_type_hints(m.PasswordVerification)
    assert schemas["Stubs.Verification.Password"]["properties"]["strategy"]["enum"] == ["password"]
    assert hint_args(hints["strategy"]) == [str]
    assert hint_args(typing.get_type_hints(m.Session)["object"]) == [str]


def test_verification_discriminators_match_the_spec(schemas: dict[str, Any]) -> None:
    for schema_name, cls_name in SCHEMA_CLASSES.items():
        cls = getattr(m, cls_name)
        if not (schema_name.startswith(("Stubs.Verification.", "verification_"))):
            assert cls not in VERIFICATION_DISCRIMINATORS
            continue
        props = schemas[schema_name]["properties"]
        disc = VERIFICATION_DISCRIMINATORS[cls]
        assert list(disc.objects) == props["object"]["enum"]
        assert list(disc.strategies) == props["strategy"].get("enum", [])
        if disc.strategy_prefix:
            assert props["strategy"]["pattern"].startswith("^" + disc.strategy_prefix)


# --------------------------------------------------------------------------------------------
# Real-payload fixtures vs the spec
# --------------------------------------------------------------------------------------------

FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.json"))


def fixture_errors(doc: dict[str, Any]) -> list[str]:
    schema: Any = doc["schema"]
    if doc["many"]:
        ref = {"$ref": f"urn:clerk-fapi-sessions-spec{SCHEMAS}{doc['schema']}"}
        schema = {"type": "array", "items": ref}
    return validation_errors(doc["body"], schema)


def error_paths(error: str) -> list[str]:
    """The precise paths of a validation error line (naming the missing or extra keys)."""
    path, message = error.split(": ", 1)
    if m_req := re.match(r"'([^']+)' is a required property", message):
        return [f"{path}.{m_req.group(1)}"]
    if m_add := re.match(
        r"Additional properties are not allowed \((.*) (was|were) unexpected\)", message
    ):
        return [f"{path}.{key}" for key in re.findall(r"'([^']+)'", m_add.group(1))]
    return [path]


def related(path: str, declared: str) -> bool:
    """One path is the other or lies under it (``a.b`` vs ``a.b.c`` or ``a.b[0]``)."""
    short, long = sorted((path, declared), key=len)
    return long == short or long.startswith((short + ".", short + "["))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_departs_from_the_spec_exactly_where_it_says(
    spec: dict[str, Any], name: str
) -> None:
    doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    errors = fixture_errors(doc)
    if doc["spec_valid"]:
        assert errors == [], f"{name} claims to be spec-valid"
        return
    assert errors, f"{name} claims a deviation but the spec accepts it"
    for error in errors:
        for path in error_paths(error):
            assert any(related(path, d) for d in doc["deviations"]), (
                f"{name}: undeclared deviation {error}"
            )


def test_the_realistic_payload_is_spec_valid(spec: dict[str, Any]) -> None:
    assert validation_errors(realistic_get_session(), "Client.ClientWrappedSession") == []


def test_the_realistic_sign_in_payload_is_spec_valid(
    sign_in_errors: Callable[[Any, str], list[str]],
) -> None:
    payload = realistic_sign_in_envelope()
    assert sign_in_errors(payload, "Client.ClientWrappedSignIn") == []
    # The validator is not vacuous: a missing required property is reported.
    del payload["response"]["status"]
    assert sign_in_errors(payload, "Client.ClientWrappedSignIn") == [
        "$.response: 'status' is a required property"
    ]


def test_a_sign_in_answer_with_unknown_fields_and_values_structures(
    sign_in_errors: Callable[[Any, str], list[str]],
) -> None:
    """Clerk's answer, newer than the spec: each departure is one the spec rejects, and each is
    kept or tolerated by ``structure(data, Envelope[SignIn])``."""
    payload = realistic_sign_in_envelope()
    response = payload["response"]
    response["status"] = "needs_carrier_pigeon"
    response["supported_first_factors"].append({"strategy": "pigeon_code", "pigeon_id": "p_1"})
    response["first_factor_verification"]["nonce"] = "n"
    response["second_factor_verification"] = {"object": "verification_pigeon", "strategy": "p"}
    response["locale"] = "fr-FR"
    errors = sign_in_errors(payload, "Client.ClientWrappedSignIn")
    assert errors, "the spec accepts what it should not"
    env = structure(copy.deepcopy(payload), Envelope[SignIn])
    assert env.response.status == "needs_carrier_pigeon"
    assert not env.response.status.is_known
    assert dict(env.response.unknown_fields) == {"locale": "fr-FR"}
    assert env.response.supported_first_factors[-1].strategy == "pigeon_code"
    assert dict(env.response.supported_first_factors[-1].unknown_fields) == {"pigeon_id": "p_1"}
    assert isinstance(env.response.first_factor_verification, m.TicketVerification)
    assert dict(env.response.first_factor_verification.unknown_fields) == {"nonce": "n"}
    assert isinstance(env.response.second_factor_verification, UnknownVerification)
    assert env.client is not None
    assert env.client.last_active_session_id == env.response.created_session_id


# --------------------------------------------------------------------------------------------
# Property test: payloads generated from the spec's schemas
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strategies(merged: dict[str, Any]) -> SchemaStrategies:
    return SchemaStrategies(merged)


def delete_session(strategies: SchemaStrategies) -> st.SearchStrategy[dict[str, Any]]:
    """The spec types DeleteSession.client as a bare object; real ones are a Client or null."""
    response = strategies.schemas["Client.DeleteSession"]["properties"]["response"]
    return st.fixed_dictionaries(
        {
            "response": strategies.of(response),
            "client": st.one_of(st.none(), strategies.named("Client.Client-2")),
        }
    )


DETAILED_ONLY = make_converter(fast_path=False)  # cattrs' own hooks, no fast path

TARGETS: Mapping[str, Any] = {
    "Client.ClientWrappedSession": m.ClientWrappedSession,
    "Client.ClientWrappedSessionReverification": m.ClientWrappedSessionReverification,
    "Client.TouchWrappedSession": m.TouchWrappedSession,
    "Client.DeleteSession": m.DeleteSession,
    "Client.ClientWrappedSignIn": m.ClientWrappedSignIn,
    "Token": m.Token,
    "ClerkErrors": m.ClerkErrors,
}


def payloads(strategies: SchemaStrategies, target: str) -> st.SearchStrategy[Any]:
    if target == "Client.DeleteSession":
        return delete_session(strategies)
    return strategies.named(target)


def assert_matches(obj: Any, data: Any, path: str = "$") -> None:
    """``obj`` is ``data`` structured: same known values, defaults where absent, the rest kept."""
    if isinstance(obj, UnknownVerification):
        pytest.fail(f"{path}: a spec-valid verification fell back to UnknownVerification: {data}")
    if attrs.has(type(obj)):
        assert isinstance(data, dict), path
        fields = attrs.fields_dict(type(obj))
        for name, field in fields.items():
            if name == "unknown_fields":
                continue
            if name in data:
                assert_matches(getattr(obj, name), data[name], f"{path}.{name}")
            else:
                default = field.default
                if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                    default = default.factory()
                assert getattr(obj, name) == default, f"{path}.{name} (absent)"
        extras = {k: v for k, v in data.items() if k not in fields or k == "unknown_fields"}
        assert dict(obj.unknown_fields) == extras, f"{path}: unknown_fields"
        disc = VERIFICATION_DISCRIMINATORS.get(type(obj))
        if disc is not None:  # the right variant was picked
            strategy = data.get("strategy")
            assert (
                data.get("object") in disc.objects
                or strategy in disc.strategies
                or (disc.strategy_prefix and strategy.startswith(disc.strategy_prefix))
            ), f"{path}: {type(obj).__name__} for {data}"
    elif isinstance(obj, list):
        assert obj == [] if data is None else len(obj) == len(data), path
        for i, (item, raw) in enumerate(zip(obj, data or [], strict=True)):
            assert_matches(item, raw, f"{path}[{i}]")
    elif isinstance(obj, OpenEnum):
        assert type(data) is str, path
        assert obj == data, path
        assert obj.is_known, path
    elif isinstance(obj, dict):
        assert obj == ({} if data is None else data), path
    else:
        assert type(obj) is type(data), f"{path}: {obj!r} is not a {type(data).__name__}"
        assert obj == data, f"{path}: {obj!r} != {data!r}"


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_spec_payloads_structure_and_round_trip(
    strategies: SchemaStrategies, target: str, data: st.DataObject
) -> None:
    payload = data.draw(payloads(strategies, target), label=target)
    tp = TARGETS[target]
    result = structure(copy.deepcopy(payload), tp)
    assert isinstance(result, get_origin(tp) or tp)
    if target in ("Client.ClientWrappedSession", "Client.TouchWrappedSession"):
        assert isinstance(result.response, m.Session)
        assert result.response.id == payload["response"]["id"]
    elif target == "Client.ClientWrappedSessionReverification":
        assert isinstance(result.response, m.SessionReverification)
        assert result.response.object == payload["response"]["object"]
    elif target == "Client.ClientWrappedSignIn":
        assert isinstance(result.response, m.SignIn)
        assert result.response.id == payload["response"]["id"]
    elif target == "Token":
        assert result.jwt == payload["jwt"]
    elif target == "ClerkErrors":
        assert len(result.errors) == len(payload["errors"])
    assert_matches(result, payload)  # and every other known value, all the way down
    assert DETAILED_ONLY.structure(copy.deepcopy(payload), tp) == result  # fast path agrees


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_payloads_are_spec_valid(
    strategies: SchemaStrategies,
    sign_in_errors: Callable[[Any, str], list[str]],
    data: st.DataObject,
) -> None:
    """The strategies themselves are honest: what they generate, the spec accepts."""
    for target in ("Client.ClientWrappedSession", "Client.ClientWrappedSessionReverification"):
        payload = data.draw(strategies.named(target), label=target)
        assert validation_errors(payload, target) == []
    target = "Client.ClientWrappedSignIn"
    payload = data.draw(strategies.named(target), label=target)
    assert sign_in_errors(payload, target) == []


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------


def run_generator(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR_PATH), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=120,
    )


def test_committed_models_are_what_the_spec_generates(merged: dict[str, Any]) -> None:
    result = run_generator("--check")
    assert result.returncode == 0, result.stderr
    committed = (REPO_ROOT / "clerk_sessions" / "models.py").read_text(encoding="utf-8")
    assert generator().generate(merged) == committed  # deterministic, whole file
    assert committed.startswith(
        "# GENERATED by tools/generate_models.py from fapi-sessions.yml and fapi-sign-in.yml"
        " — do not edit.\n"
    )


def test_check_fails_after_a_hand_edit(spec: dict[str, Any], tmp_path: Path) -> None:
    copy_path = tmp_path / "models.py"
    shutil.copy(REPO_ROOT / "clerk_sessions" / "models.py", copy_path)
    text = copy_path.read_text(encoding="utf-8")
    copy_path.write_text(text.replace('    PENDING = "pending"\n', "", 1), encoding="utf-8")
    result = run_generator("--check", "--output", str(copy_path))
    assert result.returncode == 1
    assert "out of date" in result.stderr
    assert (
        '-    PENDING = "pending"' in result.stderr or '+    PENDING = "pending"' in result.stderr
    )
    # Even an invisible change (a trailing newline) is caught: the comparison is whole-file.
    copy_path.write_text(text + "\n", encoding="utf-8")
    assert run_generator("--check", "--output", str(copy_path)).returncode == 1


def test_missing_spec_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    result = run_generator("--check", env={"CLERK_SESSIONS_SPEC": str(missing)})
    assert result.returncode == 2
    assert f"spec not found at {missing}" in result.stderr


def test_missing_sign_in_spec_exits_2(spec: dict[str, Any], tmp_path: Path) -> None:
    shutil.copy(generator().find_spec(), tmp_path / SESSIONS_SPEC)  # the sessions spec alone
    result = run_generator(
        "--check", env={"CLERK_SESSIONS_SPEC_DIR": str(tmp_path), "CLERK_SESSIONS_SPEC": ""}
    )
    assert result.returncode == 2
    assert f"spec not found at {tmp_path / SIGN_IN_SPEC}" in result.stderr


def write_specs(directory: Path, docs: Mapping[str, Any]) -> dict[str, str]:
    """Write specs as YAML into ``directory``; the environment that points the generator there."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    for name, doc in docs.items():
        with (directory / name).open("w", encoding="utf-8") as fh:
            yaml.dump(doc, fh, Dumper=dumper, sort_keys=False, allow_unicode=True)
    return {"CLERK_SESSIONS_SPEC_DIR": str(directory), "CLERK_SESSIONS_SPEC": ""}


def edited_sign_in(spec_docs: Mapping[str, Any], edit: Any) -> dict[str, Any]:
    """Both specs, the sign-in one's schemas edited."""
    docs = copy.deepcopy(dict(spec_docs))
    edit(docs[SIGN_IN_SPEC]["components"]["schemas"])
    return docs


def test_generator_reads_the_specs_from_the_spec_dir(
    spec_docs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """``$CLERK_SESSIONS_SPEC_DIR`` is honoured: the same specs there give the same file."""
    env = write_specs(tmp_path, spec_docs)
    result = run_generator("--check", env=env)
    assert result.returncode == 0, result.stderr


def test_generator_merges_an_additive_difference(
    spec_docs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """A property only one spec's copy has is merged in, and the class says so."""

    def add(schemas: dict[str, Any]) -> None:
        sign_in = schemas["Client.SignIn-2"]
        sign_in["properties"]["locale"] = {"type": "string", "nullable": True}
        sign_in["required"].append("locale")  # required with it: still additive
        factor = schemas["Stubs.SignInFactor"]["properties"]
        factor["attempts_left"] = {"type": "integer"}

    docs = edited_sign_in(spec_docs, add)
    gen = generator()
    merged = gen.merge_specs(docs)
    assert merged[gen.MERGE_NOTES_KEY] == {
        "Client.SignIn-2": ["properties.locale only in fapi-sign-in.yml"],
        "Stubs.SignInFactor": ["properties.attempts_left only in fapi-sign-in.yml"],
    }
    sign_in = merged["components"]["schemas"]["Client.SignIn-2"]
    assert list(sign_in["properties"])[-1] == "locale"
    assert sign_in["required"][-1] == "locale"
    # The other direction: the sessions copy is the one with more.
    reverse = gen.merge_specs(
        {SIGN_IN_SPEC: docs[SIGN_IN_SPEC], SESSIONS_SPEC: docs[SESSIONS_SPEC]}
    )
    assert reverse[gen.MERGE_NOTES_KEY]["Client.SignIn-2"] == [
        "properties.locale only in fapi-sign-in.yml"
    ]

    output = tmp_path / "models.py"
    result = run_generator("--output", str(output), env=write_specs(tmp_path, docs))
    assert result.returncode == 0, result.stderr
    text = output.read_text(encoding="utf-8")
    assert (
        "# Merged: the specs' copies of Client.SignIn-2 differ additively; this is their union:\n"
        "#   properties.locale only in fapi-sign-in.yml\n"
        "@attrs.define(kw_only=True, repr=False, eq=False)\n"
        "class SignIn(ModelBase):\n"
    ) in text
    assert "    locale: str | None = None\n" in text
    assert "    attempts_left: int | None = None\n" in text
    assert text.count("class SignIn(ModelBase):") == 1  # generated once
    # The committed file is now stale against these specs.
    assert run_generator("--check", env=write_specs(tmp_path, docs)).returncode == 1


@pytest.mark.parametrize(
    ("edit", "where", "difference"),
    [
        (
            lambda s: s["Client.User"]["properties"]["first_name"].update(type="integer"),
            "Client.User.properties.first_name.type",
            "fapi-sessions.yml has 'string', fapi-sign-in.yml has 'integer'",
        ),
        (
            lambda s: s["Client.SignIn-2"]["properties"]["status"]["enum"].append("paused"),
            "Client.SignIn-2.properties.status.enum",
            "only fapi-sign-in.yml has ['paused']",
        ),
        (
            lambda s: s["Stubs.Verification.Ticket"]["properties"]["status"]["enum"].remove(
                "expired"
            ),
            "Stubs.Verification.Ticket.properties.status.enum",
            "only fapi-sessions.yml has ['expired']",
        ),
        (
            lambda s: s["Client.SignIn-2"]["required"].remove("status"),
            "Client.SignIn-2.required",
            "only fapi-sessions.yml has ['status']",
        ),
        (
            lambda s: s["Client.SignIn-2"]["properties"]["identifier"].pop("nullable"),
            "Client.SignIn-2.properties.identifier.nullable",
            "fapi-sessions.yml has True, fapi-sign-in.yml has (absent)",
        ),
        (
            lambda s: s["Client.Client-2"]["properties"]["id"].update(description="The id."),
            "Client.Client-2.properties.id.description",
            "fapi-sign-in.yml has 'The id.'",
        ),
        (
            lambda s: s["Client.Session-2"]["allOf"][0].update(
                {"$ref": "#/components/schemas/Client.SignIn-2"}
            ),
            "Client.Session-2.allOf[0].$ref",
            "fapi-sign-in.yml has '#/components/schemas/Client.SignIn-2'",
        ),
        (
            lambda s: s["Token"]["properties"]["jwt"].update(type="integer"),
            "Token.properties.jwt.type",
            "fapi-sign-in.yml has 'integer'",
        ),
    ],
)
def test_generator_refuses_a_non_additive_difference(
    spec_docs: dict[str, dict[str, Any]], tmp_path: Path, edit: Any, where: str, difference: str
) -> None:
    docs = edited_sign_in(spec_docs, edit)
    gen = generator()
    schema = where.split(".properties", 1)[0].split(".required", 1)[0].split(".allOf", 1)[0]
    with pytest.raises(gen.SpecConflictError) as info:
        gen.merge_specs(docs)
    message = str(info.value)
    assert message.startswith(
        f"schema {schema!r} differs between fapi-sessions.yml and fapi-sign-in.yml at {where}: "
    )
    assert difference in message
    result = run_generator("--check", env=write_specs(tmp_path, docs))
    assert result.returncode == 3
    assert "error: the specs disagree: " in result.stderr
    assert where in result.stderr


def test_generator_refuses_a_dangling_ref(spec_docs: dict[str, dict[str, Any]]) -> None:
    docs = edited_sign_in(spec_docs, lambda s: s.pop("Stubs.Verification.Ticket"))
    gen = generator()
    expected = "fapi-sign-in.yml: $ref '#/components/schemas/Stubs.Verification.Ticket' names"
    with pytest.raises(gen.SpecError, match=re.escape(expected)):
        gen.merge_specs(docs)


def mutated(spec: dict[str, Any], edit: Any) -> dict[str, Any]:
    clone = copy.deepcopy(spec)
    edit(clone["components"]["schemas"])
    return clone


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s.update({"Client.Brand-New": {"type": "object", "properties": {}}}),
            "no class name",
        ),
        (
            lambda s: s["Client.User"]["properties"].update({"x": {"anyOf": [{"type": "string"}]}}),
            "unsupported keyword",
        ),
        (
            lambda s: s["Client.User"]["properties"].update(
                {"mood": {"type": "string", "enum": ["happy", "sad"]}}
            ),
            "has no role",
        ),
        (
            lambda s: s["Client.DeleteSession"]["properties"].update({"extra": {"type": "string"}}),
            "exactly 'response' and 'client'",
        ),
        (
            lambda s: s["Client.Session-2"]["allOf"].append(
                {"type": "object", "properties": {"x": {"type": "string"}}}
            ),
            "allOf",
        ),
        (
            lambda s: s["Client.Passkey"]["properties"]["verification"]["oneOf"].append(
                {"$ref": "#/components/schemas/Client.User"}
            ),
            "oneOf",
        ),
        (lambda s: s["Client.User"]["required"].append("ghost"), "not defined"),
        (
            lambda s: s["Client.User"]["properties"].update(
                {"born": {"type": "string", "format": "date-time"}}
            ),
            "unknown format",
        ),
    ],
)
def test_generator_fails_loudly_on_shapes_it_does_not_know(
    merged: dict[str, Any], edit: Any, message: str
) -> None:
    gen = generator()
    with pytest.raises(gen.SpecError, match=message):
        gen.build_model(mutated(merged, edit))


def test_generator_fails_loudly_on_a_changed_sign_in_envelope(merged: dict[str, Any]) -> None:
    gen = generator()
    for edit, message in [
        (
            lambda s: s["Client.ClientWrappedSignIn"]["properties"].update(
                {"response": {"$ref": "#/components/schemas/Client.Session-2"}}
            ),
            "Client.ClientWrappedSignIn.response is not SignIn",
        ),
        (lambda s: s.pop("Client.ClientWrappedSignIn"), "no longer has"),
    ]:
        with pytest.raises(gen.SpecError, match=message):
            gen.build_model(mutated(merged, edit))


def test_generator_reuses_find_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gen = generator()
    default_dir = REPO_ROOT.parent / "shared" / "spec"
    monkeypatch.delenv("CLERK_SESSIONS_SPEC_DIR", raising=False)
    monkeypatch.setenv("CLERK_SESSIONS_SPEC", str(tmp_path / "x.yml"))
    assert gen.find_spec() == tmp_path / "x.yml"
    # The sign-in spec is looked for beside an explicitly named sessions spec.
    assert gen.find_specs() == {
        SESSIONS_SPEC: tmp_path / "x.yml",
        SIGN_IN_SPEC: tmp_path / SIGN_IN_SPEC,
    }
    with pytest.raises(gen.SpecNotFoundError):
        gen.load_spec()
    with pytest.raises(gen.SpecNotFoundError):
        gen.load_specs()
    monkeypatch.delenv("CLERK_SESSIONS_SPEC")
    assert gen.find_spec() == default_dir / SESSIONS_SPEC
    assert gen.find_specs() == {
        SESSIONS_SPEC: default_dir / SESSIONS_SPEC,
        SIGN_IN_SPEC: default_dir / SIGN_IN_SPEC,
    }
    monkeypatch.setenv("CLERK_SESSIONS_SPEC_DIR", str(tmp_path))
    assert gen.find_specs() == {
        SESSIONS_SPEC: tmp_path / SESSIONS_SPEC,
        SIGN_IN_SPEC: tmp_path / SIGN_IN_SPEC,
    }


def test_each_hook_is_built_once() -> None:
    """Hooks are generated on first use (none at import), then reused: structuring a type again,
    even through an equal alias (``Envelope[SignIn]`` is ``ClientWrappedSignIn``), adds none.

    (It was ``test_every_hook_is_built_at_import``, which passed only after other tests had
    structured these types: the converter compiles lazily.)"""

    def structure_all() -> None:
        structure({"jwt": "x"}, m.Token)
        structure({"response": None}, m.DeleteSession)
        structure({"response": {"object": "sign_in_attempt", "id": "sia_1"}}, Envelope[SignIn])
        structure({"response": {"object": "sign_in_attempt", "id": "sia_1"}}, m.ClientWrappedSignIn)

    structure_all()
    before = CONVERTER._structure_func.dispatch.cache_info().currsize
    structure_all()
    assert CONVERTER._structure_func.dispatch.cache_info().currsize == before
