"""Test support built from the spec: loading it, validating against it, generating from it.

- :func:`require_spec` loads ``fapi-sessions.yml`` (through the generator's ``find_spec`` /
  ``load_spec``) or skips the calling test with the path it looked at.
- :class:`SchemaStrategies` turns the spec's schemas into hypothesis strategies of JSON payloads
  that the spec accepts: ``$ref``, ``allOf``, ``oneOf`` (with ``discriminator``), schema-level
  ``anyOf``, ``nullable``, ``enum``, ``pattern`` and ``required`` are honoured; optional
  properties are randomly omitted; arrays are short so examples stay small and fast.
- :func:`spec_validator` validates a payload against a schema of the spec (OAS 3.0).
- ``realistic_*`` build a deterministic, spec-valid, full-size payload (a signed-in client with
  three sessions) for structuring tests and timing.

Where the spec's letter and its evident intent differ, validation follows the intent:

- ``nullable: true`` next to ``allOf``/``oneOf`` (e.g. ``Client.sign_in``) allows ``null``. By the
  letter of OAS 3.0.3, ``nullable`` does not reach into the ``$ref``. That reading would make the
  ``sign_in: null`` of every signed-in client invalid.
- A nullable ``enum`` (``SignIn.client_trust_state``) allows ``null`` although the enum does
  not list it.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import strategies as st

from tests.conftest import spec_missing

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATOR_PATH = REPO_ROOT / "tools" / "generate_models.py"
SCHEMAS = "#/components/schemas/"
SPEC_URI = "urn:clerk-fapi-sessions-spec"

# --------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------


@functools.cache
def generator() -> ModuleType:
    """``tools/generate_models.py`` as a module (``tools`` is not a package)."""
    module_spec = importlib.util.spec_from_file_location("generate_models", GENERATOR_PATH)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["generate_models"] = module  # dataclasses look their module up
    module_spec.loader.exec_module(module)
    return module


@functools.cache
def _load_spec() -> dict[str, Any] | None:
    gen = generator()
    try:
        return gen.load_spec()  # type: ignore[no-any-return]
    except gen.SpecNotFoundError:
        return None


def spec_path() -> Path:
    return generator().find_spec()  # type: ignore[no-any-return]


def require_spec() -> dict[str, Any]:
    """The parsed spec, or skip the calling test (the spec lives outside this repo)."""
    spec = _load_spec()
    if spec is None:
        spec_missing(
            f"spec not found at {spec_path()}: set CLERK_SESSIONS_SPEC_DIR (or "
            "CLERK_SESSIONS_SPEC) or put ../shared/spec/fapi-sessions.yml beside the repo"
        )
    return spec


def schema_name(ref: str) -> str:
    assert ref.startswith(SCHEMAS), ref
    return ref[len(SCHEMAS) :]


# --------------------------------------------------------------------------------------------
# Validation against the spec
# --------------------------------------------------------------------------------------------


def _nullable_intent(node: Any) -> Any:
    """Rewrite ``nullable`` + ``allOf``/``oneOf`` so that ``null`` is accepted (the intent)."""
    if isinstance(node, list):
        return [_nullable_intent(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_intent(value) for key, value in node.items()}
    if node.get("nullable") is True and "enum" in node and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]  # e.g. client_trust_state: a nullable enum
    nullable = node.get("nullable") is True or any(
        member == {"type": "object", "nullable": True} for member in node.get("allOf", ())
    )
    if nullable and ("allOf" in node or "oneOf" in node):
        rest = {k: v for k, v in node.items() if k not in ("nullable", "type")}
        return {"oneOf": [{"enum": [None]}, rest]}
    return node


@functools.cache
def _validator_parts() -> tuple[Any, Any]:
    from openapi_schema_validator import OAS30Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    spec = _nullable_intent(require_spec())
    resource = Resource.from_contents(spec, default_specification=DRAFT4)
    registry = Registry().with_resource(SPEC_URI, resource)
    return OAS30Validator, registry


def spec_validator(schema: str | Mapping[str, Any]) -> Any:
    """An OAS 3.0 validator for a component schema (by name) or an inline schema."""
    validator_cls, registry = _validator_parts()
    if isinstance(schema, str):
        schema = {"$ref": f"{SPEC_URI}{SCHEMAS}{schema}"}
    return validator_cls(dict(schema), registry=registry)


def validation_errors(payload: Any, schema: str | Mapping[str, Any]) -> list[str]:
    """Every spec violation of ``payload`` as ``"$.a.b: message"`` lines ([] when valid)."""
    errors = []
    for error in spec_validator(schema).iter_errors(payload):
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        errors.append(f"{path}: {error.message[:200]}")
    return errors


# --------------------------------------------------------------------------------------------
# Hypothesis strategies from the schemas
# --------------------------------------------------------------------------------------------

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31),
    st.text(max_size=8),
)
FREE_FORM = st.dictionaries(st.text(min_size=1, max_size=6), JSON_LEAVES, max_size=3)
INT64 = st.integers(min_value=-(2**53), max_value=2**53)
TEXT = st.text(max_size=12)


class SchemaStrategies:
    """Hypothesis strategies of payloads the spec accepts, one per schema (cached)."""

    def __init__(self, spec: Mapping[str, Any], *, max_items: int = 2) -> None:
        self.schemas: Mapping[str, Any] = spec["components"]["schemas"]
        self.max_items = max_items
        self._cache: dict[str, st.SearchStrategy[Any]] = {}

    def named(self, name: str) -> st.SearchStrategy[Any]:
        if name not in self._cache:
            self._cache[name] = st.deferred(lambda: self.of(self.schemas[name]))
        return self._cache[name]

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema_name(schema["$ref"])]
        return schema

    def of(self, schema: Mapping[str, Any], force: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
        """Payloads for ``schema``; ``force`` lists properties that must be present."""
        if "$ref" in schema:
            if force:
                return self.of(self.resolve(schema), force)
            return self.named(schema_name(schema["$ref"]))
        nullable = schema.get("nullable") is True
        if "allOf" in schema:
            trivial = {"type": "object", "nullable": True}
            nullable = nullable or any(m == trivial for m in schema["allOf"])
            merged = self.merge_all_of(schema["allOf"])
            base = self.object_of(merged, force)
        elif "oneOf" in schema:
            prop = (schema.get("discriminator") or {}).get("propertyName")
            forced = (*force, prop) if prop else force
            base = st.one_of([self.of(member, forced) for member in schema["oneOf"]])
        elif "enum" in schema:
            base = st.sampled_from([v for v in schema["enum"] if v is not None])
        else:
            base = self.typed(schema, force)
        return st.one_of(st.none(), base) if nullable else base

    def typed(self, schema: Mapping[str, Any], force: tuple[str, ...]) -> st.SearchStrategy[Any]:
        kind = schema.get("type")
        if kind == "string":
            if "pattern" in schema:
                return st.from_regex(schema["pattern"], fullmatch=True)
            return TEXT
        if kind == "integer":
            return INT64
        if kind == "number":
            return st.floats(allow_nan=False, allow_infinity=False, width=32)
        if kind == "boolean":
            return st.booleans()
        if kind == "array":
            return st.lists(self.of(schema.get("items", {})), max_size=self.max_items)
        if kind == "object" and "properties" in schema:
            return self.object_of(schema, force)
        if kind == "object" or not schema:
            return FREE_FORM
        raise NotImplementedError(f"no strategy for schema {dict(schema)!r}")

    def merge_all_of(self, members: list[Mapping[str, Any]]) -> dict[str, Any]:
        """One object schema with the properties and requirements of every member."""
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for member in members:
            member = self.resolve(member)
            if "allOf" in member:
                member = self.merge_all_of(member["allOf"])
            merged["properties"].update(member.get("properties", {}))
            merged["required"].extend(member.get("required", ()))
            if "anyOf" in member:
                merged.setdefault("anyOf", []).extend(member["anyOf"])
        return merged

    def object_of(
        self, schema: Mapping[str, Any], force: tuple[str, ...]
    ) -> st.SearchStrategy[dict[str, Any]]:
        alternatives = [alt.get("required", ()) for alt in schema.get("anyOf", ())]
        if alternatives:  # schema-level anyOf of required sets: satisfy one of them
            return st.one_of([self.object_with(schema, (*force, *alt)) for alt in alternatives])
        return self.object_with(schema, force)

    def object_with(
        self, schema: Mapping[str, Any], force: tuple[str, ...]
    ) -> st.SearchStrategy[dict[str, Any]]:
        props: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ())) | set(force)
        mandatory = {
            # A required property the spec never defines (Client.User.enterprise_accounts):
            # anything goes; the models keep it in unknown_fields.
            name: self.of(props[name]) if name in props else st.lists(FREE_FORM, max_size=1)
            for name in sorted(required)
        }
        optional = {name: self.of(s) for name, s in props.items() if name not in required}
        return st.fixed_dictionaries(mandatory, optional=optional)


# --------------------------------------------------------------------------------------------
# A realistic, full, spec-valid payload: a client with three signed-in sessions
# --------------------------------------------------------------------------------------------

NOW = 1_764_000_000_000
JWT = (
    "eyJhbGciOiJSUzI1NiIsImNhdCI6ImNsX0I3ZDRQRDExMUFBQSIsImtpZCI6Imluc18yOWR6bUdmQ3JydzdSMDRa"
    "VFFZRDNKSTB5ZEYiLCJ0eXAiOiJKV1QifQ."
    + "eyJhenAiOiJodHRwczovL2V4YW1wbGUuY29tIiwiZXhwIjoxNzY0MDAwMDYwLCJmdmEiOlswLC0xXSwiaWF0Ijox" * 6
    + "."
    + "c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU" * 4
)


def _otp(strategy: str) -> dict[str, Any]:
    return {
        "object": "verification_otp",
        "status": "verified",
        "strategy": strategy,
        "attempts": 1,
        "expire_at": NOW + 600_000,
    }


def realistic_email(n: int, i: int) -> dict[str, Any]:
    return {
        "id": f"idn_2b{n}{i}EmailQ8yZ5r3kPh1WmV7xLdA",
        "object": "email_address",
        "email_address": f"user{n}.address{i}+clerk_test@example.com",
        "reserved": False,
        "verification": _otp("email_code"),
        "linked_to": [{"type": "oauth_google", "id": f"idn_2b{n}OauthLinkQ8yZ5r3kPh1W"}],
        "matches_sso_connection": False,
        "created_at": NOW - 86_400_000,
        "updated_at": NOW - 3_600_000,
    }


def realistic_phone(n: int) -> dict[str, Any]:
    return {
        "id": f"idn_2b{n}PhoneQ8yZ5r3kPh1WmV7xLdA",
        "object": "phone_number",
        "phone_number": f"+1201555010{n}",
        "reserved_for_second_factor": True,
        "default_second_factor": True,
        "reserved": False,
        "verification": _otp("phone_code"),
        "linked_to": [],
        "backup_codes": None,
        "created_at": NOW - 86_400_000,
        "updated_at": NOW - 3_600_000,
    }


def realistic_external_account(n: int) -> dict[str, Any]:
    return {
        "object": "external_account",
        "id": f"eac_2b{n}GoogleQ8yZ5r3kPh1WmV7xLdA",
        "provider": "oauth_google",
        "identification_id": f"idn_2b{n}OauthLinkQ8yZ5r3kPh1W",
        "provider_user_id": f"10{n}4857329847329847321",
        "approved_scopes": "email https://www.googleapis.com/auth/userinfo.email openid profile",
        "email_address": f"user{n}.address0+clerk_test@example.com",
        "email_address_verified": True,
        "first_name": f"Jane{n}",
        "last_name": "Doe",
        "avatar_url": f"https://lh3.googleusercontent.com/a/ACg8ocK{n}abcdefghijklmnop=s1000-c",
        "image_url": f"https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJodHRwczovL2xoMy{n}",
        "username": None,
        "phone_number": None,
        "public_metadata": {},
        "label": None,
        "created_at": NOW - 86_400_000,
        "updated_at": NOW - 3_600_000,
        "verification": {
            "object": "verification_oauth",
            "status": "verified",
            "strategy": "oauth_google",
            "external_verification_redirect_url": "",
            "error": None,
            "expire_at": NOW + 600_000,
            "attempts": None,
            "verified_at_client": None,
        },
    }


def realistic_public_user_data(n: int) -> dict[str, Any]:
    return {
        "first_name": f"Jane{n}",
        "last_name": "Doe",
        "image_url": f"https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJodHRwczovL2{n}",
        "has_image": True,
        "identifier": f"user{n}.address0+clerk_test@example.com",
        "profile_image_url": f"https://images.clerk.dev/oauth_google/img_2b{n}Q8yZ5r3kPh1Wm",
        "user_id": f"user_2b{n}Q8yZ5r3kPh1WmV7xLdAe",
        "username": None,
        "banned": False,
        "deprovisioned": False,
    }


def realistic_membership(n: int) -> dict[str, Any]:
    return {
        "id": f"orgmem_2b{n}Q8yZ5r3kPh1WmV7xLdA",
        "object": "organization_membership",
        "public_metadata": {},
        "role": "org:admin",
        "role_name": "Admin",
        "permissions": [
            "org:sys_profile:manage",
            "org:sys_profile:delete",
            "org:sys_memberships:read",
            "org:sys_memberships:manage",
            "org:sys_domains:read",
            "org:sys_domains:manage",
        ],
        "created_at": NOW - 86_400_000,
        "updated_at": NOW - 3_600_000,
        "organization": {
            "id": f"org_2b{n}Q8yZ5r3kPh1WmV7xLdA",
            "object": "organization",
            "name": f"Acme {n}",
            "slug": f"acme-{n}",
            "image_url": f"https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCIsImlpZCI6Imluc18y{n}",
            "has_image": False,
            "members_count": 3,
            "pending_invitations_count": 0,
            "max_allowed_memberships": 5,
            "admin_delete_enabled": True,
            "self_serve_sso_enabled": False,
            "public_metadata": {"plan": "pro"},
            "created_at": NOW - 86_400_000,
            "updated_at": NOW - 3_600_000,
            "logo_url": None,
        },
        "public_user_data": realistic_public_user_data(n),
    }


def realistic_user(n: int) -> dict[str, Any]:
    """A full user: 2 email addresses, 1 phone, 1 external account, 1 org membership."""
    return {
        "id": f"user_2b{n}Q8yZ5r3kPh1WmV7xLdAe",
        "object": "user",
        "username": None,
        "first_name": f"Jane{n}",
        "last_name": "Doe",
        "image_url": f"https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJodHRwczovL2{n}",
        "has_image": True,
        "primary_email_address_id": f"idn_2b{n}0EmailQ8yZ5r3kPh1WmV7xLdA",
        "primary_phone_number_id": f"idn_2b{n}PhoneQ8yZ5r3kPh1WmV7xLdA",
        "primary_web3_wallet_id": None,
        "password_enabled": True,
        "two_factor_enabled": True,
        "totp_enabled": False,
        "backup_code_enabled": False,
        "email_addresses": [realistic_email(n, 0), realistic_email(n, 1)],
        "phone_numbers": [realistic_phone(n)],
        "web3_wallets": [],
        "passkeys": [],
        "organization_memberships": [realistic_membership(n)],
        "external_accounts": [realistic_external_account(n)],
        "saml_accounts": [],
        "enterprise_accounts": [],  # required by the spec, never defined: see README
        "password_last_updated_at": NOW - 86_400_000,
        "public_metadata": {"role": "admin", "onboarded": True},
        "private_metadata": {},
        "unsafe_metadata": {"theme": "dark"},
        "external_id": None,
        "last_sign_in_at": NOW - 60_000,
        "banned": False,
        "locked": False,
        "deprovisioned": False,
        "lockout_expires_in_seconds": None,
        "verification_attempts_remaining": 100,
        "created_at": NOW - 86_400_000,
        "updated_at": NOW - 60_000,
        "delete_self_enabled": True,
        "create_organization_enabled": True,
        "create_organizations_limit": 0,
        "last_active_at": NOW,
        "mfa_enabled_at": NOW - 86_400_000,
        "mfa_disabled_at": None,
        "legal_accepted_at": None,
        "profile_image_url": f"https://images.clerk.dev/oauth_google/img_2b{n}Q8yZ5r3kPh1Wm",
    }


def realistic_session(n: int) -> dict[str, Any]:
    return {
        "id": f"sess_2b{n}Q8yZ5r3kPh1WmV7xLdAe",
        "object": "session",
        "status": "active",
        "expire_at": NOW + 7 * 86_400_000,
        "abandon_at": NOW + 30 * 86_400_000,
        "last_active_at": NOW,
        "last_active_token": {"object": "token", "jwt": JWT},
        "actor": None,
        "tasks": [],
        "last_active_organization_id": f"org_2b{n}Q8yZ5r3kPh1WmV7xLdA",
        "user": realistic_user(n),
        "public_user_data": realistic_public_user_data(n),
        "factor_verification_age": [0, -1],
        "created_at": NOW - 86_400_000,
        "updated_at": NOW,
    }


def realistic_client(sessions: int = 3) -> dict[str, Any]:
    return {
        "object": "client",
        "id": "client_2b0Q8yZ5r3kPh1WmV7xLdAe",
        "sessions": [realistic_session(n) for n in range(sessions)],
        "sign_in": None,
        "sign_up": None,
        "last_active_session_id": "sess_2b0Q8yZ5r3kPh1WmV7xLdAe",
        "last_authentication_strategy": "oauth_google",
        "cookie_expires_at": NOW + 365 * 86_400_000,
        "captcha_bypass": False,
        "created_at": NOW - 86_400_000,
        "updated_at": NOW,
    }


def realistic_get_session() -> dict[str, Any]:
    """The body of ``getSession`` for a client with three sessions (a fresh copy)."""
    client = realistic_client()
    return {"response": copy.deepcopy(client["sessions"][0]), "client": client}
