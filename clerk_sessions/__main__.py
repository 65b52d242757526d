"""``python -m clerk_sessions``: the ``clerk-sessions`` command line."""

from clerk_sessions.cli import main

raise SystemExit(main())
