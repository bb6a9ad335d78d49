"""A throwaway ``redis-server`` on a free loopback port, for ``hotline up`` and for tests.

No persistence (``save ""``, no AOF), data in a temporary directory removed on stop::

    with RedisServer() as redis:
        use(redis.url)

or ``server = RedisServer(); server.start(); ...; server.stop()``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


class RedisServerError(RuntimeError):
    """redis-server is missing or did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(
        self,
        executable: str = "redis-server",
        host: str = "127.0.0.1",
        port: int | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.executable = executable
        self.host = host
        self.port = port or 0
        self.start_timeout = start_timeout
        self._fixed_port = port is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        if self._proc is None:
            raise RedisServerError("redis-server is not running")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisServer:
        if self._proc is not None:
            return self
        exe = shutil.which(self.executable)
        if exe is None:
            raise RedisServerError(f"{self.executable} not found (Debian package: redis-server)")
        self._dir = Path(tempfile.mkdtemp(prefix="hotline-redis-"))
        last = ""
        for _attempt in range(1 if self._fixed_port else 3):  # a free port can be taken before we bind it
            if not self._fixed_port:
                self.port = free_port(self.host)
            self._proc = subprocess.Popen(
                [
                    exe,
                    "--port",
                    str(self.port),
                    "--bind",
                    self.host,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self._dir),
                    "--daemonize",
                    "no",
                    "--logfile",
                    str(self._dir / "redis.log"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline and self._proc.poll() is None:
                if ping(self.host, self.port):
                    return self
                time.sleep(0.02)
            last = self._log_tail()
            self._kill()
        self._cleanup_dir()
        raise RedisServerError(f"redis-server did not answer PING on {self.host}:{self.port}: {last}")

    def stop(self) -> None:
        self._kill()
        self._cleanup_dir()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def _log_tail(self) -> str:
        try:
            return (self._dir / "redis.log").read_text(errors="replace")[-500:] if self._dir else ""
        except OSError:
            return ""

    def _cleanup_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
