"""Developer tasks. ``python -m nox -s tests`` runs the suite on every Python 3.10-3.13 present.

Sessions: tests, lint, typecheck, generate (``-- --check`` fails on drift), bench, soak.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

nox.options.sessions = ["tests", "lint", "typecheck", "generate"]
# A machine without some interpreter still runs the others (CI=true would make nox fail).
nox.options.error_on_missing_interpreters = False
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"

GENERATORS = ["tools/generate_models.py", "tools/generate_sync.py"]

# Interpreters come from the machine, never from a download.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


def _expose_pyenv_interpreters() -> None:
    """Let ``python3.X`` resolve for every pyenv-installed 3.10-3.13, not just the global one.

    pyenv's shims refuse versions that are installed but not selected; nox looks interpreters
    up by those names.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    installed = sorted(
        path.name
        for version in PYTHONS
        for path in (root / "versions").glob(f"{version}.*")
        if (path / "bin" / f"python{version}").exists()
    )
    if installed and "PYENV_VERSION" not in os.environ:
        os.environ["PYENV_VERSION"] = ":".join(installed)


_expose_pyenv_interpreters()


COVERAGE_PYTHON = "3.12"
"""Coverage is measured on one interpreter (the bench's): the code is the same on all four,
and tracing every line costs the others a third of their time."""


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite: on pytest-xdist workers, then the ``serial`` tests alone (they judge
    behaviour at a normal load); with coverage on 3.12. Extra arguments go to pytest."""
    session.install("-e", ".[test]")
    # Development mode (ResourceWarnings, asyncio debug checks) and unclosed resources as
    # errors, through the environment so that every worker process has them too.
    env = {"PYTHONDEVMODE": "1", "PYTHONWARNINGS": "error::ResourceWarning"}
    covered = session.python == COVERAGE_PYTHON
    # coverage, not pytest-cov: it must start before pytest loads our own pytest11 plugin,
    # which imports the package; patch = subprocess (pyproject) measures the workers.
    pytest = ["coverage", "run", "-m", "pytest"] if covered else ["python", "-m", "pytest"]
    if covered:
        session.run("coverage", "erase")
    session.run(*pytest, "-n", _workers(), "-m", "not serial", *session.posargs, env=env)
    # Exit code 5: the arguments selected no serial test (e.g. one file given).
    session.run(*pytest, "-m", "serial", *session.posargs, env=env, success_codes=[0, 5])
    if covered:
        session.run("coverage", "combine", "--quiet")
        session.run("coverage", "report", "--fail-under=90")


def _workers() -> str:
    """One per core, at least two: the tests mostly wait on loopback servers and Redis."""
    return str(max(2, os.cpu_count() or 1))


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.12")
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy>=1.11")  # test pulls cli+testing: all modules typed
    session.run("mypy", "--strict", "clerk_sessions")


@nox.session(python="3.12")
def generate(session: nox.Session) -> None:
    """Regenerate committed code from its sources; ``-- --check`` only verifies it is current."""
    session.install("-e", ".", "pyyaml>=6", "ruff>=0.6")
    for script in GENERATORS:
        session.run("python", script, *session.posargs)


# Peers measured for context only; never dependencies of the package.
BENCH_PEERS = {
    "httpx + pydantic": ["httpx>=0.27", "pydantic>=2.7"],
    "clerk-backend-api": ["clerk-backend-api"],
}


@nox.session(python="3.12")
def bench(session: nox.Session) -> None:
    """Benchmarks; ``-- --quick`` is the smoke run CI uses (writes benchmarks/results/quick/).

    A peer that fails to install is reported as a skipped row, with the reason.
    """
    # The Redis rows need redis-py and the emulator (redis-server itself comes from the machine).
    session.install("-e", ".[redis,testing]")
    skipped = []
    for name, packages in BENCH_PEERS.items():
        try:
            session.install(*packages, silent=True)
        except nox.command.CommandFailed as exc:
            skipped.append(f"{name}: {exc.reason or 'pip install failed'}")
    command = " ".join(
        ["python -m nox -s bench", *(["--", *session.posargs] if session.posargs else [])]
    )
    env = {"BENCH_COMMAND": command, "BENCH_PEERS_SKIPPED": "; ".join(skipped)}
    session.run("python", "benchmarks/run.py", *session.posargs, env=env)


@nox.session(python="3.12")
def soak(session: nox.Session) -> None:
    """Worker processes on one Redis against the emulator, under seeded faults, judged from the
    emulator's records: ``-- --duration 60 --workers 3 --devices 200 --seed 1 --json PATH``.

    Needs ``redis-server`` on PATH. Exits non-zero if any check fails.
    """
    session.install("-e", ".[redis,testing]")
    session.run("python", "benchmarks/soak.py", *session.posargs)
