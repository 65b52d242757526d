"""``FrontendAPIEmulator``: the world of ``_world`` (its answers drawn by ``_render``) served
over HTTP by aiohttp.web.

Routes come from the operations table (``clerk_sessions._operations``), so the emulator answers
exactly the paths the SDK calls. Each request passes, in order: fault injection, the native-auth
and header rules of ``../shared/docs/fapi-protocol.md`` §2-§3, form validation, the operation,
then optional client-token rotation. Every request is logged with its credentials redacted,
and every answer's ``Date`` header is on the emulator's clock.

Beside the Frontend API, the same server answers two Backend API routes under ``/bapi/v1``
(``backend_api_url`` + ``/v1``): create and revoke a sign-in token (§13), authenticated with
``Authorization: Bearer <secret_key>``. Their JSON bodies follow Clerk's Backend API, not FAPI's
form rules.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
import secrets
import string
import threading
from collections.abc import Callable, Iterable, Mapping
from email.utils import formatdate
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote

import attrs
import orjson
from aiohttp import web

from clerk_sessions._client import AsyncClerkSessions
from clerk_sessions._constants import DEFAULT_API_VERSION
from clerk_sessions._operations import (
    CREATE_SESSION_TOKEN,
    OPERATIONS,
    SIGN_IN_WITH_TICKET,
    Operation,
)
from clerk_sessions._runtime import Runtime
from clerk_sessions._sync import ClerkSessions

from ._faults import Fault, FaultPlan, default_code
from ._records import (
    ClientRecord,
    IssuedTokenRecord,
    Json,
    OrganizationRecord,
    OutboxMessage,
    SessionRecord,
    SignInTokenRecord,
    UserRecord,
)
from ._signing import Signer
from ._world import (
    SIGN_IN_ABANDON_AFTER,
    SIGN_IN_TOKEN_LIFETIME,
    Clock,
    FapiError,
    Minting,
    World,
    totp_code,
)

HELD_ANSWER_LIMIT = 60.0
"""A ``hold`` fault's answer goes on by itself after this long (a test that forgot to release
it fails on its own assertions instead of hanging)."""
_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"
_SECRET_FORM_FIELDS = frozenset(
    {"password", "code", "proof_token", "public_key_credential", "token", "ticket"}
)
"""Credentials in a form body: a sign-in ticket signs its holder in, like a password."""
_SECRET_QUERY_PARAMS = frozenset({"expired_token", "ticket", "__clerk_ticket"})
"""A session JWT in a query string lands in access logs (why Clerk moved it to the body, §7b);
a ticket in one (a sign-in token's ``url``) is a credential too."""
_SIGN_IN_FORM_FIELDS = frozenset(
    {
        "strategy",
        "identifier",
        "password",
        "ticket",
        "redirect_url",
        "action_complete_redirect_url",
        "transfer",
        "code",
        "token",
        "oidc_login_hint",
        "oidc_prompt",
        "proof_token",
        "trusted_device_id",
    }
)
"""Every form field ``createSignIn`` declares (fapi-sign-in.yml): all are accepted, but only the
ticket strategy signs in here."""
BACKEND_API_PREFIX = "/bapi"
"""The Backend API's root on the emulator's server (``https://api.clerk.com`` in production)."""
_SIGN_IN_TOKEN_FIELDS = frozenset({"user_id", "expires_in_seconds", "org_id"})
_SECRET_HEADERS = frozenset({"authorization", "cookie"})
_REDACTED = "[redacted]"
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")


ExchangeListener = Callable[[web.Request, bytes, web.Response], None]
"""``on_exchange(request, body, response)``: one raw JSON exchange (``FrontendAPIEmulator``)."""


@attrs.frozen
class SignedIn:
    """A signed-in device: its client token and the session just created on it."""

    client_token: str = attrs.field(repr=False)
    client_id: str
    session_id: str
    user_id: str


@attrs.frozen
class RecordedRequest:
    """One request as the emulator saw it. Credentials and codes are redacted; ``client_id`` and
    ``token_generation`` say which client token authenticated it (1 = the first one issued).

    What seeded a token request, without the JWTs themselves (fapi-protocol §7b):
    ``sent_token`` (a non-empty ``token`` in the body), ``expired_token`` (a non-empty
    ``expired_token`` in the query), ``force_origin`` (``force_origin=true`` in the body).
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    form: Mapping[str, str]
    operation: str | None
    status: int
    client_id: str | None
    token_generation: int | None
    fault: Fault | None
    sent_token: bool = False
    expired_token: bool = False
    force_origin: bool = False
    auth_rejected: str | None = None
    """Why the client token was refused (401): ``unknown_client_token`` (never issued here:
    forged, or another instance's) or ``stale_client_token`` (rotated away, past the grace)."""
    rejected_client_id: str | None = None
    """For ``stale_client_token``: the client whose rotated-away token it was."""


def _redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: (_REDACTED if value else "") if name.lower() in _SECRET_HEADERS else value
        for name, value in headers.items()
    }


def _redact(pairs: Iterable[tuple[str, str]], secrets: frozenset[str]) -> dict[str, str]:
    return {name: _REDACTED if name in secrets else value for name, value in pairs}


@attrs.define
class _Route:
    method: str
    pattern: re.Pattern[str]
    operation: Operation[Any] | None
    handler: Callable[..., Json]
    public: bool = False
    """Served without Clerk's native-auth rules (the JWKS, like Clerk's own)."""
    backend: bool = False
    """A Backend API route: secret-key auth and JSON bodies instead of FAPI's rules."""
    signed_out: bool = False
    """A FAPI route that works without a client token too (it makes a client)."""
    form_fields: frozenset[str] | None = None
    """The form fields accepted, when not the operation's own."""
    name: str | None = None
    """What the request log calls it (the operation's name by default)."""

    @property
    def log_name(self) -> str | None:
        if self.name is not None:
            return self.name
        return self.operation.name if self.operation is not None else None


def _path_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", template) + "$")


class _Answer(Exception):
    """A finished response that short-cuts the pipeline (faults, errors)."""

    def __init__(self, status: int, body: Json, headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


class FrontendAPIEmulator:
    """A local, stateful Clerk Frontend API for tests and demos.

    ``async with FrontendAPIEmulator() as fapi:`` serves on 127.0.0.1 from the running event
    loop; ``with FrontendAPIEmulator() as fapi:`` serves from a background thread, for sync code.

    Options: ``token_lifetime`` (session JWTs, seconds, Clerk's default 60);
    ``rotate_client_tokens`` (every authenticated answer carries a new client token in its
    ``Authorization`` header); ``reject_stale_client_tokens`` (a client token that was rotated
    away stops working, so a client that ignores rotation fails); ``clock`` (a ``Clock`` to move
    time); ``seed`` (deterministic IDs, codes and fault probabilities); ``max_logged_requests``
    (keep only the newest N in ``requests``; default ``None``: every request, as tests read the
    whole log; the standalone server, ``python -m clerk_sessions.testing``, keeps 10,000);
    ``on_exchange`` (called as ``on_exchange(request, body, response)`` with the aiohttp request,
    its raw body and the ``web.Response`` about to be sent, for every JSON answer: errors and
    injected error answers included, not HTML error pages, truncated bodies or dropped
    connections; unlike ``requests`` nothing is redacted, so it is for tests that check raw
    traffic, such as the conformance tests against Clerk's OpenAPI specs; it runs on the
    server's event loop and must not block).

    Minting modes (``../shared/docs/fapi-protocol.md`` §7, §7b), off by default:

    - ``require_expired_token``: Clerk's 2026 incidents. ``POST .../tokens`` without the query
      parameter ``expired_token`` answers ``422 missing_expired_token`` ("The expired_token
      parameter is required"), even when the body carries ``token`` (those servers did not
      read it); ``?expired_token=<the session's previous JWT>`` mints.
    - ``session_minter``: an instance with Clerk's Session Minter. ``POST .../tokens`` is
      expected to carry the previous session JWT in the body as ``token`` (and
      ``force_origin=true`` on skip-cache); with neither ``token`` nor ``?expired_token=`` it
      answers ``422 missing_expired_token`` too, so an SDK without the setting survives by the
      same retry.

    In every mode, a ``token`` or ``expired_token`` that is sent must be a session JWT this
    emulator signed for that session; expired is fine (that is what it is for), anything else
    (another session's, a JWT template's, another key's) is ``422 form_param_value_invalid``.
    The body fields ``token`` and ``force_origin`` (``true``/``false``) are always accepted on
    ``/tokens``. The template route ``/tokens/{template}`` neither requires nor accepts a seed:
    Clerk's clients send an empty body there. Both modes are plain attributes too: a test may
    flip ``fapi.require_expired_token = True`` while clients are running. The request log
    (``requests``) says which seeds a request carried (``RecordedRequest.sent_token``, ...),
    never their values.

    Every answer's ``Date`` header is on ``clock`` (an RFC 7231 IMF-fixdate), so it agrees
    with the ``iat`` of the tokens minted; ``async_client``/``sync_client`` make clients that
    follow ``clock`` too.

    Signing in without a phone (fapi-protocol §13): ``secret_key`` (an ``sk_test_`` key, new
    for each emulator) authenticates the Backend API routes at ``backend_api_url``
    (``POST {backend_api_url}/v1/sign_in_tokens`` and ``.../sign_in_tokens/{id}/revoke``;
    Clerk's ``clerk-backend-api`` package takes ``server_url=backend_api_url + "/v1"``), and
    ``POST /v1/client/sign_ins?_is_native=1`` with ``strategy=ticket&ticket=<token>`` signs the
    token's user in: an empty ``Authorization`` makes a new client, a client token adds a
    session to that client; either way the answer's ``Authorization`` header carries a new
    client token. ``create_sign_in_token`` makes a ticket without the HTTP call. A ticket works
    once and expires on ``clock``. ``native_api_disabled`` (an attribute too) makes every
    native request answer ``400 native_api_disabled``, as an instance whose Native API is off
    in the dashboard does.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: int = 60,
        rotate_client_tokens: bool = False,
        reject_stale_client_tokens: bool = False,
        require_expired_token: bool = False,
        session_minter: bool = False,
        native_api_disabled: bool = False,
        clock: Clock | None = None,
        seed: int | None = None,
        max_logged_requests: int | None = None,
        on_exchange: ExchangeListener | None = None,
    ) -> None:
        if token_lifetime <= 0:
            raise ValueError(f"token_lifetime must be positive, got {token_lifetime}")
        if max_logged_requests is not None and max_logged_requests < 0:
            raise ValueError(f"max_logged_requests must be 0 or more, got {max_logged_requests}")
        self.clock = clock or Clock()
        self._world = World(
            clock=self.clock,
            signer=Signer(key_id="ins_emulator"),
            token_lifetime=token_lifetime,
            seed=seed,
            max_issued_tokens=max_logged_requests,
        )
        self._faults = FaultPlan(self._world.rng)
        self.rotate_client_tokens = rotate_client_tokens
        self.reject_stale_client_tokens = reject_stale_client_tokens
        self.require_expired_token = require_expired_token
        """Answer ``422 missing_expired_token`` to ``/tokens`` without ``?expired_token=``."""
        self.session_minter = session_minter
        """Expect ``/tokens`` to carry the previous session JWT (body ``token``)."""
        self.native_api_disabled = native_api_disabled
        """Answer every native request (``_is_native=1``) ``400 native_api_disabled``."""
        alphabet = string.ascii_letters + string.digits
        self._secret_key = "sk_test_" + "".join(secrets.choice(alphabet) for _ in range(42))
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._trace_ids = 0
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._on_exchange = on_exchange
        self.requests: list[RecordedRequest] = []
        """Every request answered so far (the newest ``max_logged_requests``), oldest first."""
        self._max_logged_requests = max_logged_requests
        self._routes = self._build_routes()

    # --- lifecycle ---

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("this emulator is already running")
        app = web.Application(client_max_size=1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._stamp_date)
        # A short shutdown_timeout: stopping must not wait for delayed (fault-injected) answers.
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=0.5,
            handler_cancellation=True,  # a client that gave up cancels its delayed answer
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]  # the port the OS picked for port=0
        self._world.issuer = self.url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        # Answers held up by a delay or hold fault must not outlive the emulator (and change
        # state); a held one's waiting thread is let go.
        with self._world.lock:
            self._faults.release_all()
        in_flight = list(self._in_flight)
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        await runner.cleanup()

    async def _stop_and_drain(self) -> None:
        """Stop, then cancel what is still running here (handlers held up by a ``delay``)."""
        await self.stop()
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    async def __aenter__(self) -> FrontendAPIEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __enter__(self) -> FrontendAPIEmulator:
        """Serve from a background thread with its own event loop (for sync tests and tools)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="clerk-fapi-emulator", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            raise
        self._loop, self._thread = loop, thread
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop_and_drain(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            self._loop = self._thread = None

    # --- where it is ---

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:53817``: pass it as ``frontend_api_url``."""
        if self._runner is None:
            raise RuntimeError("start the emulator first (async with / with FrontendAPIEmulator())")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def publishable_key(self) -> str:
        """A ``pk_test_`` key that decodes to this emulator (the SDK uses http for loopback)."""
        host = self.url.removeprefix("http://")
        return "pk_test_" + base64.b64encode(f"{host}$".encode()).decode().rstrip("=")

    @property
    def secret_key(self) -> str:
        """This instance's Backend API secret key (``sk_test_…``, random per emulator): send it
        as ``Authorization: Bearer <secret_key>`` to ``backend_api_url``. Never logged."""
        return self._secret_key

    @property
    def backend_api_url(self) -> str:
        """The Backend API's base URL, like ``https://api.clerk.com``: its routes are under
        ``{backend_api_url}/v1/...``. For Clerk's ``clerk-backend-api`` package, whose
        ``server_url`` already ends in ``/v1``, pass ``server_url=backend_api_url + "/v1"``."""
        return f"{self.url}{BACKEND_API_PREFIX}"

    def __repr__(self) -> str:
        where = self.url if self._runner is not None else "not started"
        return f"<FrontendAPIEmulator {where}>"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify session tokens (as served at ``jwks_url``)."""
        return self._world.signer.jwks()

    # --- state set-up and inspection ---

    def create_user(
        self,
        *,
        first_name: str | None = "Jane",
        last_name: str | None = "Doe",
        username: str | None = None,
        email: str | Iterable[str] | None = None,
        phone: str | Iterable[str] | None = None,
        password: str | None = None,
        second_factors: Iterable[str] = (),
        public_metadata: Mapping[str, Any] | None = None,
    ) -> UserRecord:
        """A user. ``email`` defaults to a unique ``+clerk_test`` address (code 424242).

        ``second_factors`` picks from ``phone_code`` (the first phone number), ``totp`` (see
        ``totp_code``) and ``backup_code`` (the record's ``backup_codes``).
        """
        with self._world.lock:
            if email is None:
                name = (first_name or "user").lower()
                email = f"{name}.{len(self._world.users) + 1}+clerk_test@example.com"
            return self._world.create_user(
                first_name=first_name,
                last_name=last_name,
                username=username,
                emails=[email] if isinstance(email, str) else list(email),
                phones=[] if phone is None else [phone] if isinstance(phone, str) else list(phone),
                password=password,
                second_factors=second_factors,
                public_metadata=public_metadata,
            )

    def create_organization(
        self, name: str, *, slug: str | None = None, members: Mapping[str, str] | None = None
    ) -> OrganizationRecord:
        """An organization; ``members`` maps user IDs to roles such as ``org:admin``."""
        with self._world.lock:
            return self._world.create_organization(name=name, slug=slug, members=members or {})

    def add_member(self, organization_id: str, user_id: str, role: str = "org:member") -> None:
        with self._world.lock:
            self._world.user(user_id)
            org = self._world.organizations.get(organization_id)
            if org is None:
                raise ValueError(f"no organization {organization_id!r} in this emulator")
            org.members[user_id] = role

    def create_jwt_template(
        self, name: str, claims: Mapping[str, Any], *, lifetime: int = 60
    ) -> None:
        """A JWT template; claim values may use shortcodes: ``{{user.primary_email_address}}``."""
        with self._world.lock:
            self._world.create_template(name, claims, lifetime)

    def sign_in(
        self,
        user: UserRecord | str | None = None,
        *,
        device: SignedIn | None = None,
        active_organization_id: str | None = None,
    ) -> SignedIn:
        """Sign ``user`` (a record or ID; default: a new user) in on a new device, or add a
        session to ``device``'s client (multi-session)."""
        with self._world.lock:
            record = (
                self.create_user()
                if user is None
                else self._world.user(user if isinstance(user, str) else user.id)
            )
            if device is None:
                client, token = self._world.new_client()
            else:
                client = self._world.clients[device.client_id]
                token = client.current_token  # the device's token may have rotated since
            session = self._world.sign_in(record, client, active_organization_id)
            return SignedIn(token, client.id, session.id, record.id)

    def create_sign_in_token(
        self,
        user: UserRecord | str,
        expires_in_seconds: int = SIGN_IN_TOKEN_LIFETIME,
        *,
        org_id: str | None = None,
    ) -> str:
        """A sign-in token (ticket) for ``user``, as ``POST /v1/sign_in_tokens`` makes it, without
        the call: sign in with it through the SDK (``sign_in_with_ticket``). It works once and
        expires ``expires_in_seconds`` after now on ``clock``; with ``org_id`` (an ID or slug of
        one of the user's organizations) the session starts in that organization."""
        if expires_in_seconds < 1:
            raise ValueError(f"expires_in_seconds must be at least 1, got {expires_in_seconds}")
        with self._world.lock:
            record = self._world.user(user if isinstance(user, str) else user.id)
            org = None
            if org_id is not None:
                org = self._world._membership(record, org_id, status=ValueError).id
            return self._world.create_sign_in_token(record, expires_in_seconds, org).token

    def sign_in_token(self, ticket_or_id: str) -> SignInTokenRecord:
        """The record of a sign-in token, by its ticket or its ``sit_`` id (``status`` is
        ``pending``, ``accepted`` once used, or ``revoked``)."""
        with self._world.lock:
            record = self._world.sign_in_tokens.get(
                ticket_or_id
            ) or self._world.sign_in_token_by_ticket(ticket_or_id)
            if record is None:
                raise KeyError("no such sign-in token in this emulator")
            return record

    def session(self, session_id: str) -> SessionRecord:
        """The session's record (status, active organization, reverification, ...)."""
        return self._world.sessions[session_id]

    def client_record(self, client_id: str) -> ClientRecord:
        return self._world.clients[client_id]

    @property
    def issued_tokens(self) -> list[IssuedTokenRecord]:
        """Every session and template JWT signed so far, oldest first (a copy; the newest
        ``max_logged_requests`` when capped): sign-ins, touches and mints, with the client, the
        claims' ``iat``/``exp`` and when (on ``clock``), to judge tokens a client handed out."""
        with self._world.lock:
            return list(self._world.issued_tokens)

    def issued_client_tokens(self) -> dict[str, tuple[str, int]]:
        """Every client token issued so far (a copy): token → (client id, generation). A token
        not in it was never issued by this emulator (forged, or another instance's)."""
        with self._world.lock:
            return dict(self._world.client_tokens)

    def totp_code(self, user: UserRecord | str) -> str:
        """The user's current TOTP code, on the emulator's clock."""
        with self._world.lock:
            record = self._world.user(user if isinstance(user, str) else user.id)
            if record.totp_secret is None:
                raise ValueError(f"user {record.id} has no TOTP second factor")
            return totp_code(record.totp_secret, self.clock.now())

    @property
    def outbox(self) -> list[OutboxMessage]:
        """Codes "sent" to addresses that are not Clerk test addresses (those always use 424242)."""
        return self._world.outbox

    # --- clients of the SDK pointed here ---

    def async_client(
        self, device: SignedIn | str | None = None, **options: Any
    ) -> AsyncClerkSessions:
        """An ``AsyncClerkSessions`` for ``device`` (or a client token), pointed here, on the
        emulator's clock (see ``runtime``) unless ``options`` bring their own ``_runtime``."""
        token = device.client_token if isinstance(device, SignedIn) else device
        return AsyncClerkSessions(
            frontend_api_url=self.url, client_token=token, **self._client_options(options)
        )

    def sync_client(self, device: SignedIn | str | None = None, **options: Any) -> ClerkSessions:
        """A ``ClerkSessions`` for ``device`` (or a client token), pointed at this emulator, on
        the emulator's clock (see ``runtime``) unless ``options`` bring their own ``_runtime``."""
        token = device.client_token if isinstance(device, SignedIn) else device
        return ClerkSessions(
            frontend_api_url=self.url, client_token=token, **self._client_options(options)
        )

    def runtime(self) -> Runtime:
        """A client ``Runtime`` whose clocks are this emulator's ``clock``: after
        ``clock.advance(3600)`` its clients see their cached tokens expired, as the server does.
        (Both its clocks read ``clock.now``: a frozen clock freezes the client's intervals too;
        back-off still sleeps in real time.)"""
        return Runtime(monotonic=self.clock.now, wall=self.clock.now)

    def _client_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"_runtime": self.runtime(), **options}

    # --- fault injection ---

    def inject(self, fault: Fault) -> Fault:
        """Add a fault rule (see ``Fault``); returns it so a test can read ``hits``."""
        with self._world.lock:
            return self._faults.add(fault)

    def fail(
        self,
        route: str,
        status: int = 503,
        *,
        code: str | None = None,
        message: str | None = None,
        times: int | None = 1,
        probability: float = 1.0,
        html: bool = False,
    ) -> Fault:
        """Answer ``status`` with a Clerk error body (or an HTML error page with ``html``)."""
        return self.inject(
            Fault(route, times, probability, status=status, code=code, message=message, html=html)
        )

    def rate_limit(
        self, route: str, *, retry_after: int = 1, times: int | None = 1, probability: float = 1.0
    ) -> Fault:
        """Answer 429 ``too_many_requests`` with ``Retry-After``."""
        return self.inject(Fault(route, times, probability, status=429, retry_after=retry_after))

    def hold(self, route: str, *, times: int | None = 1) -> Fault:
        """Hold the answer until ``fault.release()`` (``fault.hit`` is set when the request
        arrives): a test puts two requests in flight at once without timing them."""
        return self.inject(Fault(route, times, held=True))

    def delay(
        self, route: str, seconds: float, *, times: int | None = 1, probability: float = 1.0
    ) -> Fault:
        """Answer late (real time, not the emulator's clock); once, like every fault, unless
        ``times`` says otherwise (``times=None``: every matching request)."""
        return self.inject(Fault(route, times, probability, latency=seconds))

    def drop_connection(
        self, route: str, *, times: int | None = 1, probability: float = 1.0
    ) -> Fault:
        """Close the socket without answering."""
        return self.inject(Fault(route, times, probability, drop=True))

    def truncate_body(
        self, route: str, *, times: int | None = 1, probability: float = 1.0
    ) -> Fault:
        """Send the real answer's headers and only half of its body, then close."""
        return self.inject(Fault(route, times, probability, truncate=True))

    def clear_faults(self) -> None:
        with self._world.lock:
            self._faults.clear()

    # --- HTTP ---

    def _build_routes(self) -> list[_Route]:
        world = self._world
        routes = [
            _Route(op.method, _path_regex(op.path), op, getattr(world, op.name))
            for op in OPERATIONS.values()
        ]
        routes += [
            _Route("POST", _path_regex("/v1/client"), None, self._create_client),
            _Route("GET", _path_regex("/v1/client"), None, self._get_client),
            _Route("GET", _path_regex("/v1/jwks"), None, self.jwks, public=True),
            _Route("GET", _path_regex("/.well-known/jwks.json"), None, self.jwks, public=True),
            _Route(
                SIGN_IN_WITH_TICKET.method,
                _path_regex(SIGN_IN_WITH_TICKET.path),
                SIGN_IN_WITH_TICKET,
                self._sign_in_with_ticket,
                signed_out=True,
                form_fields=_SIGN_IN_FORM_FIELDS,
            ),
            _Route(
                "POST",
                _path_regex(f"{BACKEND_API_PREFIX}/v1/sign_in_tokens"),
                None,
                self._bapi_create_sign_in_token,
                backend=True,
                name="create_sign_in_token",
            ),
            _Route(
                "POST",
                _path_regex(f"{BACKEND_API_PREFIX}/v1/sign_in_tokens/{{sign_in_token_id}}/revoke"),
                None,
                self._bapi_revoke_sign_in_token,
                backend=True,
                name="revoke_sign_in_token",
            ),
        ]
        return routes

    def _sign_in_with_ticket(self, *, auth: _Auth, form: Mapping[str, str]) -> Json:
        """``POST /v1/client/sign_ins``, ticket strategy: a complete sign-in and a new session on
        the caller's client (a new client when ``Authorization`` is empty). Every check runs
        before anything changes, so a refused ticket leaves no client behind and stays as it
        was."""
        world = self._world
        strategy = form["strategy"]
        if strategy != "ticket":
            raise FapiError(
                422,
                "form_param_value_invalid",
                "is invalid",
                f"{strategy} does not match one of the allowed values for parameter strategy "
                "(this emulator signs in with the ticket strategy only).",
                meta={"param_name": "strategy"},
            )
        ticket = form.get("ticket", "")
        if not ticket:
            raise FapiError(
                422,
                "form_param_missing",
                "is missing",
                "ticket must be included.",
                meta={"param_name": "ticket"},
            )
        record = world.usable_sign_in_token(ticket)
        user = world.users[record.user_id]
        org_id = None
        if record.org_id is not None:  # the user may have left the organization since
            org_id = world._membership(user, record.org_id).id
        now = self.clock.now()
        if auth.client is None:
            client, token = world.new_client()
        else:
            client = auth.client
            token = world.issue_client_token(client)  # a sign-in rotates the client token
        world.accept_sign_in_token(record)
        session = world.sign_in(user, client, org_id, strategy="ticket")
        auth.client, auth.generation, auth.issued_token = client, client.token_generation, token
        return {
            "response": world.render.sign_in(
                world.new_id("sia"), session, abandon_at=now + SIGN_IN_ABANDON_AFTER
            ),
            "client": world.client_json(client),
        }

    # --- the Backend API (sign-in tokens) ---

    def _check_secret_key(self, request: web.Request) -> None:
        """Clerk's Backend API auth: ``Authorization: Bearer <secret key>``. A missing or
        malformed header and a wrong key are two different 401s."""
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not key.strip():
            raise FapiError(
                401,
                "authorization_header_format_invalid",
                "Invalid Authorization header format",
                "Invalid Authorization header format. Must be 'Bearer <YOUR_API_KEY>'",
            )
        if not hmac.compare_digest(key.strip().encode(), self._secret_key.encode()):
            message = (
                "The provided Clerk Secret Key is invalid. Make sure that your Clerk Secret Key "
                "is correct."
            )
            raise FapiError(401, "clerk_key_invalid", message, message)

    def _bapi_create_sign_in_token(
        self, *, request: web.Request, body: bytes, params: Mapping[str, str]
    ) -> Json:
        self._check_secret_key(request)
        data = _json_object(request, body)
        unknown = sorted(set(data) - _SIGN_IN_TOKEN_FIELDS)
        if unknown:
            raise FapiError(
                422,
                "form_param_unknown",
                "is unknown",
                f"{unknown[0]} is not a valid parameter for this request.",
                meta={"param_name": unknown[0]},
            )
        user_id = data.get("user_id")
        if user_id is None:
            raise FapiError(
                422,
                "form_param_missing",
                "is missing",
                "user_id must be included.",
                meta={"param_name": "user_id"},
            )
        expires = data.get("expires_in_seconds")
        expires = SIGN_IN_TOKEN_LIFETIME if expires is None else expires
        org_ref = data.get("org_id")
        _json_type(user_id, str, "user_id", "string")
        _json_type(expires, int, "expires_in_seconds", "integer")
        if org_ref is not None:
            _json_type(org_ref, str, "org_id", "string")
        if expires < 1:
            raise FapiError(
                422,
                "form_param_value_invalid",
                "is invalid",
                "expires_in_seconds must be at least 1.",
                meta={"param_name": "expires_in_seconds"},
            )
        world = self._world
        user = world.users.get(user_id)
        if user is None:
            raise FapiError(
                404,
                "resource_not_found",
                "not found",
                f"No user was found with id {user_id}",
                meta={"param_name": "user_id"},
            )
        org_id = None
        if org_ref is not None:
            org = world.organizations.get(org_ref)
            if org is None:
                raise FapiError(
                    404, "resource_not_found", "not found", "Given organization not found."
                )
            org_id = world._membership(user, org.id).id
        record = world.create_sign_in_token(user, expires, org_id)
        return world.render.sign_in_token(record, with_token=True, issuer=world.issuer)

    def _bapi_revoke_sign_in_token(
        self, *, request: web.Request, body: bytes, params: Mapping[str, str]
    ) -> Json:
        self._check_secret_key(request)
        world = self._world
        record = world.revoke_sign_in_token(params["sign_in_token_id"])
        return world.render.sign_in_token(record, with_token=False, issuer=world.issuer)

    def _create_client(self, *, auth: _Auth, form: Mapping[str, str]) -> Json:
        # POST /v1/client mints a client; its token goes out in the Authorization header.
        client, token = self._world.new_client()
        auth.issued_token = token
        auth.client, auth.generation = client, client.token_generation
        return {"response": self._world.client_json(client), "client": None}

    def _get_client(self, *, auth: _Auth, form: Mapping[str, str]) -> Json:
        client = auth.client
        return {
            "response": None if client is None else self._world.client_json(client),
            "client": None,
        }

    def _trace_id(self) -> str:
        self._trace_ids += 1
        return f"emu_{self._trace_ids:08x}{self._world.rng.getrandbits(32):08x}"

    async def _stamp_date(self, request: web.Request, response: web.StreamResponse) -> None:
        """Every answer (errors and aiohttp's own included) is dated on the emulator's clock,
        like the ``iat`` of its tokens: an SDK estimates the server's clock from both (§12)."""
        response.headers["Date"] = formatdate(self.clock.now(), usegmt=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            return await self._answer(request)
        finally:
            self._in_flight.discard(task)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        method = request.method
        if method == "POST" and "_method" in request.query:  # clerk-js's method override (§2)
            method = request.query["_method"].upper()
        path = request.path
        headers = dict(request.headers)
        form_pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        logged_pairs = _json_pairs(body) if request.content_type == _JSON else form_pairs
        log = {
            "method": method,
            "path": path,
            "query": _redact(request.query.items(), _SECRET_QUERY_PARAMS),
            "headers": _redact_headers(headers),
            "form": _redact(logged_pairs, _SECRET_FORM_FIELDS),
            "sent_token": any(name == "token" and value for name, value in form_pairs),
            "expired_token": bool(request.query.get("expired_token")),
            "force_origin": ("force_origin", "true") in form_pairs,
        }
        with self._world.lock:
            fault = self._faults.pick(method, path)
        auth = _Auth()
        if fault is not None and (fault.latency or fault.held):
            try:
                await asyncio.sleep(fault.latency)
                if fault.held:  # a thread waits, so that the test's own loop can release it
                    await asyncio.get_running_loop().run_in_executor(
                        None, fault.released.wait, HELD_ANSWER_LIMIT
                    )
            except asyncio.CancelledError:  # the client gave up, or the emulator stops
                self._record(log, None, 0, auth, fault)
                raise
        operation: str | None = None
        try:
            if fault is not None:
                self._fault_answer(fault)
                if fault.drop:
                    self._record(log, None, 0, auth, fault)
                    assert request.transport is not None
                    request.transport.abort()
                    return web.Response(status=500)
            with self._world.lock:
                route, params = self._route(method, request)
                operation = route.log_name
                status, answer, out_headers = (
                    200,
                    self._serve(route, params, request, body, form_pairs, auth),
                    {},
                )
        except _Answer as shortcut:
            status, answer, out_headers = shortcut.status, shortcut.body, shortcut.headers
        except FapiError as error:
            status, answer, out_headers = error.status, error.body(self._trace_id()), {}
        truncated = fault is not None and fault.truncate
        rotate = self.rotate_client_tokens and not truncated  # a cut answer's header is lost
        if rotate and auth.client is not None and auth.issued_token is None:
            with self._world.lock:  # any answer to an authenticated request may rotate (§3)
                auth.issued_token = self._world.issue_client_token(auth.client)
        if auth.issued_token is not None:
            out_headers["Authorization"] = auth.issued_token
        self._record(log, operation, status, auth, fault)
        if fault is not None and fault.html and status >= 400:
            return web.Response(
                status=status,
                text=_html_page(status),
                content_type="text/html",
                headers=out_headers,
            )
        payload = orjson.dumps(answer)
        if truncated:
            return await _truncated(request, status, payload, out_headers)
        response = web.Response(
            status=status, body=payload, content_type="application/json", headers=out_headers
        )
        if self._on_exchange is not None:
            self._on_exchange(request, body, response)
        return response

    def _fault_answer(self, fault: Fault) -> None:
        if fault.status is None:
            return
        code = fault.code or default_code(fault.status)
        message = fault.message or f"Injected failure: HTTP {fault.status} {code}."
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        raise _Answer(
            fault.status, FapiError(fault.status, code, message).body(self._trace_id()), headers
        )

    def _record(
        self,
        log: dict[str, Any],
        operation: str | None,
        status: int,
        auth: _Auth,
        fault: Fault | None,
    ) -> None:
        client = auth.client
        with self._world.lock:
            self.requests.append(
                RecordedRequest(
                    **log,
                    operation=operation,
                    status=status,
                    client_id=None if client is None else client.id,
                    token_generation=auth.generation,
                    fault=fault,
                    auth_rejected=auth.rejected,
                    rejected_client_id=auth.rejected_client_id,
                )
            )
            cap = self._max_logged_requests
            if cap is not None and len(self.requests) > cap:
                del self.requests[: len(self.requests) - cap]

    def _route(self, method: str, request: web.Request) -> tuple[_Route, dict[str, str]]:
        raw_path = request.raw_path.split("?", 1)[0]
        path_matched = False
        for route in self._routes:
            match = route.pattern.match(raw_path)
            if match is None:
                continue
            path_matched = True
            if route.method == method:
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
        if path_matched:
            raise FapiError(
                405, "method_not_allowed", f"{method} is not allowed on {request.path}."
            )
        raise FapiError(
            404, "resource_not_found", "Resource not found", f"No route {method} {request.path}."
        )

    def _serve(
        self,
        route: _Route,
        params: dict[str, str],
        request: web.Request,
        body: bytes,
        form_pairs: list[tuple[str, str]],
        auth: _Auth,
    ) -> Json:
        if route.public:
            return route.handler()
        if route.backend:
            return route.handler(request=request, body=body, params=params)
        self._check_headers(request)
        form = _validated_form(route, request, body, form_pairs)
        auth.authenticate(
            self._world, request.headers.get("Authorization"), self.reject_stale_client_tokens
        )
        if route.operation is None or route.signed_out:
            return route.handler(auth=auth, form=form)
        if auth.client is None:
            raise FapiError(
                401,
                "signed_out",
                "You are signed out",
                "This request carries no client token: sign in first.",
            )
        if route.operation is CREATE_SESSION_TOKEN:
            minting = Minting(
                token=form.get("token"),
                expired_token=request.query.get("expired_token"),
                force_origin=form.get("force_origin"),
                require_expired_token=self.require_expired_token,
                session_minter=self.session_minter,
            )
            return route.handler(auth.client, **params, form=form, minting=minting)
        return route.handler(auth.client, **params, form=form)

    def _check_headers(self, request: web.Request) -> None:
        native = request.query.get("_is_native")
        if native in ("1", "true") and self.native_api_disabled:
            raise FapiError(
                400,
                "native_api_disabled",
                "Native API disabled",
                "The Native API is disabled for this instance. Visit the Clerk Dashboard to "
                "enable it.",
            )
        if native not in ("1", "true"):
            raise FapiError(
                401,
                "authentication_invalid",
                "Native API only",
                "This emulator speaks Clerk's native API: add _is_native=1 to the query and send "
                "the client token in Authorization.",
            )
        if "Authorization" not in request.headers:
            raise FapiError(
                401,
                "request_header_missing",
                "Authorization header missing",
                "Native requests need the Authorization header: a client token, or an empty "
                "value on the first request (POST /v1/client).",
                meta={"header_name": "Authorization"},
            )
        if request.headers.get("Origin") and request.headers.get("Authorization"):
            raise FapiError(
                400,
                "origin_authorization_headers_conflict",
                "Origin and Authorization headers conflict",
                "Only one of the 'Origin' and 'Authorization' headers should be provided. In "
                "native application contexts, set the 'Authorization' header only.",
            )
        header_version = request.headers.get("Clerk-API-Version")
        query_version = request.query.get("__clerk_api_version")
        if header_version is not None and query_version is not None:
            raise FapiError(
                400,
                "api_version_invalid",
                "Invalid API version",
                "Send the API version as a header or a query parameter, not both.",
            )
        version = header_version or query_version or DEFAULT_API_VERSION
        if not _API_VERSION.fullmatch(version):
            raise FapiError(
                400,
                "api_version_invalid",
                "Invalid API version",
                f"{version!r} is not an API version (expected YYYY-MM-DD).",
            )


@attrs.define
class _Auth:
    """Which client a request authenticated as, and a client token to send back."""

    client: ClientRecord | None = None
    generation: int | None = None
    issued_token: str | None = attrs.field(default=None, repr=False)
    rejected: str | None = None
    rejected_client_id: str | None = None

    def authenticate(self, world: World, header: str | None, reject_stale: bool) -> None:
        token = (header or "").strip().removeprefix("Bearer").strip()
        if not token:
            return
        known = world.client_tokens.get(token)
        try:
            self.client, self.generation = world.client_for_token(token, reject_stale=reject_stale)
        except FapiError:
            if known is None:
                self.rejected = "unknown_client_token"
            else:
                self.rejected, self.rejected_client_id = "stale_client_token", known[0]
            raise


def _validated_form(
    route: _Route,
    request: web.Request,
    body: bytes,
    pairs: list[tuple[str, str]],
) -> dict[str, str]:
    """Clerk's form rules (§4): urlencoded; no unknown or repeated fields; required ones present."""
    operation = route.operation
    if body and request.content_type != _FORM:
        raise FapiError(
            415,
            "unsupported_content_type",
            "Unsupported content type",
            f"Send {_FORM} bodies, not {request.content_type}.",
        )
    # The spec's fields, and those Clerk's clients send although the spec omits them (§7b).
    if route.form_fields is not None:
        allowed = set(route.form_fields)
    else:
        allowed = set(operation.form_fields) if operation is not None else set()
    form: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise FapiError(
                422,
                "form_param_unknown",
                "Unknown parameter",
                f"{name} is not a valid parameter for this request.",
                meta={"param_name": name},
            )
        if name in form:
            raise FapiError(
                422,
                "form_param_duplicate",
                "Duplicate parameter",
                f"{name} was sent more than once.",
                meta={"param_name": name},
            )
        form[name] = value
    for name in sorted(operation.required_body if operation is not None else ()):
        if name not in form:
            raise FapiError(
                422,
                "form_param_missing",
                "Missing parameter",
                f"{name} is required.",
                meta={"param_name": name},
            )
    return form


def _json_object(request: web.Request, body: bytes) -> dict[str, Any]:
    """A Backend API request's JSON object (no body: an empty one)."""
    if not body.strip():
        return {}
    if request.content_type != _JSON:
        raise FapiError(
            415,
            "unsupported_content_type",
            "Unsupported content type",
            f"Content-Type {request.content_type} is unsupported. You should use {_JSON} instead.",
        )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise FapiError(
            400,
            "request_body_invalid",
            "Request body invalid",
            "The request body is invalid. Please consult the API documentation for more "
            "information.",
        )
    return value


def _json_type(value: Any, kind: type, name: str, kind_name: str) -> None:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise FapiError(
            422,
            "form_param_value_invalid",
            "is invalid",
            f"{name} is invalid. Received {type(value).__name__}, must be of type {kind_name}.",
            meta={"param_name": name},
        )


def _json_pairs(body: bytes) -> list[tuple[str, str]]:
    """A JSON object body as the request log's (name, value) pairs."""
    try:
        value = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        return []
    if not isinstance(value, dict):
        return []
    return [
        (str(name), item if isinstance(item, str) else orjson.dumps(item).decode())
        for name, item in value.items()
    ]


def _html_page(status: int) -> str:
    return f"<html><head><title>{status}</title></head><body><h1>{status} Error</h1></body></html>"


async def _truncated(
    request: web.Request, status: int, payload: bytes, headers: Mapping[str, str]
) -> web.StreamResponse:
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = "application/json"
    response.content_length = len(payload)
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    assert request.transport is not None
    request.transport.close()
    return response
