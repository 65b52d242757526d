"""What every generator here shares: formatting the output and the ``--check`` comparison.

A committed generated file must equal a fresh generation byte for byte (whole files, not line
by line, so trailing additions and newline changes are caught too).
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _ruff(args: list[str], source: str, path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(path), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ruff {args[0]} failed:\n{result.stderr}")
    return result.stdout


def ruff_format(source: str, path: Path) -> str:
    """Sort imports and format with the repo's ruff configuration, as if ``source`` were
    the file at ``path`` (generators emit imports unsorted and lines unwrapped)."""
    sorted_imports = _ruff(
        ["check", "--select", "I", "--fix", "--exit-zero", "--quiet"], source, path
    )
    return _ruff(["format"], sorted_imports, path)


def stale_diff(expected: str, actual: str, name: str, limit: int = 40) -> str:
    """A short unified diff from the committed file to the regenerated one ('' if equal)."""
    if expected == actual:
        return ""
    diff = list(
        difflib.unified_diff(
            actual.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=f"committed/{name}",
            tofile=f"generated/{name}",
        )
    )
    if not diff:  # differs only in something splitlines hides (e.g. a final newline)
        return "(files differ in line endings or a trailing newline)\n"
    more = len(diff) - limit
    text = "".join(diff[:limit])
    if more > 0:
        text += f"... ({more} more diff lines)\n"
    return text


def check_file(path: Path, expected: str, regenerate: str, source: str) -> str:
    """'' if ``path`` holds exactly ``expected``, else a message saying how to fix it."""
    if not path.is_file():
        return f"{path} does not exist; run: {regenerate}\n"
    diff = stale_diff(expected, path.read_text(encoding="utf-8"), path.name)
    if not diff:
        return ""
    return (
        f"{path} is out of date with {source} (or was edited by hand).\n"
        f"Regenerate it with: {regenerate}\n{diff}"
    )
