"""The emulator's state and Clerk's rules for it: pure Python, no I/O.

Records (``_records``: users, organizations, clients, sessions, JWT templates, sign-in tokens)
live in one ``World``, which changes them by Clerk's rules. Each of the twelve operations is a
method taking the caller's client, the path parameters and the form, and returning the JSON body,
or raising ``FapiError`` with Clerk's status and error ``code`` (``../shared/docs/fapi-protocol.md``
§5, §8, §9). Sign-in tokens ("tickets", §13) are made and revoked here and redeemed by the ticket
sign-in. Session and template JWTs are minted here (their claims are rules: ``fva``, the active
organization, template shortcodes); the JSON bodies themselves are drawn by ``World.render``, a
``_render.Renderer`` over the same records. The one rule applied on the way to a body is lazy
expiry: ``client_json`` expires a client's due sessions before rendering it.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import string
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ._records import (
    ClientRecord,
    EmailRecord,
    IssuedTokenRecord,
    Json,
    OrganizationRecord,
    OutboxMessage,
    PendingCode,
    PhoneRecord,
    Reverification,
    SessionRecord,
    SignInTokenRecord,
    TemplateRecord,
    UserRecord,
    VerificationRecord,
)
from ._render import Renderer
from ._signing import Signer

TEST_CODE = "424242"
"""Clerk's fixed code for ``+clerk_test`` emails and 555-0100…0199 phone numbers."""
SESSION_LIFETIME = 7 * 86_400
"""Clerk's default maximum session lifetime (7 days)."""
SESSION_ABANDON_AFTER = 30 * 86_400
CODE_LIFETIME = 600
"""A one-time code expires after 10 minutes."""
MAX_CODE_ATTEMPTS = 3
SIGN_IN_TOKEN_LIFETIME = 30 * 86_400
"""A sign-in token's default lifetime (the Backend API's ``expires_in_seconds``: 30 days)."""
SIGN_IN_ABANDON_AFTER = 86_400
STALE_CLIENT_TOKEN_GRACE = 10.0
"""Seconds a rotated-away client token still works: requests already in flight carry it."""
_ID_ALPHABET = string.ascii_letters + string.digits


class FapiError(Exception):
    """A Clerk error answer: HTTP status, error ``code`` and messages."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        long_message: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.long_message = long_message or message
        self.meta = dict(meta or {})

    def body(self, trace_id: str) -> Json:
        error: Json = {
            "code": self.code,
            "message": self.message,
            "long_message": self.long_message,
        }
        if self.meta:
            error["meta"] = self.meta
        return {"errors": [error], "clerk_trace_id": trace_id}


def _form_error(code: str, param: str, message: str) -> FapiError:
    return FapiError(422, code, message, meta={"param_name": param})


class Clock:
    """The emulator's time: real time plus an offset, or frozen. Tests move it to expire things."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._real = now
        self._offset = 0.0
        self._frozen: float | None = None

    def now(self) -> float:
        return self._frozen if self._frozen is not None else self._real() + self._offset

    def advance(self, seconds: float) -> None:
        """Move time forward (tokens and codes expire, ``fva`` ages)."""
        if self._frozen is not None:
            self._frozen += seconds
        else:
            self._offset += seconds

    def freeze(self, at: float | None = None) -> None:
        """Stop time at ``at`` (default: now) until ``advance`` or ``unfreeze``."""
        self._frozen = self.now() if at is None else at

    def unfreeze(self) -> None:
        if self._frozen is not None:
            self._offset = self._frozen - self._real()
            self._frozen = None


def is_test_email(address: str) -> bool:
    local, _, _ = address.partition("@")
    return "+clerk_test" in local


def is_test_phone(number: str) -> bool:
    digits = "".join(ch for ch in number if ch.isdigit())
    return len(digits) >= 7 and digits[-7:-2] == "55501"


