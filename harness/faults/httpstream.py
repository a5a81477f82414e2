"""Incremental HTTP/1.1 message framing and SSE frame tracking, for the fault proxy.

Pure; no I/O (sans-I/O, like h11): ``feed(bytes)`` returns the events those bytes complete, in order;
``feed(b"")`` means the peer closed. The same parser works byte by byte, whole, and with several
messages in one buffer. It understands just enough to proxy, not to validate:

- heads: a request line or status line, then ``name: value`` lines, CRLF line ends, blank line;
- bodies framed by ``Transfer-Encoding: chunked``, ``Content-Length``, or (responses only) the end
  of the connection; no body after HEAD, 1xx, 204 and 304 (RFC 9112 §6.3);
- ``101 Switching Protocols`` and a 2xx answer to CONNECT turn the connection into a tunnel;
- inside a ``text/event-stream`` response body, SSE frames: where one starts (its first byte that is
  not a line end), its type (known once its first line is complete: ``event: <type>``), and where it
  ends (the blank line that closes it).

Bodies come out decoded (``Data``), and a response body is split exactly at frame marks, so a proxy
can re-chunk what it forwards and stop at any frame boundary without ever leaving a chunk half sent.
``ChunkEnd`` marks where a chunk of the original ended, so re-chunking can reproduce it (extensions
are dropped); heads, the last chunk and trailers are reported as the raw bytes received.

Malformed input is the peer's fault: the parser reports ``Broken`` with the raw bytes it had not yet
accounted for, then passes everything on as ``Tunnel`` (a proxy keeps forwarding, blind).

Limits of the frame tracker: a frame ends at its first blank line, as in the SSE specification;
Coder's own reader also skips blank (white-space-only) lines, between ``event: data`` and ``data:`` too,
which no coderd writes: such bytes would be tracked as two frames, and ``\\r\\n`` does not end one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

MAX_HEAD = 1 << 20  # Go's http.DefaultMaxHeaderBytes: a head coderd would accept, we accept
MAX_LINE = 4096  # a chunk-size line is a few hex digits; extensions beyond this are abuse
MAX_KEEP = 4096  # bytes of an SSE frame kept to report its data line (Coder's events are < 1 KiB)

Headers = tuple[tuple[str, str], ...]  # (lower-case name, value), in order, latin-1 decoded


class HTTPStreamError(ValueError):
    """The peer sent bytes that are not HTTP/1.1 as this parser understands it."""


def _header(headers: Headers, name: str) -> str | None:
    """The last value of a header (``name`` lower-case), or None."""
    found = None
    for k, v in headers:
        if k == name:
            found = v
    return found


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: Headers
    raw: bytes

    def header(self, name: str) -> str | None:
        return _header(self.headers, name.lower())


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    reason: str
    version: str
    headers: Headers
    raw: bytes
    body: str  # how the body is framed: "none", "length", "chunked", "close" or "tunnel"
    sse: bool  # a text/event-stream body: frames are tracked

    def header(self, name: str) -> str | None:
        return _header(self.headers, name.lower())


@dataclass(frozen=True, slots=True)
class Data:
    """Decoded body bytes (never empty)."""
    data: bytes


@dataclass(frozen=True, slots=True)
class ChunkEnd:
    """The previous ``Data`` completed a chunk of the original (a proxy re-chunking the same way forwards
    identical bytes)."""


CHUNK_END = ChunkEnd()


@dataclass(frozen=True, slots=True)
class End:
    """The message is complete; ``raw`` is its last chunk and trailers as received (b"" otherwise)."""
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class FrameStart:
    """The next body byte is the first of SSE frame number ``index`` (1-based, per connection)."""
    index: int


@dataclass(frozen=True, slots=True)
class FrameType:
    """The current frame's first line is complete: its type (``ping``, ``data``; ``message`` if no event line)."""
    type: str


@dataclass(frozen=True, slots=True)
class FrameEnd:
    """The previous body byte ended the current frame; ``data`` is its ``data:`` line for data frames."""
    type: str
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Tunnel:
    """Opaque bytes: the connection was upgraded, or the parser gave up on it."""
    data: bytes


