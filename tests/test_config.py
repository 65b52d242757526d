"""Where a client sends requests — read top to bottom as documentation of the precedence rule.

The first of these that is given wins:

1. the ``frontend_api_url`` argument;
2. the ``publishable_key`` argument;
3. the ``CLERK_FRONTEND_API_URL`` environment variable;
4. the ``CLERK_PUBLISHABLE_KEY`` environment variable.

Arguments always beat the environment, so an environment variable can never send the client
token to a host other than the one the caller named. ``resolve_base_url`` is a pure function:
most tests pass it an explicit ``environ`` mapping; the last ones go through the clients.
"""

from __future__ import annotations

import pytest

from clerk_sessions import ConfigurationError
from clerk_sessions._config import resolve_base_url

from .conftest import MakeClerk

KEY = "pk_live_Y2xlcmsubW9paW8uY28k"  # decodes to clerk.moiio.co
KEY_HOST = "https://clerk.moiio.co"
ENV_KEY = "pk_test_YWxsb3dlZC1sZW1taW5nLTkuY2xlcmsuYWNjb3VudHMuZGV2JA"
ENV_KEY_HOST = "https://allowed-lemming-9.clerk.accounts.dev"
URL = "https://example.com/__clerk"  # a proxy the caller names
ENV_URL = "https://clerk.from-the-environment.example"
SECRET_KEY = "sk_test_abc123"

BOTH_ENV = {"CLERK_FRONTEND_API_URL": ENV_URL, "CLERK_PUBLISHABLE_KEY": ENV_KEY}


# -- the four levels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("publishable_key", "frontend_api_url", "environ", "expected"),
    [
        pytest.param(KEY, URL, BOTH_ENV, URL, id="1: the URL argument beats everything"),
        pytest.param(KEY, None, BOTH_ENV, KEY_HOST, id="2: the key argument beats both env vars"),
        pytest.param(None, None, BOTH_ENV, ENV_URL, id="3: the env URL beats the env key"),
        pytest.param(
            None,
            None,
            {"CLERK_PUBLISHABLE_KEY": ENV_KEY},
            ENV_KEY_HOST,
            id="4: the env key when nothing else is given",
        ),
    ],
)
def test_the_first_configured_source_wins(
    publishable_key: str | None,
    frontend_api_url: str | None,
    environ: dict[str, str],
    expected: str,
) -> None:
    assert resolve_base_url(publishable_key, frontend_api_url, environ) == expected


def test_the_url_argument_beats_the_key_argument() -> None:
    assert resolve_base_url(KEY, URL, {}) == URL


def test_the_url_argument_beats_the_env_url() -> None:
    assert resolve_base_url(None, URL, {"CLERK_FRONTEND_API_URL": ENV_URL}) == URL


def test_the_key_argument_beats_the_env_url_alone() -> None:
    # The case that used to go wrong: the token went to the env host, not the key's host.
    assert resolve_base_url(KEY, None, {"CLERK_FRONTEND_API_URL": ENV_URL}) == KEY_HOST


# -- validation of what is overridden --------------------------------------------------------


def test_a_key_argument_is_validated_even_when_the_url_argument_wins() -> None:
    with pytest.raises(ConfigurationError, match="secret key"):
        resolve_base_url(SECRET_KEY, URL, {})


@pytest.mark.parametrize(
    ("publishable_key", "frontend_api_url", "expected"),
    [(KEY, None, KEY_HOST), (None, URL, URL)],
    ids=["key argument", "URL argument"],
)
def test_the_environment_is_ignored_when_an_argument_is_given(
    publishable_key: str | None, frontend_api_url: str | None, expected: str
) -> None:
    # Neither env value is valid; neither is read, so neither can fail construction.
    environ = {"CLERK_PUBLISHABLE_KEY": SECRET_KEY, "CLERK_FRONTEND_API_URL": "http://evil.example"}
    assert resolve_base_url(publishable_key, frontend_api_url, environ) == expected


def test_the_env_key_is_validated_when_the_environment_configures_the_client() -> None:
    environ = {"CLERK_FRONTEND_API_URL": ENV_URL, "CLERK_PUBLISHABLE_KEY": SECRET_KEY}
    with pytest.raises(ConfigurationError, match="secret key"):
        resolve_base_url(None, None, environ)


def test_an_env_url_is_validated_like_an_argument() -> None:
    with pytest.raises(ConfigurationError, match="plain http"):
        resolve_base_url(None, None, {"CLERK_FRONTEND_API_URL": "http://clerk.example.com"})


# -- empty values ----------------------------------------------------------------------------


def test_an_empty_environment_variable_counts_as_unset() -> None:
    environ = {"CLERK_FRONTEND_API_URL": "", "CLERK_PUBLISHABLE_KEY": ENV_KEY}
    assert resolve_base_url(None, None, environ) == ENV_KEY_HOST
    environ = {"CLERK_FRONTEND_API_URL": ENV_URL, "CLERK_PUBLISHABLE_KEY": "  "}
    assert resolve_base_url(None, None, environ) == ENV_URL


@pytest.mark.parametrize(
    ("publishable_key", "frontend_api_url", "reason"),
    [("", None, "missing"), (None, "", "absolute http"), (KEY, " ", "absolute http")],
)
def test_an_empty_argument_is_an_error_not_a_fallback_to_the_environment(
    publishable_key: str | None, frontend_api_url: str | None, reason: str
) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        resolve_base_url(publishable_key, frontend_api_url, BOTH_ENV)


def test_nothing_configured_names_both_arguments_and_both_variables() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_base_url(None, None, {"CLERK_FRONTEND_API_URL": "", "CLERK_PUBLISHABLE_KEY": ""})
    message = str(info.value)
    for name in ("publishable_key", "frontend_api_url"):
        assert name in message
    for name in ("CLERK_PUBLISHABLE_KEY", "CLERK_FRONTEND_API_URL"):
        assert name in message


# -- through the clients (constructing does no I/O) -----------------------------------------


@pytest.mark.anyio
async def test_a_client_given_a_key_ignores_the_env_url(
    monkeypatch: pytest.MonkeyPatch, make_clerk: MakeClerk
) -> None:
    monkeypatch.setenv("CLERK_FRONTEND_API_URL", ENV_URL)
    async with make_clerk(publishable_key=KEY, client_token="t") as clerk:
        assert clerk.frontend_api_url == KEY_HOST


@pytest.mark.anyio
async def test_a_client_given_nothing_follows_the_env_url_over_the_env_key(
    monkeypatch: pytest.MonkeyPatch, make_clerk: MakeClerk
) -> None:
    monkeypatch.setenv("CLERK_FRONTEND_API_URL", ENV_URL)
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", ENV_KEY)
    async with make_clerk(client_token="t") as clerk:
        assert clerk.frontend_api_url == ENV_URL


@pytest.mark.anyio
async def test_a_client_given_a_url_is_not_stopped_by_a_bad_env_key(
    monkeypatch: pytest.MonkeyPatch, make_clerk: MakeClerk
) -> None:
    monkeypatch.setenv("CLERK_PUBLISHABLE_KEY", SECRET_KEY)
    async with make_clerk(frontend_api_url=URL, client_token="t") as clerk:
        assert clerk.frontend_api_url == URL
