"""The Realtime protocol's event types, and which frames its collector needs.

Most of a voice session's bytes are base64 audio inside ``input_audio_buffer.append`` and
``response.output_audio.delta`` events. The relay forwards frames as received; the collector
needs only a few types (:data:`COLLECTED_TYPES`), chosen by :func:`is_collected` from the
frame's first bytes (:func:`~rtproxy.protocols.peek.peek_type`) without parsing JSON. That peek
trusts the provider; a client's frames decide what the provider bills, so they are classified by
:data:`CLIENT_FRAMES`, which parses any frame whose bytes do not prove its type.
"""

from __future__ import annotations

from ..peek import ClientTriage, peek_type
from ..seam import AUDIO, COLLECT, FORWARD

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
    b"transcription_session.update",  # checked by the gate (it can name a transcription model)
    b"transcription_session.updated",
    b"conversation.item.create",
    b"conversation.item.input_audio_transcription.completed",
    b"conversation.item.input_audio_transcription.failed",
    b"input_audio_buffer.committed",  # a transcription starts (and will be billed)
    b"conversation.item.done",  # MCP tool lists arrive as conversation items (one frame per item)
    b"response.create",
    b"response.created",
    b"response.done",
    b"error",
    # what a response relayed so far: its usage is estimated from these if it is never reported
    b"response.output_text.delta",
    b"response.text.delta",
    b"response.output_audio_transcript.delta",
    b"response.audio_transcript.delta",
})
#: The deltas whose characters an unreported response is estimated from (text, transcript).
TEXT_DELTA_TYPES = frozenset({"response.output_text.delta", "response.text.delta"})
TRANSCRIPT_DELTA_TYPES = frozenset({"response.output_audio_transcript.delta", "response.audio_transcript.delta"})


#: Every client and server event type of the GA and beta protocols (protocol/openai-realtime.md).
KNOWN_TYPES = frozenset(t.encode() for t in """
    session.update input_audio_buffer.append input_audio_buffer.commit input_audio_buffer.clear
    conversation.item.create conversation.item.truncate conversation.item.delete conversation.item.retrieve
    response.create response.cancel output_audio_buffer.clear transcription_session.update
    error session.created session.updated transcription_session.created transcription_session.updated
    conversation.created conversation.item.added conversation.item.done conversation.item.created
    conversation.item.retrieved conversation.item.truncated conversation.item.deleted
    conversation.item.input_audio_transcription.delta conversation.item.input_audio_transcription.completed
    conversation.item.input_audio_transcription.failed conversation.item.input_audio_transcription.segment
    input_audio_buffer.committed input_audio_buffer.cleared input_audio_buffer.speech_started
    input_audio_buffer.speech_stopped input_audio_buffer.timeout_triggered input_audio_buffer.dtmf_event_received
    output_audio_buffer.started output_audio_buffer.stopped output_audio_buffer.cleared
    response.created response.done response.output_item.added response.output_item.done
    response.content_part.added response.content_part.done response.output_text.delta response.output_text.done
    response.text.delta response.text.done response.output_audio.delta response.output_audio.done
    response.audio.delta response.audio.done response.output_audio_transcript.delta
    response.output_audio_transcript.done response.audio_transcript.delta response.audio_transcript.done
    response.function_call_arguments.delta response.function_call_arguments.done
    response.mcp_call_arguments.delta response.mcp_call_arguments.done response.mcp_call.in_progress
    response.mcp_call.completed response.mcp_call.failed mcp_list_tools.in_progress mcp_list_tools.completed
    mcp_list_tools.failed rate_limits.updated
""".split())
assert AUDIO_TYPES <= KNOWN_TYPES and COLLECTED_TYPES <= KNOWN_TYPES

#: Known types the collector never needs: forwarded and nothing else (audio among them).
FORWARD_ONLY_TYPES = KNOWN_TYPES - COLLECTED_TYPES


#: How audio frames begin as browsers (``JSON.stringify``), the SDKs (``json.dumps``) and the
#: providers write them; the closing quote makes each an exact type match.
_AUDIO_PREFIXES = tuple(
    head + t + b'"'
    for head in (b'{"type":"', b'{"type": "')
    for t in sorted(AUDIO_TYPES)
)


def classify(data: bytes) -> int:
    """What the relay does with a provider's text frame besides forwarding it (:mod:`rtproxy.protocols.seam`):
    ``AUDIO`` (count its bytes), ``COLLECT`` (a type the collector needs, a type unknown to the
    protocol, which it counts, or one the peek could not find, which it parses) or ``FORWARD``."""
    if data.startswith(_AUDIO_PREFIXES):  # nearly every frame of a voice session: no peek needed
        return AUDIO
    peeked = peek_type(data)
    if peeked in AUDIO_TYPES:
        return AUDIO
    return FORWARD if peeked in FORWARD_ONLY_TYPES else COLLECT


#: The client's frames, judged on what the provider will read (:class:`~rtproxy.protocols.peek.ClientTriage`).
CLIENT_FRAMES = ClientTriage(AUDIO_TYPES, FORWARD_ONLY_TYPES)
classify_client = CLIENT_FRAMES.classify
normalize_client = CLIENT_FRAMES.normalize


def is_collected(data: bytes) -> bool:
    """Whether the collector gets this text frame (see :func:`classify`)."""
    return classify(data) == COLLECT