@dataclass(frozen=True, slots=True)
class Broken:
    """The peer broke the framing; ``raw`` is what was not yet accounted for; from here on, ``Tunnel``."""
    reason: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed; ``clean`` is False inside a head or a body whose end was announced."""
    clean: bool


Event = (RequestHead | ResponseHead | Data | ChunkEnd | End | FrameStart | FrameType | FrameEnd | Tunnel | Broken
         | Closed)


def _frame_type(first_line: bytes) -> str:
    if first_line.startswith(b"event:"):
        return first_line[6:].strip().decode("utf-8", "replace")
    return "message"


def _data_line(frame: bytes) -> bytes:
    for line in frame.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:].rstrip(b"\r")
            return value[1:] if value.startswith(b" ") else value
    return b""


class SSEFrames:
    """Frame marks in an SSE body, fed in pieces: ``feed(data)`` returns ``[(offset in data, mark)]``.

    Lines end in ``\\n`` and a frame ends at an empty line, as coderd writes them (see the module's limits).
    Finding marks costs a few ``bytes.find`` calls per frame, no per-byte loop.
    """

    def __init__(self) -> None:
        self.count = 0  # frames started so far
        self._in_frame = False
        self._type: str | None = None  # None until the frame's first line is complete
        self._at_line_start = False  # the last byte seen inside the frame was "\n"
        self._keep = bytearray()  # the first line, then (data frames) the rest, up to MAX_KEEP

    def reset(self) -> None:
        """The body ended: a frame in progress is abandoned (the count goes on)."""
        self._in_frame, self._type, self._at_line_start = False, None, False
        self._keep.clear()

    def _remember(self, piece: bytes) -> None:
        if len(self._keep) < MAX_KEEP:
            self._keep += piece[:MAX_KEEP - len(self._keep)]

    def feed(self, data: bytes) -> list[tuple[int, FrameStart | FrameType | FrameEnd]]:
        marks: list[tuple[int, FrameStart | FrameType | FrameEnd]] = []
        pos, n = 0, len(data)
        while pos < n:
            if not self._in_frame:
                while pos < n and data[pos] == 10:  # empty lines between frames
                    pos += 1
                if pos == n:
                    break
                self.count += 1
                self._in_frame, self._type = True, None
                self._keep.clear()
                marks.append((pos, FrameStart(self.count)))
            if self._type is None:
                nl = data.find(b"\n", pos)
                self._remember(data[pos:n if nl < 0 else nl + 1])
                if nl < 0:
                    break
                pos = nl + 1
                self._type = _frame_type(bytes(self._keep))
                self._at_line_start = True
                marks.append((pos, FrameType(self._type)))
                continue
            if self._at_line_start and data[pos] == 10:
                end = pos + 1
            else:
                blank = data.find(b"\n\n", pos)
                if blank < 0:
                    if self._type == "data":
                        self._remember(data[pos:])
                    self._at_line_start = data[n - 1] == 10
                    break
                end = blank + 2
            if self._type == "data":
                self._remember(data[pos:end])
            marks.append((end, FrameEnd(self._type, _data_line(bytes(self._keep)) if self._type == "data" else b"")))
            self._in_frame = False
            pos = end
        return marks


# parser states
_HEAD, _LENGTH, _CLOSE, _SIZE, _CHUNK, _CRLF, _TRAILERS, _TUNNEL = range(8)


class _Parser:
    """What requests and responses share: heads, body framing, EOF, and falling back to a tunnel."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = _HEAD
        self._remaining = 0
        self._out: list[Event] = []
        self.error: str | None = None
        self.bodies = True  # report Data and ChunkEnd; a caller that forwards raw bytes can do without

    @property
    def aligned(self) -> bool:
        """Every byte fed is accounted for and no chunk is open: the raw stream and a re-chunked copy of it agree
        up to here, so a proxy may switch between forwarding one or the other."""
        return not self._buf and self._state in (_HEAD, _SIZE, _LENGTH, _CLOSE, _TUNNEL)

    def tunnel(self) -> None:
        """From now on, pass everything through as ``Tunnel`` (the other direction saw an upgrade).

        Bytes buffered towards an unfinished head are dropped: a proxy forwards this direction raw.
        """
        self._buf.clear()
        self._state = _TUNNEL

    def feed(self, data: bytes) -> list[Event]:
        out: list[Event] = []
        self._out = out
        if not data:
            self._eof()
            return out
        if self._state == _TUNNEL:
            out.append(Tunnel(data))
            return out
        self._buf += data
        try:
            self._run()
        except HTTPStreamError as e:
            self.error = str(e)
            out.append(Broken(str(e), bytes(self._buf)))
            self._buf.clear()
            self._state = _TUNNEL
        return out

    def _eof(self) -> None:
        if self._state == _CLOSE:
            self._end(b"")
        clean = self._state in (_HEAD, _TUNNEL) and not self._buf.strip(b"\r\n")
        self._out.append(Closed(clean))
        self._state = _TUNNEL

    def _run(self) -> None:
        buf, pos = self._buf, 0
        try:
            while pos < len(buf):
                state = self._state
                if state == _HEAD:
                    while buf[pos:pos + 2] == b"\r\n":  # RFC 9112 §2.2: ignore blank lines before a message
                        pos += 2
                    end = buf.find(b"\r\n\r\n", pos)
                    if end < 0:
                        if len(buf) - pos > MAX_HEAD:
                            raise HTTPStreamError(f"head longer than {MAX_HEAD} bytes")
                        break
                    self._head(bytes(buf[pos:end + 4]))  # first: if it raises, Broken gets these bytes
                    pos = end + 4
                elif state in (_LENGTH, _CHUNK):
                    take = min(len(buf) - pos, self._remaining)
                    self._data(bytes(buf[pos:pos + take]))
                    pos += take
                    self._remaining -= take
                    if self._remaining == 0:
                        if state == _LENGTH:
                            self._end(b"")
                        else:
                            if self.bodies:
                                self._out.append(CHUNK_END)
                            self._state = _CRLF
                elif state == _CRLF:
                    if len(buf) - pos < 2:
                        break
                    if buf[pos:pos + 2] != b"\r\n":
                        raise HTTPStreamError("chunk data not followed by CRLF")
                    pos += 2
                    self._state = _SIZE
                elif state == _SIZE:
                    nl = buf.find(b"\r\n", pos)
                    if nl < 0:
                        if len(buf) - pos > MAX_LINE:
                            raise HTTPStreamError("chunk-size line too long")
                        break
                    size = _chunk_size(bytes(buf[pos:nl]))
                    if size == 0:
                        self._state = _TRAILERS  # the last chunk is reported raw, with its trailers
                    else:
                        self._remaining, self._state, pos = size, _CHUNK, nl + 2
                elif state == _TRAILERS:
                    end = buf.find(b"\r\n\r\n", pos)
                    if end < 0:
                        if len(buf) - pos > MAX_HEAD:
                            raise HTTPStreamError("trailers longer than the head limit")
                        break
                    raw = bytes(buf[pos:end + 4])
                    pos = end + 4
                    self._end(raw)
                elif state == _CLOSE:
                    self._data(bytes(buf[pos:]))
                    pos = len(buf)
                else:  # _TUNNEL, after an upgrade
                    self._out.append(Tunnel(bytes(buf[pos:])))
                    pos = len(buf)
        finally:
            del buf[:pos]

    def _start_body(self, framing: str, length: int = 0) -> None:
        if framing == "none" or (framing == "length" and length == 0):
            self._end(b"")
        elif framing == "length":
            self._state, self._remaining = _LENGTH, length
        elif framing == "chunked":
            self._state = _SIZE
        elif framing == "close":
            self._state = _CLOSE
        else:
            self._state = _TUNNEL

    def _data(self, data: bytes) -> None:
        if data and self.bodies:
            self._out.append(Data(data))

    def _end(self, raw: bytes) -> None:
        self._out.append(End(raw))
        self._state = _HEAD

    def _head(self, raw: bytes) -> None:
        raise NotImplementedError


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()
    if not digits or digits.translate(None, b"0123456789abcdefABCDEF"):
        raise HTTPStreamError(f"bad chunk size {line[:40]!r}")
    return int(digits, 16)


def _split_head(raw: bytes) -> tuple[list[str], Headers]:
    lines = raw[:-4].decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HTTPStreamError(f"malformed header line {line[:80]!r}")
        headers.append((name.lower(), value.strip(" \t")))
    return lines[0].split(" ", 2), tuple(headers)


def _framing(headers: Headers, *, request: bool) -> tuple[str, int]:
    te = _header(headers, "transfer-encoding")
    if te is not None:
        if te.split(",")[-1].strip().lower() == "chunked":
            return "chunked", 0
        if request:
            raise HTTPStreamError(f"request with Transfer-Encoding {te!r} but not chunked")
        return "close", 0
    cl = _header(headers, "content-length")
    if cl is not None:
        if not cl.strip().isdigit():
            raise HTTPStreamError(f"bad Content-Length {cl[:40]!r}")
        return "length", int(cl)
    return ("none" if request else "close"), 0


class RequestParser(_Parser):
    """Client → server: request heads, and bodies skipped by their framing."""

    def _head(self, raw: bytes) -> None:
        first, headers = _split_head(raw)
        if len(first) != 3 or not first[2].startswith("HTTP/"):
            raise HTTPStreamError(f"not an HTTP request line: {raw[:80]!r}")
        self._out.append(RequestHead(first[0], first[1], first[2], headers, raw))
        framing, length = _framing(headers, request=True)
        self._start_body(framing, length)


class ResponseParser(_Parser):
    """Server → client: response heads, bodies, and SSE frame marks in event-stream bodies.

    Call ``expect(method)`` for each request sent, so a response to HEAD or CONNECT is framed right.
    """

    def __init__(self) -> None:
        super().__init__()
        self._methods: deque[str] = deque()
        self._frames = SSEFrames()
        self._sse = False

    @property
    def frames(self) -> int:
        """SSE frames started on this connection so far."""
        return self._frames.count

    def expect(self, method: str) -> None:
        self._methods.append(method)

    def _head(self, raw: bytes) -> None:
        first, headers = _split_head(raw)
        if len(first) < 2 or not first[0].startswith("HTTP/") or not first[1].isdigit():
            raise HTTPStreamError(f"not an HTTP status line: {raw[:80]!r}")
        status = int(first[1])
        interim = 100 <= status < 200 and status != 101
        method = "GET" if interim or not self._methods else self._methods.popleft()
        if status == 101 or (method == "CONNECT" and 200 <= status < 300):
            framing, length = "tunnel", 0
        elif method == "HEAD" or interim or status in (204, 304):
            framing, length = "none", 0
        else:
            framing, length = _framing(headers, request=False)
        ctype = (_header(headers, "content-type") or "").lower()
        self._sse = framing != "none" and ctype.startswith("text/event-stream")
        self._out.append(ResponseHead(status, first[2] if len(first) > 2 else "", first[0], headers, raw,
                                      framing, self._sse))
        if not interim:
            self._start_body(framing, length)

    def _data(self, data: bytes) -> None:
        if not data:
            return
        if not self._sse:
            if self.bodies:
                self._out.append(Data(data))
            return
        if not self.bodies:
            self._out += [mark for _, mark in self._frames.feed(data)]
            return
        prev = 0
        for offset, mark in self._frames.feed(data):
            if offset > prev:
                self._out.append(Data(data[prev:offset]))
                prev = offset
            self._out.append(mark)
        if prev < len(data):
            self._out.append(Data(data[prev:]))

    def _end(self, raw: bytes) -> None:
        if self._sse:
            self._frames.reset()
            self._sse = False
        super()._end(raw)


def agent_of(head: RequestHead) -> str | None:
    """Who is asking: ``X-Harness-Agent``, else ``Coder-Session-Token``, else the ``coder_session_token`` cookie."""
    for name in ("x-harness-agent", "coder-session-token"):
        value = head.header(name)
        if value:
            return value
    for k, v in head.headers:
        if k == "cookie":
            for part in v.split(";"):
                name, _, value = part.strip().partition("=")
                if name == "coder_session_token" and value:
                    return value
    return None


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (lower-case hex, as Go and aiohttp write it)."""
    return b"%x\r\n%b\r\n" % (len(data), data)
