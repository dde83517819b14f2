"""The offline realtime model: client events in, server events out. No I/O.

It speaks the OpenAI Realtime protocol faithfully enough that the official SDK's event models
validate everything it sends (GA names by default, beta names for beta sessions):

- ``session.created`` on connect, ``session.update`` → ``session.updated`` (or ``error``);
- ``conversation.item.create`` → ``conversation.item.added`` + ``.done`` (beta: ``.created``);
- ``input_audio_buffer.append`` into an energy VAD (``speech_started``/``speech_stopped``,
  ``committed``, the user item, an input transcription when enabled, an automatic response),
  or manual ``input_audio_buffer.commit`` / ``.clear`` when turn detection is off;
- ``response.create`` → a response streamed in chunks (:meth:`OfflineModel.next_chunk`): text,
  or PCM16 24 kHz audio with its transcript, derived deterministically from the input; a
  ``function_call`` when a defined tool is named in the user's text;
- ``response.cancel`` (and barge-in) → ``response.done`` with status ``cancelled``;
- ``response.done`` with deterministic usage (text/audio/image/cached token details);
- MCP tools (``{"type": "mcp"}``) served by a simulated server (:mod:`rtproxy.offline.mcp`): tool
  lists on ``session.update``, approval requests, ``mcp_call`` items with their output;
- transcription sessions (``intent=transcription``): committed audio is transcribed and billed
  per item (tokens for the gpt-4o transcribe models, a duration for whisper-1), no responses;
- ``error`` for anything invalid, with the offending client ``event_id``.

The server (:mod:`rtproxy.offline.server`) calls :meth:`receive` per client frame and, while
:attr:`responding`, :meth:`next_chunk` at its streaming pace.

What it answers, which tool it calls, how it speaks and what it hears are its brain's
(:mod:`rtproxy.offline.brain`), shared with the GPT-Live and Gemini Live front-ends; this module
is the Realtime protocol around it.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

from . import mcp
from .audio import BYTES_PER_MS, SpeechStarted, Vad, VadSettings
from .brain import (
    JOKE,
    MAX_UNHEARD,
    Brain,
    Speaker,
    SpokenWord,
    Utterances,
    audio_tokens,
    cached_prefix,
    fill_arguments,
    placeholder,
    text_tokens,
)
from .brain import topic_words as _topic_words  # noqa: F401  (the brain's, under its name from before the brain)

#: Also the brain's names this module had before the brain (``JOKE``, ``MAX_UNHEARD``, ``Speaker``, ``text_tokens``).
__all__ = ["DEFAULT_INSTRUCTIONS", "JOKE", "MAX_UNHEARD", "ClientError", "OfflineModel", "Speaker", "audio_in_tokens",
           "audio_of", "audio_out_tokens", "text_tokens"]

Event = dict[str, Any]

DEFAULT_INSTRUCTIONS = "You are the rtproxy offline model, a deterministic stand-in for a realtime model."
#: Uncommitted input audio kept at most (manual turn detection); older audio is dropped.
MAX_INPUT_BUFFER_BYTES = 15 * 1024 * 1024
#: Conversation items kept; the oldest are forgotten beyond this.
MAX_ITEMS = 1000
#: OpenAI's audio token rates: input audio, output audio (tokens a second).
AUDIO_IN_TOKENS_PER_S = 10
AUDIO_OUT_TOKENS_PER_S = 20
#: Minimum audio a manual commit needs (the real API's rule).
MIN_COMMIT_MS = 100
#: Input tokens one image part counts as (deterministic; the real count depends on its size).
IMAGE_TOKENS = 256
#: Transcription models that report a duration (the others report tokens).
DURATION_BILLED_TRANSCRIBERS = frozenset({"whisper-1"})
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_GA_TO_BETA = {
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "conversation.item.added": "conversation.item.created",
}
_DEFAULT_TURN_DETECTION = {
    "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
    "create_response": True, "interrupt_response": True,
}


class ClientError(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def audio_of(event: Event) -> bytes:
    """The decoded ``audio`` of an append (both APIs), or the API's error for a bad one."""
    audio = event.get("audio")
    if not isinstance(audio, str):
        raise ClientError("invalid_type", "audio must be a base64 string", "audio")
    try:
        return base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError("invalid_value", "audio is not valid base64", "audio") from None


def audio_in_tokens(ms: int) -> int:
    return audio_tokens(ms, AUDIO_IN_TOKENS_PER_S)


def audio_out_tokens(ms: int) -> int:
    return audio_tokens(ms, AUDIO_OUT_TOKENS_PER_S)


class _Response:
    """A response being streamed: a generator of event batches plus what it has produced."""

    def __init__(self, rid: str, modalities: list[str]) -> None:
        self.id = rid
        self.modalities = modalities
        self.steps: Iterator[list[Event]] = iter(())
        self.output: list[Event] = []  # finished output items
        self.open_item: Event | None = None  # the item being streamed
        self.text_out = ""
        self.audio_out_ms = 0
        self.input_text_tokens = 0
        self.input_audio_tokens = 0
        self.cached_text = 0
        self.cached_audio = 0
        self.input_image_tokens = 0
        #: The request's ``response.metadata``, echoed on response.created and response.done as
        #: the API does (clients match their request to the response by it).
        self.metadata: dict[str, Any] | None = None
        self.output_index = 0