def totp_code(secret: bytes, at: float, step: int = 30, digits: int = 6) -> str:
    """RFC 6238 TOTP (HMAC-SHA1), as authenticator apps compute it."""
    counter = struct.pack(">Q", int(at // step))
    digest = hmac.new(secret, counter, hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


# --- what a token request carried --------------------------------------------------------------


@attrs.frozen
class Minting:
    """What a non-template ``POST .../tokens`` carried to seed the new token, and what the
    instance demands of it (fapi-protocol §7 "Token request details", §7b).

    ``token`` is the previous session JWT in the form body (clients of a Session Minter
    instance send it); ``expired_token`` the one in the query (clerk-js's answer to
    ``422 missing_expired_token``); ``force_origin`` the body field sent on skip-cache. An
    empty value counts as absent. ``require_expired_token`` and ``session_minter`` are the
    emulator's modes of the same names.
    """

    token: str | None = attrs.field(default=None, repr=False)
    expired_token: str | None = attrs.field(default=None, repr=False)
    force_origin: str | None = None
    require_expired_token: bool = False
    session_minter: bool = False


MISSING_EXPIRED_TOKEN = "The expired_token parameter is required"
"""Clerk's message for ``422 missing_expired_token`` (the 2026 incidents, fapi-protocol §7b)."""


# --- the world ---------------------------------------------------------------------------------


class World:
    """All state of one emulator and Clerk's rules over it, guarded by one lock (the server and
    the test share it)."""

    def __init__(
        self,
        *,
        clock: Clock,
        signer: Signer,
        token_lifetime: int,
        seed: int | None,
        max_issued_tokens: int | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.signer = signer
        self.issuer = ""
        self.token_lifetime = token_lifetime
        self.rng = random.Random(seed)
        self.users: dict[str, UserRecord] = {}
        self.organizations: dict[str, OrganizationRecord] = {}
        self.templates: dict[str, TemplateRecord] = {}
        self.clients: dict[str, ClientRecord] = {}
        self.sessions: dict[str, SessionRecord] = {}
        self.client_tokens: dict[str, tuple[str, int]] = {}
        """client token → (client id, generation)."""
        self.sign_in_tokens: dict[str, SignInTokenRecord] = {}
        """sign-in token id → record."""
        self.sign_in_token_ids: dict[str, str] = {}
        """ticket (the token itself) → sign-in token id."""
        self.outbox: list[OutboxMessage] = []
        self.issued_tokens: list[IssuedTokenRecord] = []
        """Every session and template JWT signed (the newest ``max_issued_tokens``)."""
        self.max_issued_tokens = max_issued_tokens
        self.render = Renderer(
            users=self.users,
            organizations=self.organizations,
            sessions=self.sessions,
            now=clock.now,
        )
        """Draws the records as Clerk's JSON; reads these dicts, which are never rebound."""

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{''.join(self.rng.choices(_ID_ALPHABET, k=27))}"

    # --- set-up helpers (called by the test through the emulator) ---

    def create_user(
        self,
        *,
        first_name: str | None,
        last_name: str | None,
        username: str | None,
        emails: Iterable[str],
        phones: Iterable[str],
        password: str | None,
        second_factors: Iterable[str],
        public_metadata: Mapping[str, Any] | None,
    ) -> UserRecord:
        wanted = set(second_factors)
        unknown = wanted - {"phone_code", "totp", "backup_code"}
        if unknown:
            raise ValueError(
                f"unknown second factors {sorted(unknown)}: use phone_code, totp, backup_code"
            )
        phone_list = list(phones)
        if "phone_code" in wanted and not phone_list:
            raise ValueError("second factor phone_code needs a phone number")
        now = self.clock.now()
        user = UserRecord(
            id=self.new_id("user"),
            first_name=first_name,
            last_name=last_name,
            username=username,
            email_addresses=[EmailRecord(self.new_id("idn"), address) for address in emails],
            phone_numbers=[
                PhoneRecord(self.new_id("idn"), number, "phone_code" in wanted and index == 0)
                for index, number in enumerate(phone_list)
            ],
            password=password,
            totp_secret=self.rng.randbytes(20) if "totp" in wanted else None,
            backup_codes=[
                "".join(self.rng.choices(string.ascii_lowercase + string.digits, k=8))
                for _ in range(10 if "backup_code" in wanted else 0)
            ],
            public_metadata=dict(public_metadata or {}),
            created_at=now,
        )
        self.users[user.id] = user
        return user

    def create_organization(
        self, *, name: str, slug: str | None, members: Mapping[str, str]
    ) -> OrganizationRecord:
        slug = slug or "-".join(name.lower().split())
        if any(org.slug == slug for org in self.organizations.values()):
            raise ValueError(f"an organization with slug {slug!r} exists")
        for user_id in members:
            self.user(user_id)
        org = OrganizationRecord(
            self.new_id("org"), name, slug, dict(members), created_at=self.clock.now()
        )
        self.organizations[org.id] = org
        return org

    def user(self, user_id: str) -> UserRecord:
        try:
            return self.users[user_id]
        except KeyError:
            raise ValueError(f"no user {user_id!r} in this emulator") from None

    def new_client(self) -> tuple[ClientRecord, str]:
        now = self.clock.now()
        client = ClientRecord(self.new_id("client"), [], None, now, now)
        self.clients[client.id] = client
        return client, self.issue_client_token(client)

    def issue_client_token(self, client: ClientRecord) -> str:
        """A new client JWT for ``client`` (sign-in, ``POST /v1/client``, rotation)."""
        now = self.clock.now()
        if client.token_generation:
            client.superseded_at[client.token_generation] = now
        client.token_generation += 1
        token = self.signer.sign(
            {
                "id": client.id,
                "rotating_token": "".join(self.rng.choices(_ID_ALPHABET, k=32)),
                "iat": int(self.clock.now()),
            }
        )
        self.client_tokens[token] = (client.id, client.token_generation)
        client.current_token = token
        return token

    def sign_in(
        self,
        user: UserRecord,
        client: ClientRecord,
        active_organization_id: str | None,
        strategy: str = "email_code",
    ) -> SessionRecord:
        if active_organization_id is not None:  # an ID or a slug, like touch
            org_id = self._membership(user, active_organization_id, status=ValueError).id
        else:
            org_id = None
        now = self.clock.now()
        session = SessionRecord(
            id=self.new_id("sess"),
            client_id=client.id,
            user_id=user.id,
            status="active",
            created_at=now,
            updated_at=now,
            last_active_at=now,
            expire_at=now + SESSION_LIFETIME,
            abandon_at=now + SESSION_ABANDON_AFTER,
            last_active_organization_id=org_id,
            first_factor_at=now,
            second_factor_at=now if user.second_factor_strategies else None,
        )
        self.sessions[session.id] = session
        client.session_ids.append(session.id)
        client.last_active_session_id = session.id
        client.last_authentication_strategy = strategy
        client.updated_at = now
        session.last_active_token = self.mint_session_token(session, org_id, source="sign_in")
        return session

    # --- sign-in tokens ("tickets", fapi-protocol §13) ---

    def create_sign_in_token(
        self, user: UserRecord, expires_in_seconds: int, org_id: str | None
    ) -> SignInTokenRecord:
        """A pending sign-in token; its ``token`` is a JWT signed by this instance, like
        Clerk's (``sid`` = the token's id, ``st`` = ``sign_in_token``, ``exp``)."""
        now = self.clock.now()
        token_id = self.new_id("sit")
        expire_at = now + expires_in_seconds
        token = self.signer.sign(
            {
                "exp": int(expire_at),
                "iid": self.signer.key_id,
                "sid": token_id,
                "st": "sign_in_token",
            }
        )
        record = SignInTokenRecord(
            id=token_id,
            user_id=user.id,
            org_id=org_id,
            token=token,
            status="pending",
            created_at=now,
            updated_at=now,
            expire_at=expire_at,
        )
        self.sign_in_tokens[token_id] = record
        self.sign_in_token_ids[token] = token_id
        return record

    def sign_in_token_by_ticket(self, ticket: str) -> SignInTokenRecord | None:
        token_id = self.sign_in_token_ids.get(ticket)
        return None if token_id is None else self.sign_in_tokens[token_id]

    def usable_sign_in_token(self, ticket: str) -> SignInTokenRecord:
        """The pending, unexpired sign-in token ``ticket`` is, or Clerk's error: all 400, with
        the codes ``fapi-protocol.md`` §13 names (``ticket_invalid``, ``ticket_expired``,
        ``ticket_already_used``; a revoked ticket is ``ticket_invalid``). Clerk's public error
        catalogue spells some of them with a ``_code`` suffix; the SDK keeps whichever code a
        server sends."""
        record = self.sign_in_token_by_ticket(ticket)
        if record is None:
            raise FapiError(
                400,
                "ticket_invalid",
                "ticket is invalid",
                "This ticket is invalid. Make sure you're using a valid ticket generated by Clerk.",
            )
        if record.status == "revoked":
            raise FapiError(
                400,
                "ticket_invalid",
                "sign in token has been revoked",
                "This sign in token has been revoked and cannot be used anymore.",
            )
        if record.status == "accepted":
            raise FapiError(
                400,
                "ticket_already_used",
                "sign in token has already been used",
                "This sign in token has already been used. Each token can only be used once.",
            )
        if self.clock.now() >= record.expire_at:
            raise FapiError(
                400,
                "ticket_expired",
                "ticket has expired",
                "This ticket has expired and cannot be used anymore.",
            )
        return record

    def accept_sign_in_token(self, record: SignInTokenRecord) -> None:
        record.status = "accepted"
        record.updated_at = self.clock.now()

    def revoke_sign_in_token(self, token_id: str) -> SignInTokenRecord:
        record = self.sign_in_tokens.get(token_id)
        if record is None:
            raise FapiError(
                404,
                "resource_not_found",
                "not found",
                f"No sign in token was found with id {token_id}",
            )
        if record.status != "pending":
            raise FapiError(
                400,
                "sign_in_token_cannot_be_revoked_code",
                "cannot revoke",
                f"Sign in token cannot be revoked because its status is {record.status}. "
                "Only pending tokens can be revoked.",
            )
        record.status = "revoked"
        record.updated_at = self.clock.now()
        return record

    def create_template(self, name: str, claims: Mapping[str, Any], lifetime: int) -> None:
        self.templates[name] = TemplateRecord(name, dict(claims), lifetime)

    # --- lookups used by every operation ---

    def client_for_token(self, token: str, *, reject_stale: bool) -> tuple[ClientRecord, int]:
        """The client a token belongs to. With ``reject_stale``, a token replaced by rotation
        works only for ``STALE_CLIENT_TOKEN_GRACE`` seconds more (answers already in flight)."""
        try:
            client_id, generation = self.client_tokens[token]
        except KeyError:
            raise FapiError(
                401,
                "authentication_invalid",
                "Invalid authentication",
                "The Authorization header does not hold a client token issued by this instance.",
            ) from None
        client = self.clients[client_id]
        superseded = client.superseded_at.get(generation)
        if (
            reject_stale
            and superseded is not None
            and self.clock.now() - superseded > STALE_CLIENT_TOKEN_GRACE
        ):
            raise FapiError(
                401,
                "authentication_invalid",
                "Invalid authentication",
                "This client token was rotated: send the one from the latest response.",
            )
        return client, generation

    def _session(self, client: ClientRecord, session_id: str) -> SessionRecord:
        session = self.sessions.get(session_id)
        if session is None or (session.client_id == client.id and session.status == "removed"):
            raise FapiError(
                404,
                "resource_not_found",
                "Resource not found",
                f"No session was found with id {session_id}.",
                meta={"session_id": session_id},
            )
        if session.client_id != client.id:
            raise FapiError(
                401,
                "action_for_session_not_authorized",
                "Action not authorized",
                "The session does not belong to the client this request authenticates.",
                meta={"session_id": session_id},
            )
        self._expire_if_due(session)
        return session

    def _expire_if_due(self, session: SessionRecord) -> None:
        if session.status == "active" and self.clock.now() >= session.expire_at:
            session.status = "expired"
            session.updated_at = session.expire_at

    def _active_session(self, client: ClientRecord, session_id: str, action: str) -> SessionRecord:
        session = self._session(client, session_id)
        if session.status != "active":
            raise FapiError(
                400,
                "invalid_action_for_session",
                f"Unable to {action} session",
                f"Unable to {action} session {session_id}: its status is {session.status}.",
                meta={"session_id": session_id},
            )
        return session

    def _signed_in_session(self, client: ClientRecord, session_id: str) -> SessionRecord:
        """Token minting and reverification answer 401 for a session that is not active."""
        session = self._session(client, session_id)
        if session.status != "active":
            raise FapiError(
                401,
                "authentication_invalid",
                "Invalid authentication",
                f"You need to supply an active session: session {session_id} is {session.status}.",
                meta={"session_id": session_id},
            )
        return session

    def _membership(
        self, user: UserRecord, org_ref: str, *, status: type[Exception] | None = None
    ) -> OrganizationRecord:
        """The organization ``org_ref`` (ID or slug) if ``user`` is a member of it."""
        org = self.organizations.get(org_ref) or next(
            (o for o in self.organizations.values() if o.slug == org_ref), None
        )
        if org is None:
            if status is not None:
                raise status(f"no organization {org_ref!r}")
            raise FapiError(
                404,
                "organization_not_found_or_unauthorized",
                "Organization not found",
                f"No organization {org_ref} was found, or you are not allowed to access it.",
                meta={"organization_id": org_ref},
            )
        if user.id not in org.members:
            if status is not None:
                raise status(f"user {user.id} is not a member of {org_ref!r}")
            raise FapiError(
                403,
                "not_a_member_in_organization",
                "Not a member of this organization",
                f"The user is not a member of organization {org.id}.",
                meta={"organization_id": org.id},
            )
        return org

    # --- the twelve operations ---

    def get_session(self, client: ClientRecord, session_id: str, form: Mapping[str, str]) -> Json:
        session = self._session(client, session_id)
        return {"response": self.render.session(session), "client": self.client_json(client)}

    def touch_session(self, client: ClientRecord, session_id: str, form: Mapping[str, str]) -> Json:
        session = self._active_session(client, session_id, "touch")
        intent = form.get("intent")
        if intent is not None and intent not in ("focus", "select_session", "select_org"):
            raise _form_error(
                "form_param_value_invalid",
                "intent",
                "intent must be one of focus, select_session, select_org.",
            )
        if "active_organization_id" in form:
            org_ref = form["active_organization_id"]
            user = self.users[session.user_id]
            session.last_active_organization_id = (
                self._membership(user, org_ref).id if org_ref else None
            )
        now = self.clock.now()
        session.last_active_at = session.updated_at = now
        client.last_active_session_id = session.id
        client.updated_at = now
        session.last_active_token = self.mint_session_token(
            session, session.last_active_organization_id, source="touch"
        )
        # intent=focus lets the server skip piggybacking the client (fapi-protocol §5).
        piggyback = None if intent == "focus" else self.client_json(client)
        return {"response": self.render.session(session), "client": piggyback}

    def end_session(self, client: ClientRecord, session_id: str, form: Mapping[str, str]) -> Json:
        session = self._active_session(client, session_id, "end")
        self._sign_out(client, session, "ended")
        return {"response": self.render.session(session), "client": self.client_json(client)}

    def remove_session(
        self, client: ClientRecord, session_id: str, form: Mapping[str, str]
    ) -> Json:
        session = self._session(client, session_id)  # 404 once removed: it left the client
        self._sign_out(client, session, "removed")
        return {"response": self.render.session(session), "client": self.client_json(client)}

    def remove_client_sessions_and_retain_cookie(
        self, client: ClientRecord, form: Mapping[str, str]
    ) -> Json:
        for session_id in list(client.session_ids):
            self._sign_out(client, self.sessions[session_id], "removed")
        return {"response": self.client_json(client), "client": None}

    def _sign_out(self, client: ClientRecord, session: SessionRecord, status: str) -> None:
        now = self.clock.now()
        session.status = status
        session.updated_at = now
        session.reverification = None
        if status == "removed":
            client.session_ids.remove(session.id)
        if client.last_active_session_id == session.id:
            still_active = [
                sid for sid in client.session_ids if self.sessions[sid].status == "active"
            ]
            client.last_active_session_id = still_active[-1] if still_active else None
        client.updated_at = now

    def create_session_token(
        self,
        client: ClientRecord,
        session_id: str,
        form: Mapping[str, str],
        minting: Minting | None = None,
    ) -> Json:
        session = self._signed_in_session(client, session_id)
        self._check_minting(session, minting or Minting())
        # Absent: the session's active organization; empty: the personal account (§4).
        org_ref = form.get("organization_id", session.last_active_organization_id)
        org_id = self._membership(self.users[session.user_id], org_ref).id if org_ref else None
        jwt = self.mint_session_token(session, org_id, source="mint")
        session.last_active_token = jwt
        return {"object": "token", "jwt": jwt}

    def _check_minting(self, session: SessionRecord, minting: Minting) -> None:
        """The seed rules of ``/tokens`` (fapi-protocol §7b), after the session checks (an ended
        session is 401 whatever the seed) and before the organization's.

        A seed that is sent must be a session token this instance signed for this session, in
        every mode: expired is fine (that is the point of sending it), but another session's
        token, a JWT template's token, another key's token or garbage is
        ``422 form_param_value_invalid``. ``require_expired_token`` then demands the query
        parameter (the incident servers did not read the body); ``session_minter`` demands a
        seed in either place. A missing one is ``422 missing_expired_token``.
        """
        if minting.force_origin is not None and minting.force_origin not in ("true", "false"):
            raise _form_error(
                "form_param_value_invalid", "force_origin", "force_origin must be true or false."
            )
        for param, value in (("token", minting.token), ("expired_token", minting.expired_token)):
            if value and not self._is_session_token_of(value, session.id):
                raise _form_error(
                    "form_param_value_invalid",
                    param,
                    f"{param} is not a session token of session {session.id}.",
                )
        if (minting.require_expired_token and not minting.expired_token) or (
            minting.session_minter and not (minting.token or minting.expired_token)
        ):
            raise _form_error("missing_expired_token", "expired_token", MISSING_EXPIRED_TOKEN)

    def _is_session_token_of(self, jwt: str, session_id: str) -> bool:
        verified = self.signer.verify(jwt)
        if verified is None:
            return False
        header, claims = verified
        # Session tokens carry Clerk's internal "cat" header; template tokens do not (§7).
        return claims.get("sid") == session_id and "cat" in header

    def create_session_token_with_template(
        self, client: ClientRecord, session_id: str, template_name: str, form: Mapping[str, str]
    ) -> Json:
        session = self._signed_in_session(client, session_id)
        template = self.templates.get(template_name)
        if template is None:
            raise FapiError(
                404,
                "resource_not_found",
                "Resource not found",
                f"No JWT template exists with name: {template_name}",
                meta={"template_name": template_name},
            )
        return {"object": "token", "jwt": self.mint_template_token(session, template)}

    # --- reverification (fapi-protocol §9) ---

    def start_session_reverification(
        self, client: ClientRecord, session_id: str, form: Mapping[str, str]
    ) -> Json:
        session = self._signed_in_session(client, session_id)
        level = form.get("level", "")
        if level not in ("first_factor", "second_factor", "multi_factor"):
            raise _form_error(
                "form_param_value_invalid",
                "level",
                "level must be one of first_factor, second_factor, multi_factor.",
            )
        user = self.users[session.user_id]
        if level != "first_factor" and not user.second_factor_strategies:
            level = "first_factor"  # the spec's fallback for users without a second factor
        status = "needs_second_factor" if level == "second_factor" else "needs_first_factor"
        session.reverification = Reverification(level=level, status=status)
        return self._reverification_envelope(client, session)

    def _reverification(
        self, client: ClientRecord, session_id: str, expected_status: str
    ) -> tuple[SessionRecord, Reverification]:
        session = self._signed_in_session(client, session_id)
        flow = session.reverification
        if flow is None:
            raise FapiError(
                400,
                "session_reverification_missing",
                "Session reverification missing",
                "Start a reverification with POST /v1/client/sessions/{session_id}/verify first.",
            )
        if flow.status != expected_status:
            raise FapiError(
                400,
                "invalid_action_for_session_reverification",
                "Invalid action for this reverification",
                f"This step needs the reverification status {expected_status}; "
                f"it is {flow.status}.",
            )
        return session, flow

    def prepare_session_reverification_first_factor(
        self, client: ClientRecord, session_id: str, form: Mapping[str, str]
    ) -> Json:
        session, flow = self._reverification(client, session_id, "needs_first_factor")
        user = self.users[session.user_id]
        strategy = form.get("strategy")
        if strategy == "email_code":
            target = self._pick(
                user.email_addresses, form.get("email_address_id"), "email_address_id"
            )
            address = target.address
        elif strategy == "phone_code":
            target = self._pick(user.phone_numbers, form.get("phone_number_id"), "phone_number_id")
            address = target.number
        else:
            raise self._strategy_invalid(strategy)
        flow.first_factor_verification = self._send_code(
            flow, "first", strategy, target.id, address
        )
        return self._reverification_envelope(client, session)

    def attempt_session_reverification_first_factor(
        self, client: ClientRecord, session_id: str, form: Mapping[str, str]
    ) -> Json:
        session, flow = self._reverification(client, session_id, "needs_first_factor")
        user = self.users[session.user_id]
        strategy = form.get("strategy", "")
        if strategy == "password":
            if user.password is None:
                raise self._strategy_invalid(strategy)
            if not hmac.compare_digest(form.get("password", ""), user.password):
                raise _form_error("form_password_incorrect", "password", "Password is incorrect.")
            flow.first_factor_verification = _verified(strategy, "verification_password")
        elif strategy in ("email_code", "phone_code"):
            flow.first_factor_verification = self._check_code(flow, "first", strategy, form)
        else:
            raise self._strategy_invalid(strategy)
        session.first_factor_at = self.clock.now()
        flow.status = "complete" if flow.level == "first_factor" else "needs_second_factor"
        return self._reverification_envelope(client, session)

    def prepare_session_reverification_second_factor(
        self, client: ClientRecord, session_id: str, form: Mapping[str, str]
    ) -> Json:
        session, flow = self._reverification(client, session_id, "needs_second_factor")
        user = self.users[session.user_id]
        strategy = form.get("strategy") or "phone_code"
        mfa_phones = [phone for phone in user.phone_numbers if phone.second_factor]
        if strategy != "phone_code" or not mfa_phones:
            raise self._strategy_invalid(strategy)
        target = self._pick(mfa_phones, form.get("phone_number_id"), "phone_number_id")
        flow.second_factor_verification = self._send_code(
            flow, "second", strategy, target.id, target.number
        )
        return self._reverification_envelope(client, session)

    def attempt_session_reverification_second_factor(
        self, client: ClientRecord, session_id: str, form: Mapping[str, str]
    ) -> Json:
        session, flow = self._reverification(client, session_id, "needs_second_factor")
        user = self.users[session.user_id]
        strategy = form.get("strategy", "")
        code = form.get("code", "")
        if strategy == "phone_code" and "phone_code" in user.second_factor_strategies:
            flow.second_factor_verification = self._check_code(flow, "second", strategy, form)
        elif strategy == "totp" and user.totp_secret is not None:
            now = self.clock.now()
            valid = {totp_code(user.totp_secret, now + drift) for drift in (-30, 0, 30)}
            if code not in valid:
                raise _form_error("form_code_incorrect", "code", "Incorrect code")
            flow.second_factor_verification = _verified(strategy, "verification_totp")
        elif strategy == "backup_code" and user.backup_codes:
            if code not in user.backup_codes:
                raise _form_error("form_code_incorrect", "code", "Incorrect code")
            user.backup_codes.remove(code)  # each backup code works once
            flow.second_factor_verification = _verified(strategy, "verification_backup_code")
        else:
            raise self._strategy_invalid(strategy)
        session.second_factor_at = self.clock.now()
        flow.status = "complete"
        return self._reverification_envelope(client, session)

    def _pick(self, records: list[Any], wanted_id: str | None, param: str) -> Any:
        if not wanted_id:
            if not records:
                raise self._strategy_invalid(param.removesuffix("_id"))
            return records[0]
        for record in records:
            if record.id == wanted_id:
                return record
        raise _form_error(
            "form_param_value_invalid", param, f"{param} {wanted_id} is not the user's."
        )

    @staticmethod
    def _strategy_invalid(strategy: str | None) -> FapiError:
        return FapiError(
            400,
            "strategy_for_user_invalid",
            "Invalid verification strategy",
            f"The verification strategy {strategy!r} is not valid for this user or this step.",
        )

    def _send_code(
        self, flow: Reverification, step: str, strategy: str, target_id: str, address: str
    ) -> VerificationRecord:
        now = self.clock.now()
        test_address = (
            is_test_email(address) if strategy == "email_code" else is_test_phone(address)
        )
        code = TEST_CODE if test_address else f"{self.rng.randrange(10**6):06d}"
        if not test_address:
            self.outbox.append(OutboxMessage(address, strategy, code))
        flow.pending[step] = PendingCode(strategy, target_id, code, now + CODE_LIFETIME)
        return _otp(strategy, "unverified", 0, now + CODE_LIFETIME)

    def _check_code(
        self, flow: Reverification, step: str, strategy: str, form: Mapping[str, str]
    ) -> VerificationRecord:
        pending = flow.pending.get(step)
        if pending is None or pending.strategy != strategy:
            raise FapiError(
                400,
                "verification_missing",
                "Verification missing",
                f"Prepare the {strategy} verification before attempting it.",
            )
        if self.clock.now() >= pending.expire_at:
            raise FapiError(
                400,
                "verification_expired",
                "Verification expired",
                "The code expired: prepare the verification again.",
            )
        if pending.attempts >= MAX_CODE_ATTEMPTS:
            raise FapiError(
                400,
                "verification_failed",
                "Too many failed attempts",
                "Too many failed attempts: prepare the verification again.",
            )
        pending.attempts += 1
        if not hmac.compare_digest(form.get("code", ""), pending.code):
            raise _form_error("form_code_incorrect", "code", "Incorrect code")
        del flow.pending[step]
        return _otp(strategy, "verified", pending.attempts, pending.expire_at)

    def _reverification_envelope(self, client: ClientRecord, session: SessionRecord) -> Json:
        return {"response": self.render.reverification(session), "client": self.client_json(client)}

    # --- what an answer shows ---

    def client_json(self, client: ClientRecord) -> Json:
        """``client`` as an answer shows it: its sessions past ``expire_at`` turn ``expired``
        first (Clerk expires a session when it is next read), then ``render.client``."""
        for session_id in client.session_ids:
            self._expire_if_due(self.sessions[session_id])
        return self.render.client(client)

    # --- session tokens (fapi-protocol §7) ---

    def _base_claims(self, session: SessionRecord, lifetime: int) -> Json:
        now = int(self.clock.now())
        return {
            "exp": now + lifetime,
            "iat": now,
            "iss": self.issuer,
            "jti": "".join(self.rng.choices(_ID_ALPHABET, k=20)),
            "nbf": now - 10,
            "sub": session.user_id,
        }

    def _issued(
        self,
        jwt: str,
        claims: Json,
        session: SessionRecord,
        source: str,
        template: str | None,
        org_id: str | None,
    ) -> str:
        self.issued_tokens.append(
            IssuedTokenRecord(
                jwt=jwt,
                session_id=session.id,
                client_id=session.client_id,
                source=source,
                template=template,
                organization_id=org_id,
                issued_at=self.clock.now(),
                iat=claims["iat"],
                exp=claims["exp"],
            )
        )
        cap = self.max_issued_tokens
        if cap is not None and len(self.issued_tokens) > cap:
            del self.issued_tokens[: len(self.issued_tokens) - cap]
        return jwt

    def mint_session_token(
        self, session: SessionRecord, org_id: str | None, *, source: str = "mint"
    ) -> str:
        claims = self._base_claims(session, self.token_lifetime)
        fva = session.factor_verification_age(self.clock.now())
        claims.update({"fva": fva, "sid": session.id, "sts": "active", "v": 2})
        if org_id is not None:
            org = self.organizations[org_id]
            role = org.members[session.user_id]
            claims["o"] = {"id": org.id, "slg": org.slug, "rol": role.removeprefix("org:")}
        jwt = self.signer.sign(claims, {"cat": "cl_B7d4PD111AAA", "oiat": claims["iat"]})
        return self._issued(jwt, claims, session, source, None, org_id)

    def mint_template_token(self, session: SessionRecord, template: TemplateRecord) -> str:
        claims = self._base_claims(session, template.lifetime)
        claims["sid"] = session.id
        values = self._shortcodes(session)
        claims.update({key: _fill(value, values) for key, value in template.claims.items()})
        org_id = session.last_active_organization_id
        jwt = self.signer.sign(claims)
        return self._issued(jwt, claims, session, "template", template.name, org_id)

    def _shortcodes(self, session: SessionRecord) -> dict[str, Any]:
        """Values for ``{{user.…}}``, ``{{org.…}}`` and ``{{session.…}}`` in template claims."""
        user = self.users[session.user_id]
        values: dict[str, Any] = {
            "user.id": user.id,
            "user.first_name": user.first_name,
            "user.last_name": user.last_name,
            "user.full_name": " ".join(filter(None, (user.first_name, user.last_name))) or None,
            "user.username": user.username,
            "user.primary_email_address": user.email_addresses[0].address
            if user.email_addresses
            else None,
            "user.primary_phone_number": user.phone_numbers[0].number
            if user.phone_numbers
            else None,
            "user.public_metadata": user.public_metadata,
            "user.two_factor_enabled": bool(user.second_factor_strategies),
            "user.created_at": int(user.created_at),
            "session.id": session.id,
            "session.actor": None,
        }
        values.update({f"user.public_metadata.{k}": v for k, v in user.public_metadata.items()})
        org_id = session.last_active_organization_id
        if org_id is not None:
            org = self.organizations[org_id]
            values.update(
                {
                    "org.id": org.id,
                    "org.name": org.name,
                    "org.slug": org.slug,
                    "org.role": org.members[user.id],
                    "org.public_metadata": org.public_metadata,
                }
            )
        return values


def _fill(value: Any, values: Mapping[str, Any]) -> Any:
    """Replace Clerk's ``{{shortcode}}`` templates inside a claim value (recursively)."""
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    stripped = value.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
        return values.get(stripped[2:-2].strip())  # a whole-value shortcode keeps its type
    out = value
    for key, item in values.items():
        out = out.replace("{{" + key + "}}", "" if item is None else str(item))
    return out


def _otp(strategy: str, status: str, attempts: int, expire_at: float) -> VerificationRecord:
    return VerificationRecord("verification_otp", status, strategy, attempts, expire_at)


def _verified(strategy: str, kind: str) -> VerificationRecord:
    """A factor verified without a code that expires (password, TOTP, backup code)."""
    return VerificationRecord(kind, "verified", strategy, 1, None)
