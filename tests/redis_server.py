"""The ``redis_server`` fixture: a real redis-server per test (see
``clerk_sessions.testing.RedisServer``), skipped with how to install it when ``redis-server`` is
not on PATH (CI installs it in ``.ci/run``): never a silent pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clerk_sessions.testing._redis_server import (
    RedisServer,
    RedisServerNotInstalled,
    running_redis,
)

__all__ = ["RedisServer", "redis_server"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of its own for the test, on a free loopback port; skipped (saying
    how to install it) when ``redis-server`` is not on PATH."""
    try:
        with running_redis(tmp_path) as server:
            yield server
    except RedisServerNotInstalled as missing:
        pytest.skip(str(missing))
