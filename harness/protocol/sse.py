"""Server-Sent Events as coderd writes them and as Coder's own reader reads them.

Pure; no I/O (sans-I/O, like h11): feed bytes in, take events out.

Writing (identical in every release): a heartbeat is ``event: ping\\n\\n``; a data event is
``event: data\\ndata: <json>\\n\\n``. The transmitter never sends ``error`` events and never ends the
stream after an event.

Reading — Coder's ``codersdk.ServerSentEventReader``, not the WHATWG algorithm:

- Lines end in ``\\n`` only. A blank line — one that is empty once Go's strings.TrimSpace has trimmed it,
  so ``\\r\\n`` and ``" \\t\\n"`` too — is skipped, anywhere (also between the ``event:`` line and its
  ``data:`` line).
- The next non-blank line must start with exactly ``event: `` (one space); its value is the rest,
  with surrounding white space trimmed (Go's strings.TrimSpace, so a trailing ``\\r`` goes).
- ``ping`` has no data. ``data`` and ``error`` must be followed by a line starting with exactly
  ``data: ``; the data is that one line, trimmed. Any other event type is an error.
- End of stream anywhere is an error for the caller (the agent retries); the reader reports whether
  it came between frames or inside one.

Where a spec-following client such as sseclient-py differs (pinned by tests/test_protocol_sse.py):

==================================  ======================================  ==============================
bytes                               Coder's reader                          sseclient-py
==================================  ======================================  ==============================
``event: ping\\n\\n``                 a ping                                  nothing (no data: not dispatched)
``data: x\\n\\n`` (no event line)     error: expecting ``event: ``            event "message", data "x"
``event:data\\ndata:x\\n\\n``          error (no space after the colon)        event "data", data "x"
``event: data\\n\\ndata: x\\n\\n``      one data event, data "x"                event "message", data "x"
``event: data\\ndata: a\\ndata: b``    data "a"; ``data: b`` then fails        one event, data "a\\nb"
``event: foo\\ndata: x\\n\\n``         error: unknown event type               event "foo", data "x"
``: comment\\n`` / ``id: 7\\n``        error                                   ignored / sets the id
lines ending ``\\r\\n``                 ``\\r`` trimmed from values; a ``\\r\\n``     ``\\r\\n`` is a line end; a blank
                                    or space-only line is skipped as blank  ``\\r\\n`` ends the event
==================================  ======================================  ==============================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventType = Literal["ping", "data", "error"]

PING_FRAME = b"event: ping\n\n"
_EVENT_PREFIX = b"event: "
_DATA_PREFIX = b"data: "
# Go's strings.TrimSpace trims Unicode White_Space; Python's str.strip() would also trim \x1c-\x1f.
_GO_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000"


def data_frame(json_bytes: bytes) -> bytes:
    """The bytes of one data event."""
    return b"event: data\ndata: " + json_bytes + b"\n\n"


@dataclass(frozen=True)
class SSEEvent:
    type: EventType
    data: bytes = b""


class SSEProtocolError(ValueError):
    """The server sent bytes Coder's reader rejects (the peer's fault)."""


class NeedData:
    """Sentinel: feed more bytes."""


class EndOfStream:
    """Sentinel: the stream ended cleanly between frames (the agent still treats it as an error)."""


NEED_DATA = NeedData()
END_OF_STREAM = EndOfStream()


def _trim(value: bytes) -> bytes:
    return value.decode("utf-8", errors="surrogateescape").strip(_GO_SPACE).encode("utf-8",
                                                                                   errors="surrogateescape")


class StrictReader:
    """Coder's SSE reader as an incremental parser; works byte by byte, whole, or with trailing data."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._eof = False
        self._pending: EventType | None = None  # an "event: data|error" line was read, its data not yet
        self._failed: SSEProtocolError | None = None

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``feed(b"")`` means the peer closed the stream."""
        if self._eof:
            raise RuntimeError("feed() after end of stream")
        if data:
            self._buf += data
        else:
            self._eof = True

    @property
    def mid_frame(self) -> bool:
        return self._pending is not None or bool(self._buf)

    def _next_line(self) -> bytes | None:
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                return None
            line = bytes(self._buf[: nl + 1])
            del self._buf[: nl + 1]
            if _trim(line):  # Go: strings.TrimSpace(line) != ""
                return line

    def next_event(self) -> SSEEvent | NeedData | EndOfStream:
        """The next event, NEED_DATA, or END_OF_STREAM; raises SSEProtocolError on bad bytes."""
        if self._failed:
            raise self._failed
        try:
            return self._next_event()
        except SSEProtocolError as e:
            self._failed = e
            raise

    def _next_event(self) -> SSEEvent | NeedData | EndOfStream:
        while True:
            line = self._next_line()
            if line is None:
                if not self._eof:
                    return NEED_DATA
                if self.mid_frame:
                    raise SSEProtocolError("stream ended inside a frame (unexpected EOF)")
                return END_OF_STREAM
            if self._pending is None:
                if not line.startswith(_EVENT_PREFIX):
                    raise SSEProtocolError(f"expecting 'event: ' prefix, got: {line[:80]!r}")
                kind = _trim(line[len(_EVENT_PREFIX):]).decode("utf-8", errors="replace")
                if kind == "ping":
                    return SSEEvent("ping")
                if kind not in ("data", "error"):
                    raise SSEProtocolError(f"unknown event type: {kind[:80]!r}")
                self._pending = kind  # type: ignore[assignment]
                continue
            if not line.startswith(_DATA_PREFIX):
                raise SSEProtocolError(f"expecting 'data: ' prefix, got: {line[:80]!r}")
            kind, self._pending = self._pending, None
            return SSEEvent(kind, _trim(line[len(_DATA_PREFIX):]))

    def events(self) -> list[SSEEvent]:
        """Every complete event available now (convenience for tests and one-shot parsing)."""
        out = []
        while isinstance(ev := self.next_event(), SSEEvent):
            out.append(ev)
        return out
