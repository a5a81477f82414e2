"""Go's encoding/json and github.com/google/uuid, as far as Coder's claim events use them.

Pure; no I/O. The rules, all taken from Go's behaviour rather than from the JSON RFC alone:

Decoding into a struct (``json.Unmarshal(data, &event)``):
- The whole input is syntax-checked before anything is decoded; NaN and Infinity are not JSON.
- A top-level ``null`` is a no-op: no error, every field stays zero. Any other non-object fails.
- A key fills a field on an exact name match, else on a case-insensitive one (each rune folded as
  ``upper(lower(r))``). Underscores are ordinary characters: ``workspace_id`` never fills a field named
  ``WorkspaceID`` and the other way round, so a cross-version decode leaves the id zero, silently.
- Unknown keys are ignored; a repeated key overwrites (last one wins).
- ``null`` for a field leaves it alone; a string field takes only strings; a ``uuid.UUID`` field takes
  only strings that ``uuid.ParseBytes`` accepts. Anything else fails the whole decode.
- Invalid UTF-8 inside strings becomes U+FFFD, one per bad byte; so does a lone surrogate escape.

Encoding (``json.Marshal``): compact, keys in struct order, HTML-safe (``<``, ``>``, ``&``, U+2028 and
U+2029 escaped as ``\\u003c`` ...), ``\\b`` ``\\f`` ``\\n`` ``\\r`` ``\\t`` short escapes (Go ≥ 1.22), other
control characters as lower-case ``\\u00XX``.
"""

from __future__ import annotations

import codecs
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

FieldKind = Literal["uuid", "string"]


class GoJSONError(ValueError):
    """The peer sent bytes Go's decoder rejects; the message reads like Go's."""


def _go_utf8_replace(err: UnicodeError) -> tuple[str, int]:
    # Go's decoder replaces each invalid byte with U+FFFD (utf8.DecodeRune returns width 1).
    assert isinstance(err, UnicodeDecodeError)
    return "\ufffd", err.start + 1


codecs.register_error("harness-go-utf8", _go_utf8_replace)


def go_string(data: bytes) -> str:
    """``string(bytes)`` as Go later prints it: invalid UTF-8 bytes become U+FFFD, one each."""
    return data.decode("utf-8", errors="harness-go-utf8")


def _no_surrogates(s: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s) if any(
        0xD800 <= ord(c) <= 0xDFFF for c in s) else s


# -- uuid ------------------------------------------------------------------------------------------
_HEX = set("0123456789abcdefABCDEF")
_UUID_BYTE_OFFSETS = (0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34)


def parse_uuid(text: str | bytes) -> uuid.UUID:
    """github.com/google/uuid ParseBytes: 36-char canonical, ``urn:uuid:`` (45), braces (38), or 32 hex.

    Faithful to its quirk: the 38-character form drops the first character and never looks at the last,
    so ``{...}``, ``(...)`` and ``x...y`` all parse.
    """
    # Go measures the length in bytes: a decoded JSON string counts in UTF-8, invalid bytes as U+FFFD.
    raw = text if isinstance(text, bytes) else _no_surrogates(text).encode("utf-8")
    b = raw.decode("latin-1")  # one character per byte
    n = len(b)
    if n == 32:
        if not all(c in _HEX for c in b):
            raise GoJSONError("invalid UUID format")
        return uuid.UUID(hex=b)
    if n == 45:
        if b[:9].lower() != "urn:uuid:":
            raise GoJSONError(f"invalid urn prefix: {b[:9]!r}")
        b = b[9:]
    elif n == 38:
        b = b[1:]
    elif n != 36:
        raise GoJSONError(f"invalid UUID length: {n}")
    if b[8] != "-" or b[13] != "-" or b[18] != "-" or b[23] != "-":
        raise GoJSONError("invalid UUID format")
    digits = "".join(b[i:i + 2] for i in _UUID_BYTE_OFFSETS)
    if not all(c in _HEX for c in digits):
        raise GoJSONError("invalid UUID format")
    return uuid.UUID(hex=digits)


