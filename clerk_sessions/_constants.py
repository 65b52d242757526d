"""Every default a caller can change (a constructor or call parameter, an environment variable)
and every tuning number more than one module uses, in one place: change it here, and only here.

A module's private protocol facts (reverification levels, the bodies' field names, an internal
batch size) stay beside the code they describe."""

from __future__ import annotations

from typing import Final

from ._types import Timeout

# Clerk-API-Version sent on every request (header only; never also as a query parameter).
DEFAULT_API_VERSION: Final = "2026-05-12"

# Split timeouts: a slow server should not hang a web worker for minutes, and a dead host
# should fail fast. ``connect`` also bounds the wait for a free connection in the pool.
DEFAULT_TIMEOUT: Final = Timeout(total=30.0, connect=5.0)

# Retries (decisions in _retry.py). Statuses worth another attempt for any operation that
# retries; 500 only for operations safe to repeat (a 500 may come after the server acted).
DEFAULT_MAX_RETRIES: Final = 2
RETRYABLE_STATUSES: Final = frozenset({408, 429, 502, 503, 504})
# Backoff: 0.5 s, 1 s, 2 s, ... capped at 8 s, each shortened by up to 25 % at random so that
# many clients failing together do not retry together.
RETRY_INITIAL_DELAY: Final = 0.5
RETRY_MAX_DELAY: Final = 8.0
RETRY_JITTER: Final = 0.25
# A Retry-After longer than this is not slept through: the caller gets the error at once.
RETRY_AFTER_CAP: Final = 60.0

# Connection pool: enough for a batch job's fan-out, small enough not to trip rate limits.
DEFAULT_CONNECTION_LIMIT: Final = 100

# Session-token cache (fapi-protocol.md §7): never hand out a token with less than the leeway
# left (clocks drift, requests take time); refresh in the background once this little is left.
DEFAULT_TOKEN_LEEWAY: Final = 10.0
DEFAULT_TOKEN_REFRESH_AHEAD: Final = 15.0
DEFAULT_TOKEN_CACHE_SIZE: Final = 10_000
# A background refresh that failed is not started again for this long: the cached token is
# still valid, and a dead server must not be asked on every lookup.
TOKEN_REFRESH_RETRY_DELAY: Final = 1.0

# Devices (Clerk clients) whose records a client keeps while no view holds them: views made per
# web request find their device's cache entries and current client token again.
MAX_DEVICES: Final = 10_000

# Batch refresh: requests in flight at once.
DEFAULT_BATCH_CONCURRENCY: Final = 32

# A batch's connection breaker: this many connection failures in a row (nothing answered) and
# the batch stops sending; one probe request goes after the cool-down (doubling up to the cap)
# and the breaker closes when a probe gets any answer.
BREAKER_FAILURES: Final = 5
BREAKER_COOL_DOWN: Final = 1.0
BREAKER_MAX_COOL_DOWN: Final = 30.0

# A response body larger than this is refused unread (a 23 KB getSession is typical).
MAX_RESPONSE_BYTES: Final = 10 * 1024 * 1024

# Error messages quote at most this much of a non-JSON body (e.g. a proxy's HTML page).
BODY_EXCERPT_CHARS: Final = 200

# RedisStore (clerk_sessions.redis): many workers, one truth.
# Each Redis call on an established connection must answer within this budget (a call that does
# not answers from this process). 250 ms: a 10-20 ms round trip (Redis in another zone, TLS)
# with a busy machine's scheduling jitter fits many times over, so a healthy Redis does not miss
# it, while a cached get_token never waits longer than this on a frozen or unreachable Redis.
DEFAULT_REDIS_TIMEOUT: Final = 0.25
# Opening a connection (TCP, TLS handshake, AUTH/SELECT) has its own, generous budget: a few
# round trips plus the handshake's CPU. Each event loop's first connection is opened in the
# background as soon as the store is used there. The health probe (a PING) has this budget too.
DEFAULT_REDIS_CONNECT_TIMEOUT: Final = 2.0
# Redis is "down" (the store works in-process) after this many consecutive failed calls (calls
# that overlapped a failure already counted count once), a failed health probe, a refused
# connection or a connection that could not be opened within its budget; never after one slow
# answer.
REDIS_FAILURES_BEFORE_DOWN: Final = 3
# A call that ended this much later than its budget was held up by this process (its event
# loop was blocked, or the machine did not run it), not by Redis: it answers from this process
# but is not counted as a Redis failure.
REDIS_LOOP_STALL: Final = 0.05
# A mint lease whose taking was not confirmed (the answer to begin_mint was lost or late) lives
# at most this long; a confirmed one is then extended to the mint's full lease.
REDIS_UNCONFIRMED_LEASE: Final = 2.0
# After a failure Redis is left alone this long, then tried again; doubling up to the cap.
REDIS_RETRY_INITIAL_DELAY: Final = 1.0
REDIS_RETRY_MAX_DELAY: Final = 30.0
# Redis calls in flight per event loop (one connection each). More would not be faster (one
# loop's CPU is the limit), and every call's time budget would include the others' CPU time;
# calls beyond it wait for a free one, outside their budget (a busy pool is not an outage).
REDIS_MAX_CONNECTIONS: Final = 8
# A device's client token is forgotten after this long unused (bearer credentials of abandoned
# devices should not stay in Redis forever); every request refreshes it.
CLIENT_TOKEN_TTL: Final = 30 * 24 * 3600.0
# The client tokens a device moved past that it remembers: a view made later with one of them
# (an old token still in a caller's hands) sends the current one instead, and a late answer
# carrying one of them never takes the device back to it.
RETIRED_CLIENT_TOKENS: Final = 8
# A device's sign-out counter outlives every mint that could have begun before a sign-out.
SIGN_OUT_COUNTER_TTL: Final = 24 * 3600.0
# A waiter whose leader went silent wakes this long after the leader's lease ends in Redis.
LEASE_EXPIRY_SLACK: Final = 0.005
# While mints are awaited, the pub/sub connection checks Redis this often (a frozen Redis
# announces nothing: its waiters must not wait out the lease).
LISTENER_PING_INTERVAL: Final = 0.25
# Sign-outs, rotations, proofs and lease releases made while Redis was down (or whose write may
# not have landed), replayed when it answers again (bounded).
MAX_PENDING_WHILE_DOWN: Final = 10_000

ENV_PUBLISHABLE_KEY: Final = "CLERK_PUBLISHABLE_KEY"
ENV_FRONTEND_API_URL: Final = "CLERK_FRONTEND_API_URL"
ENV_CLIENT_TOKEN: Final = "CLERK_CLIENT_TOKEN"
ENV_LOG: Final = "CLERK_SESSIONS_LOG"
ENV_SESSION_MINTER: Final = "CLERK_SESSION_MINTER"
ENV_SECRET_KEY: Final = "CLERK_SECRET_KEY"
ENV_BACKEND_API_URL: Final = "CLERK_BACKEND_API_URL"

# clerk_sessions.admin (sign-in tickets through the Backend API).
DEFAULT_BACKEND_API_URL: Final = "https://api.clerk.com"
# Seconds a ticket made there lives unless told otherwise: @clerk/testing's choice (the Backend
# API's own default is 30 days, far longer than a sign-in that follows at once needs).
DEFAULT_SIGN_IN_TOKEN_LIFETIME: Final = 300

# reverify(): the strategies it can drive, in its default order of preference.
DEFAULT_FIRST_FACTOR_STRATEGIES: Final = ("email_code", "phone_code", "password")
DEFAULT_SECOND_FACTOR_STRATEGIES: Final = ("totp", "phone_code", "backup_code")

FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
