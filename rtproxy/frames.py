"""Classify realtime frames by a cheap peek at their ``"type"``, without parsing JSON.

Most of a voice session's bytes are base64 audio inside ``input_audio_buffer.append`` and
``response.output_audio.delta`` events. The relay forwards frames as received and only needs
their type: :func:`peek_type` finds it in the first :data:`PEEK_BYTES` bytes. Every producer we
know (the OpenAI servers, the SDKs, browsers' ``JSON.stringify`` of ``{type, ...}``) puts
``type`` first or right after ``event_id``; a frame whose type is further in peeks as ``None``
and is parsed in full by whoever needs it, which is correct, only slower.
"""

from __future__ import annotations

#: How far into a frame the type is looked for.
PEEK_BYTES = 160
_TYPE_KEY = b'"type"'
_MAX_TYPE_LEN = 96

#: Audio-carrying events: never parsed, never handed to the collector.
AUDIO_TYPES = frozenset({
    b"input_audio_buffer.append",
    b"response.output_audio.delta",
    b"response.audio.delta",
})

#: The events the spend collector needs (DESIGN.md §Shape). Everything else is only forwarded.
COLLECTED_TYPES = frozenset({
    b"session.created",
    b"session.updated",
    b"session.update",
    b"transcription_session.updated",
    b"conversation.item.create",
    b"conversation.item.input_audio_transcription.completed",
    b"response.create",
    b"response.created",
    b"response.done",
    b"error",
})


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


def is_collected(data: bytes) -> bool:
    """Whether the collector needs this text frame: a needed type, or a type we could not peek."""
    t = peek_type(data)
    return t is None or t in COLLECTED_TYPES
