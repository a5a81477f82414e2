"""A requests Session whose socket another thread can shut down, to stop an agent mid-read.

An agent blocks in places no flag can reach: waiting for response headers (a server writes none
until its first frame, up to 15 s) and reading a stream that may never send another byte (a
blackholed connection). Coder's agent has no read timeout there and neither has ours. So every
connection the agent's session opens reports its socket to the agent thread that opened it, and
``stop()`` shuts that socket down: the blocked read returns at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_thread = threading.local()


def on_socket(callback: Callable[[socket.socket], None] | None) -> None:
    """Register, for the calling thread, the callback every new connection's socket is given to."""
    _thread.on_socket = callback


def _report(sock: socket.socket | None) -> None:
    callback = getattr(_thread, "on_socket", None)
    if callback is not None and sock is not None:
        callback(sock)


class _Connection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _report(self.sock)


class _TLSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _report(self.sock)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class _Adapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


def session(user_agent: str) -> requests.Session:
    """One agent's HTTP client: keep-alive like Go's, one connection at a time, sockets reported."""
    s = requests.Session()
    adapter = _Adapter(pool_connections=1, pool_maxsize=1, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = user_agent
    return s


def shutdown(sock: socket.socket | None) -> None:
    """Wake whatever thread is blocked on this socket; harmless if it is already closed."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
