"""OpenAI Realtime (GA) ⇄ xAI's Grok Voice: a sans-IO normalizer.

xAI's events are OpenAI Realtime GA events with quirks that strict GA clients (the official SDK's
types, pipecat, livekit) trip on (protocol/xai-realtime.md §4, §8). One
:class:`RealtimeXaiNormalizer` per session takes parsed events from both sides and returns an
:class:`Output` (the :class:`~rtproxy.relay.translated.Translation` contract); it opens no socket
and never blocks. Its two byte-level fast paths keep a voice session's audio cheap: a client's
``input_audio_buffer.append`` goes upstream as the same bytes (:meth:`~RealtimeXaiNormalizer.fast_client`),
and an ``response.output_audio.delta`` only gets the indices it lacks spliced in
(:meth:`~RealtimeXaiNormalizer.fast_upstream`); anything they cannot vouch for is parsed.

**Client → xAI.**

* ``session.update``: ``audio.output.voice`` → top-level ``voice`` (xAI ignores the nested one):
  an xAI voice (:data:`XAI_VOICES`, any case) as named, an OpenAI voice mapped
  (:data:`OPENAI_TO_XAI_VOICE`), anything else refused with an ``error`` naming
  ``session.audio.output.voice`` (the whole update is refused, as OpenAI refuses one);
  ``audio.input.turn_detection`` → top-level ``turn_detection``; the transcription ``model`` is
  dropped (xAI transcribes on its own; a ``transcription`` left empty goes too); ``model`` is
  dropped (the upstream model is fixed at connect; the gateway's gate has judged the name).
  Everything else passes (``type: "realtime"``, formats, instructions, tools, modalities).
* ``conversation.item.retrieve`` is answered here from the items xAI announced
  (:data:`MAX_KNOWN_ITEMS`, the oldest forgotten first; an unknown id gets ``item_not_found``),
  and ``conversation.item.truncate`` of a known item with ``conversation.item.truncated``, as
  the Gemini translator does (openai-agents sends both in every voice session): xAI has neither.
  The truncate cannot be honoured upstream: the model keeps its whole reply in its context, and
  the recorded transcript includes audio the user never heard. ``conversation.item.delete`` and
  ``output_audio_buffer.clear`` are answered with an ``error`` (code ``unsupported_event``,
  ``param: "type"``), never sent.
* Everything else passes unchanged.

**xAI → client.**

* ``ping`` and ``input_audio_buffer.dtmf_event_received`` are dropped (counted in :attr:`stats`).
* ``session.created``: if none arrived before xAI's first other event (xAI opens with
  ``conversation.created``), one is synthesised from the session as configured so far, ahead of
  that event; a later real one is then dropped: never two. Session objects (created, updated)
  are put in the GA shape: ``type: "realtime"``, top-level ``voice`` / ``turn_detection`` /
  ``modalities`` moved to ``audio.output.voice`` / ``audio.input.turn_detection`` /
  ``output_modalities``.
* ``response.created``: ``usage: {}`` → ``null``. ``response.done``: ``usage`` absent, null or
  ``{}`` → :data:`ZERO_USAGE` (the full GA shape, all zeros); a partial one is completed with
  zeros. xAI reports no token usage: the gateway meters its audio, not these.
* ``conversation.item.input_audio_transcription.completed`` without ``usage`` gets
  :data:`ZERO_TRANSCRIPTION_USAGE` (the GA type requires one), without ``content_index`` 0.
* ``role: "tool"`` is removed from items that are not messages (xAI puts it on
  ``function_call`` items), wherever an item is carried.
* ``output_index`` / ``content_index`` missing from the streaming events are injected, counted
  per ``response_id``: an item's output index is its order among the response's items (a
  response may hold an audio message *and* a function call), a part's content index its order
  among its item's parts; a given index is kept and counted from. A missing ``response_id`` is
  the open response's.
* ``response.content_part.added`` / ``.done`` without ``part`` are back-filled: from the part
  ``content_part.added`` gave, completed by ``response.output_text.done``'s ``text`` or
  ``response.output_audio_transcript.done``'s ``transcript``; by default
  ``{"type": "audio", "transcript": ""}`` (``{"type": "text", "text": ""}`` in a text response).
* A server event without ``event_id`` gets one.
* Unknown event types are forwarded unchanged and counted (:attr:`unknown_events`,
  :attr:`unknown_types`); the session's collector counts them too (``unknown_event_types``).

**Bounds.** Per-response state (item and part indices, parts for back-filling) lives until the
response's ``response.done``: at most :data:`MAX_TRACKED_RESPONSES` responses (the oldest
forgotten first) of :data:`MAX_TRACKED_ITEMS` items and parts each (the oldest forgotten first;
an event for a forgotten item counts it anew). Unknown type names: :data:`MAX_UNKNOWN_TYPE_NAMES`.
"""