# -- field matching ------------------------------------------------------------------------------
def _fold_rune(c: str) -> str:
    # Go maps one rune to one rune (unicode.ToLower/ToUpper); Python's full mappings may give several
    # (ß → SS). Where they do, Go's simple mapping leaves the rune alone — except İ, whose simple
    # lower-case is i.
    lower = c.lower()
    if len(lower) != 1:
        lower = "i" if c == "\u0130" else c
    upper = lower.upper()
    return upper if len(upper) == 1 else lower


def fold(name: str) -> str:
    """Go's foldName: every rune as upper(lower(r))."""
    return "".join(_fold_rune(c) for c in name)


@dataclass(frozen=True)
class Field:
    """One struct field as encoding/json sees it: JSON key, Python attribute, kind, omit-when-zero."""

    key: str
    attr: str
    kind: FieldKind
    omit_zero: bool = False


def _match(key: str, fields: Sequence[Field]) -> Field | None:
    for f in fields:
        if f.key == key:
            return f
    folded = fold(key)
    for f in fields:
        if fold(f.key) == folded:
            return f
    return None


class _Object(list):
    """A JSON object as its ordered (key, value) pairs, so repeated keys and order survive parsing."""


def _reject_constant(name: str) -> Any:
    raise GoJSONError(f"invalid character {name[0]!r} looking for beginning of value")


def _syntax(data: bytes) -> Any:
    text = go_string(data)
    try:
        return json.loads(text, object_pairs_hook=_Object, parse_constant=_reject_constant)
    except GoJSONError:
        raise
    except json.JSONDecodeError as e:
        if not text.strip():
            raise GoJSONError("unexpected end of JSON input") from None
        raise GoJSONError(f"invalid JSON at offset {e.pos}: {e.msg}") from None
    except RecursionError:
        raise GoJSONError("exceeded max depth") from None


def _type_name(value: Any) -> str:
    if isinstance(value, _Object):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


def unmarshal(data: bytes, fields: Sequence[Field], go_type: str) -> dict[str, Any]:
    """Decode ``data`` into a struct of ``fields``; returns the attributes that were set.

    Raises GoJSONError exactly where Go's json.Unmarshal returns an error.
    """
    value = _syntax(data)
    if value is None:
        return {}
    if not isinstance(value, _Object):
        raise GoJSONError(f"json: cannot unmarshal {_type_name(value)} into Go value of type {go_type}")
    out: dict[str, Any] = {}
    for key, item in value:
        field = _match(key, fields)
        if field is None or item is None:
            continue
        if not isinstance(item, str):
            raise GoJSONError(
                f"json: cannot unmarshal {_type_name(item)} into Go struct field {go_type}.{field.key} "
                f"of type {'uuid.UUID' if field.kind == 'uuid' else 'string'}")
        out[field.attr] = parse_uuid(item) if field.kind == "uuid" else _no_surrogates(item)
    return out


# -- encoding ------------------------------------------------------------------------------------
_HTML_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def marshal_string(s: str) -> str:
    """A Go-encoded JSON string literal, quotes included."""
    out = json.dumps(_no_surrogates(s), ensure_ascii=False)
    for raw, esc in _HTML_SAFE.items():
        if raw in out:
            out = out.replace(raw, esc)
    return out


def marshal(values: dict[str, Any], fields: Sequence[Field]) -> bytes:
    """``json.Marshal`` of a struct: compact, in field order, omitting zero ``omit_zero`` fields."""
    parts = []
    for f in fields:
        v = values[f.attr]
        if f.omit_zero and v == (uuid.UUID(int=0) if f.kind == "uuid" else ""):
            continue
        parts.append(f"{marshal_string(f.key)}:{marshal_string(str(v))}")
    return ("{" + ",".join(parts) + "}").encode("utf-8")
