"""The offline model playing xAI's Grok Voice: a thin sans-IO transform around :class:`OfflineModel`.

The brain and the Realtime behaviour (turns, VAD, transcripts, tools, streaming) are
:class:`~rtproxy.offline.model.OfflineModel`'s; this module only reshapes what goes in and out
into xAI's shape, quirks and all (protocol/xai-realtime.md §2, §4), so the gateway's normalizer
(:mod:`rtproxy.translate.realtime_xai`) meets them without xAI. The server
(:mod:`rtproxy.offline.server`) serves it at ``/xai/v1/realtime`` and sends :meth:`OfflineXaiModel.ping`
every :data:`PING_INTERVAL_S`.

In (xAI's client shape): ``session.update`` takes a top-level ``voice`` (xAI's voices only, else
an ``error``) and a flat ``turn_detection``; the GA nested ``audio.output.voice`` and
``audio.input.turn_detection`` are ignored (as xAI ignores them), and so is a transcription model
(xAI transcribes every turn on its own). ``conversation.item.truncate`` / ``.delete`` /
``.retrieve`` and ``output_audio_buffer.clear`` are unknown events (an ``error``).

Out: ``conversation.created`` first and no ``session.created``; session objects with top-level
``voice`` and ``turn_detection`` and no ``type``; ``usage: {}`` on ``response.created`` and
``response.done``; input transcriptions without ``usage`` (xAI reports no usage); ``role:
"tool"`` on ``function_call`` items in ``conversation.item.added``; no ``output_index`` /
``content_index`` on the streaming events; ``response.content_part.done`` without ``part``; and
``{"type": "ping"}`` keepalives.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ..translate.realtime_xai import DEFAULT_VOICE, XAI_VOICES
from .brain import Speaker
from .model import ClientError, OfflineModel

Event = dict[str, Any]

#: How often a connection gets a ``ping`` (xAI's keepalive; its pace is not documented).
PING_INTERVAL_S = 1.0
#: The model xAI transcribes input with (it reports no usage for it).
TRANSCRIBER = "grok-transcribe"
#: Client events xAI does not document: unknown to it.
UNKNOWN_CLIENT_EVENTS = frozenset({"conversation.item.truncate", "conversation.item.delete",
                                   "conversation.item.retrieve", "output_audio_buffer.clear",
                                   "transcription_session.update"})
#: Streaming events xAI sends without ``output_index`` / ``content_index``.
UNINDEXED = frozenset({
    "response.output_item.added", "response.output_item.done", "response.content_part.added",
    "response.content_part.done", "response.output_text.delta", "response.output_text.done",
    "response.output_audio.delta", "response.output_audio.done", "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done", "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
})


class OfflineXaiModel:
    """One xAI session of the offline model (``hears`` and ``speaker`` as :class:`OfflineModel`'s)."""

    def __init__(self, *, model: str = "grok-voice-think-fast-1.0", hears: bool = False,
                 speaker: Speaker | None = None) -> None:
        self.inner = OfflineModel(model=model, dialect="ga", hears=hears, speaker=speaker)
        self.inner.voice = DEFAULT_VOICE
        self.inner.transcription = {"model": TRANSCRIBER}  # xAI transcribes every turn, unasked

    @property
    def responding(self) -> bool:
        return self.inner.responding

    @property
    def hears(self) -> bool:
        return self.inner.hears

    def take_unheard(self) -> list[tuple[str, bytes]]:
        return self.inner.take_unheard()

    def heard(self, item_id: str, words: str | None) -> list[Event]:
        return self._xai(self.inner.heard(item_id, words))

    def next_chunk(self) -> list[Event]:
        return self._xai(self.inner.next_chunk())

    def ping(self) -> list[Event]:
        return [{"type": "ping"}]

    def start(self) -> list[Event]:
        """xAI's first event: the conversation, no session."""
        return [self.inner._ev("conversation.created", conversation={"id": self.inner.conversation_id,
                                                                      "object": "realtime.conversation"})]

    def receive(self, raw: str | bytes) -> list[Event]:
        """One client frame in xAI's shape; the server events it causes, in xAI's."""
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):
            return self._xai(self.inner.receive(raw))
        if not isinstance(event, dict):
            return self._xai(self.inner.receive(raw))
        etype = event.get("type")
        try:
            if etype in UNKNOWN_CLIENT_EVENTS:
                raise ClientError("invalid_value", f"Unknown event type: {etype}", "type")
            if etype == "session.update":
                event = self._ga_update(event)
        except ClientError as err:
            return self._xai([self.inner._error(err, event.get("event_id"))])
        return self._xai(self.inner.receive(json.dumps(event)))

    # -- in: xAI's session.update as the offline model's GA one --------------------------------

    @staticmethod
    def _ga_update(event: Event) -> Event:
        s = event.get("session")
        if not isinstance(s, dict):
            return event
        ga = {k: copy.deepcopy(v) for k, v in s.items() if k not in ("voice", "turn_detection", "audio", "modalities")}
        ga["type"] = "realtime"
        if isinstance(s.get("modalities"), list) and "output_modalities" not in s:
            ga["output_modalities"] = s["modalities"]
        audio = copy.deepcopy(s.get("audio")) if isinstance(s.get("audio"), dict) else {}
        audio_in = audio.get("input") if isinstance(audio.get("input"), dict) else {}
        audio_out = audio.get("output") if isinstance(audio.get("output"), dict) else {}
        # ignored, as xAI ignores them: the GA nested voice and turn detection, a transcription model
        for name in ("turn_detection", "transcription"):
            audio_in.pop(name, None)
        audio_out.pop("voice", None)
        if "voice" in s:
            voice = s["voice"]
            if not isinstance(voice, str) or voice.lower() not in XAI_VOICES:
                raise ClientError("invalid_value", f"Invalid voice {str(voice)[:40]!r}: use one of "
                                  f"{', '.join(XAI_VOICES)}", "session.voice")
            audio_out["voice"] = voice
        if "turn_detection" in s:
            audio_in["turn_detection"] = s["turn_detection"]
        ga["audio"] = {**audio, "input": audio_in, "output": audio_out}
        return {**event, "session": ga}

    # -- out: the offline model's GA events in xAI's shape -------------------------------------

    def _xai(self, events: list[Event]) -> list[Event]:
        for e in events:
            etype = e.get("type")
            if etype == "session.updated":
                e["session"] = self._xai_session(e["session"])
            elif etype in ("response.created", "response.done"):
                e["response"]["usage"] = {}
            elif etype == "conversation.item.added" and e["item"].get("type") == "function_call":
                e["item"]["role"] = "tool"
            elif etype == "conversation.item.input_audio_transcription.completed":
                e.pop("usage", None)
            if etype in UNINDEXED:
                e.pop("output_index", None)
                e.pop("content_index", None)
            if etype == "response.content_part.done":
                e.pop("part", None)
        return [e for e in events if e.get("type") != "session.created"]

    @staticmethod
    def _xai_session(ga: dict[str, Any]) -> dict[str, Any]:
        audio = ga.get("audio") or {}
        audio_in, audio_out = audio.get("input") or {}, audio.get("output") or {}
        return {
            "id": ga.get("id"), "object": "realtime.session", "model": ga.get("model"),
            "voice": audio_out.get("voice"), "instructions": ga.get("instructions"),
            "turn_detection": audio_in.get("turn_detection"), "output_modalities": ga.get("output_modalities"),
            "audio": {"input": {"format": audio_in.get("format")}, "output": {"format": audio_out.get("format")}},
            "tools": ga.get("tools"), "tool_choice": ga.get("tool_choice"),
        }
