"""Free TCP ports on the loopback interface, for servers and brokers the tests start themselves."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port that was free a moment ago (the OS chose it; nothing listens on it now)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