from __future__ import annotations

import collections
import copy
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

from .output import Output
from .realtime_session import ClientError

Event = dict[str, Any]

#: xAI's voices (docs.x.ai voice guide), passed through as named (any case).
XAI_VOICES = ("eve", "ara", "rex", "sal", "leo")
DEFAULT_VOICE = "eve"
#: OpenAI's voices → xAI's, by register (a documented choice: each default to the other's default,
#: the rest by timbre).
OPENAI_TO_XAI_VOICE = {
    "marin": "eve", "shimmer": "eve", "coral": "ara", "sage": "ara", "alloy": "sal",
    "ash": "rex", "echo": "rex", "cedar": "rex", "ballad": "leo", "verse": "leo",
}
#: Client events xAI does not have: answered with an error, never sent.
UNSUPPORTED_CLIENT_EVENTS = {
    "conversation.item.delete": "xAI's realtime API cannot delete conversation items",
    "output_audio_buffer.clear": "output_audio_buffer.clear is for WebRTC sessions, which xAI's realtime API has not",
}
#: xAI server events a GA client must not see.
DROPPED_UPSTREAM_EVENTS = {"ping": "pings_dropped", "input_audio_buffer.dtmf_event_received": "dtmf_dropped"}
#: What ``response.done`` carries when xAI reports no usage (protocol/xai-realtime.md §4 #3).
ZERO_USAGE: dict[str, Any] = {
    "total_tokens": 0, "input_tokens": 0, "output_tokens": 0,
    "input_token_details": {"text_tokens": 0, "audio_tokens": 0, "cached_tokens": 0},
    "output_token_details": {"text_tokens": 0, "audio_tokens": 0},
}
#: What an input transcription without usage carries (the GA event requires one).
ZERO_TRANSCRIPTION_USAGE: dict[str, Any] = {"type": "tokens", "input_tokens": 0, "output_tokens": 0,
                                            "total_tokens": 0}
#: The server events of OpenAI's GA protocol (the openai SDK's ``RealtimeServerEvent``).
GA_SERVER_EVENTS = frozenset({
    "error", "session.created", "session.updated", "conversation.created", "conversation.item.added",
    "conversation.item.done", "conversation.item.created", "conversation.item.deleted",
    "conversation.item.retrieved", "conversation.item.truncated",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.delta", "conversation.item.input_audio_transcription.failed",
    "conversation.item.input_audio_transcription.segment", "input_audio_buffer.cleared",
    "input_audio_buffer.committed", "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
    "input_audio_buffer.timeout_triggered", "input_audio_buffer.dtmf_event_received",
    "output_audio_buffer.started", "output_audio_buffer.stopped", "output_audio_buffer.cleared",
    "rate_limits.updated", "response.created", "response.done", "response.output_item.added",
    "response.output_item.done", "response.content_part.added", "response.content_part.done",
    "response.output_text.delta", "response.output_text.done", "response.output_audio.delta",
    "response.output_audio.done", "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done", "response.function_call_arguments.delta",
    "response.function_call_arguments.done", "response.mcp_call_arguments.delta",
    "response.mcp_call_arguments.done", "response.mcp_call.in_progress", "response.mcp_call.completed",
    "response.mcp_call.failed", "mcp_list_tools.in_progress", "mcp_list_tools.completed",
    "mcp_list_tools.failed",
})
#: Streaming events that carry ``output_index`` (and, but the three mcp_call ones, ``response_id``).
OUTPUT_INDEXED = frozenset({
    "response.output_item.added", "response.output_item.done", "response.content_part.added",
    "response.content_part.done", "response.output_text.delta", "response.output_text.done",
    "response.output_audio.delta", "response.output_audio.done", "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done", "response.function_call_arguments.delta",
    "response.function_call_arguments.done", "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
    "response.mcp_call.in_progress", "response.mcp_call.completed", "response.mcp_call.failed",
})
_NO_RESPONSE_ID = frozenset({"response.mcp_call.in_progress", "response.mcp_call.completed",
                             "response.mcp_call.failed"})