class OfflineModel:
    """``hears``: committed audio is left for the caller to recognize (:meth:`take_unheard`,
    then :meth:`heard` with the words), and replies wait for it; otherwise a placeholder
    transcript is written at once. ``speaker``: the voice of audio replies (default: tones)."""

    def __init__(self, *, model: str = "gpt-realtime", dialect: str = "ga", intent: str = "conversation",
                 hears: bool = False, speaker: Speaker | None = None) -> None:
        self.model = model
        self.brain = Brain(speaker)
        self._unheard: Utterances[Event] = Utterances(hears)  # committed items waiting for their words
        self._deferred: dict[str, Any] | None = None  # a response waiting until every item is heard
        self.beta = dialect == "beta"
        #: A transcription session: audio in, transcripts out, no responses.
        self.transcribing = intent == "transcription"
        #: MCP server labels whose tools were listed (once per label, as the API does).
        self._listed_servers: set[str] = set()
        self.session_id = "sess_" + secrets.token_hex(8)
        self.conversation_id = "conv_" + secrets.token_hex(8)
        self._counter = 0
        self.instructions = DEFAULT_INSTRUCTIONS
        self.modalities: list[str] = ["text", "audio"] if self.beta else ["audio"]
        self.voice = "alloy" if self.beta else "marin"
        self.turn_detection: dict[str, Any] | None = dict(_DEFAULT_TURN_DETECTION)
        self.transcription: dict[str, Any] | None = None
        self.tools: list[dict[str, Any]] = []
        self.tool_choice: Any = "auto"
        self.items: list[Event] = []
        #: Audio length of the input audio items in the conversation (pruned with them).
        self._item_ms: dict[str, int] = {}
        self._input = bytearray()  # manual-mode input buffer
        self._vad = Vad(self._vad_settings())
        self._vad_item: str | None = None
        self._response: _Response | None = None
        self._prev_input = (0, 0)  # (text, audio) input tokens of the previous response
        self.created_at = int(time.time())

    # -- ids and small helpers -----------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self.session_id[5:13]}{self._counter:05d}"

    def _ev(self, etype: str, **fields: Any) -> Event:
        if self.beta:
            etype = _GA_TO_BETA.get(etype, etype)
        return {"type": etype, "event_id": self._id("event"), **fields}

    def _error(self, err: ClientError, client_event_id: Any) -> Event:
        return self._ev("error", error={
            "type": "invalid_request_error", "code": err.code, "message": err.message, "param": err.param,
            "event_id": client_event_id if isinstance(client_event_id, str) else None,
        })

    def _vad_settings(self) -> VadSettings:
        td = self.turn_detection or {}
        return VadSettings(
            threshold=float(td.get("threshold", 0.5) or 0.5),
            prefix_padding_ms=int(td.get("prefix_padding_ms", 300) or 0),
            silence_duration_ms=int(td.get("silence_duration_ms", 500) or 500),
        )

    @property
    def responding(self) -> bool:
        return self._response is not None

    @property
    def hears(self) -> bool:
        return self._unheard.hears

    @property
    def speaker(self) -> Speaker | None:
        """The brain's voice (``None``: tones, also after the speaker failed)."""
        return self.brain.speaker

    @speaker.setter
    def speaker(self, speaker: Speaker | None) -> None:
        self.brain.speaker = speaker

    # -- hearing (done by the caller: a recognizer costs real time) ----------------------------

    def take_unheard(self) -> list[tuple[str, bytes]]:
        """The committed utterances to recognize, ``(item_id, pcm)``, each handed out once."""
        return self._unheard.take()

    def heard(self, item_id: str, words: str | None) -> list[Event]:
        """What was recognized in ``item_id`` (``None``: not recognized): its transcript, the
        input transcription events, and the response that was waiting for it."""
        item = self._unheard.heard(item_id)
        if item is None:
            return []
        out = self._transcribed(item, words if words is not None else self._placeholder(item_id))
        if not self._unheard.waiting and self._deferred is not None and self._response is None:
            params, self._deferred = self._deferred, None
            out.extend(self._start_response(params))
        return out

    def _placeholder(self, item_id: str) -> str:
        return placeholder(self._item_ms.get(item_id, 0))

    # -- the session object --------------------------------------------------------------------

    def session_object(self) -> dict[str, Any]:
        if self.transcribing:
            return self._transcription_session_object()
        if self.beta:
            return {
                "id": self.session_id, "object": "realtime.session", "model": self.model,
                "modalities": list(self.modalities), "instructions": self.instructions, "voice": self.voice,
                "input_audio_format": "pcm16", "output_audio_format": "pcm16",
                "input_audio_transcription": self.transcription, "turn_detection": self.turn_detection,
                "tools": self.tools, "tool_choice": self.tool_choice, "temperature": 0.8,
                "max_response_output_tokens": "inf", "expires_at": self.created_at + 3600,
            }
        return {
            "type": "realtime", "object": "realtime.session", "id": self.session_id, "model": self.model,
            "output_modalities": list(self.modalities), "instructions": self.instructions,
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": self.transcription,
                          "noise_reduction": None, "turn_detection": self.turn_detection},
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": self.voice, "speed": 1.0},
            },
            "tools": self.tools, "tool_choice": self.tool_choice, "max_output_tokens": "inf",
            "tracing": None, "truncation": "auto", "prompt": None, "expires_at": self.created_at + 3600,
        }

    def _transcription_session_object(self) -> dict[str, Any]:
        if self.beta:
            return {"id": self.session_id, "object": "realtime.transcription_session", "modalities": ["text"],
                    "input_audio_format": "pcm16", "input_audio_transcription": self.transcription,
                    "turn_detection": self.turn_detection, "expires_at": self.created_at + 3600,
                    # the SDK's beta type requires it; a WebSocket session has no secret to give
                    "client_secret": {"value": "", "expires_at": self.created_at + 3600}}
        return {
            "type": "transcription", "object": "realtime.transcription_session", "id": self.session_id,
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": self.transcription,
                                "noise_reduction": None, "turn_detection": self.turn_detection}},
            "include": None, "expires_at": self.created_at + 3600,
        }

    def start(self) -> list[Event]:
        events = [self._ev("session.created", session=self.session_object())]
        if self.beta:
            events.append(self._ev("conversation.created",
                                   conversation={"id": self.conversation_id, "object": "realtime.conversation"}))
        return events

    # -- client events -------------------------------------------------------------------------

    def receive(self, raw: str | bytes) -> list[Event]:
        """Handle one client frame; return the server events it causes right away."""
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):
            return [self._error(ClientError("invalid_json", "The event is not valid JSON."), None)]
        if not isinstance(event, dict):
            return [self._error(ClientError("invalid_event", "An event must be a JSON object."), None)]
        etype = event.get("type")
        handler = self._handlers().get(etype) if isinstance(etype, str) else None
        if handler is None:
            shown = etype if isinstance(etype, str) else None
            return [self._error(ClientError("invalid_value", f"Invalid value: {str(shown)[:80]!r}. "
                                            "That is not a supported client event type.", "type"),
                                event.get("event_id"))]
        try:
            return handler(event)
        except ClientError as err:
            return [self._error(err, event.get("event_id"))]

    def _handlers(self) -> dict[str, Any]:
        return {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": self._item_create,
            "conversation.item.delete": self._item_delete,
            "conversation.item.retrieve": self._item_retrieve,
            "conversation.item.truncate": self._item_truncate,
            "response.create": self._response_create,
            "transcription_session.update": self._transcription_session_update,
            "response.cancel": self._response_cancel,
            "output_audio_buffer.clear": lambda e: [self._ev("output_audio_buffer.cleared",
                                                             response_id=self._response.id if self._response else "")],
        }

    def _transcription_session_update(self, event: Event) -> list[Event]:
        if not (self.beta and self.transcribing):
            raise ClientError("invalid_value", "transcription_session.update is for beta transcription sessions",
                              "type")
        self._session_update(event)
        return [self._ev("transcription_session.updated", session=self.session_object())]

    def _session_update(self, event: Event) -> list[Event]:
        s = event.get("session")
        if not isinstance(s, dict):
            raise ClientError("invalid_value", "session must be an object", "session")
        kind = "transcription" if self.transcribing else "realtime"
        if not self.beta and s.get("type") != kind:
            raise ClientError("missing_required_parameter",
                              f"Missing required parameter: 'session.type' (must be '{kind}').", "session.type")
        update: dict[str, Any] = {}
        if "instructions" in s:
            if not isinstance(s["instructions"], str):
                raise ClientError("invalid_type", "instructions must be a string", "session.instructions")
            update["instructions"] = s["instructions"]
        mod_key = "modalities" if self.beta else "output_modalities"
        if mod_key in s:
            mods = s[mod_key]
            allowed = ({"text"}, {"text", "audio"}) if self.beta else ({"text"}, {"audio"})
            if not isinstance(mods, list) or set(mods) not in allowed or len(mods) != len(set(mods)):
                raise ClientError("invalid_value", f"{mod_key} must be one of {[sorted(a) for a in allowed]}",
                                  f"session.{mod_key}")
            update["modalities"] = list(mods)
        if self.beta:
            audio_in = {k: s[k] for k in ("turn_detection",) if k in s}
            if "input_audio_transcription" in s:
                audio_in["transcription"] = s["input_audio_transcription"]
            voice = s.get("voice")
        else:
            audio = s.get("audio")
            if audio is not None and not isinstance(audio, dict):
                raise ClientError("invalid_type", "audio must be an object", "session.audio")
            audio = audio or {}
            audio_in = audio.get("input") or {}
            voice = (audio.get("output") or {}).get("voice")
            if not isinstance(audio_in, dict):
                raise ClientError("invalid_type", "audio.input must be an object", "session.audio.input")
        if "turn_detection" in audio_in:
            td = audio_in["turn_detection"]
            if td is not None and (not isinstance(td, dict) or td.get("type") not in ("server_vad", "semantic_vad")):
                raise ClientError("invalid_value", "turn_detection must be null or {type: server_vad|semantic_vad}",
                                  "session.audio.input.turn_detection")
            if isinstance(td, dict):
                for k in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
                    if k in td and td[k] is not None and not isinstance(td[k], (int, float)):
                        raise ClientError("invalid_type", f"turn_detection.{k} must be a number",
                                          f"session.audio.input.turn_detection.{k}")
                td = {**_DEFAULT_TURN_DETECTION, **td}
            update["turn_detection"] = td
        if "transcription" in audio_in:
            tr = audio_in["transcription"]
            if tr is not None and not isinstance(tr, dict):
                raise ClientError("invalid_type", "transcription must be null or an object",
                                  "session.audio.input.transcription")
            if isinstance(tr, dict) and tr.get("prompt") is not None and not isinstance(tr["prompt"], str):
                raise ClientError("invalid_type", "transcription.prompt must be a string",
                                  "session.audio.input.transcription.prompt")
            update["transcription"] = tr
        if voice is not None:
            if not isinstance(voice, str):
                raise ClientError("invalid_type", "voice must be a string", "session.voice")
            update["voice"] = voice
        if "tools" in s and not self.transcribing:
            update["tools"] = self._check_tools(s["tools"], "session.tools")
        if "tool_choice" in s:
            update["tool_choice"] = s["tool_choice"]
        # all checked: apply at once
        for k, v in update.items():
            setattr(self, k, v)
        if "turn_detection" in update:
            self._vad = Vad(self._vad_settings())
            self._vad_item = None
        return [self._ev("session.updated", session=self.session_object()), *self._list_mcp_tools()]

    def _list_mcp_tools(self) -> list[Event]:
        """Each MCP server new to the session lists its tools, as a conversation item."""
        events: list[Event] = []
        for server in mcp.mcp_servers(self.tools):
            label = server["server_label"]
            if label in self._listed_servers:
                continue
            self._listed_servers.add(label)
            previous = self.items[-1]["id"] if self.items else None
            item: Event = {"id": self._id("mcpl"), "type": "mcp_list_tools", "server_label": label, "tools": []}
            events += [self._ev("mcp_list_tools.in_progress", item_id=item["id"]),
                       self._ev("conversation.item.added", previous_item_id=previous, item=copy.deepcopy(item))]
            item["tools"] = [dict(t) for t in mcp.TOOLS if mcp.allowed(server, t["name"])]
            self.items.append(item)
            events += [self._ev("mcp_list_tools.completed", item_id=item["id"]),
                       self._ev("conversation.item.done", previous_item_id=previous, item=copy.deepcopy(item))]
        return events

    @staticmethod
    def _check_tools(tools: Any, param: str) -> list[dict[str, Any]]:
        if not isinstance(tools, list):
            raise ClientError("invalid_type", "tools must be an array", param)
        for i, tool in enumerate(tools):
            if isinstance(tool, dict) and tool.get("type") == "mcp":
                if not isinstance(tool.get("server_label"), str) or not _TOOL_NAME.match(tool["server_label"]):
                    raise ClientError("invalid_value", "an mcp tool needs a server_label matching "
                                      "^[A-Za-z0-9_-]{1,64}$", f"{param}[{i}].server_label")
                if not any(isinstance(tool.get(k), str) for k in ("server_url", "connector_id", "tunnel_id")):
                    raise ClientError("missing_required_parameter", "an mcp tool needs server_url, connector_id "
                                      "or tunnel_id", f"{param}[{i}]")
                continue
            if not isinstance(tool, dict) or tool.get("type", "function") != "function":
                raise ClientError("invalid_value", "each tool must be {type: 'function', name, parameters}",
                                  f"{param}[{i}]")
            name = tool.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                raise ClientError("invalid_value", "a tool name must match ^[A-Za-z0-9_-]{1,64}$", f"{param}[{i}].name")
            if "parameters" in tool and not isinstance(tool["parameters"], dict):
                raise ClientError("invalid_type", "tool parameters must be a JSON schema object",
                                  f"{param}[{i}].parameters")
        return [dict(t) if t.get("type") == "mcp" else dict(t, type="function") for t in tools]

    def _append(self, event: Event) -> list[Event]:
        return self.feed_audio(audio_of(event))

    def feed_audio(self, pcm: bytes) -> list[Event]:
        """Input audio (PCM16 24 kHz mono) from an append or, over WebRTC, the microphone track."""
        if self.turn_detection is None:
            self._input += pcm
            if len(self._input) > MAX_INPUT_BUFFER_BYTES:
                del self._input[: len(self._input) - MAX_INPUT_BUFFER_BYTES]
            return []
        out: list[Event] = []
        for vad_event in self._vad.feed(pcm):
            if isinstance(vad_event, SpeechStarted):
                self._vad_item = self._id("item")
                out.append(self._ev("input_audio_buffer.speech_started", item_id=self._vad_item,
                                    audio_start_ms=vad_event.audio_start_ms))
                if self._response is not None and (self.turn_detection or {}).get("interrupt_response", True):
                    out.extend(self._cancel("turn_detected"))
            else:
                item_id = self._vad_item or self._id("item")
                self._vad_item = None
                out.append(self._ev("input_audio_buffer.speech_stopped", item_id=item_id,
                                    audio_end_ms=vad_event.audio_end_ms))
                out.extend(self._commit_audio(vad_event.pcm, item_id))
                if (self.turn_detection or {}).get("create_response", True) and self._response is None \
                        and self._deferred is None and not self.transcribing:
                    out.extend(self._start_response({}))
        return out

    def _commit(self, event: Event) -> list[Event]:
        ms = len(self._input) / BYTES_PER_MS  # fractional, as the API's message reports it
        if ms < MIN_COMMIT_MS:
            raise ClientError("input_audio_buffer_commit_empty",
                              f"Error committing input audio buffer: buffer too small. Expected at least "
                              f"{MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio.")
        pcm = bytes(self._input)
        self._input.clear()
        return self._commit_audio(pcm, self._id("item"))

    def _clear(self, event: Event) -> list[Event]:
        self._input.clear()
        self._vad = Vad(self._vad_settings())
        self._vad_item = None
        return [self._ev("input_audio_buffer.cleared")]

    def _commit_audio(self, pcm: bytes, item_id: str) -> list[Event]:
        previous = self.items[-1]["id"] if self.items else None
        ms = len(pcm) // BYTES_PER_MS
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}]}
        self._item_ms[item_id] = ms
        out = [self._ev("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous)]
        if not self.transcribing:  # a transcription session keeps no conversation
            out.extend(self._add_item(item, previous))
        if self._unheard.listen(item_id, pcm, item):
            return out
        return out + self._transcribed(item, self._placeholder(item_id))

    def _transcribed(self, item: Event, transcript: str) -> list[Event]:
        """The item's words are known: its transcript, and the transcription events if enabled."""
        item_id = item["id"]
        ms = self._item_ms.get(item_id, 0)
        out: list[Event] = []
        item["content"][0]["transcript"] = transcript
        if self.transcription is not None:
            out.append(self._ev("conversation.item.input_audio_transcription.delta", item_id=item_id,
                                content_index=0, delta=transcript))
            out.append(self._ev("conversation.item.input_audio_transcription.completed", item_id=item_id,
                                content_index=0, transcript=transcript,
                                usage=self._transcription_usage(ms, transcript)))
        if self.transcribing:  # no conversation keeps the item: its length is not needed again
            self._item_ms.pop(item_id, None)
        return out

    def _transcription_usage(self, ms: int, transcript: str) -> dict[str, Any]:
        """What the provider bills one transcription by: whisper-1 a duration, the others tokens."""
        model = (self.transcription or {}).get("model")
        if model in DURATION_BILLED_TRANSCRIBERS:
            return {"type": "duration", "seconds": round(ms / 1000, 3)}
        prompt = (self.transcription or {}).get("prompt")
        text_in = text_tokens(prompt) if isinstance(prompt, str) and prompt else 0
        audio_in, text_out = audio_in_tokens(ms), text_tokens(transcript)
        return {"type": "tokens", "input_tokens": text_in + audio_in, "output_tokens": text_out,
                "total_tokens": text_in + audio_in + text_out,
                "input_token_details": {"text_tokens": text_in, "audio_tokens": audio_in}}

    def _add_item(self, item: Event, previous: str | None) -> list[Event]:
        self.items.append(item)
        if len(self.items) > MAX_ITEMS:
            self._item_ms.pop(self.items.pop(0)["id"], None)
        if self.beta:
            return [self._ev("conversation.item.added", previous_item_id=previous, item=item)]
        return [self._ev("conversation.item.added", previous_item_id=previous, item=item),
                self._ev("conversation.item.done", previous_item_id=previous, item=item)]

    def _item_create(self, event: Event) -> list[Event]:
        item = event.get("item")
        if not isinstance(item, dict):
            raise ClientError("invalid_value", "item must be an object", "item")
        if self.transcribing:
            raise ClientError("invalid_request_error", "a transcription session has no conversation", "type")
        itype = item.get("type")
        if itype == "mcp_approval_response":
            if not isinstance(item.get("approval_request_id"), str) or not isinstance(item.get("approve"), bool):
                raise ClientError("invalid_value", "mcp_approval_response needs approval_request_id and approve",
                                  "item")
        elif itype == "message":
            role = item.get("role")
            if role not in ("user", "system", "assistant"):
                raise ClientError("invalid_value", "message role must be user, system or assistant", "item.role")
            content = item.get("content")
            if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
                raise ClientError("invalid_value", "message content must be an array of parts", "item.content")
        elif itype == "function_call_output":
            if not isinstance(item.get("call_id"), str) or not isinstance(item.get("output"), str):
                raise ClientError("invalid_value", "function_call_output needs call_id and output strings", "item")
        elif itype == "function_call":
            if not all(isinstance(item.get(k), str) for k in ("name", "call_id", "arguments")):
                raise ClientError("invalid_value", "function_call needs name, call_id and arguments strings", "item")
        else:
            raise ClientError("invalid_value", f"unsupported item type {str(itype)[:40]!r}", "item.type")
        stored = copy.deepcopy(item)
        stored.setdefault("id", self._id("item"))
        stored["object"] = "realtime.item"
        stored.setdefault("status", "completed")
        previous = self.items[-1]["id"] if self.items else None
        return self._add_item(stored, previous)

    def _find(self, item_id: Any) -> Event:
        for item in self.items:
            if item["id"] == item_id:
                return item
        raise ClientError("item_not_found", f"Item with item_id {str(item_id)[:64]!r} not found.", "item_id")

    def _item_delete(self, event: Event) -> list[Event]:
        item = self._find(event.get("item_id"))
        self.items.remove(item)
        self._item_ms.pop(item["id"], None)  # a deleted item's audio is no longer input
        return [self._ev("conversation.item.deleted", item_id=item["id"])]

    def _item_retrieve(self, event: Event) -> list[Event]:
        return [self._ev("conversation.item.retrieved", item=self._find(event.get("item_id")))]

    def _item_truncate(self, event: Event) -> list[Event]:
        item = self._find(event.get("item_id"))
        end_ms = event.get("audio_end_ms")
        if not isinstance(end_ms, int) or end_ms < 0:
            raise ClientError("invalid_value", "audio_end_ms must be a non-negative integer", "audio_end_ms")
        content_index = event.get("content_index", 0)
        return [self._ev("conversation.item.truncated", item_id=item["id"],
                         content_index=content_index if isinstance(content_index, int) else 0, audio_end_ms=end_ms)]

    # -- responses -----------------------------------------------------------------------------

    def _response_create(self, event: Event) -> list[Event]:
        if self.transcribing:
            raise ClientError("invalid_request_error", "a transcription session gives no responses", "type")
        if self._response is not None:
            raise ClientError("conversation_already_has_active_response",
                              f"Conversation already has an active response in progress: {self._response.id}.")
        if self._deferred is not None:
            raise ClientError("conversation_already_has_active_response",
                              "Conversation already has a response waiting for its input audio to be heard.")
        params = event.get("response") or {}
        if not isinstance(params, dict):
            raise ClientError("invalid_type", "response must be an object", "response")
        if "tools" in params:
            params = dict(params, tools=self._check_tools(params["tools"], "response.tools"))
        return self._start_response(params)

    def _response_cancel(self, event: Event) -> list[Event]:
        if self._response is None and self._deferred is not None:
            self._deferred = None  # it had not started: nothing to report
            return []
        if self._response is None:
            raise ClientError("response_cancel_not_active", "Cancellation failed: no active response found")
        return self._cancel("client_cancelled")

    def _response_object(self, r: _Response, status: str, usage: dict[str, Any] | None,
                         details: dict[str, Any] | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "object": "realtime.response", "id": r.id, "conversation_id": self.conversation_id, "status": status,
            "status_details": details, "output": copy.deepcopy(r.output), "usage": usage,
            "metadata": copy.deepcopy(r.metadata),
        }
        if self.beta:
            obj.update({"modalities": r.modalities, "voice": self.voice, "output_audio_format": "pcm16",
                        "temperature": 0.8, "max_output_tokens": "inf"})
        else:
            obj.update({"output_modalities": r.modalities, "max_output_tokens": "inf",
                        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": self.voice}}})
        return obj

    def _start_response(self, params: dict[str, Any]) -> list[Event]:
        mod_key = "modalities" if self.beta else "output_modalities"
        modalities = params.get(mod_key) if isinstance(params.get(mod_key), list) else self.modalities
        r = _Response(self._id("resp"), list(modalities))
        metadata = params.get("metadata")
        if metadata is not None and not (isinstance(metadata, dict) and len(metadata) <= 16 and all(
                isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
                for k, v in metadata.items())):
            raise ClientError("invalid_value", "metadata must be at most 16 string pairs (keys ≤ 64, values ≤ 512 "
                              "characters)", "response.metadata")
        r.metadata = metadata
        if self._unheard.waiting:  # the reply answers the user's words: wait until they are heard
            self._deferred = params
            return []
        tools = params.get("tools", self.tools)
        tool_choice = params.get("tool_choice", self.tool_choice)
        instructions = params.get("instructions") if isinstance(params.get("instructions"), str) else self.instructions
        # usage: the whole context is input; what the previous response saw is the cached prefix
        text_in = text_tokens(instructions) + sum(text_tokens(t) for t in self._item_texts())
        audio_in = sum(audio_in_tokens(ms) for ms in self._item_ms.values())
        r.input_image_tokens = IMAGE_TOKENS * sum(
            1 for item in self.items for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "input_image")
        prev_text, prev_audio = self._prev_input
        r.input_text_tokens, r.input_audio_tokens = text_in, audio_in
        cached = cached_prefix(min(prev_text, text_in) + min(prev_audio, audio_in))
        r.cached_text = min(cached, prev_text, text_in)
        r.cached_audio = min(cached - r.cached_text, audio_in)
        self._prev_input = (text_in, audio_in)
        self._response = r
        r.steps = self._plan(r, tools, tool_choice)
        return [self._ev("response.created", response=self._response_object(r, "in_progress", None))]

    def _item_texts(self) -> Iterator[str]:
        for item in self.items:
            if item.get("type") == "function_call_output":
                yield item.get("output", "")
            elif item.get("type") == "function_call":
                yield item.get("arguments", "")
            for part in item.get("content") or []:
                for k in ("text", "transcript"):
                    v = part.get(k) if isinstance(part, dict) else None
                    if isinstance(v, str) and not (k == "transcript" and part.get("type") == "input_audio"):
                        yield v

    def _last_input(self) -> tuple[str, Event | None]:
        """The text the reply answers and the item it came from."""
        for item in reversed(self.items):
            if item.get("type") == "function_call_output":
                return "", item
            if item.get("type") == "message" and item.get("role") == "user":
                texts = []
                for part in item.get("content") or []:
                    if isinstance(part, dict):
                        if isinstance(part.get("text"), str):
                            texts.append(part["text"])
                        elif isinstance(part.get("transcript"), str):
                            texts.append(part["transcript"])
                return " ".join(texts).strip(), item
        return "", None

    @staticmethod
    def fill_arguments(text: str, tool: dict[str, Any]) -> str:
        """Fill the tool's parameters from the text: names for strings, numbers for numbers (the brain's)."""
        return fill_arguments(text, tool)

    def _reply_text(self, text: str, item: Event | None) -> str:
        if item is not None and item.get("type") == "function_call_output":
            call = next((i for i in self.items if i.get("type") == "function_call"
                         and i.get("call_id") == item.get("call_id")), None)
            name = str(call.get("name")) if call else "the tool"
            return self.brain.tool_reply(name, item.get("output", ""))
        return self.brain.reply(text if item is not None else None)

    def _plan(self, r: _Response, tools: list[dict[str, Any]], tool_choice: Any) -> Iterator[list[Event]]:
        last = self.items[-1] if self.items else None
        if last is not None and last.get("type") == "mcp_approval_response":
            yield from self._plan_approved(r, last)
            yield self._finish(r, "completed", None)
            return
        text, item = self._last_input()
        tool = None
        if item is not None and item.get("type") == "message":
            server, mcp_tool = self._choose_mcp_tool(text, tools, tool_choice)
            if server is not None:
                yield from self._plan_mcp(r, server, mcp_tool, mcp.arguments_for(mcp_tool, text))
                yield self._finish(r, "completed", None)
                return
            tool = self.brain.choose_tool(text, [t for t in tools if t.get("type") != "mcp"], tool_choice)
        if tool is not None:
            yield from self._plan_function_call(r, tool, fill_arguments(text, tool))
        else:
            yield from self._plan_message(r, self._reply_text(text, item))
        yield self._finish(r, "completed", None)

    @staticmethod
    def _choose_mcp_tool(text: str, tools: list[dict[str, Any]], tool_choice: Any) -> tuple[dict[str, Any] | None, str]:
        """The MCP server and tool the user's words name (``echo …``, ``add 2 and 3``), if any."""
        if tool_choice == "none":
            return None, ""
        words = set(re.findall(r"[a-z]+", text.lower()))
        for server in mcp.mcp_servers(tools):
            for name in mcp.TOOL_NAMES:
                if name in words and mcp.allowed(server, name):
                    return server, name
        return None, ""

    def _plan_mcp(self, r: _Response, server: dict[str, Any], tool: str, arguments: str) -> Iterator[list[Event]]:
        label = server["server_label"]
        if mcp.needs_approval(server, tool):
            item: Event = {"id": self._id("mcpr"), "type": "mcp_approval_request", "server_label": label,
                           "name": tool, "arguments": arguments}
            previous = self.items[-1]["id"] if self.items else None
            yield [self._ev("response.output_item.added", response_id=r.id, output_index=r.output_index,
                            item=copy.deepcopy(item)),
                   self._ev("conversation.item.added", previous_item_id=previous, item=copy.deepcopy(item)),
                   *self._close_item(r, item, previous)]
            return
        yield from self._plan_mcp_call(r, label, tool, arguments, None)

    def _plan_approved(self, r: _Response, answer: Event) -> Iterator[list[Event]]:
        request = next((i for i in self.items if i.get("type") == "mcp_approval_request"
                        and i.get("id") == answer.get("approval_request_id")), None)
        if request is None or not answer.get("approve"):
            yield from self._plan_message(r, "The tool call was not approved, so I did not make it.")
            return
        yield from self._plan_mcp_call(r, request["server_label"], request["name"], request["arguments"],
                                       request["id"])

    def _plan_mcp_call(self, r: _Response, label: str, tool: str, arguments: str,
                       approval_request_id: str | None) -> Iterator[list[Event]]:
        item: Event = {"id": self._id("mcp"), "type": "mcp_call", "server_label": label, "name": tool,
                       "arguments": "", "approval_request_id": approval_request_id, "output": None, "error": None}
        r.open_item = item
        previous = self.items[-1]["id"] if self.items else None
        ids = {"response_id": r.id, "item_id": item["id"], "output_index": r.output_index}
        yield [self._ev("response.output_item.added", response_id=r.id, output_index=r.output_index,
                        item=copy.deepcopy(item)),
               self._ev("conversation.item.added", previous_item_id=previous, item=copy.deepcopy(item))]
        item["arguments"] = arguments
        r.text_out += arguments
        yield [self._ev("response.mcp_call_arguments.delta", delta=arguments, **ids),
               self._ev("response.mcp_call_arguments.done", arguments=arguments, **ids),
               self._ev("response.mcp_call.in_progress", item_id=item["id"], output_index=r.output_index)]
        output, error = mcp.call(tool, arguments)
        item["output"], item["error"] = output, error
        outcome = "failed" if error else "completed"
        yield [self._ev(f"response.mcp_call.{outcome}", item_id=item["id"], output_index=r.output_index),
               *self._close_item(r, item, previous)]
        reply = f"{tool} returned {output}" if error is None else f"{tool} failed: {error['message']}"
        yield from self._plan_message(r, reply)

    def _plan_function_call(self, r: _Response, tool: dict[str, Any], arguments: str) -> Iterator[list[Event]]:
        item_id, call_id = self._id("item"), self._id("call")
        item = {"id": item_id, "object": "realtime.item", "type": "function_call", "status": "in_progress",
                "name": tool["name"], "call_id": call_id, "arguments": ""}
        r.open_item = item
        previous = self.items[-1]["id"] if self.items else None
        first = [self._ev("response.output_item.added", response_id=r.id, output_index=r.output_index,
                          item=copy.deepcopy(item))]
        first.append(self._ev("conversation.item.added", previous_item_id=previous, item=copy.deepcopy(item)))
        yield first
        step = max(1, len(arguments) // 3)
        for i in range(0, len(arguments), step):
            piece = arguments[i:i + step]
            item["arguments"] += piece
            r.text_out += piece
            yield [self._ev("response.function_call_arguments.delta", response_id=r.id, item_id=item_id,
                            output_index=r.output_index, call_id=call_id, delta=piece)]
        item["status"] = "completed"
        done = [self._ev("response.function_call_arguments.done", response_id=r.id, item_id=item_id,
                         output_index=r.output_index, call_id=call_id, name=tool["name"], arguments=arguments)]
        done.extend(self._close_item(r, item, previous))
        yield done

    def _close_item(self, r: _Response, item: Event, previous: str | None) -> list[Event]:
        r.output.append(copy.deepcopy(item))
        r.open_item = None
        self.items.append(item)
        events = [self._ev("response.output_item.done", response_id=r.id, output_index=r.output_index,
                           item=copy.deepcopy(item))]
        if not self.beta:
            events.append(self._ev("conversation.item.done", previous_item_id=previous, item=copy.deepcopy(item)))
        r.output_index += 1
        return events

    def _plan_message(self, r: _Response, reply: str) -> Iterator[list[Event]]:
        audio = "audio" in r.modalities
        item_id = self._id("item")
        part_type = "audio" if audio else "text"
        content_type = ("audio" if self.beta else "output_audio") if audio else ("text" if self.beta else "output_text")
        item: Event = {"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                       "status": "in_progress", "content": []}
        r.open_item = item
        previous = self.items[-1]["id"] if self.items else None
        ids = {"response_id": r.id, "item_id": item_id, "output_index": r.output_index, "content_index": 0}
        yield [self._ev("response.output_item.added", response_id=r.id, output_index=r.output_index,
                        item=copy.deepcopy(item)),
               self._ev("conversation.item.added", previous_item_id=previous, item=copy.deepcopy(item))]
        empty_part = {"type": part_type, "transcript": ""} if audio else {"type": part_type, "text": ""}
        item["content"] = [{"type": content_type, "transcript": ""} if audio else {"type": content_type, "text": ""}]
        yield [self._ev("response.content_part.added", part=empty_part, **ids)]
        word: SpokenWord
        for word in self.brain.speak(reply, voiced=audio):
            r.text_out += word.delta
            if audio:
                item["content"][0]["transcript"] += word.delta
                batch = [self._ev("response.output_audio_transcript.delta", delta=word.delta, **ids)]
                batch += [self._ev("response.output_audio.delta", delta=chunk, **ids) for chunk in word.chunks()]
                r.audio_out_ms += word.ms
                yield batch
            else:
                item["content"][0]["text"] += word.delta
                yield [self._ev("response.output_text.delta", delta=word.delta, **ids)]
        item["status"] = "completed"
        if audio:
            transcript = item["content"][0]["transcript"]
            done = [self._ev("response.output_audio.done", **ids),
                    self._ev("response.output_audio_transcript.done", transcript=transcript, **ids),
                    self._ev("response.content_part.done", part={"type": "audio", "transcript": transcript}, **ids)]
        else:
            text = item["content"][0]["text"]
            done = [self._ev("response.output_text.done", text=text, **ids),
                    self._ev("response.content_part.done", part={"type": "text", "text": text}, **ids)]
        done.extend(self._close_item(r, item, previous))
        yield done

    def _usage(self, r: _Response) -> dict[str, Any]:
        out_audio = audio_out_tokens(r.audio_out_ms) if r.audio_out_ms else 0
        out_text = text_tokens(r.text_out)
        in_total = r.input_text_tokens + r.input_audio_tokens + r.input_image_tokens
        cached = r.cached_text + r.cached_audio
        usage: dict[str, Any] = {
            "total_tokens": in_total + out_text + out_audio, "input_tokens": in_total,
            "output_tokens": out_text + out_audio,
            "input_token_details": {"text_tokens": r.input_text_tokens, "audio_tokens": r.input_audio_tokens,
                                    "cached_tokens": cached},
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }
        if not self.beta:
            usage["input_token_details"].update({
                "image_tokens": r.input_image_tokens,
                "cached_tokens_details": {"text_tokens": r.cached_text, "audio_tokens": r.cached_audio,
                                          "image_tokens": 0}})
        return usage

    def _finish(self, r: _Response, status: str, details: dict[str, Any] | None) -> list[Event]:
        self._response = None
        return [self._ev("response.done", response=self._response_object(r, status, self._usage(r), details))]

    def _cancel(self, reason: str) -> list[Event]:
        r = self._response
        assert r is not None
        events: list[Event] = []
        if r.open_item is not None:
            item = r.open_item
            item["status"] = "incomplete"
            previous = self.items[-1]["id"] if self.items else None
            events.extend(self._close_item(r, item, previous))
        events.extend(self._finish(r, "cancelled", {"type": "cancelled", "reason": reason}))
        return events

    def next_chunk(self) -> list[Event]:
        """The next batch of the active response's events ([] when none is active)."""
        r = self._response
        if r is None:
            return []
        try:
            return next(r.steps)
        except StopIteration:
            self._response = None
            return []
