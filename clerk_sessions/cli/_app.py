"""Parse, dispatch, and turn every failure into a message and an exit code."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence

from clerk_sessions._constants import ENV_CLIENT_TOKEN
from clerk_sessions._logging import logger
from clerk_sessions.admin import ENV_SECRET_KEY

from ._commands import COMMANDS
from ._exit import EXIT_BROKEN_PIPE, UsageError, exit_code_for
from ._output import Output
from ._parser import build_parser, check_combinations
from ._settings import Settings


def run(argv: list[str] | None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except BrokenPipeError:
        return _stdout_closed()
    return code


def _stdout_closed() -> int:
    """The reader of stdout went away (``clerk-sessions … | head -1``): stop quietly.

    No message (the reader chose to stop reading) and no traceback. stdout is pointed at
    /dev/null, as Python's documentation of SIGPIPE advises, so that the interpreter's own
    flush of what is still buffered, at exit, has nowhere to fail ("Exception ignored ...
    BrokenPipeError"). The status is the one a shell reports for a tool that SIGPIPE ends.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):  # a stdout without a file descriptor (embedded, captured)
        pass
    return EXIT_BROKEN_PIPE


def _run(argv: list[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Until the arguments are known: a usage error may quote any of them.
    out = Output(json_mode="--json" in arguments, secrets=_secrets_in(arguments))
    try:
        args = parser.parse_args(arguments)
        check_combinations(args)
        settings = Settings.from_args(args)
    except SystemExit as exit:  # --help and --version
        return exit.code if isinstance(exit.code, int) else 0
    except UsageError as error:
        out.error(error, usage=error.usage)
        return exit_code_for(error)
    out = Output(
        json_mode=settings.json, secrets=(*settings.secrets, getattr(args, "ticket", None))
    )
    with _sdk_debug_logging(settings.debug):
        try:
            return COMMANDS[args.action](args, settings, out)
        except BrokenPipeError:  # stdout is closed: nobody reads an error report there
            raise
        except (Exception, KeyboardInterrupt) as error:
            if settings.debug:
                traceback.print_exception(error, file=sys.stderr)
            out.error(error)
            return exit_code_for(error)


_SECRET_FLAGS = ("--client-token", "--secret-key", "--ticket")


def _secrets_in(arguments: Sequence[str]) -> tuple[str | None, ...]:
    """The values of the flags that carry credentials (``--flag VALUE`` or ``--flag=VALUE``),
    and the environment's, before argparse has made sense of the command line."""
    found: list[str | None] = [os.environ.get(ENV_CLIENT_TOKEN), os.environ.get(ENV_SECRET_KEY)]
    for i, argument in enumerate(arguments):
        flag, equals, value = argument.partition("=")
        if flag in _SECRET_FLAGS:
            found.append(value if equals else next(iter(arguments[i + 1 : i + 2]), None))
    return tuple(found)


@contextlib.contextmanager
def _sdk_debug_logging(enabled: bool) -> Iterator[None]:
    """--debug: the SDK's log lines on stderr for this run only. They hold only safe fields
    (operation, status, timing, trace id), never credentials."""
    if not enabled:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(name)s %(levelname)s] %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