#: Streaming events that also carry ``content_index``.
CONTENT_INDEXED = frozenset({
    "response.content_part.added", "response.content_part.done", "response.output_text.delta",
    "response.output_text.done", "response.output_audio.delta", "response.output_audio.done",
    "response.output_audio_transcript.delta", "response.output_audio_transcript.done",
})
#: Events that carry a conversation item under ``item``.
_ITEM_EVENTS = frozenset({"conversation.item.added", "conversation.item.done", "conversation.item.created",
                          "conversation.item.retrieved", "response.output_item.added", "response.output_item.done"})

MAX_TRACKED_RESPONSES = 16
#: Conversation items remembered (as last announced) for ``retrieve`` and ``truncate``.
MAX_KNOWN_ITEMS = 1024
MAX_TRACKED_ITEMS = 256
MAX_UNKNOWN_TYPE_NAMES = 32
#: How long a session object says the session lasts (xAI's documented maximum is 120 minutes).
SESSION_LIFETIME_S = 7200

#: How a client's audio append and xAI's audio delta begin as the SDKs and servers write them;
#: the quote after the type makes each an exact type match. A client frame reaches the
#: normalizer after the session core's triage: one starting so was proven an append by its bytes,
#: or re-serialized from its parse (type first, duplicate keys resolved).
_APPEND_HEADS = (b'{"type":"input_audio_buffer.append"', b'{"type": "input_audio_buffer.append"')
_AUDIO_DELTA_HEADS = (b'{"type":"response.output_audio.delta",', b'{"type": "response.output_audio.delta", ')
#: An id member without escapes (with one, the frame is parsed instead).
_RESPONSE_ID = re.compile(rb'"response_id"\s*:\s*"([^"\\]*)"')
_ITEM_ID = re.compile(rb'"item_id"\s*:\s*"([^"\\]*)"')


def _default_new_id(prefix: str) -> str:
    return f"{prefix}_rtp{secrets.token_hex(8)}"


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def xai_voice(voice: Any, param: str) -> str:
    """The voice xAI is sent for a client's ``voice``, or ClientError naming ``param``."""
    if not isinstance(voice, str):
        raise ClientError("invalid_type", "voice must be a string", param)
    name = voice.lower()
    if name in XAI_VOICES:
        return voice
    if name in OPENAI_TO_XAI_VOICE:
        return OPENAI_TO_XAI_VOICE[name]
    raise ClientError("invalid_value", f"Invalid value: {voice[:40]!r}. xAI's voices are {', '.join(XAI_VOICES)} "
                      f"(OpenAI's are mapped to them: {', '.join(sorted(OPENAI_TO_XAI_VOICE))})", param)


def ga_usage(usage: Any) -> dict[str, Any]:
    """``usage`` in the full GA shape, what it lacks as zeros (all zeros for none)."""
    out = copy.deepcopy(ZERO_USAGE)
    if isinstance(usage, dict):
        for key, value in usage.items():
            if key in ("input_token_details", "output_token_details") and isinstance(value, dict):
                out[key].update(value)
            else:
                out[key] = value
    return out


