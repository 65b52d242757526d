"""Where requests go: publishable-key decoding and base-URL validation (pure functions).

A publishable key is ``pk_test_<b64>`` or ``pk_live_<b64>``, where ``<b64>`` is unpadded standard
base64 of ``"<frontend api host>$"``. The rules mirror clerk-js ``parsePublishableKey`` so that a
key accepted here is accepted by Clerk's own SDKs and vice versa.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import urllib.request
from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit

from ._constants import ENV_FRONTEND_API_URL, ENV_PUBLISHABLE_KEY
from ._errors import ConfigurationError

_KEY_PREFIXES = ("pk_test_", "pk_live_")
# Text, compiled on first use (re's cache): only a key or URL being checked needs it.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"{_LABEL}(?:\.{_LABEL})*(?::\d{{1,5}})?"
_HELP = "Copy the publishable key from the API keys page of the Clerk dashboard."


def frontend_api_url_from_key(key: str) -> str:
    """``pk_test_…``/``pk_live_…`` → ``https://<frontend api host>``, or ConfigurationError.

    A key that decodes to a loopback host (only the local emulator mints those) gives ``http://``,
    so ``publishable_key=emulator.publishable_key`` alone points a client at the emulator.
    """
    if not isinstance(key, str):
        raise ConfigurationError(f"publishable_key must be a str, got {type(key).__name__}")
    key = key.strip()
    if not key:
        raise ConfigurationError(f"Publishable key is missing. {_HELP}")
    if key.startswith(("sk_test_", "sk_live_", "sk_")):
        raise ConfigurationError(
            "A secret key (sk_…) was given where a publishable key (pk_…) is expected. Secret keys "
            "belong to the Backend API and must never be used by a Frontend API client; pass the "
            "instance's publishable key instead."
        )
    if not key.startswith(_KEY_PREFIXES):
        raise ConfigurationError(
            f"Publishable key is not valid: expected it to start with pk_test_ or pk_live_, got "
            f"{key[:8]!r}…. {_HELP}"
        )
    parts = key.split("_")
    if len(parts) != 3:
        raise ConfigurationError(
            "Publishable key is not valid: its body must be standard base64 without '_' "
            f"(expected format pk_test_<base64>). {_HELP}"
        )
    body = parts[2]
    if not body:
        raise ConfigurationError(
            f"Publishable key is not valid: nothing follows the prefix. {_HELP}"
        )
    try:
        decoded = base64.b64decode(body + "=" * (-len(body) % 4), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"Publishable key is not valid: failed to decode its base64 body. {_HELP}"
        ) from None
    if not decoded.endswith("$") or decoded.count("$") != 1:
        raise ConfigurationError(
            f"Publishable key is not valid: the decoded key has an invalid format. {_HELP}"
        )
    host = decoded[:-1]
    if "." not in host or not re.fullmatch(_HOST, host):
        raise ConfigurationError(
            f"Publishable key is not valid: it decodes to {host!r}, which is not a host name. "
            + _HELP
        )
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return f"{'http' if _is_loopback(hostname) else 'https'}://{host}"


def _is_loopback(host: str) -> bool:
    """``localhost`` itself and literal loopback addresses: a name such as ``x.localhost`` may
    be resolved through DNS to anywhere, so it is not loopback here (it needs https)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_frontend_api_url(url: str) -> str:
    """Normalise an explicit base URL (proxy, custom domain, emulator); keep its path prefix."""
    if not isinstance(url, str):
        raise ConfigurationError(f"frontend_api_url must be a str, got {type(url).__name__}")
    try:
        parts: SplitResult = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"frontend_api_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError(
            "frontend_api_url must be an absolute http(s) URL such as "
            "'https://clerk.example.com' or 'https://example.com/__clerk' (a proxy)."
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("frontend_api_url must not contain credentials (user:password@).")
    if parts.query or parts.fragment:
        raise ConfigurationError("frontend_api_url must not have a query string or fragment.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"frontend_api_url uses plain http for {parts.hostname!r}; the client token would "
            "travel unencrypted. Use https (plain http is allowed only for loopback hosts)."
        )
    netloc = parts.netloc
    prefix = parts.path.rstrip("/")
    del port  # parsed above only to validate it
    return f"{parts.scheme}://{netloc}{prefix}"


def resolve_base_url(
    publishable_key: str | None,
    frontend_api_url: str | None,
    environ: Mapping[str, str] = os.environ,
) -> str:
    """The base URL requests go to; the first of these that is given wins:

    1. the ``frontend_api_url`` argument;
    2. the ``publishable_key`` argument (decoded);
    3. the ``CLERK_FRONTEND_API_URL`` environment variable;
    4. the ``CLERK_PUBLISHABLE_KEY`` environment variable (decoded).

    Arguments beat the environment: when either argument is given the environment is not read
    at all, so an env URL can never send the client token to a host other than the one the
    caller named. A key passed as an argument is always validated, even when the URL argument
    overrides it, and so is the env key whenever the environment is what configures the client:
    a secret key in the wrong place is a mistake worth stopping. An empty environment variable
    counts as unset; an empty argument is an error.
    """
    if frontend_api_url is not None:
        if publishable_key is not None:
            frontend_api_url_from_key(publishable_key)  # validated although the URL wins
        return validate_frontend_api_url(frontend_api_url)
    if publishable_key is not None:
        return frontend_api_url_from_key(publishable_key)
    env_key = _from_env(environ, ENV_PUBLISHABLE_KEY)
    env_key_url = frontend_api_url_from_key(env_key) if env_key is not None else None
    env_url = _from_env(environ, ENV_FRONTEND_API_URL)
    if env_url is not None:
        return validate_frontend_api_url(env_url)
    if env_key_url is None:
        raise ConfigurationError(
            "No Frontend API configured: pass publishable_key='pk_…' (or set "
            f"{ENV_PUBLISHABLE_KEY}), or pass frontend_api_url (or set {ENV_FRONTEND_API_URL})."
        )
    return env_key_url


def _from_env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value if value and value.strip() else None


def proxy_for(base_url: str) -> str | None:
    """The HTTP(S)_PROXY that applies to ``base_url`` (honouring NO_PROXY), read once.

    aiohttp's ``trust_env`` looks this up again on every request, in a worker thread; the base
    URL never changes, so the client asks once at construction instead.
    """
    parts = urlsplit(base_url)
    if parts.hostname is None or _is_loopback(parts.hostname):
        return None
    if urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)
