"""Contract tests: the operation table, the requests we send and the fixtures we answer with,
all checked against Clerk's published spec (``../shared/spec/fapi-sessions.yml``).

Skipped, with the reason, when the spec is not beside the repository.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import orjson
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from clerk_sessions import AsyncClerkSessions, Envelope, Session, Token
from clerk_sessions._operations import OPERATIONS, Operation
from clerk_sessions.models import Client, SessionReverification

from . import payloads
from .conftest import FakeFrontendAPI
from .test_operations import CALLS, Call

SPEC_HOST = "https://example-destined-camel-13.clerk.accounts.dev"
PER_CALL_OPTIONS = ["timeout", "max_retries", "extra_headers"]

# Which model each of the spec's 200 responses becomes.
RESPONSE_MODELS: dict[str, Any] = {
    "#/components/responses/Client.Session": Envelope[Session],
    "#/components/responses/Client.TouchSession": Envelope[Session],
    "#/components/responses/Client.DeleteSession": Envelope[Client | None],
    "#/components/responses/Client.SessionReverification": Envelope[SessionReverification],
    "inline {jwt}": Token,
}


def nullable_compositions(node: Any) -> Any:
    """Read ``nullable: true`` beside ``allOf``/``oneOf`` as the spec's authors mean it.

    OAS 3.0 applies ``nullable`` only to a ``type`` at the same level, so ``{nullable: true,
    allOf: [Client.SignIn-2]}`` strictly rejects ``null`` (the composed schema is not
    nullable). Clerk writes it for fields that are null in real responses; OAS 3.1 would say
    ``type: [object, "null"]``. Only this is rewritten; every other rule stays as published.
    """
    if isinstance(node, list):
        return [nullable_compositions(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: nullable_compositions(value) for key, value in node.items()}
    if node.get("nullable") and any(key in node for key in ("allOf", "oneOf", "anyOf")):
        inner = {key: value for key, value in node.items() if key != "nullable"}
        return {"nullable": True, "anyOf": [inner, {"enum": [None], "nullable": True}]}
    return node


@pytest.fixture(scope="module")
def openapi(spec: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_dict(nullable_compositions(spec))


def test_the_validator_still_rejects_what_the_spec_rejects(openapi: OpenAPI) -> None:
    request = MockRequest(SPEC_HOST, "get", "/v1/client/sessions/sess_1", args={"_is_native": "1"})
    body = payloads.session_envelope()
    body["response"]["status"] = 7
    with pytest.raises(Exception, match="not valid"):
        openapi.validate_response(
            request,
            MockResponse(orjson.dumps(body), status_code=200, content_type="application/json"),
        )
    bad = MockRequest(
        SPEC_HOST,
        "post",
        "/v1/client/sessions/s/verify",
        args={"_is_native": "1"},
        data=b"level=bogus",
        content_type="application/x-www-form-urlencoded",
    )
    with pytest.raises(Exception, match="not valid"):
        openapi.validate_request(bad)


def spec_operations(spec: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    found = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            found[op["operationId"]] = (method.upper(), path, op)
    return found


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_the_table_has_exactly_the_specs_operations(spec: dict[str, Any]) -> None:
    assert {op.operation_id for op in OPERATIONS.values()} == set(spec_operations(spec))
    for op in OPERATIONS.values():
        assert op.name == snake_case(op.operation_id)


@pytest.mark.parametrize("op", OPERATIONS.values(), ids=lambda op: op.name)
def test_each_row_matches_the_spec(op: Operation[Any], spec: dict[str, Any]) -> None:
    method, path, spec_op = spec_operations(spec)[op.operation_id]
    assert (op.method, op.path) == (method, path)
    params = spec_op.get("parameters", [])
    assert list(op.path_params) == [p["name"] for p in params if p["in"] == "path"]
    assert sorted(op.headers.values()) == sorted(p["name"] for p in params if p["in"] == "header")
    schema = (
        spec_op.get("requestBody", {})
        .get("content", {})
        .get("application/x-www-form-urlencoded", {})
        .get("schema", {})
    )
    assert list(op.body) == list(schema.get("properties", {}))
    assert op.required_body == frozenset(schema.get("required", []))
    ok = spec_op["responses"]["200"]
    key = ok.get("$ref", "inline {jwt}")
    assert RESPONSE_MODELS[key] == op.response_type


@pytest.mark.parametrize("op", OPERATIONS.values(), ids=lambda op: op.name)
def test_each_method_signature_follows_the_table(op: Operation[Any]) -> None:
    """Path parameters positional, body fields (and header params) keyword-only, then options."""
    params = list(inspect.signature(getattr(AsyncClerkSessions, op.name)).parameters.values())[1:]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    keyword = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    assert positional == list(op.path_params)
    assert keyword == [*op.body, *op.headers, *PER_CALL_OPTIONS]


def _validate(openapi: OpenAPI, spec: dict[str, Any], call: Call, fapi: FakeFrontendAPI) -> None:
    sent = fapi.last
    request = MockRequest(
        SPEC_HOST,
        sent.method.lower(),
        sent.path,
        args=dict(sent.query),
        headers=dict(sent.headers),
        data=sent.body or None,
        content_type=sent.headers.get("Content-Type", "application/json"),
    )
    openapi.validate_request(request)
    # The spec's request schemas allow unknown keys; we must still only send known ones.
    _, _, spec_op = spec_operations(spec)[OPERATIONS[call.method].operation_id]
    properties = (
        spec_op.get("requestBody", {})
        .get("content", {})
        .get("application/x-www-form-urlencoded", {})
        .get("schema", {})
        .get("properties", {})
    )
    assert {key for key, _ in sent.form} <= set(properties)
    response = MockResponse(
        orjson.dumps(call.reply), status_code=200, content_type="application/json"
    )
    openapi.validate_response(request, response)


@pytest.mark.anyio
@pytest.mark.parametrize("call", CALLS, ids=lambda c: c.id)
async def test_every_request_we_send_and_every_fixture_we_answer_with_is_valid(
    call: Call,
    openapi: OpenAPI,
    spec: dict[str, Any],
    fapi: FakeFrontendAPI,
    clerk: AsyncClerkSessions,
) -> None:
    fapi.reply(json=call.reply)
    await getattr(clerk, call.method)(*call.args, **call.kwargs)
    _validate(openapi, spec, call, fapi)


def test_error_fixtures_are_valid_clerk_errors(openapi: OpenAPI) -> None:
    request = MockRequest(SPEC_HOST, "get", "/v1/client/sessions/sess_1", args={"_is_native": "1"})
    for body in (
        payloads.clerk_errors(),
        payloads.clerk_errors(meta={"param_name": "x"}, trace_id=None),
    ):
        openapi.validate_response(
            request,
            MockResponse(orjson.dumps(body), status_code=404, content_type="application/json"),
        )