def ga_session(session: Any) -> dict[str, Any]:
    """An xAI session object in the GA shape (a copy; see the module docstring)."""
    out = copy.deepcopy(_d(session))
    out.setdefault("type", "realtime")
    out.setdefault("object", "realtime.session")
    has_voice, voice = "voice" in out, out.pop("voice", None)
    has_turns, turns = "turn_detection" in out, out.pop("turn_detection", None)
    modalities = out.pop("modalities", None)
    if isinstance(modalities, list) and "output_modalities" not in out:
        out["output_modalities"] = modalities
    if has_voice or has_turns:
        audio = out["audio"] = _d(out.get("audio"))
        if has_voice:
            audio["output"] = _d(audio.get("output"))
            audio["output"].setdefault("voice", voice)
        if has_turns:
            audio["input"] = _d(audio.get("input"))
            audio["input"].setdefault("turn_detection", turns)
    return out


@attrs.define
class _Response:
    """One response's indices and parts, while it streams."""

    text_only: bool = False
    #: item id → its output index
    items: collections.OrderedDict[str, int] = attrs.field(factory=collections.OrderedDict)
    next_index: int = 0
    #: item id → (parts added, the last part's content index)
    parts: collections.OrderedDict[str, tuple[int, int]] = attrs.field(factory=collections.OrderedDict)
    #: (item id, content index) → the part as known so far
    values: collections.OrderedDict[tuple[str, int], dict[str, Any]] = attrs.field(factory=collections.OrderedDict)

    def item_index(self, item_id: str, given: Any = None) -> int:
        if isinstance(given, int) and not isinstance(given, bool):
            self.items[item_id] = given
            self.next_index = max(self.next_index, given + 1)
        elif item_id not in self.items:
            self.items[item_id] = self.next_index
            self.next_index += 1
        _trim(self.items)
        return self.items[item_id]

    def part_index(self, item_id: str, *, added: bool, given: Any = None) -> int:
        count, last = self.parts.get(item_id, (0, 0))
        if isinstance(given, int) and not isinstance(given, bool):
            last = given
            count = max(count, given + 1) if added else count
        elif added:
            last, count = count, count + 1
        self.parts[item_id] = (count, last)
        _trim(self.parts)
        return last

    def default_part(self) -> dict[str, Any]:
        return {"type": "text", "text": ""} if self.text_only else {"type": "audio", "transcript": ""}


def _trim(table: collections.OrderedDict[Any, Any]) -> None:
    while len(table) > MAX_TRACKED_ITEMS:
        table.popitem(last=False)


