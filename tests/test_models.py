"""Behaviour of the models and the converter: leniency, strictness, open enums, unions, secrets.

Nothing here needs the spec: payloads are the realistic builders of ``spec_strategies`` and the
reconstructed real-world fixtures in ``fixtures/real``.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any, get_origin

import attrs
import cattrs
import pytest

from clerk_sessions import Envelope, SignIn
from clerk_sessions import models as m
from clerk_sessions._converter import CONVERTER, make_converter, structure
from clerk_sessions._errors import ResponseValidationError
from clerk_sessions._model_base import EMPTY_MAPPING, OpenEnum, UnknownVerification
from clerk_sessions._redact import REDACTED
from tests.spec_strategies import (
    JWT,
    NOW,
    realistic_client,
    realistic_get_session,
    realistic_session,
    realistic_user,
)

FIXTURES = Path(__file__).parent / "fixtures" / "real"
CANARY = "canary-SECRET-4b1d"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def fixture_type(doc: dict[str, Any]) -> Any:
    tp = getattr(m, doc["model"])
    return list[tp] if doc["many"] else tp  # type: ignore[valid-type]


def validation_error(data: Any, tp: Any) -> ResponseValidationError:
    with pytest.raises(ResponseValidationError) as info:
        structure(data, tp, operation="getSession", status=200)
    return info.value


# --------------------------------------------------------------------------------------------
# A realistic response
# --------------------------------------------------------------------------------------------


@pytest.fixture
def envelope_payload() -> dict[str, Any]:
    """getSession for a client with 3 sessions, each with a full user (see spec_strategies)."""
    return realistic_get_session()


def test_realistic_envelope_structures_into_the_right_classes(
    envelope_payload: dict[str, Any],
) -> None:
    env = structure(envelope_payload, m.ClientWrappedSession)

    assert isinstance(env, m.Envelope)
    assert isinstance(env.response, m.Session)
    assert env.response.id == envelope_payload["response"]["id"]
    assert env.response.status is m.SessionStatus.ACTIVE
    assert env.response.factor_verification_age == [0, -1]
    assert isinstance(env.response.last_active_token, m.Token)
    assert env.response.last_active_token.jwt == JWT
    assert isinstance(env.client, m.Client)
    assert [s.id for s in env.client.sessions] == [
        s["id"] for s in envelope_payload["client"]["sessions"]
    ]
    user = env.client.sessions[2].user
    assert isinstance(user, m.User)
    assert [type(e) for e in user.email_addresses] == [m.EmailAddress, m.EmailAddress]
    assert isinstance(user.email_addresses[0].verification, m.OtpVerification)
    assert user.email_addresses[0].verification.status is m.VerificationStatus.VERIFIED
    assert user.email_addresses[0].linked_to == [
        m.IdentificationLink(type="oauth_google", id="idn_2b2OauthLinkQ8yZ5r3kPh1W")
    ]
    assert isinstance(user.phone_numbers[0].verification, m.OtpVerification)
    assert user.phone_numbers[0].backup_codes == []  # null → []
    account = user.external_accounts[0]
    assert isinstance(account, m.ExternalAccount)
    assert isinstance(account.verification, m.ExternalAccountOauthVerification)
    membership = user.organization_memberships[0]
    assert isinstance(membership.organization, m.Organization)
    assert membership.organization.public_metadata == {"plan": "pro"}
    assert isinstance(membership.public_user_data, m.PublicUserData)
    assert env.client.sign_in is None
    assert env.client.sign_up is None


def test_the_spec_only_enterprise_accounts_lands_in_unknown_fields(
    envelope_payload: dict[str, Any],
) -> None:
    env = structure(envelope_payload, m.ClientWrappedSession)
    assert env.response.user is not None
    assert dict(env.response.user.unknown_fields) == {"enterprise_accounts": []}
    assert env.response.unknown_fields is EMPTY_MAPPING


def test_structuring_does_not_depend_on_the_input_after_the_fact(
    envelope_payload: dict[str, Any],
) -> None:
    before = copy.deepcopy(envelope_payload)
    structure(envelope_payload, m.ClientWrappedSession)
    assert envelope_payload == before


# --------------------------------------------------------------------------------------------
# Reconstructed real payloads (fapi-protocol.md §11)
# --------------------------------------------------------------------------------------------

FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.json"))


def test_there_are_real_payload_fixtures() -> None:
    assert len(FIXTURE_NAMES) >= 8


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_every_real_payload_fixture_structures(name: str) -> None:
    doc = load_fixture(name)
    result = structure(doc["body"], fixture_type(doc))
    model = getattr(m, doc["model"])
    expected = get_origin(model) or model  # Envelope for the envelope aliases
    items = result if doc["many"] else [result]
    assert len(items) == (len(doc["body"]) if doc["many"] else 1)
    assert all(isinstance(item, expected) for item in items)


def test_fixture_extra_keys_are_kept_in_unknown_fields() -> None:
    env = structure(load_fixture("get_session_extra_keys.json")["body"], m.ClientWrappedSession)
    client = env.client
    assert client is not None
    assert client.sign_in is not None
    assert client.sign_up is not None
    assert client.sign_in.unknown_fields == {"locale": "fr-FR"}
    assert client.sign_up.unknown_fields == {"locale": "fr-FR"}
    user = env.response.user
    assert user is not None
    assert user.unknown_fields == {
        "enterprise_accounts": [],
        "locale": "fr-FR",
        "bypass_client_trust": False,
    }
    verification = user.phone_numbers[0].verification
    assert isinstance(verification, m.OtpVerification)
    assert verification.unknown_fields == {"channel": "sms"}
    assert client.sessions[1].unknown_fields["latest_activity"]["object"] == "session_activity"
    assert isinstance(client.sign_up.verifications, m.SignUpVerifications)
    assert isinstance(client.sign_up.verifications.email_address, m.SignUpOtpVerification)
    assert (
        client.sign_up.verifications.email_address.next_action is m.SignUpNextAction.NEEDS_ATTEMPT
    )


def test_fixture_unknown_enum_values_become_pseudo_members() -> None:
    body = load_fixture("get_session_unknown_enum_values.json")["body"]
    env = structure(body, m.ClientWrappedSession)
    assert env.client is not None
    assert env.client.sign_in is not None
    identifiers = env.client.sign_in.supported_identifiers
    assert identifiers == ["email_address", "password"]
    assert identifiers[0] is m.SignInIdentifier.EMAIL_ADDRESS
    assert not identifiers[1].is_known
    assert env.client.sign_in.status is m.SignInStatus.NEEDS_CLIENT_TRUST
    replaced = env.client.sessions[1].status
    assert replaced == "replaced"
    assert isinstance(replaced, m.SessionStatus)
    assert replaced.name == "UNKNOWN"
    assert env.client.sessions[2].status is m.SessionStatus.PENDING
    assert env.client.sessions[2].tasks == [m.SessionTask(key="choose-organization")]


def test_fixture_missing_required_fields_are_none_or_empty() -> None:
    env = structure(
        load_fixture("get_session_missing_required_fields.json")["body"], m.ClientWrappedSession
    )
    assert env.client is not None
    assert env.client.captcha_bypass is None
    assert env.client.cookie_expires_at is None
    session = env.response
    assert session.factor_verification_age == []
    assert session.user is not None
    assert session.user.passkeys == []
    assert session.user.mfa_enabled_at is None
    assert session.user.email_addresses[0].created_at is None
    assert session.user.phone_numbers[0].updated_at is None
    assert session.user.external_accounts[0].created_at is None
    assert session.user.unknown_fields is EMPTY_MAPPING


def test_fixture_unexpected_nulls_are_none() -> None:
    env = structure(
        load_fixture("get_session_unexpected_nulls.json")["body"], m.ClientWrappedSession
    )
    assert env.response.user is not None
    verification = env.response.user.external_accounts[0].verification
    assert isinstance(verification, m.ExternalAccountOauthVerification)
    assert verification.external_verification_redirect_url is None


def test_fixture_active_sessions_with_a_null_user() -> None:
    doc = load_fixture("active_sessions_null_user.json")
    sessions = structure(doc["body"], list[m.Session])
    assert sessions[0].user is None
    assert sessions[1].user is not None
    assert all("latest_activity" in s.unknown_fields for s in sessions)


def test_fixture_bare_token() -> None:
    token = structure(load_fixture("token_bare_jwt.json")["body"], m.Token)
    assert token.object == "token"
    assert token.jwt.startswith("eyJ")


def test_fixture_clerk_errors() -> None:
    errors = structure(
        load_fixture("clerk_errors_missing_long_message.json")["body"], m.ClerkErrors
    )
    assert errors.errors[0].code == "resource_not_found"
    assert errors.errors[0].long_message is None
    assert errors.clerk_trace_id == "3f1c1c6b4d0e4b7c9a2f0d5e6a7b8c9d"
    empty = structure(load_fixture("clerk_errors_empty_with_meta.json")["body"], m.ClerkErrors)
    assert empty.errors == []
    assert empty.meta["client"]["object"] == "client"


def test_fixture_values_worth_supporting() -> None:
    env = structure(
        load_fixture("get_session_values_worth_supporting.json")["body"], m.ClientWrappedSession
    )
    assert env.client is not None
    assert env.client.sign_in is not None
    sessions = env.client.sessions
    assert sessions[0].factor_verification_age == [0, 0]
    assert sessions[1].factor_verification_age == [0, -1]
    assert sessions[1].actor == {
        "sub": "user_2bImpersonatorQ8yZ5r3kPh",
        "iss": "https://dashboard.clerk.com",
    }
    assert sessions[0].actor is None
    assert sessions[2].tasks == [m.SessionTask(key="choose-organization")]
    factor = env.client.sign_in.supported_first_factors[0]
    assert factor.strategy is m.SignInFactorStrategy.ENTERPRISE_SSO
    assert factor.enterprise_connection_name == "Acme Okta"


def test_fixture_reverification() -> None:
    doc = load_fixture("reverification_enterprise_sso.json")
    env = structure(doc["body"], m.ClientWrappedSessionReverification)
    assert isinstance(env.response, m.SessionReverification)
    assert env.response.status is m.SessionReverificationStatus.NEEDS_FIRST_FACTOR
    assert type(env.response.session) is m.SessionBase
    assert env.response.supported_second_factors == []
    assert env.response.supported_first_factors[0].strategy == "enterprise_sso"


# --------------------------------------------------------------------------------------------
# Open enums
# --------------------------------------------------------------------------------------------


def test_unknown_enum_value_is_a_pseudo_member_equal_to_the_raw_string() -> None:
    status = m.SessionStatus("replaced")
    assert isinstance(status, m.SessionStatus)
    assert isinstance(status, str)
    assert status == "replaced"
    assert status.value == "replaced"
    assert status.name == "UNKNOWN"
    assert not status.is_known
    assert m.SessionStatus.ACTIVE.is_known
    assert hash(status) == hash("replaced")
    assert {"replaced": 1}[status] == 1
    assert m.SessionStatus(status) is status
    assert m.SessionStatus("replaced") is status  # cached
    assert pickle.loads(pickle.dumps(status)) is status
    assert copy.deepcopy(status) is status
    assert str(status) == f"{status}" == "replaced"
    assert str(m.SessionStatus.ACTIVE) == f"{m.SessionStatus.ACTIVE}" == "active"
    assert repr(status) == "<SessionStatus.UNKNOWN: 'replaced'>"
    assert status != m.SessionStatus.ACTIVE
    active: str = m.SessionStatus.ACTIVE
    assert active == "active"


def test_open_enum_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="not a valid SessionStatus"):
        m.SessionStatus(5)
    with pytest.raises(ValueError, match="not a valid SessionStatus"):
        m.SessionStatus(None)


def test_open_enum_pseudo_member_cache_is_bounded() -> None:
    class Colour(OpenEnum):
        RED = "red"

    values = [f"colour-{i}" for i in range(500)]
    members = [Colour(v) for v in values]
    assert [str(x) for x in members] == values
    assert all(Colour(v) == v for v in values)
    assert all(Colour(v).is_known is False for v in values)
    from clerk_sessions import _model_base

    assert len(_model_base._unknown_members[Colour]) <= _model_base._MAX_UNKNOWN_PER_ENUM


def test_unknown_session_status_structures(envelope_payload: dict[str, Any]) -> None:
    envelope_payload["response"]["status"] = "replaced"
    env = structure(envelope_payload, m.ClientWrappedSession)
    assert env.response.status == "replaced"
    assert env.response.status is not None
    assert not env.response.status.is_known


def test_enum_value_of_the_wrong_type_fails(envelope_payload: dict[str, Any]) -> None:
    envelope_payload["response"]["status"] = 3
    error = validation_error(envelope_payload, m.ClientWrappedSession)
    assert error.paths == ["invalid type (expected SessionStatus | None) @ $.response.status"]


# --------------------------------------------------------------------------------------------
# Verification unions
# --------------------------------------------------------------------------------------------


def email_with(verification: Any) -> dict[str, Any]:
    return {"id": "idn_1", "object": "email_address", "verification": verification}


def email_verification(verification: Any) -> Any:
    return structure(email_with(verification), m.EmailAddress).verification


def test_unknown_verification_variant_keeps_the_raw_object() -> None:
    raw = {"object": "verification_carrier_pigeon", "status": "verified", "strategy": "pigeon"}
    result = email_verification(raw)
    assert isinstance(result, UnknownVerification)
    assert result.raw == raw
    assert (result.object, result.status, result.strategy) == (
        "verification_carrier_pigeon",
        "verified",
        "pigeon",
    )


def test_unknown_verification_keeps_only_string_hints() -> None:
    result = email_verification({"status": 7, "strategy": ["x"], "object": None})
    assert isinstance(result, UnknownVerification)
    assert (result.status, result.strategy, result.object) == (None, None, None)


@pytest.mark.parametrize(
    ("verification", "expected"),
    [
        (
            {"object": "verification_otp", "status": "verified", "strategy": "email_code"},
            m.OtpVerification,
        ),
        ({"status": "verified", "strategy": "email_code"}, m.OtpVerification),
        ({"object": "verification_otp", "strategy": "carrier_pigeon"}, m.OtpVerification),
        ({"object": "verification_brand_new", "strategy": "email_link"}, m.LinkVerification),
        ({"strategy": "from_oauth_github"}, m.FromOauthVerification),
        ({"strategy": "admin"}, m.AdminVerification),
        ({"strategy": "scim", "status": "verified"}, m.ScimVerification),
        # oauth_ is not one of this field's variants: unknown, not a wrong guess.
        ({"strategy": "oauth_google"}, UnknownVerification),
        ({}, UnknownVerification),
    ],
)
def test_verification_dispatch(verification: dict[str, Any], expected: type) -> None:
    assert type(email_verification(verification)) is expected


def test_free_form_oauth_strategies_dispatch_by_prefix() -> None:
    sign_in = {
        "object": "sign_in_attempt",
        "id": "sia_1",
        "first_factor_verification": {"strategy": "oauth_custom_acme", "status": "unverified"},
        "second_factor_verification": {"strategy": "totp", "status": "verified"},
    }
    result = structure(sign_in, m.SignIn)
    assert isinstance(result.first_factor_verification, m.OauthVerification)
    assert result.first_factor_verification.strategy == "oauth_custom_acme"
    assert isinstance(result.second_factor_verification, m.TotpVerification)


def test_external_account_verification_variants() -> None:
    account = {"object": "external_account", "id": "eac_1"}
    one_tap = structure(
        {
            **account,
            "verification": {"object": "verification_google_one_tap", "status": "verified"},
        },
        m.ExternalAccount,
    )
    assert isinstance(one_tap.verification, m.ExternalAccountGoogleOneTapVerification)
    oauth = structure({**account, "verification": {"strategy": "oauth_apple"}}, m.ExternalAccount)
    assert isinstance(oauth.verification, m.ExternalAccountOauthVerification)


def test_sign_up_verifications_use_the_sign_up_variants() -> None:
    verifications = structure(
        {
            "email_address": {
                "status": "unverified",
                "strategy": "email_link",
                "next_action": "",
                "supported_strategies": ["email_link", "email_code"],
            },
            "phone_number": {"strategy": "phone_code", "next_action": "needs_prepare"},
            "web3_wallet": None,
            "external_account": {"strategy": "saml", "status": "transferable"},
        },
        m.SignUpVerifications,
    )
    email = verifications.email_address
    assert isinstance(email, m.SignUpLinkVerification)
    assert isinstance(email, m.LinkVerification)
    assert email.next_action is m.SignUpNextAction.EMPTY
    assert email.supported_strategies == ["email_link", "email_code"]
    assert isinstance(verifications.phone_number, m.SignUpOtpVerification)
    assert verifications.web3_wallet is None
    assert isinstance(verifications.external_account, m.SamlVerification)
    assert verifications.external_account.status is m.VerificationStatus.TRANSFERABLE


def test_known_verification_variant_with_a_wrong_field_type_fails() -> None:
    payload = realistic_get_session()
    email = payload["response"]["user"]["email_addresses"][1]
    email["verification"]["attempts"] = "1"
    error = validation_error(payload, m.ClientWrappedSession)
    where = "$.response.user.email_addresses[1].verification.attempts"
    assert error.paths == [f"invalid type (expected int | None) @ {where}"]


def test_a_wrongly_typed_object_does_not_hide_a_known_strategy() -> None:
    with pytest.raises(ResponseValidationError) as info:
        email_verification({"object": 5, "strategy": "ticket"})
    assert info.value.paths == ["invalid type (expected str | None) @ $.verification.object"]


@pytest.mark.parametrize("bad", [[], "verified", 3, True])
def test_verification_that_is_not_an_object_fails(bad: Any) -> None:
    with pytest.raises(ResponseValidationError) as info:
        structure(email_with(bad), m.EmailAddress)
    assert info.value.paths[0].endswith("@ $.verification")
    assert info.value.paths[0].startswith("invalid type (expected OtpVerification | ")


def test_null_verification_is_none() -> None:
    assert email_verification(None) is None


# --------------------------------------------------------------------------------------------
# Unknown keys
# --------------------------------------------------------------------------------------------


def test_unknown_keys_are_kept_read_only_out_of_repr_and_eq() -> None:
    session = realistic_session(0)
    session["shiny_new_field"] = {"nested": [1, 2]}
    session["user"]["another"] = CANARY
    result = structure(session, m.Session)
    assert result.unknown_fields == {"shiny_new_field": {"nested": [1, 2]}}
    assert result.user is not None
    assert result.user.unknown_fields == {"enterprise_accounts": [], "another": CANARY}
    assert CANARY not in repr(result)
    assert "unknown_fields" not in repr(result)
    plain = structure(realistic_session(0), m.Session)
    assert plain == result  # unknown_fields does not take part in ==


def test_objects_without_unknown_keys_share_the_read_only_empty_mapping() -> None:
    token = structure({"object": "token", "jwt": "x"}, m.Token)
    assert token.unknown_fields is EMPTY_MAPPING
    with pytest.raises(TypeError):
        token.unknown_fields["x"] = 1  # type: ignore[index]


def test_unknown_keys_keep_their_order() -> None:
    token = structure({"jwt": "x", "b": 1, "object": "token", "a": 2}, m.Token)
    assert list(token.unknown_fields) == ["b", "a"]


def test_a_key_named_unknown_fields_is_an_unknown_field() -> None:
    token = structure({"jwt": "x", "unknown_fields": {"evil": True}}, m.Token)
    assert token.unknown_fields == {"unknown_fields": {"evil": True}}


def test_strict_converter_rejects_extra_keys_with_a_path() -> None:
    strict = make_converter(forbid_extra_keys=True)
    with pytest.raises(cattrs.ClassValidationError) as info:
        strict.structure({"jwt": "x", "surprise": 1}, m.Token)
    assert cattrs.transform_error(info.value) == ["extra fields found (surprise) @ $"]
    assert strict.structure({"jwt": "x"}, m.Token) == m.Token(jwt="x")


def test_strict_converter_flags_only_the_undefined_enterprise_accounts_on_realistic_data(
    envelope_payload: dict[str, Any],
) -> None:
    strict = make_converter(forbid_extra_keys=True)
    with pytest.raises(cattrs.ClassValidationError) as info:
        strict.structure(envelope_payload, m.ClientWrappedSession)
    messages = cattrs.transform_error(info.value)
    assert messages
    assert all(msg.startswith("extra fields found (enterprise_accounts) @ ") for msg in messages)
    assert len(messages) == 4  # the response's user and the client's three users


# --------------------------------------------------------------------------------------------
# Strict types, lenient presence
# --------------------------------------------------------------------------------------------


def test_wrong_type_for_a_known_field_names_its_path(envelope_payload: dict[str, Any]) -> None:
    envelope_payload["response"]["user"]["email_addresses"][0]["reserved"] = "no"
    error = validation_error(envelope_payload, m.ClientWrappedSession)
    assert error.paths == [
        "invalid type (expected bool | None) @ $.response.user.email_addresses[0].reserved"
    ]
    assert "$.response.user.email_addresses[0].reserved" in str(error)
    assert str(error).startswith("HTTP 200 getSession: ")
    assert error.status == 200
    assert error.operation == "getSession"
    assert isinstance(error.__cause__, cattrs.ClassValidationError)


def test_all_problems_are_listed_and_the_message_names_the_first(
    envelope_payload: dict[str, Any],
) -> None:
    sessions = envelope_payload["client"]["sessions"]
    for session in sessions:
        session["expire_at"] = "tomorrow"
    envelope_payload["response"]["id"] = None
    error = validation_error(envelope_payload, m.ClientWrappedSession)
    assert error.paths == [
        "invalid type (expected str) @ $.response.id",
        *(
            f"invalid type (expected int | None) @ $.client.sessions[{i}].expire_at"
            for i in range(3)
        ),
    ]
    message = str(error)
    assert "$.response.id" in message
    assert "$.client.sessions[1].expire_at" in message
    assert "(and 1 more)" in message


STRICTNESS_CASES = [
    # (field path in a Session payload, bad value, expected type in the message)
    (("id",), 5, "str"),
    (("last_active_organization_id",), 5, "str | None"),
    (("expire_at",), "5", "int | None"),
    (("expire_at",), True, "int | None"),
    (("expire_at",), 5.0, "int | None"),
    (("user", "banned"), "false", "bool | None"),
    (("user", "banned"), 0, "bool | None"),
    (("factor_verification_age",), {"0": 0}, "list[int]"),
    (("factor_verification_age",), "0,-1", "list[int]"),
    (("user", "public_metadata"), [], "dict[str, Any]"),
    (("actor",), "someone", "dict[str, Any] | None"),
    (("user",), [], "User | None"),
    (("user",), "user_1", "User | None"),
    (("last_active_token",), "eyJ...", "Token | None"),
]


@pytest.mark.parametrize(("path", "bad", "expected"), STRICTNESS_CASES)
def test_a_present_value_of_the_wrong_type_is_an_error(
    path: tuple[str, ...], bad: Any, expected: str
) -> None:
    session = realistic_session(0)
    target = session
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    with pytest.raises(ResponseValidationError) as info:
        structure(session, m.Session)
    assert info.value.paths == [f"invalid type (expected {expected}) @ $.{'.'.join(path)}"]


def test_list_items_are_checked_with_their_index() -> None:
    session = realistic_session(0)
    session["factor_verification_age"] = [0, "1", 2, None]
    with pytest.raises(ResponseValidationError) as info:
        structure(session, m.Session)
    assert info.value.paths == [
        "invalid type (expected int) @ $.factor_verification_age[1]",
        "invalid type (expected int) @ $.factor_verification_age[3]",
    ]


@pytest.mark.parametrize(
    ("tp", "good", "bad"),
    [
        (str, "x", [5, None, b"x"]),
        (int, 5, ["5", True, 5.0, None]),
        (bool, False, [0, "false", None]),
        (float, 1.5, ["1.5", True, None]),
        (list[str], ["a"], ["a", ("a",), {"a": 1}, {"a"}]),
        (dict[str, Any], {"a": 1}, [[("a", 1)], "a"]),
    ],
)
def test_scalar_and_container_hooks_do_not_coerce(tp: Any, good: Any, bad: list[Any]) -> None:
    assert CONVERTER.structure(good, tp) == good
    for value in bad:
        if value is None and tp in (list[str], dict[str, Any]):
            continue
        with pytest.raises(ResponseValidationError):
            structure(value, tp)


def test_float_accepts_integers_but_not_booleans() -> None:
    assert CONVERTER.structure(2, float) == 2.0
    assert type(CONVERTER.structure(2, float)) is float


@pytest.mark.parametrize("bad", [[], "session", 5, None])
def test_a_top_level_non_object_fails(bad: Any) -> None:
    with pytest.raises(ResponseValidationError) as info:
        structure(bad, m.ClientWrappedSession)
    assert info.value.paths == [
        f"invalid type (expected a JSON object for Envelope[Session], got "
        f"{ {list: 'array', str: 'string', int: 'integer', type(None): 'null'}[type(bad)] }) @ $"
    ]


def test_null_arrays_and_free_form_objects_become_empty() -> None:
    session = realistic_session(0)
    session["tasks"] = None
    session["factor_verification_age"] = None
    session["user"]["public_metadata"] = None
    session["user"]["email_addresses"] = None
    result = structure(session, m.Session)
    assert result.tasks == []
    assert result.factor_verification_age == []
    assert result.user is not None
    assert result.user.public_metadata == {}
    assert result.user.email_addresses == []


def test_nullable_free_form_objects_keep_null_apart_from_empty() -> None:
    session = realistic_session(0)
    session["actor"] = None
    assert structure(session, m.Session).actor is None
    session["actor"] = {}
    assert structure(session, m.Session).actor == {}
    del session["actor"]
    assert structure(session, m.Session).actor is None


def test_absent_non_identity_fields_get_defaults() -> None:
    result = structure({"id": "sess_1", "object": "session"}, m.Session)
    assert result == m.Session(id="sess_1", object="session")
    assert result.status is None
    assert result.tasks == []
    assert result.user is None


@pytest.mark.parametrize("missing", ["id", "object"])
def test_identity_fields_are_required(missing: str) -> None:
    session = realistic_session(0)
    del session[missing]
    with pytest.raises(ResponseValidationError) as info:
        structure(session, m.Session)
    assert info.value.paths == [f"required field missing @ $.{missing}"]


def test_identity_fields_may_not_be_null() -> None:
    with pytest.raises(ResponseValidationError) as info:
        structure({"id": None, "object": "session"}, m.Session)
    assert info.value.paths == ["invalid type (expected str) @ $.id"]


# --------------------------------------------------------------------------------------------
# Tokens, envelopes, errors
# --------------------------------------------------------------------------------------------


def test_token_from_a_bare_jwt() -> None:
    token = structure({"jwt": "a.b.c"}, m.Token)
    assert token == m.Token(object="token", jwt="a.b.c")


def test_token_needs_a_jwt() -> None:
    with pytest.raises(ResponseValidationError) as info:
        structure({"object": "token"}, m.Token)
    assert info.value.paths == ["required field missing @ $.jwt"]
    with pytest.raises(ResponseValidationError) as info:
        structure({"jwt": None}, m.Token)
    assert info.value.paths == ["invalid type (expected str) @ $.jwt"]


def test_delete_session_envelope_with_a_null_response() -> None:
    env = structure({"response": None, "client": None}, m.DeleteSession)
    assert env.response is None
    assert env.client is None


def test_delete_session_envelope_with_a_client() -> None:
    client = realistic_client(0)
    env = structure({"response": client, "client": None}, m.Envelope[m.Client | None])
    assert isinstance(env.response, m.Client)
    assert env.response.sessions == []


def test_session_envelope_needs_a_session() -> None:
    with pytest.raises(ResponseValidationError) as info:
        structure({"response": None, "client": None}, m.ClientWrappedSession)
    assert info.value.paths == [
        "invalid type (expected Session) @ $.response",
    ]
    with pytest.raises(ResponseValidationError) as info:
        structure({"client": None}, m.ClientWrappedSession)
    assert info.value.paths == ["required field missing @ $.response"]


def test_touch_envelope_client_may_be_null_or_absent() -> None:
    session = realistic_session(0)
    assert structure({"response": session, "client": None}, m.TouchWrappedSession).client is None
    assert structure({"response": session}, m.TouchWrappedSession).client is None


def test_envelope_aliases() -> None:
    assert m.ClientWrappedSession == m.Envelope[m.Session]
    assert m.TouchWrappedSession == m.Envelope[m.Session]
    assert m.ClientWrappedSessionReverification == m.Envelope[m.SessionReverification]
    assert m.DeleteSession == m.Envelope[m.Client | None]
    assert m.ClientWrappedSignIn == m.Envelope[m.SignIn]  # createSignIn, fapi-sign-in.yml


def test_clerk_errors_are_lenient() -> None:
    errors = structure({"errors": [{"code": "x"}], "meta": None}, m.ClerkErrors)
    assert errors == m.ClerkErrors(errors=[m.ClerkError(code="x")], meta={})
    assert structure({}, m.ClerkErrors).errors == []


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


def test_token_jwt_is_redacted_in_reprs() -> None:
    token = structure({"object": "token", "jwt": CANARY}, m.Token)
    assert CANARY not in repr(token)
    assert REDACTED in repr(token)
    assert token.jwt == CANARY
    session = realistic_session(0)
    session["last_active_token"]["jwt"] = CANARY
    env = structure({"response": session, "client": None}, m.ClientWrappedSession)
    assert CANARY not in repr(env)


def test_backup_codes_are_redacted_in_reprs() -> None:
    user = realistic_user(0)
    user["phone_numbers"][0]["backup_codes"] = [CANARY, "code-2"]
    result = structure(user, m.User)
    assert result.phone_numbers[0].backup_codes == [CANARY, "code-2"]
    assert CANARY not in repr(result)
    assert "backup_codes='[redacted]'" in repr(result.phone_numbers[0])
    assert "backup_codes=[]" in repr(structure(realistic_user(1), m.User).phone_numbers[0])


def test_validation_errors_do_not_echo_values() -> None:
    with pytest.raises(ResponseValidationError) as info:
        structure({"jwt": ["eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", CANARY]}, m.Token)
    text = str(info.value) + repr(info.value.paths)
    assert CANARY not in text
    assert "eyJ" not in text


# --------------------------------------------------------------------------------------------
# Model surface
# --------------------------------------------------------------------------------------------


def test_models_are_slotted_keyword_only_attrs_classes() -> None:
    for name in m.__all__:
        obj = getattr(m, name)
        if isinstance(obj, type) and attrs.has(obj):
            assert "__slots__" in vars(obj), name
            assert all(a.kw_only for a in attrs.fields(obj)), name


def test_unknown_fields_is_excluded_from_repr_and_eq_everywhere() -> None:
    for name in m.__all__:
        obj = getattr(m, name)
        if isinstance(obj, type) and attrs.has(obj) and obj is not UnknownVerification:
            field = attrs.fields_dict(obj)["unknown_fields"]
            assert field.repr is False, name
            assert field.eq is False, name
            assert field.default is EMPTY_MAPPING, name


def test_every_public_name_is_documented() -> None:
    for name in m.__all__:
        obj = getattr(m, name)
        if isinstance(obj, type):
            assert (obj.__doc__ or "").strip(), name


# --------------------------------------------------------------------------------------------
# The fast path agrees with cattrs' own (detailed) hooks
# --------------------------------------------------------------------------------------------

DETAILED_ONLY = make_converter(fast_path=False)


def test_fast_path_and_cattrs_hooks_build_the_same_objects(
    envelope_payload: dict[str, Any],
) -> None:
    fast = CONVERTER.structure(envelope_payload, m.ClientWrappedSession)
    slow = DETAILED_ONLY.structure(envelope_payload, m.ClientWrappedSession)
    assert fast == slow
    assert repr(fast) == repr(slow)
    assert fast.response.user is not None
    assert slow.response.user is not None
    assert fast.response.user.unknown_fields == slow.response.user.unknown_fields


@pytest.mark.parametrize(("path", "bad", "expected"), STRICTNESS_CASES)
def test_fast_path_and_cattrs_hooks_report_the_same_errors(
    path: tuple[str, ...], bad: Any, expected: str
) -> None:
    session = realistic_session(1)
    target = session
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    reports = []
    for converter in (CONVERTER, DETAILED_ONLY):
        with pytest.raises(cattrs.BaseValidationError) as info:
            converter.structure(session, m.Session)
        reports.append(cattrs.transform_error(info.value))
    assert reports[0] == reports[1]


def test_inputs_the_fast_path_declines_still_structure() -> None:
    from collections import OrderedDict

    class Text(str):
        pass

    session = realistic_session(0)
    ordered = OrderedDict(session)  # a dict subclass: handled by the cattrs hook
    ordered["id"] = Text("sess_subclass")  # a str subclass: likewise
    result = structure(ordered, m.Session)
    assert result.id == "sess_subclass"
    assert result == structure({**session, "id": "sess_subclass"}, m.Session)


def test_models_pickle_and_deep_copy_with_their_unknown_fields(
    envelope_payload: dict[str, Any],
) -> None:
    envelope_payload["response"]["brand_new"] = {"x": 1}
    env = structure(envelope_payload, m.ClientWrappedSession)
    for clone in (pickle.loads(pickle.dumps(env)), copy.deepcopy(env)):
        assert clone == env
        assert clone.response.unknown_fields == {"brand_new": {"x": 1}}
        assert clone.response.status is m.SessionStatus.ACTIVE
        assert clone.client is not None
        assert clone.client.unknown_fields is EMPTY_MAPPING


# --------------------------------------------------------------------------------------------
# The ticket sign-in's answer (createSignIn, fapi-sign-in.yml; fapi-protocol.md §13)
# --------------------------------------------------------------------------------------------


def realistic_sign_in_envelope() -> dict[str, Any]:
    """The body of ``POST /v1/client/sign_ins`` (``strategy=ticket``) for a new device: the
    sign-in is complete and the client holds the one session it created (spec-valid, checked
    against fapi-sign-in.yml in test_models_spec)."""
    client = realistic_client(1)
    session = client["sessions"][0]
    user = session["user"]
    email = user["email_addresses"][0]
    client["last_authentication_strategy"] = "ticket"
    sign_in = {
        "object": "sign_in_attempt",
        "id": "sia_2b0Q8yZ5r3kPh1WmV7xLdAeTk",
        "status": "complete",
        "supported_identifiers": ["email_address", "passkey"],
        "supported_first_factors": [
            {"strategy": "ticket"},
            {
                "strategy": "email_code",
                "safe_identifier": "u***0.address0+clerk_test@example.com",
                "email_address_id": email["id"],
                "primary": True,
            },
            {"strategy": "passkey"},
        ],
        "supported_second_factors": None,
        "first_factor_verification": {
            "object": "verification_ticket",
            "status": "verified",
            "strategy": "ticket",
            "attempts": None,
            "expire_at": None,
        },
        "second_factor_verification": None,
        "identifier": email["email_address"],
        "user_data": {
            "first_name": user["first_name"],
            "last_name": user["last_name"],
            "image_url": user["image_url"],
            "has_image": True,
        },
        "created_session_id": session["id"],
        "abandon_at": NOW + 86_400_000,
        "client_trust_state": "new",
    }
    return {"response": sign_in, "client": client}


def test_sign_in_envelope_structures_into_the_right_classes() -> None:
    payload = realistic_sign_in_envelope()
    env = structure(copy.deepcopy(payload), Envelope[SignIn])

    assert isinstance(env, m.Envelope)
    sign_in = env.response
    assert isinstance(sign_in, m.SignIn)
    assert (sign_in.object, sign_in.id) == ("sign_in_attempt", "sia_2b0Q8yZ5r3kPh1WmV7xLdAeTk")
    assert sign_in.status is m.SignInStatus.COMPLETE
    assert sign_in.supported_identifiers == [
        m.SignInIdentifier.EMAIL_ADDRESS,
        m.SignInIdentifier.PASSKEY,
    ]
    assert [f.strategy for f in sign_in.supported_first_factors] == [
        m.SignInFactorStrategy.TICKET,
        m.SignInFactorStrategy.EMAIL_CODE,
        m.SignInFactorStrategy.PASSKEY,
    ]
    assert (
        sign_in.supported_first_factors[1].email_address_id
        == (payload["client"]["sessions"][0]["user"]["email_addresses"][0]["id"])
    )
    assert sign_in.supported_second_factors == []  # null → []
    verification = sign_in.first_factor_verification
    assert isinstance(verification, m.TicketVerification)
    assert verification.status is m.VerificationStatus.VERIFIED
    assert verification.strategy == "ticket"
    assert sign_in.second_factor_verification is None
    assert isinstance(sign_in.user_data, m.SignInUserData)
    assert sign_in.user_data.first_name == "Jane0"
    assert sign_in.client_trust_state is m.ClientTrustState.NEW
    assert sign_in.abandon_at == NOW + 86_400_000
    assert isinstance(env.client, m.Client)
    assert [s.id for s in env.client.sessions] == [sign_in.created_session_id]
    assert env.client.last_active_session_id == sign_in.created_session_id
    assert env.client.sign_in is None
    assert env.unknown_fields is EMPTY_MAPPING
    assert structure(copy.deepcopy(payload), m.ClientWrappedSignIn) == env


def test_sign_in_envelope_tolerates_unknown_fields_and_enum_values() -> None:
    """What a newer Clerk may send: new keys everywhere, new enum values, a verification
    without ``object`` (recognised by its strategy), an unknown verification variant, and the
    ``object`` value the spec does not list (it is a ``str``, not an enum)."""
    payload = realistic_sign_in_envelope()
    payload["brand_new_envelope_key"] = 1
    response = payload["response"]
    response.update(
        object="sign_in",
        status="needs_carrier_pigeon",
        supported_identifiers=["email_address", "carrier_pigeon"],
        client_trust_state="maybe",
        locale="fr-FR",  # not in the spec
    )
    response["supported_first_factors"].append({"strategy": "pigeon_code", "pigeon_id": "p_1"})
    response["first_factor_verification"] = {
        "status": "verified_twice",
        "strategy": "ticket",
        "attempts": 1,
        "expire_at": None,
        "nonce": "n",
    }
    unknown_variant = {"object": "verification_pigeon", "status": "verified", "strategy": "pigeon"}
    response["second_factor_verification"] = unknown_variant
    payload["client"]["sessions"][0]["status"] = "hibernating"
    payload["client"]["future"] = {"x": [1]}

    env = structure(copy.deepcopy(payload), Envelope[SignIn])
    sign_in = env.response
    assert dict(env.unknown_fields) == {"brand_new_envelope_key": 1}
    assert sign_in.object == "sign_in"
    assert dict(sign_in.unknown_fields) == {"locale": "fr-FR"}
    assert sign_in.status == "needs_carrier_pigeon"
    assert isinstance(sign_in.status, m.SignInStatus)
    assert not sign_in.status.is_known
    assert sign_in.supported_identifiers[0] is m.SignInIdentifier.EMAIL_ADDRESS
    assert sign_in.supported_identifiers[1] == "carrier_pigeon"
    assert not sign_in.supported_identifiers[1].is_known
    assert sign_in.client_trust_state == "maybe"
    assert not sign_in.client_trust_state.is_known
    pigeon = sign_in.supported_first_factors[-1]
    assert pigeon.strategy == "pigeon_code"
    assert not pigeon.strategy.is_known
    assert dict(pigeon.unknown_fields) == {"pigeon_id": "p_1"}
    ticket = sign_in.first_factor_verification
    assert isinstance(ticket, m.TicketVerification)  # no ``object``: recognised by strategy
    assert ticket.status == "verified_twice"
    assert not ticket.status.is_known
    assert ticket.attempts == 1
    assert dict(ticket.unknown_fields) == {"nonce": "n"}
    other = sign_in.second_factor_verification
    assert isinstance(other, UnknownVerification)
    assert other.raw == unknown_variant
    assert env.client is not None
    assert dict(env.client.unknown_fields) == {"future": {"x": [1]}}
    assert env.client.sessions[0].status == "hibernating"
    assert not env.client.sessions[0].status.is_known
    assert DETAILED_ONLY.structure(copy.deepcopy(payload), Envelope[SignIn]) == env


def test_sign_in_envelope_is_lenient_about_presence_but_needs_identity() -> None:
    env = structure({"response": {"object": "sign_in_attempt", "id": "sia_1"}}, Envelope[SignIn])
    assert env.client is None
    assert env.response.status is None
    assert env.response.supported_first_factors == []
    assert env.response.first_factor_verification is None
    with pytest.raises(ResponseValidationError) as info:
        structure({"response": {"object": "sign_in_attempt"}, "client": None}, Envelope[SignIn])
    assert info.value.paths == ["required field missing @ $.response.id"]
    with pytest.raises(ResponseValidationError) as info:
        structure({"response": None, "client": None}, Envelope[SignIn])
    assert info.value.paths == ["invalid type (expected SignIn) @ $.response"]
