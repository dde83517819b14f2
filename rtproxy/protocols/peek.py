"""A cheap peek at a JSON event's ``"type"``, without parsing it.

Both protocols rtproxy speaks are JSON objects with a ``type``. Every producer we know (the
OpenAI servers, the SDKs, browsers' ``JSON.stringify`` of ``{type, ...}``) puts ``type`` first or
right after ``event_id``: :func:`peek_type` finds it in the first :data:`PEEK_BYTES` bytes. A
frame whose type is further in peeks as ``None`` and is parsed in full by whoever needs it,
which is correct, only slower.

:func:`peek_type` trusts its producer: the first ``"type"`` may be a nested object's, or be
followed by a second top-level ``type`` (JSON parsers keep the last), or the type may be
spelt with escapes. That is fine for the provider's frames. A client's frames decide what the
provider bills, so they get :func:`top_level_type`, which answers only when the bytes prove the
type is the one the provider's parser will read, and :func:`canonical_event` for the rest:
the frame as parsed, re-serialized, so the provider reads exactly what the gateway judged.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from .seam import AUDIO, COLLECT, FORWARD, PARSE, ClientFrame

#: How far into a frame the type is looked for.
PEEK_BYTES = 160
_TYPE_KEY = b'"type"'
_MAX_TYPE_LEN = 96


def _string_value(data: bytes, j: int) -> tuple[int, int] | None:
    """The span of the short string value after a key ending at ``j`` (whitespace, a colon,
    whitespace, a quoted string), or None."""
    n = len(data)
    while j < n and data[j] in b" \t\r\n":
        j += 1
    if j >= n or data[j] != 0x3A:  # ':'
        return None
    j += 1
    while j < n and data[j] in b" \t\r\n":
        j += 1
    if j >= n or data[j] != 0x22:  # '"'
        return None
    end = data.find(b'"', j + 1, j + 2 + _MAX_TYPE_LEN)
    if end < 0:
        return None
    return j + 1, end


def peek_type(data: bytes) -> bytes | None:
    """The value of the first ``"type"`` key in the frame's head, or None if not found there."""
    i = data.find(_TYPE_KEY, 0, PEEK_BYTES)
    if i < 0:
        return None
    span = _string_value(data, i + 6)
    if span is None:
        return None
    return bytes(data[span[0]:span[1]])  # frames may be bytearrays (unmasked client data)


_WS = rb"[ \t\n\r]*"
#: What may stand before a client frame's top-level ``"type"``: the object's brace and at most one
#: ``event_id`` member whose value has no escape (so the key is provably the object's own).
_HEAD = re.compile(_WS + rb"\{" + _WS + rb'(?:"event_id"' + _WS + b":" + _WS + rb'"[^"\\]*"' + _WS + b"," + _WS
                   + rb")?")
#: A further member whose value is a string (``,"audio":"``), up to the value's opening quote.
_STRING_MEMBER = re.compile(_WS + b"," + _WS + rb'"([^"\\]*)"' + _WS + b":" + _WS + b'"')
#: The members audio appends carry, as browsers and the SDKs write them: matched without a regex.
_COMMON_MEMBERS = (b',"audio":"', b',"event_id":"', b', "audio": "', b', "event_id": "')
_OBJECT_END = re.compile(_WS + rb"\}" + _WS)
#: Members after the type that :func:`top_level_type` reads one by one (an audio append has one
#: or two); a frame with more, or with any other kind of value, is searched instead.
MAX_PLAIN_MEMBERS = 4


def top_level_type(data: bytes) -> bytes | None:
    """The client frame's type when its bytes prove that the provider's JSON parser reads that
    type, else None (then parse it: :func:`canonical_event`).

    Proof: the first ``"type"`` stands right after the object's brace (and at most one plain
    ``event_id``), so it is a top-level key; its value has no escape; and nothing after it can
    be another top-level ``type`` (JSON parsers keep the last of a duplicated key): either the
    rest is a few plain string members and the closing brace (an audio append: one ``find``
    over its base64), or the rest holds no ``"type"`` and no ``\\u`` escape (which could spell
    a key ``typ\\u0065``)."""
    i = data.find(_TYPE_KEY, 0, PEEK_BYTES)
    if i < 0 or _HEAD.fullmatch(data, 0, i) is None:
        return None
    span = _string_value(data, i + 6)
    if span is None:
        return None
    start, end = span
    if data.find(b"\\", start, end) >= 0:
        return None
    if not only_plain_members(data, end + 1) and (data.find(_TYPE_KEY, end) >= 0 or data.find(b"\\u", end) >= 0):
        return None
    return bytes(data[start:end])


def only_plain_members(data: bytes, pos: int) -> bool:
    """Whether the object goes on from ``pos`` with at most :data:`MAX_PLAIN_MEMBERS` members, each
    a string with no escaped quote and none named ``type``, then ends: one ``find`` per member."""
    last = len(data) - 1
    for _ in range(MAX_PLAIN_MEMBERS):
        if data.startswith(b',"audio":"', pos):  # the usual member: no regex
            start = pos + 10
        else:
            start = _plain_value_start(data, pos)
            if start < 0:
                break
        close = data.find(b'"', start)
        if close < 0 or data[close - 1] == 0x5C:  # '\\': an escaped quote, read by the parser instead
            return False
        pos = close + 1
        if pos == last and data[pos] == 0x7D:  # '}': the end, as nearly every frame ends
            return True
    return _OBJECT_END.fullmatch(data, pos) is not None