class RealtimeXaiNormalizer:
    """One OpenAI Realtime GA client session over xAI's Grok Voice (see the module text).

    ``model``: the name the client connected with (in a synthesised ``session.created``);
    ``upstream_model``: xAI's model. ``new_id`` (prefix → id) and ``clock`` (seconds) make
    tests deterministic."""

    def __init__(self, *, model: str, upstream_model: str, dialect: str = "ga",
                 new_id: Callable[[str], str] | None = None, clock: Callable[[], float] = time.time) -> None:
        if dialect != "ga":
            raise ValueError("xAI speaks the GA dialect only (beta sessions are refused at the handshake)")
        self.model = model
        self.upstream_model = upstream_model
        self._new_id = new_id or _default_new_id
        #: What was dropped, synthesised, filled or mapped, for logs and the session record.
        self.stats: collections.Counter[str] = collections.Counter()
        #: Unknown event types forwarded, by name (at most :data:`MAX_UNKNOWN_TYPE_NAMES`, then ``"(other)"``).
        self.unknown_types: dict[str, int] = {}
        #: The session as configured so far, GA-shaped: what a synthesised ``session.created`` says.
        self.session: dict[str, Any] = {
            "type": "realtime", "object": "realtime.session", "id": self._new_id("sess"), "model": model,
            "output_modalities": ["audio"], "instructions": "", "tools": [], "tool_choice": "auto",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": None,
                                "turn_detection": {"type": "server_vad"}},
                      "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": DEFAULT_VOICE}},
            "expires_at": int(clock()) + SESSION_LIFETIME_S,
        }
        self._created_sent = False
        self._items: collections.OrderedDict[str, Event] = collections.OrderedDict()
        self._responses: collections.OrderedDict[str, _Response] = collections.OrderedDict()
        self._current: str | None = None
        self._last_update: Event = {"type": "session.update", "session": {"type": "realtime"}}
        self._to_client: list[Event] = []
        self._to_upstream: list[Event] = []

    @property
    def unknown_events(self) -> int:
        """Events of types unknown to the GA protocol that were forwarded to the client."""
        return self.stats["unknown_events"]

    # == the Translation contract ====================================================================

    def start(self) -> Output:
        """Nothing yet: ``session.created`` waits for xAI's first event (xAI may send its own)."""
        return Output()

    def setup_frame(self) -> Event:
        """The last session update sent (the leg asks only after a reconnect, which never comes)."""
        return copy.deepcopy(self._last_update)

    def upstream_closed(self, code: int, reason: str) -> Output:
        """Nothing to add: the session ends as on any provider's close."""
        return Output()

    def finish(self) -> Output:
        """Nothing is held back: no events owed."""
        return Output()

    def fast_client(self, payload: bytes) -> bytes | None:
        """An audio append passes as the same bytes; None: parse the frame."""
        return payload if payload.startswith(_APPEND_HEADS) else None

    def fast_upstream(self, payload: bytes) -> bytes | None:
        """An audio delta with an ``event_id`` and unescaped ids, for the client with the indices
        it lacks spliced in after its type; None: parse the frame."""
        if not self._created_sent:
            return None
        for head in _AUDIO_DELTA_HEADS:
            if payload.startswith(head):
                break
        else:
            return None
        has_output, has_content = b'"output_index"' in payload, b'"content_index"' in payload
        if b'"event_id"' not in payload:
            return None
        if has_output and has_content:
            return payload
        found_response, found_item = _RESPONSE_ID.search(payload), _ITEM_ID.search(payload)
        if found_response is None or found_item is None:
            return None
        r = self._response(found_response.group(1).decode("utf-8", "replace"))
        item_id = found_item.group(1).decode("utf-8", "replace")
        splice = b""
        if not has_output:
            splice += b'"output_index":%d,' % r.item_index(item_id)
        if not has_content:
            splice += b'"content_index":%d,' % r.part_index(item_id, added=False)
        self.stats["indices_injected"] += 1
        return head + splice + payload[len(head):]

    def from_client(self, event: Event) -> Output:
        etype = event.get("type")
        try:
            if isinstance(etype, str) and etype in UNSUPPORTED_CLIENT_EVENTS:
                self.stats["client_events_refused"] += 1
                raise ClientError("unsupported_event", UNSUPPORTED_CLIENT_EVENTS[etype], "type")
            if etype == "session.update":
                self._on_session_update(event)
            elif etype in ("conversation.item.retrieve", "conversation.item.truncate"):
                self._answer_item_event(event, etype)
            else:
                self._to_upstream.append(event)
        except ClientError as err:
            client_event_id = event.get("event_id")
            self._emit("error", error={"type": err.kind, "code": err.code, "message": err.message, "param": err.param,
                                       "event_id": client_event_id if isinstance(client_event_id, str) else None})
        return self._flush()

    def from_upstream(self, frame: Event) -> Output:
        etype = frame.get("type")
        if isinstance(etype, str) and etype in DROPPED_UPSTREAM_EVENTS:
            self.stats[DROPPED_UPSTREAM_EVENTS[etype]] += 1
            return Output()
        if etype == "session.created":
            if self._created_sent:  # never two: one was synthesised before xAI's first event
                self.stats["session_created_dropped"] += 1
                return Output()
            self._created_sent = True
        elif not self._created_sent:
            self._created_sent = True
            self.stats["session_created_synthesised"] += 1
            self._emit("session.created", session=copy.deepcopy(self.session))
        handler = self._upstream_handlers.get(etype) if isinstance(etype, str) else None
        if handler is not None:
            handler(self, frame, etype)
        if isinstance(etype, str) and etype in OUTPUT_INDEXED:
            self._index(frame, etype)
        if not isinstance(etype, str) or etype not in GA_SERVER_EVENTS:
            self._count_unknown(etype)
        if "event_id" not in frame:
            frame["event_id"] = self._new_id("event")
        self._to_client.append(frame)
        return self._flush()

    # == client events ===============================================================================

    def _on_session_update(self, event: Event) -> None:
        session = event.get("session")
        if not isinstance(session, dict):
            self._to_upstream.append(event)  # xAI answers it
            return
        sent = copy.deepcopy(session)
        sent.pop("model", None)
        if "voice" in sent:  # xAI's own shape
            sent["voice"] = xai_voice(sent["voice"], "session.voice")
        audio = sent.get("audio")
        if isinstance(audio, dict):
            output, audio_in = audio.get("output"), audio.get("input")
            if isinstance(output, dict) and "voice" in output:
                sent["voice"] = xai_voice(output.pop("voice"), "session.audio.output.voice")
                self.stats["voices_moved"] += 1
            if isinstance(audio_in, dict):
                if "turn_detection" in audio_in:
                    sent["turn_detection"] = audio_in.pop("turn_detection")
                if "transcription" in audio_in:
                    kept = {k: v for k, v in _d(audio_in["transcription"]).items() if k != "model"}
                    if kept:
                        audio_in["transcription"] = kept
                    else:
                        del audio_in["transcription"]
            for part in ("input", "output"):
                if audio.get(part) == {}:
                    del audio[part]
            if not audio:
                del sent["audio"]
        # self.session stays what xAI stated (or its defaults): a synthesised session.created, and
        # the spend meter's formats, never take a client's update before xAI applies it
        update = {k: v for k, v in event.items() if k != "session"}
        update["session"] = sent
        self._last_update = update
        self._to_upstream.append(update)

    # == server events ===============================================================================

    def _on_session(self, frame: Event, etype: str) -> None:
        frame["session"] = ga_session(frame.get("session"))
        self.session = copy.deepcopy(frame["session"])

    def _on_item(self, frame: Event, etype: str) -> None:
        item = frame.get("item")
        if isinstance(item, dict):
            self._clean_item(item)
            item_id = item.get("id")
            if etype != "conversation.item.retrieved" and isinstance(item_id, str):
                self._items[item_id] = copy.deepcopy(item)
                self._items.move_to_end(item_id)
                while len(self._items) > MAX_KNOWN_ITEMS:
                    self._items.popitem(last=False)

    def _answer_item_event(self, event: Event, etype: str) -> None:
        """``retrieve`` / ``truncate``, which xAI has not: answered from the items it announced."""
        item_id = event.get("item_id")
        item = self._items.get(item_id) if isinstance(item_id, str) else None
        if item is None:
            raise ClientError("item_not_found", f"Item with item_id {str(item_id)[:64]!r} not found.", "item_id")
        if etype == "conversation.item.retrieve":
            self._emit("conversation.item.retrieved", item=copy.deepcopy(item))
            return
        end_ms = event.get("audio_end_ms")
        if isinstance(end_ms, bool) or not isinstance(end_ms, int) or end_ms < 0:
            raise ClientError("invalid_value", "audio_end_ms must be a non-negative integer", "audio_end_ms")
        index = event.get("content_index", 0)
        self.stats["truncates_answered"] += 1
        self._emit("conversation.item.truncated", item_id=item_id, audio_end_ms=end_ms,
                   content_index=index if isinstance(index, int) and not isinstance(index, bool) else 0)

    def _on_response_created(self, frame: Event, etype: str) -> None:
        response = _d(frame.get("response"))
        rid = response.get("id")
        if isinstance(rid, str):
            r = self._response(rid)
            modalities = response.get("output_modalities") or response.get("modalities") \
                or self.session.get("output_modalities")
            r.text_only = modalities == ["text"]
            self._current = rid
        if response.get("usage") == {}:
            response["usage"] = None
            self.stats["usage_nulled"] += 1
        for item in response.get("output") or []:
            if isinstance(item, dict):
                self._clean_item(item)

    def _on_response_done(self, frame: Event, etype: str) -> None:
        response = frame.get("response")
        if not isinstance(response, dict):
            return
        usage = response.get("usage")
        if not (isinstance(usage, dict) and usage):
            self.stats["usage_filled"] += 1
        response["usage"] = ga_usage(usage)
        for item in response.get("output") or []:
            if isinstance(item, dict):
                self._clean_item(item)
        rid = response.get("id")
        if isinstance(rid, str):
            self._responses.pop(rid, None)
            if self._current == rid:
                self._current = None

    def _on_transcription(self, frame: Event, etype: str) -> None:
        frame.setdefault("content_index", 0)
        if etype.endswith(".completed") and not isinstance(frame.get("usage"), dict):
            frame["usage"] = dict(ZERO_TRANSCRIPTION_USAGE)
            self.stats["transcription_usage_filled"] += 1

    _upstream_handlers: ClassVar[dict[str, Callable[[RealtimeXaiNormalizer, Event, str], None]]] = {
        "session.created": _on_session,
        "session.updated": _on_session,
        **dict.fromkeys(_ITEM_EVENTS, _on_item),
        "response.created": _on_response_created,
        "response.done": _on_response_done,
        "conversation.item.input_audio_transcription.completed": _on_transcription,
        "conversation.item.input_audio_transcription.failed": _on_transcription,
    }

    def _clean_item(self, item: dict[str, Any]) -> None:
        if item.get("type") != "message" and item.get("role") == "tool":
            del item["role"]
            self.stats["roles_removed"] += 1

    def _response(self, rid: str) -> _Response:
        r = self._responses.get(rid)
        if r is None:
            r = self._responses[rid] = _Response(text_only=self.session.get("output_modalities") == ["text"])
            while len(self._responses) > MAX_TRACKED_RESPONSES:
                self._responses.popitem(last=False)
        return r

    def _index(self, frame: Event, etype: str) -> None:
        """Inject the indices (and response id) a streaming event lacks; back-fill its part."""
        rid = frame.get("response_id")
        if not isinstance(rid, str):
            rid = self._current or ""
            if etype not in _NO_RESPONSE_ID:
                frame["response_id"] = rid
        r = self._response(rid)
        item_id = frame.get("item_id")
        if not isinstance(item_id, str):
            item_id = _d(frame.get("item")).get("id")
            item_id = item_id if isinstance(item_id, str) else ""
        missing = "output_index" not in frame
        frame["output_index"] = r.item_index(item_id, frame.get("output_index"))
        if etype in CONTENT_INDEXED:
            missing = missing or "content_index" not in frame
            added = etype == "response.content_part.added"
            index = r.part_index(item_id, added=added, given=frame.get("content_index"))
            frame["content_index"] = index
            self._part(r, frame, etype, (item_id, index))
        if missing:
            self.stats["indices_injected"] += 1

    def _part(self, r: _Response, frame: Event, etype: str, key: tuple[str, int]) -> None:
        if etype == "response.content_part.added":
            if not isinstance(frame.get("part"), dict):
                frame["part"] = r.default_part()
                self.stats["parts_backfilled"] += 1
            r.values[key] = copy.deepcopy(frame["part"])
            _trim(r.values)
        elif etype == "response.output_text.done" and isinstance(frame.get("text"), str):
            r.values[key] = {**r.values.get(key, {"type": "text"}), "text": frame["text"]}
        elif etype == "response.output_audio_transcript.done" and isinstance(frame.get("transcript"), str):
            r.values[key] = {**r.values.get(key, {"type": "audio"}), "transcript": frame["transcript"]}
        elif etype == "response.content_part.done":
            known = r.values.pop(key, None)
            if not isinstance(frame.get("part"), dict):
                frame["part"] = known if known is not None else r.default_part()
                self.stats["parts_backfilled"] += 1

    def _count_unknown(self, etype: Any) -> None:
        self.stats["unknown_events"] += 1
        name = etype[:80] if isinstance(etype, str) else "(no type)"
        if name not in self.unknown_types and len(self.unknown_types) >= MAX_UNKNOWN_TYPE_NAMES:
            name = "(other)"
        self.unknown_types[name] = self.unknown_types.get(name, 0) + 1

    # == building the Output =========================================================================

    def _emit(self, etype: str, **fields: Any) -> None:
        self._to_client.append({"type": etype, "event_id": self._new_id("event"), **fields})

    def _flush(self) -> Output:
        out = Output(self._to_client, self._to_upstream)
        self._to_client, self._to_upstream = [], []
        return out
