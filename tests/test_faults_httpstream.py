"""The fault proxy's sans-I/O HTTP/1.1 parser: heads, chunked bodies, SSE frame marks, split anywhere."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.faults import httpstream as hs
from harness.protocol.sse import PING_FRAME, data_frame

SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
DATA = data_frame(b'{"workspace_id":"w1","reason":"prebuild_claimed"}')
CONFLICT = (b'HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n'
            b'{"message":1}')


def chunked(*pieces: bytes) -> bytes:
    return b"".join(hs.encode_chunk(p) for p in pieces)


def feed_all(parser: hs._Parser, data: bytes, cuts: list[int] = ()) -> list[hs.Event]:
    """Feed ``data`` split at ``cuts``, then EOF; merge adjacent Data so splits compare equal."""
    events: list[hs.Event] = []
    prev = 0
    for cut in [*sorted({c for c in cuts if c < len(data)}), len(data)]:
        if cut > prev:
            events += parser.feed(data[prev:cut])
            prev = cut
    events += parser.feed(b"")
    merged: list[hs.Event] = []
    for ev in events:
        if type(ev) is hs.Data and merged and type(merged[-1]) is hs.Data:
            merged[-1] = hs.Data(merged[-1].data + ev.data)
        else:
            merged.append(ev)
    return merged


def response(data: bytes, cuts: list[int] = (), methods: tuple[str, ...] = ("GET",) * 4) -> list[hs.Event]:
    p = hs.ResponseParser()
    for m in methods:
        p.expect(m)
    return feed_all(p, data, cuts)


def kinds(events: list[hs.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_sse_body_is_split_at_frame_marks():
    events = response(SSE_HEAD + chunked(PING_FRAME, DATA))
    assert kinds(events) == ["ResponseHead", "FrameStart", "Data", "FrameType", "Data", "FrameEnd", "ChunkEnd",
                             "FrameStart", "Data", "FrameType", "Data", "FrameEnd", "ChunkEnd", "Closed"]
    head = events[0]
    assert (head.status, head.body, head.sse, head.raw) == (200, "chunked", True, SSE_HEAD)
    assert head.header("Content-Type") == "text/event-stream"
    assert events[1] == hs.FrameStart(1) and events[7] == hs.FrameStart(2)
    assert [e.data for e in events if type(e) is hs.Data] == [b"event: ping\n", b"\n", b"event: data\n",
                                                              DATA[len(b"event: data\n"):]]
    assert events[11] == hs.FrameEnd("data", b'{"workspace_id":"w1","reason":"prebuild_claimed"}')
    assert events[-1] == hs.Closed(clean=False)  # the stream never ended: EOF inside a chunked body


def test_frames_sharing_a_chunk_and_a_frame_across_chunks():
    body = chunked(PING_FRAME + DATA[:5], DATA[5:] + PING_FRAME)
    events = response(SSE_HEAD + body)
    marks = [e for e in events if type(e) in (hs.FrameStart, hs.FrameType, hs.FrameEnd)]
    assert marks == [hs.FrameStart(1), hs.FrameType("ping"), hs.FrameEnd("ping"),
                     hs.FrameStart(2), hs.FrameType("data"), hs.FrameEnd("data", DATA[18:-2]),
                     hs.FrameStart(3), hs.FrameType("ping"), hs.FrameEnd("ping")]
    # the Data before FrameStart(2) is exactly the ping: a proxy can cut there and send it as a chunk
    i = events.index(hs.FrameStart(2))
    assert b"".join(e.data for e in events[:i] if type(e) is hs.Data) == PING_FRAME


def test_crlf_is_not_a_blank_line_as_for_coders_reader():
    marks = hs.SSEFrames().feed(b"event: ping\r\n\r\nevent: ping\n\n")
    assert [m for _, m in marks] == [hs.FrameStart(1), hs.FrameType("ping"), hs.FrameEnd("ping")]


def test_type_is_reported_only_when_the_first_line_is_complete():
    p = hs.ResponseParser()
    p.expect("GET")
    chunk = hs.encode_chunk(b"event: data\ndata: {}\n\n")
    events = p.feed(SSE_HEAD + chunk[:11])  # up to "event: "
    assert kinds(events) == ["ResponseHead", "FrameStart", "Data"]
    assert kinds(p.feed(chunk[11:])) == ["Data", "FrameType", "Data", "FrameEnd", "ChunkEnd"]


def test_several_responses_on_one_connection_then_a_stream():
    stream = CONFLICT + CONFLICT + SSE_HEAD + chunked(PING_FRAME) + b"0\r\n\r\n"
    events = response(stream)
    assert kinds(events) == ["ResponseHead", "Data", "End", "ResponseHead", "Data", "End", "ResponseHead",
                             "FrameStart", "Data", "FrameType", "Data", "FrameEnd", "ChunkEnd", "End", "Closed"]
    assert [e.status for e in events if type(e) is hs.ResponseHead] == [409, 409, 200]
    assert events[1] == hs.Data(b'{"message":1}')
    assert events[-2] == hs.End(b"0\r\n\r\n") and events[-1] == hs.Closed(clean=True)


def test_frame_count_runs_across_responses_and_ends_with_the_body():
    p = hs.ResponseParser()
    p.expect("GET")
    p.expect("GET")
    p.feed(SSE_HEAD + chunked(PING_FRAME, b"event: da") + b"0\r\n\r\n")  # the body ends inside frame 2
    events = p.feed(SSE_HEAD + chunked(PING_FRAME))
    assert hs.FrameStart(3) in events and p.frames == 3
    assert hs.FrameEnd("ping") in events


def test_trailers_and_chunk_extensions():
    body = b"5;name=value\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"
    events = response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert [e for e in events if type(e) in (hs.Data, hs.End)] == [hs.Data(b"hello"),
                                                                   hs.End(b"0\r\nX-Trailer: 1\r\n\r\n")]


def test_bodies_without_length_and_without_body():
    assert kinds(response(b"HTTP/1.1 200 OK\r\n\r\nuntil close")) == ["ResponseHead", "Data", "End", "Closed"]
    head_reply = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
    assert kinds(response(head_reply + CONFLICT, methods=("HEAD", "GET"))) == [
        "ResponseHead", "End", "ResponseHead", "Data", "End", "Closed"]
    assert kinds(response(b"HTTP/1.1 204 No Content\r\n\r\n" + CONFLICT)) == [
        "ResponseHead", "End", "ResponseHead", "Data", "End", "Closed"]
    # 100 Continue is interim: the final response still answers the same request
    assert [e.status for e in response(b"HTTP/1.1 100 Continue\r\n\r\n" + CONFLICT, methods=("HEAD",))
            if type(e) is hs.ResponseHead] == [100, 409]


def test_upgrade_turns_into_a_tunnel():
    events = response(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi")
    assert events[0].body == "tunnel" and events[1] == hs.Tunnel(b"\x81\x02hi")


def test_garbage_is_broken_then_tunnel():
    p = hs.ResponseParser()
    events = p.feed(b"SSH-2.0-OpenSSH\r\n\r\nmore")
    assert type(events[0]) is hs.Broken and events[0].raw == b"SSH-2.0-OpenSSH\r\n\r\nmore"
    assert p.feed(b"rest") == [hs.Tunnel(b"rest")]
    bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    assert type(response(bad_chunk)[1]) is hs.Broken


def test_requests_keep_alive_and_bodies():
    p = hs.RequestParser()
    post = b"POST /emit HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
    chunked_post = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"ab") + b"0\r\n\r\n"
    get = b"GET /api/v2/workspaceagents/me/reinit?wait=true HTTP/1.1\r\nCoder-Session-Token: tok\r\n\r\n"
    events = feed_all(p, post + chunked_post + get)
    heads = [e for e in events if type(e) is hs.RequestHead]
    assert [(h.method, h.target) for h in heads] == [("POST", "/emit"), ("POST", "/c"),
                                                     ("GET", "/api/v2/workspaceagents/me/reinit?wait=true")]
    assert events[-1] == hs.Closed(clean=True)


def test_agent_identity_header_precedence():
    def head(*lines: str) -> hs.RequestHead:
        raw = ("GET / HTTP/1.1\r\n" + "".join(f"{ln}\r\n" for ln in lines) + "\r\n").encode()
        return hs.RequestParser().feed(raw)[0]

    assert hs.agent_of(head("x-harness-agent: a1", "Coder-Session-Token: tok")) == "a1"
    assert hs.agent_of(head("Coder-Session-Token: tok", "Cookie: coder_session_token=c")) == "tok"
    assert hs.agent_of(head("Cookie: other=1; coder_session_token=c9")) == "c9"
    assert hs.agent_of(head("Host: x")) is None


STREAM = (CONFLICT + SSE_HEAD + chunked(PING_FRAME, PING_FRAME + DATA[:9], DATA[9:], PING_FRAME + DATA + PING_FRAME)
          + b"0\r\n\r\n" + CONFLICT)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_events(cuts):
    assert response(STREAM, cuts) == response(STREAM)


def test_byte_by_byte():
    assert response(STREAM, list(range(len(STREAM)))) == response(STREAM)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), max_size=8),
       st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_chunked_round_trip(pieces, cuts):
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(*pieces) + b"0\r\n\r\n"
    events = response(raw, cuts)
    assert b"".join(e.data for e in events if type(e) is hs.Data) == b"".join(pieces)
    assert events.count(hs.CHUNK_END) == len(pieces) and events[-2:] == [hs.End(b"0\r\n\r\n"), hs.Closed(True)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([PING_FRAME, DATA, b"\n", b"event: data\r\ndata: x\r\n\n", b"event: ping\n\n\n"]),
                max_size=8),
       st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_frame_marks_cover_the_body_exactly(frames, cuts):
    body = b"".join(frames)
    tracker = hs.SSEFrames()
    offsets: list[tuple[int, object]] = []
    base = 0
    for cut in [*sorted(set(c for c in cuts if c < len(body))), len(body)]:
        offsets += [(base + off, mark) for off, mark in tracker.feed(body[base:cut])]
        base = cut
    starts = [o for o, m in offsets if type(m) is hs.FrameStart]
    ends = [o for o, m in offsets if type(m) is hs.FrameEnd]
    real = [f.rstrip(b"\n") + b"\n\n" for f in frames if f != b"\n"]  # a third "\n" is between frames
    assert len(starts) == len(ends) == len(real)
    assert [body[s:e] for s, e in zip(starts, ends, strict=True)] == real


def test_without_bodies_only_heads_and_frame_marks_are_reported():
    p = hs.ResponseParser()
    p.bodies = False
    p.expect("GET")
    p.expect("GET")
    events = feed_all(p, CONFLICT + SSE_HEAD + chunked(PING_FRAME + DATA[:5], DATA[5:]))
    assert kinds(events) == ["ResponseHead", "End", "ResponseHead", "FrameStart", "FrameType", "FrameEnd",
                             "FrameStart", "FrameType", "FrameEnd", "Closed"]
    assert events[-2] == hs.FrameEnd("data", b'{"workspace_id":"w1","reason":"prebuild_claimed"}')
