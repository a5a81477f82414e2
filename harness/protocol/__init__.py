"""Pure protocol logic: the release catalogue, codecs, SSE framing, handler and agent rules, retry.

No I/O anywhere in this package. Everything else in the harness asks it; nothing else branches on a
version.
"""

from harness.protocol.catalogue import (
    VARIANTS,
    AuthStyle,
    CatalogueError,
    Release,
    UnknownRelease,
    Variant,
    ranges_of,
    resolve,
    variant_of_tag,
)
from harness.protocol.codec import ClaimEvent, EventCodec, Heard, ListenerRule, PublisherFormat
from harness.protocol.gojson import GoJSONError, parse_uuid
from harness.protocol.retry import Backoff, waits_after_errors
from harness.protocol.rules import (
    AgentAction,
    AgentRule,
    Build,
    Decision,
    DecisionKind,
    HandlerRule,
    WorkspaceState,
    coder_response,
    decide,
    parse_go_bool,
)
from harness.protocol.sse import (
    END_OF_STREAM,
    NEED_DATA,
    PING_FRAME,
    SSEEvent,
    SSEProtocolError,
    StrictReader,
    data_frame,
)

__all__ = [
    "END_OF_STREAM", "NEED_DATA", "PING_FRAME", "VARIANTS", "AgentAction", "AgentRule", "AuthStyle", "Backoff",
    "Build", "CatalogueError", "ClaimEvent", "Decision", "DecisionKind", "EventCodec", "GoJSONError",
    "HandlerRule", "Heard", "ListenerRule", "PublisherFormat", "Release", "SSEEvent", "SSEProtocolError",
    "StrictReader", "UnknownRelease", "Variant", "WorkspaceState", "coder_response", "data_frame", "decide",
    "parse_go_bool", "parse_uuid", "ranges_of", "resolve", "variant_of_tag", "waits_after_errors",
]
