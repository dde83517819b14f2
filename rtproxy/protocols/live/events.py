"""GPT-Live's event types (protocol/gpt-live.md §3, §4), and which frames its collector needs.

As in the Realtime API, nearly every byte is base64 audio: ``session.input_audio.append`` in,
``session.output_audio.delta`` out (continuous, silence included), and the rare, large
``session.output_audio.fixture.play``. Those are counted, never parsed. The collector needs the
session's lifecycle, its usage, the transcripts, what the client adds to the context, and the
delegated Responses stream (``response.event``).
"""

from __future__ import annotations

from ..peek import ClientTriage, peek_type
from ..seam import AUDIO, COLLECT, FORWARD

AUDIO_TYPES = frozenset({
    b"session.input_audio.append",
    b"session.output_audio.delta",
    b"session.output_audio.fixture.play",
})

COLLECTED_TYPES = frozenset({
    b"session.start", b"session.started", b"session.update", b"session.updated",
    b"session.input_transcript.delta", b"session.output_transcript.delta",
    b"session.instructions.append", b"session.thinking.append", b"session.commentary.append",
    b"response.item.create", b"response.create", b"response.event",
    b"session.delegation.created", b"decision.event", b"session.usage.updated", b"session.closed", b"error",
})

KNOWN_TYPES = frozenset(t.encode() for t in ["session.start", "session.update", "session.input_audio.append", "session.input_audio.mute", "session.input_audio.unmute", "session.output_audio.fixture.play", "session.instructions.append", "session.thinking.append", "session.commentary.append", "decision.create", "decision.item.create", "decision.item.delete", "response.item.create", "response.create", "session.close", "transport.dtmf.send", "session.started", "session.updated", "session.input_audio.muted", "session.input_audio.unmuted", "session.output_audio.fixture.playing", "session.output_audio.fixture.played", "session.instructions.appended", "session.thinking.appended", "session.commentary.appended", "session.output_audio.delta", "session.input_transcript.delta", "session.output_transcript.delta", "session.delegation.created", "response.event", "decision.event", "decision.item.created", "decision.item.deleted", "session.usage.updated", "session.closed", "error", "info", "session.paused", "session.resumed", "transport.dtmf.received", "transport.dtmf.sent", "transport.ringing", "transport.answered", "transport.failed"])
assert AUDIO_TYPES <= KNOWN_TYPES and COLLECTED_TYPES <= KNOWN_TYPES
FORWARD_ONLY_TYPES = KNOWN_TYPES - COLLECTED_TYPES

_AUDIO_PREFIXES = tuple(head + t + b'"' for head in (b'{"type":"', b'{"type": "') for t in sorted(AUDIO_TYPES))


def classify(data: bytes) -> int:
    """AUDIO, COLLECT or FORWARD for a provider's frame, from its first bytes (see the Realtime twin)."""
    if data.startswith(_AUDIO_PREFIXES):
        return AUDIO
    peeked = peek_type(data)
    if peeked in AUDIO_TYPES:
        return AUDIO
    return FORWARD if peeked in FORWARD_ONLY_TYPES else COLLECT


#: The client's frames, judged on what the provider will read (as the Realtime twin's).
CLIENT_FRAMES = ClientTriage(AUDIO_TYPES, FORWARD_ONLY_TYPES)
classify_client = CLIENT_FRAMES.classify
normalize_client = CLIENT_FRAMES.normalize