def _plain_value_start(data: bytes, pos: int) -> int:
    """Where the string value of the member at ``pos`` starts; -1 when there is none, or when the
    member is named ``type``."""
    for head in _COMMON_MEMBERS:
        if data.startswith(head, pos):
            return pos + len(head)
    member = _STRING_MEMBER.match(data, pos)
    if member is None or member.group(1) == b"type":
        return -1
    return member.end()


#: A re-serialized frame may be at most this many times the size it came in at (plus a little):
#: numbers written short (``1e15``) come out long (``1000000000000000.0``), and the gateway must
#: not send the provider far more than a client sent it.
MAX_CANONICAL_GROWTH = 2
_GROWTH_SLACK_BYTES = 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


@attrs.frozen
class Canonical:
    """A client frame as the gateway parsed it (:func:`canonical_event`)."""

    #: The frame to forward: re-serialized when it parsed; unchanged when it does not parse and
    #: holds no ``{`` (no parser finds an event in it); else None: the gateway cannot judge it (JSON
    #: nested too deep, a number too long, a re-serialized form growing too much, or something a
    #: lenient parser might still read an object from), so it is not forwarded.
    frame: bytes | None
    #: Its top-level ``type``, when it is an event (a JSON object with a string ``type``).
    type: bytes | None = None


def canonical_event(data: bytes) -> Canonical:
    """The frame re-serialized from its parse: duplicate keys resolved as parsers resolve them (the
    last wins), escapes decoded, ``type`` first, compact. What the provider then reads is
    exactly what the gateway judged."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        # no object in it for any parser to find: the provider refuses it as the gateway would
        return Canonical(None if b"{" in data else bytes(data))
    etype = None
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        etype = value.pop("type")
        value = {"type": etype, **value}
    frame = _dumps(value)
    if frame is None or len(frame) > MAX_CANONICAL_GROWTH * len(data) + _GROWTH_SLACK_BYTES:
        return Canonical(None)
    return Canonical(frame, etype.encode("utf-8", "surrogatepass") if etype is not None else None)


def _dumps(value: Any) -> bytes | None:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError):
        return None
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate (from a "\\ud800" escape): written escaped again
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


def _audio_heads(triage: ClientTriage) -> tuple[bytes, ...]:
    return tuple(head + t + b'"' for head in (b'{"type":"', b'{"type": "') for t in sorted(triage.audio))


@attrs.frozen
class ClientTriage:
    """A protocol's client frames, judged on what the provider will read (the seam's
    ``classify_client`` and ``normalize_client``): the type the strict peek vouches for, or the
    parsed frame, re-serialized, when it cannot."""

    audio: frozenset[bytes]
    #: Known types the collector never needs.
    forward_only: frozenset[bytes]
    #: How audio appends begin as browsers (``JSON.stringify``) and the SDKs (``json.dumps``)
    #: write them; the closing quote makes each an exact type match.
    audio_prefixes: tuple[bytes, ...] = attrs.field(init=False, repr=False,
                                                    default=attrs.Factory(_audio_heads, takes_self=True))

    def kind(self, etype: bytes) -> int:
        if etype in self.audio:
            return AUDIO
        return FORWARD if etype in self.forward_only else COLLECT

    def classify(self, data: bytes) -> int:
        """AUDIO, FORWARD or COLLECT for a frame whose type the bytes prove; PARSE otherwise."""
        # nearly every frame of a voice session: its prefix, then one find over its base64
        if data.startswith(self.audio_prefixes) and only_plain_members(data, data.find(b'"', 10) + 1):
            return AUDIO
        etype = top_level_type(data)
        return PARSE if etype is None else self.kind(etype)

    def normalize(self, data: bytes) -> ClientFrame:
        """A frame :meth:`classify` could not vouch for, as parsed (see :class:`ClientFrame`)."""
        parsed = canonical_event(data)
        if parsed.frame is None or parsed.type is None:
            return ClientFrame(parsed.frame, COLLECT)  # not an event: the collector counts it
        return ClientFrame(parsed.frame, self.kind(parsed.type))


#: Distinct unknown event types counted by name; the rest are counted under "(other)".
MAX_UNKNOWN_TYPE_NAMES = 32


def parse_event(payload: bytes | str) -> dict[str, Any] | None:
    """The frame as an event (a JSON object with a string ``type``), or None for anything else."""
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return event if isinstance(event, dict) and isinstance(event.get("type"), str) else None


def count_unknown(counts: dict[str, int], etype: str) -> None:
    """Count an event type the protocol does not define, by name while there is room."""
    name = etype[:80] if etype in counts or len(counts) < MAX_UNKNOWN_TYPE_NAMES else "(other)"
    counts[name] = counts.get(name, 0) + 1


@attrs.define
class EventTriage:
    """A collector's first look at a frame handed to it: audio is counted and never parsed, a
    known type it does not need is skipped, anything else is parsed; what is not an event is
    counted as malformed, and a type the protocol does not define by name. Never raises."""

    audio: frozenset[bytes]
    known: frozenset[bytes]
    collected: frozenset[bytes]
    audio_frames: int = 0
    malformed: int = 0
    unknown_types: dict[str, int] = attrs.field(factory=dict)

    def event(self, payload: bytes) -> dict[str, Any] | None:
        """The event to handle, or None."""
        peeked = peek_type(payload)
        if peeked in self.audio:
            self.audio_frames += 1
            return None
        if peeked in self.known and peeked not in self.collected:
            return None
        # a needed type, or one the peek cannot vouch for: the first "type" in the head may be a
        # nested object's ("function_call", "message"), so only the parsed event decides
        event = parse_event(payload)
        if event is None:
            self.malformed += 1
            return None
        if event["type"].encode("utf-8", "surrogatepass") not in self.known:  # a lone surrogate is just unknown
            count_unknown(self.unknown_types, event["type"])
            return None
        return event
