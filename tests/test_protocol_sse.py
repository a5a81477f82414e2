"""SSE frames and Coder's strict reader, including where it parts ways with a spec-following client."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sseclient import SSEClient

from harness.protocol import (
    END_OF_STREAM,
    NEED_DATA,
    PING_FRAME,
    SSEEvent,
    SSEProtocolError,
    StrictReader,
    data_frame,
)


def read_all(data: bytes) -> list[SSEEvent]:
    r = StrictReader()
    if data:
        r.feed(data)
    r.feed(b"")
    out = []
    while True:
        ev = r.next_event()
        if ev is END_OF_STREAM:
            return out
        out.append(ev)


def spec_reader(data: bytes) -> list[tuple[str, str]]:
    """What sseclient-py (WHATWG-style) makes of the same bytes."""
    return [(e.event, e.data) for e in SSEClient([data]).events()]


def test_frame_bytes():
    assert PING_FRAME == b"event: ping\n\n"
    assert data_frame(b'{"a":1}') == b'event: data\ndata: {"a":1}\n\n'


def test_reads_what_coderd_writes():
    stream = PING_FRAME + data_frame(b'{"x":1}') + PING_FRAME
    assert read_all(stream) == [SSEEvent("ping"), SSEEvent("data", b'{"x":1}'), SSEEvent("ping")]


def test_need_data_then_event_byte_by_byte():
    r = StrictReader()
    frame = data_frame(b'{"x":1}')
    seen = []
    for i in range(len(frame)):
        r.feed(frame[i:i + 1])
        ev = r.next_event()
        if ev is not NEED_DATA:
            seen.append(ev)
    assert seen == [SSEEvent("data", b'{"x":1}')]


def test_event_is_returned_at_the_data_line_not_the_blank_line():
    r = StrictReader()
    r.feed(b"event: data\ndata: {}\n")
    assert r.next_event() == SSEEvent("data", b"{}")


def test_trailing_data_stays_for_the_next_call():
    r = StrictReader()
    r.feed(PING_FRAME + b"event: da")
    assert r.next_event() == SSEEvent("ping")
    assert r.next_event() is NEED_DATA
    r.feed(b"ta\ndata: 1\n\n")
    assert r.next_event() == SSEEvent("data", b"1")


def test_eof_between_frames_is_end_of_stream_inside_is_an_error():
    assert read_all(PING_FRAME) == [SSEEvent("ping")]
    r = StrictReader()
    r.feed(b"event: data\n")
    r.feed(b"")
    with pytest.raises(SSEProtocolError, match="inside a frame"):
        r.next_event()


def test_error_events_are_returned_for_the_caller_to_fail_on():
    assert read_all(b"event: error\ndata: boom\n\n") == [SSEEvent("error", b"boom")]


# -- where Coder's reader and a spec-following reader (sseclient-py) differ ----------------------
def test_missing_event_line():
    with pytest.raises(SSEProtocolError, match="expecting 'event: '"):
        read_all(b"data: x\n\n")
    assert spec_reader(b"data: x\n\n") == [("message", "x")]


def test_no_space_after_colon():
    with pytest.raises(SSEProtocolError):
        read_all(b"event:data\ndata:x\n\n")
    assert spec_reader(b"event:data\ndata:x\n\n") == [("data", "x")]


def test_blank_line_between_event_and_data_is_skipped():
    assert read_all(b"event: data\n\ndata: x\n\n") == [SSEEvent("data", b"x")]
    assert spec_reader(b"event: data\n\ndata: x\n\n") == [("message", "x")]


def test_multi_line_data():
    with pytest.raises(SSEProtocolError, match="expecting 'event: '"):
        read_all(b"event: data\ndata: a\ndata: b\n\n")
    assert spec_reader(b"event: data\ndata: a\ndata: b\n\n") == [("data", "a\nb")]


def test_unknown_event_type():
    with pytest.raises(SSEProtocolError, match="unknown event type"):
        read_all(b"event: foo\ndata: x\n\n")
    assert spec_reader(b"event: foo\ndata: x\n\n") == [("foo", "x")]


@pytest.mark.parametrize("line", [b": comment\n", b"id: 7\n", b"retry: 10\n"])
def test_comments_and_fields(line):
    with pytest.raises(SSEProtocolError):
        read_all(line + PING_FRAME)


def test_crlf():
    assert read_all(b"event: ping\r\n\n") == [SSEEvent("ping")]
    # Go's reader skips a line when strings.TrimSpace(line) == "": "\r\n" is as blank as "\n"
    assert read_all(b"event: ping\r\n\r\nevent: data\r\ndata: {}\r\n\r\n") == [SSEEvent("ping"),
                                                                                    SSEEvent("data", b"{}")]


@pytest.mark.parametrize("blank", [b" \n", b"\t\n", b"\r\n", b" \r\n", "\u00a0\n".encode()])
def test_white_space_lines_are_blank(blank):
    stream = blank + b"event: data\n" + blank + b"data: {}\n" + blank + PING_FRAME
    assert read_all(stream) == [SSEEvent("data", b"{}"), SSEEvent("ping")]


def test_a_line_of_other_bytes_is_not_blank():
    with pytest.raises(SSEProtocolError, match="expecting 'event: '"):
        read_all(b"\x1c\n" + PING_FRAME)  # Python's str.strip() trims \x1c; Go's TrimSpace does not


def test_pings_are_invisible_to_a_spec_reader():
    assert read_all(PING_FRAME * 2) == [SSEEvent("ping"), SSEEvent("ping")]
    assert spec_reader(PING_FRAME * 2) == []  # an event without data is never dispatched


def test_values_are_trimmed_like_go():
    assert read_all(b"event:  data \ndata:  {} \t\n\n") == [SSEEvent("data", b"{}")]
    # Go's TrimSpace does not trim \x1c-\x1f, which Python's str.strip() would
    assert read_all(b"event: data\ndata: x\x1c\n\n") == [SSEEvent("data", b"x\x1c")]


def test_a_failed_reader_stays_failed():
    r = StrictReader()
    r.feed(b"bogus\n")
    with pytest.raises(SSEProtocolError):
        r.next_event()
    r.feed(PING_FRAME)
    with pytest.raises(SSEProtocolError):
        r.next_event()


frames = st.lists(st.one_of(st.just(PING_FRAME), st.binary(max_size=40).filter(
    lambda b: b"\n" not in b).map(lambda b: data_frame(b.strip() or b"{}"))), max_size=8)


@given(frames, st.data())
def test_split_anywhere_gives_the_same_events(stream_frames, data):
    stream = b"".join(stream_frames)
    whole = read_all(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    r = StrictReader()
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        r.feed(stream[prev:cut]) if cut > prev else None
        prev = cut
        while isinstance(ev := r.next_event(), SSEEvent):
            got.append(ev)
    r.feed(b"")
    assert r.next_event() is END_OF_STREAM
    assert got == whole
    assert len(whole) == len(stream_frames)
