"""A cheap peek at a JSON event's ``"type"``, without parsing it.

Both protocols rtproxy speaks are JSON objects with a ``type``. Every producer we know (the
OpenAI servers, the SDKs, browsers' ``JSON.stringify`` of ``{type, ...}``) puts ``type`` first or
right after ``event_id``: :func:`peek_type` finds it in the first :data:`PEEK_BYTES` bytes. A
frame whose type is further in peeks as ``None`` and is parsed in full by whoever needs it,
which is correct, only slower.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

#: How far into a frame the type is looked for.
PEEK_BYTES = 160
_TYPE_KEY = b'"type"'
_MAX_TYPE_LEN = 96

def peek_type(data: bytes) -> bytes | None:
    """The value of the first ``"type"`` key in the frame's head, or None if not found there."""
    i = data.find(_TYPE_KEY, 0, PEEK_BYTES)
    if i < 0:
        return None
    j = i + 6
    n = len(data)
    # skip  optional whitespace, a colon, optional whitespace
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
    return bytes(data[j + 1:end])  # frames may be bytearrays (unmasked client data)


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
        if event["type"].encode() not in self.known:
            count_unknown(self.unknown_types, event["type"])
            return None
        return event
