"""What ``import clerk_sessions`` loads: the core, not the optional features.

Batch refresh (``_batch``), step-up (``_reverify``), the blocking client (``_sync``/
``_bridge``) and the retry event (``_retry_event``) are loaded on first use; their public names
still import from the package, and ``dir()``/``__all__`` still list them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import clerk_sessions

LAZY_MODULES = (
    "clerk_sessions._batch",
    "clerk_sessions._reverify",
    "clerk_sessions._sync",
    "clerk_sessions._bridge",
    "clerk_sessions._retry_event",
    "secrets",
)


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_the_package_leaves_the_optional_features_unloaded() -> None:
    result = run_fresh(
        f"""
        import sys
        import clerk_sessions

        loaded = [name for name in {LAZY_MODULES!r} if name in sys.modules]
        assert not loaded, loaded

        from clerk_sessions import RetryEvent, ReverificationStep, TokenRequest

        assert RetryEvent.__module__ == "clerk_sessions._retry_event"
        assert TokenRequest.__module__ == "clerk_sessions._batch"
        assert ReverificationStep.__module__ == "clerk_sessions._reverify"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_every_public_name_is_listed_and_resolves() -> None:
    assert set(clerk_sessions.__all__) <= set(dir(clerk_sessions))
    for name in clerk_sessions.__all__:
        assert getattr(clerk_sessions, name) is not None
