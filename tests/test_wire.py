"""The pure core: request building, rotation and Retry-After parsing, with no server."""

from __future__ import annotations

import enum

import pytest

from clerk_sessions import UNSET
from clerk_sessions._errors import BadRequestError
from clerk_sessions._operations import CREATE_SESSION_TOKEN, GET_SESSION, TOUCH_SESSION
from clerk_sessions._redact import REDACTED
from clerk_sessions._retry import parse_retry_after
from clerk_sessions._wire import api_error, build_request, encode_form_value, rotated_client_token

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "5"}, 5.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": " 12 "}, 12.0),
        ({"Retry-After": "-3"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:50 GMT"}, 30.0),  # NOW + 30 s
        ({"Retry-After": "Tue, 14 Nov 2023 22:12:00 GMT"}, 0.0),  # in the past
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),  # the precise header wins
        ({"retry-after-ms": "x", "Retry-After": "9"}, 9.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (False, None)),
        ({"Authorization": "new"}, (True, "new")),
        ({"Authorization": "Bearer abc"}, (True, "Bearer abc")),
        ({"Authorization": " raw-with-spaces "}, (True, " raw-with-spaces ")),
        ({"Authorization": ""}, (True, None)),
        ({"Authorization": "Bearer"}, (True, None)),
        ({"Authorization": "BEARER "}, (True, None)),
    ],
)
def test_rotated_client_token(headers: dict[str, str], expected: tuple[bool, str | None]) -> None:
    assert rotated_client_token(headers) == expected


class Color(str, enum.Enum):
    RED = "red"


@pytest.mark.parametrize(("value", "encoded"), [(None, ""), ("x", "x"), (Color.RED, "red")])
def test_encode_form_value(value: object, encoded: str) -> None:
    assert encode_form_value("f", value) == encoded


@pytest.mark.parametrize("value", [True, False, 7, 1.5, b"x"])
def test_a_caller_field_is_text_a_bool_or_number_is_refused(value: object) -> None:
    """``organization_id=True`` would go out as ``true``: refused before any I/O."""
    with pytest.raises(TypeError, match="organization_id must be a str or None"):
        encode_form_value("organization_id", value)


@pytest.mark.parametrize(("value", "encoded"), [(True, "true"), (False, "false")])
def test_the_sdks_own_protocol_fields_may_be_booleans(value: bool, encoded: str) -> None:
    assert encode_form_value("force_origin", value, protocol=True) == encoded


def test_build_request_is_pure_and_complete() -> None:
    request = build_request(
        TOUCH_SESSION,
        "https://clerk.example.com/proxy",
        {"session_id": "sess_1"},
        {"active_organization_id": None, "intent": UNSET},
        client_token="tok",
        headers={"Clerk-API-Version": "v"},
    )
    assert request.method == "POST"
    assert (
        request.url
        == "https://clerk.example.com/proxy/v1/client/sessions/sess_1/touch?_is_native=1"
    )
    assert request.body == b"active_organization_id="
    assert dict(request.headers) == {
        "Clerk-API-Version": "v",
        "Authorization": "tok",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert "tok" not in repr(request)


def test_get_has_no_body_and_no_content_type() -> None:
    request = build_request(
        GET_SESSION, "https://h", {"session_id": "s"}, {}, client_token=None, headers={}
    )
    assert request.body is None
    assert request.headers == {"Authorization": ""}


def test_an_empty_body_post_still_declares_form_encoding() -> None:
    request = build_request(
        CREATE_SESSION_TOKEN, "https://h", {"session_id": "s"}, {}, client_token="t", headers={}
    )
    assert request.body == b""
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_the_environment_proxy_is_read_once_per_client_and_honours_no_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clerk_sessions._config import proxy_for

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "skip.example.com")
    assert proxy_for("https://clerk.example.com") == "http://proxy.internal:3128"
    assert proxy_for("https://skip.example.com/__clerk") is None
    assert proxy_for("http://127.0.0.1:8080") is None  # loopback never goes through a proxy
    monkeypatch.delenv("HTTPS_PROXY")
    assert proxy_for("https://clerk.example.com") is None


def test_a_rotated_token_with_a_control_character_is_not_taken() -> None:
    """A garbled Authorization header (a proxy, a fuzzer) must not become the next request's
    header, which aiohttp would refuse with a bare ValueError."""
    from clerk_sessions._wire import rotated_client_token

    assert rotated_client_token({"Authorization": "tok\x08en"}) == (False, None)
    assert rotated_client_token({"Authorization": "token"}) == (True, "token")


def test_an_error_body_nested_as_deep_as_json_allows_still_gives_a_redacted_typed_error() -> None:
    # orjson parses up to 1,024 levels; redacting meta must not hit Python's recursion limit.
    depth = 1_000
    meta = '{"a":' * depth + '"leaked canary-secret"' + "}" * depth
    body = f'{{"errors":[{{"code":"c","message":"m","meta":{meta}}}]}}'.encode()

    error = api_error(GET_SESSION, 400, {}, body, secrets=("canary-secret",), now=0.0)

    assert isinstance(error, BadRequestError)
    inner = error.errors[0].meta
    for _ in range(depth):
        inner = inner["a"]
    assert inner == f"leaked {REDACTED}"  # redacted at the bottom
