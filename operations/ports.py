"""Free loopback ports for test stacks and throwaway instances."""

from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP (PJSIP binds both)."""
    for _ in range(50):
        p = free_port(socket.SOCK_DGRAM, host)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, p))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port")
