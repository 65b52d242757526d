"""The models against the spec: coverage of every schema and property, real-payload fixtures vs
the spec, generated payloads (hypothesis), and the generator's ``--check`` contract.

Everything here needs ``fapi-sessions.yml`` and skips, naming the path it looked at, without it.
The schema → class table below is written out independently of the generator's tables, so a
naming or typing mistake in the generator cannot hide behind itself.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clerk_sessions import models as m
from clerk_sessions._converter import CONVERTER, make_converter, structure
from clerk_sessions._model_base import OpenEnum, UnknownVerification
from clerk_sessions.models import VERIFICATION_DISCRIMINATORS
from tests.spec_strategies import (
    GENERATOR_PATH,
    REPO_ROOT,
    SchemaStrategies,
    generator,
    realistic_get_session,
    require_spec,
    validation_errors,
)

pytestmark = pytest.mark.spec

FIXTURES = Path(__file__).parent / "fixtures" / "real"
SCHEMAS = "#/components/schemas/"
NoneType = type(None)

# Every component schema of the spec → its public name in clerk_sessions.models.
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
}
INLINE_CLASSES: Mapping[tuple[str, str], str] = {
    ("Client.SignIn-2", "user_data"): "SignInUserData",
    ("Stubs.Verification.TrustedDevice", "trusted_device_challenge"): "TrustedDeviceChallenge",
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return require_spec()


@pytest.fixture(scope="module")
def schemas(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["schemas"]  # type: ignore[no-any-return]


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


def test_every_schema_has_a_model(schemas: dict[str, Any]) -> None:
    assert set(schemas) == set(SCHEMA_CLASSES) | set(ENVELOPE_ALIASES)
    assert len(schemas) == 47
    for name in SCHEMA_CLASSES.values():
        assert attrs.has(getattr(m, name)), name


@pytest.mark.parametrize("schema_name", sorted(SCHEMA_CLASSES))
def test_every_property_is_a_field_of_a_compatible_type(
    schemas: dict[str, Any], schema_name: str
) -> None:
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


# --------------------------------------------------------------------------------------------
# Property test: payloads generated from the spec's schemas
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strategies(spec: dict[str, Any]) -> SchemaStrategies:
    return SchemaStrategies(spec)


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
    elif target == "Token":
        assert result.jwt == payload["jwt"]
    elif target == "ClerkErrors":
        assert len(result.errors) == len(payload["errors"])
    assert_matches(result, payload)  # and every other known value, all the way down
    assert DETAILED_ONLY.structure(copy.deepcopy(payload), tp) == result  # fast path agrees


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_payloads_are_spec_valid(
    strategies: SchemaStrategies, data: st.DataObject
) -> None:
    """The strategies themselves are honest: what they generate, the spec accepts."""
    for target in ("Client.ClientWrappedSession", "Client.ClientWrappedSessionReverification"):
        payload = data.draw(strategies.named(target), label=target)
        assert validation_errors(payload, target) == []


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


def test_committed_models_are_what_the_spec_generates(spec: dict[str, Any]) -> None:
    result = run_generator("--check")
    assert result.returncode == 0, result.stderr
    committed = (REPO_ROOT / "clerk_sessions" / "models.py").read_text(encoding="utf-8")
    assert generator().generate(spec) == committed  # deterministic, whole file
    assert committed.startswith(
        "# GENERATED by tools/generate_models.py from fapi-sessions.yml — do not edit.\n"
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
    spec: dict[str, Any], edit: Any, message: str
) -> None:
    gen = generator()
    with pytest.raises(gen.SpecError, match=message):
        gen.build_model(mutated(spec, edit))


def test_generator_reuses_find_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gen = generator()
    monkeypatch.setenv("CLERK_SESSIONS_SPEC", str(tmp_path / "x.yml"))
    assert gen.find_spec() == tmp_path / "x.yml"
    with pytest.raises(gen.SpecNotFoundError):
        gen.load_spec()
    monkeypatch.delenv("CLERK_SESSIONS_SPEC")
    assert gen.find_spec() == REPO_ROOT.parent / "shared" / "spec" / "fapi-sessions.yml"


def test_every_hook_is_built_at_import() -> None:
    # The converter generated its hooks once; structuring a new type would add to the cache.
    before = CONVERTER._structure_func.dispatch.cache_info().currsize
    structure({"jwt": "x"}, m.Token)
    structure({"response": None}, m.DeleteSession)
    assert CONVERTER._structure_func.dispatch.cache_info().currsize == before
