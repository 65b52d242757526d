"""The benchmark bodies are what the Frontend API could send: valid against the spec, and
structured by the SDK without falling back to the detailed (slow) path."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from benchmarks import payloads
from clerk_sessions._converter import make_converter, structure
from clerk_sessions.models import Envelope, Session, SessionReverification, Token

from .test_contract import SPEC_HOST, nullable_compositions

BODIES = {
    "session": ("get", "/v1/client/sessions/sess_0", Envelope[Session]),
    "token": ("post", "/v1/client/sessions/sess_0/tokens", Token),
    "reverification": (
        "post",
        "/v1/client/sessions/sess_0/verify",
        Envelope[SessionReverification],
    ),
}


@pytest.fixture(scope="module")
def openapi(spec: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_dict(nullable_compositions(spec))


@pytest.mark.parametrize("name", BODIES)
def test_each_body_is_valid_against_the_spec(name: str, openapi: OpenAPI) -> None:
    method, path, _ = BODIES[name]
    request = MockRequest(SPEC_HOST, method, path, args={"_is_native": "1"})
    if method == "post":
        request = MockRequest(
            SPEC_HOST,
            method,
            path,
            args={"_is_native": "1"},
            data=b"level=second_factor" if name == "reverification" else b"",
            content_type="application/x-www-form-urlencoded",
        )
    body = payloads.encoded()[name]
    openapi.validate_response(
        request, MockResponse(body, status_code=200, content_type="application/json")
    )


@pytest.mark.parametrize("name", BODIES)
def test_each_body_structures_like_the_detailed_hooks(name: str) -> None:
    import orjson

    _, _, tp = BODIES[name]
    data = orjson.loads(payloads.encoded()[name])
    detailed = make_converter(fast_path=False)
    assert structure(data, tp) == detailed.structure(data, tp)


def test_the_session_body_has_the_documented_size_and_shape() -> None:
    body = payloads.encoded()["session"]
    assert 22_000 <= len(body) <= 24_500  # "23 KB" in the README's Performance table
    envelope = structure(__import__("orjson").loads(body), Envelope[Session])
    assert envelope.client is not None
    assert [s.id for s in envelope.client.sessions] == ["sess_0", "sess_1", "sess_2"]
    assert all(s.user is not None for s in envelope.client.sessions)
