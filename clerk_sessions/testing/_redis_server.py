"""A real ``redis-server`` for tests and the demo: started on a free loopback port, then killed,
restarted, frozen (``SIGSTOP``) or put to sleep (``DEBUG SLEEP``) on purpose; optionally also
serving TLS (``RedisServer(directory, tls=TLSFiles(...))``, when the build supports it).

``running_redis(directory)`` starts one (``RedisServerNotInstalled`` without ``redis-server``
on PATH, saying how to install it); the project's tests wrap it in a pytest fixture that skips.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

NOT_INSTALLED = "redis-server is not installed: apt-get install redis-server (CI installs it)"

# Startup only (not test synchronisation): how long a fresh server may take to answer PING.
_STARTUP_SECONDS = 10.0
_STARTUP_POLL = 0.005
_STOP_SECONDS = 10.0


class RedisServerNotInstalled(RuntimeError):
    """``redis-server`` is not on PATH."""


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """PEM files for a TLS port: the server's certificate and key, and the CA that signed it
    (clients verify the server with it; the server asks clients for no certificate)."""

    cert: Path
    key: Path
    ca: Path


def redis_server_executable() -> str:
    """The path of ``redis-server``, or ``RedisServerNotInstalled`` saying how to install it."""
    path = shutil.which("redis-server")
    if path is None:
        raise RedisServerNotInstalled(NOT_INSTALLED)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _resp(*args: str | bytes) -> bytes:
    """One command in Redis's wire protocol."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("redis-server closed the connection")
        data += chunk
    return data


class Sleeping:
    """A ``DEBUG SLEEP`` in progress (see :meth:`RedisServer.debug_sleep`)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def still_sleeping(self) -> bool:
        """True while the server has not answered the ``DEBUG SLEEP`` (it still sleeps)."""
        self._sock.setblocking(False)
        try:
            self._sock.recv(1, socket.MSG_PEEK)  # a reply, or the end of the connection
        except BlockingIOError:
            return True
        finally:
            self._sock.setblocking(True)
        return False


class RedisServer:
    """One ``redis-server`` process in ``directory``, on 127.0.0.1:``port`` (kept across
    restarts), with nothing persisted."""

    def __init__(
        self, directory: Path, port: int | None = None, *, tls: TLSFiles | None = None
    ) -> None:
        self.executable = redis_server_executable()
        self.directory = directory
        self.port = port or free_port()
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def tls_url(self) -> str:
        """``rediss://`` to the TLS port, verifying the server with the test CA."""
        assert self.tls is not None, "RedisServer(tls=...) serves TLS"
        return f"rediss://127.0.0.1:{self.tls_port}/0?ssl_ca_certs={self.tls.ca}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _version(self) -> tuple[int, ...]:
        out = subprocess.run(
            [self.executable, "--version"], capture_output=True, check=True, text=True
        ).stdout
        match = re.search(r"v=(\d+)\.(\d+)", out)
        return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

    def start(self) -> None:
        if self.running:
            raise RuntimeError("redis-server is already running")
        args = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
        ]
        if self._version() >= (7, 0):  # DEBUG is refused by default since Redis 7
            args += ["--enable-debug-command", "local"]
        if self.tls is not None:
            args += [
                "--tls-port",
                str(self.tls_port),
                "--tls-cert-file",
                str(self.tls.cert),
                "--tls-key-file",
                str(self.tls.key),
                "--tls-ca-cert-file",
                str(self.tls.ca),
                "--tls-auth-clients",
                "no",
            ]
        if self._log is None:
            self._log = (self.directory / "redis-server.log").open("ab")
        self.process = subprocess.Popen(
            args, cwd=self.directory, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.paused = False
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        """Poll PING until the new server answers (bounded): this is startup."""
        deadline = time.monotonic() + _STARTUP_SECONDS
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at startup: {self._log_tail()}")
            with contextlib.suppress(OSError):
                if self.command("PING", timeout=0.5) == b"+PONG\r\n":
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer PING: {self._log_tail()}")
            time.sleep(_STARTUP_POLL)

    def _log_tail(self) -> str:
        path = self.directory / "redis-server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def command(self, *args: str, timeout: float = 5.0) -> bytes:
        """One command on a fresh connection; its first reply line (for simple replies)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(_resp(*args))
            return _read_line(sock)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-run (its data with it)."""
        self._signal_and_wait(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown."""
        if self.paused:
            self.resume()
        self._signal_and_wait(signal.SIGTERM)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port, empty."""
        if self.running:
            self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP, returning once the process is stopped: connections are accepted by the
        kernel but nothing answers."""
        assert self.process is not None
        assert self.running
        os.kill(self.process.pid, signal.SIGSTOP)
        _pid, status = os.waitpid(self.process.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), status
        self.paused = True

    def resume(self) -> None:
        """SIGCONT."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    @contextlib.contextmanager
    def debug_sleep(self, seconds: float) -> Iterator[Sleeping]:
        """``DEBUG SLEEP seconds``: the server is busy (answers nothing) for that long.

        Entered once the server is certainly asleep: the same packet first has it kill a
        connection of ours (its EOF arrives at once), and the server runs the next command of a
        packet, the sleep, before it reads anything else. Leaving waits for the sleep to end.
        """
        witness = socket.create_connection(("127.0.0.1", self.port), timeout=5.0)
        sleeper = socket.create_connection(("127.0.0.1", self.port), timeout=seconds + 10.0)
        try:
            witness.sendall(_resp("CLIENT", "ID"))
            witness_id = _read_line(witness)[1:].strip().decode()
            sleeper.sendall(
                _resp("CLIENT", "KILL", "ID", witness_id) + _resp("DEBUG", "SLEEP", str(seconds))
            )
            assert witness.recv(1) == b"", "the witness connection should have been closed"
            yield Sleeping(sleeper)
            assert _read_line(sleeper).startswith(b":1")  # CLIENT KILL: one client killed
            assert _read_line(sleeper) == b"+OK\r\n"  # DEBUG SLEEP: done
        finally:
            witness.close()
            sleeper.close()

    def _signal_and_wait(self, signum: signal.Signals) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        process.wait(timeout=_STOP_SECONDS)
        self.paused = False

    def close(self) -> None:
        if self.running:
            self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def running_redis(directory: Path, *, tls: TLSFiles | None = None) -> Iterator[RedisServer]:
    """A started server in ``directory`` (also on a TLS port with ``tls``), killed on exit
    (``RedisServerNotInstalled`` without redis-server)."""
    server = RedisServer(directory, tls=tls)
    try:
        for attempt in range(3):  # the free port may be taken between picking and binding
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                server.close()
                server = RedisServer(directory, tls=tls)
        yield server
    finally:
        server.close()
