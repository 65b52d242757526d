"""``clerk-sessions``: the Sessions operations of Clerk's Frontend API from the terminal.

Needs the ``cli`` extra (``pip install 'clerk-sessions[cli]'``): rich for tables and progress
bars, and the local emulator for ``clerk-sessions demo``. The core package never imports this.
"""

from __future__ import annotations

import sys

from ._exit import (
    EXIT_API_ERROR,
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_NETWORK_ERROR,
    EXIT_OK,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
)

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK_ERROR",
    "EXIT_OK",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "main",
]


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    try:
        import rich  # noqa: F401
    except ImportError:
        print(
            "clerk-sessions: the command line needs its extra: pip install 'clerk-sessions[cli]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from ._app import run

    return run(argv)
