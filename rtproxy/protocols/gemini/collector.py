"""The Gemini Live spend collector: a session's frames in, spend records out. No I/O, no trio.

It writes the Realtime collector's record kinds (docs/spend-records.md): a ``"response"``
record per model turn and the ``"session"`` record at :meth:`GeminiCollector.finish`, built with
the same bounds and the same pricing (protocol/gemini-live.md §4, §8.2, §9).

**Turns.** Gemini has no response ids and no ``response.created``: a turn opens at its first
output the collector sees (a ``modelTurn``, an ``outputTranscription``, a ``toolCall``), or, for
audio the relay counted without handing it over, at the first frame after audio was relayed since
the previous turn closed (its start time is then when the collector first saw it). A bare
``interrupted``, ``generationComplete`` or ``turnComplete`` opens none. A turn closes

- at ``turnComplete`` (``status`` ``completed``, or ``cancelled`` after ``interrupted``);
- at a ``toolCall`` once usage has arrived (on the ``toolCall`` frame or after it): a paused tool
  turn may never see ``turnComplete``; its record is written then, and output that follows
  before the next ``turnComplete`` (the "complete" tool shape's trailing audio) is a turn of its
  own, closed by that ``turnComplete``, which is never swallowed with its usage.

**Usage.** The last ``usageMetadata`` seen while a turn is open is its usage. A turn closed
without usage is held: a ``usageMetadata`` that arrives alone next is its usage (it is billed
then); if the next turn starts first, or the session ends, it is billed with usage estimated from
what was relayed (:mod:`.estimate`, ``"usage_source": "estimated"``, ``error.code``
``usage_not_reported``; a turn that relayed nothing is not guessed: counted in
``responses_unestimated``, its input left for the next record). Usage that belongs to no turn
(none open, none held) is billed as a record of its own (``response.status_details.reason``
``usage_without_turn``): never dropped.
``usage`` is OpenAI's shape (:func:`~.usage.openai_usage`), the raw ``usageMetadata`` is kept in
``response.results``.

**Settling.** Gemini has nothing to ask a turn to finish with:
:meth:`~GeminiCollector.settle_frames` is always empty, and the relay's settle window only waits for the turn's end and usage;
:meth:`~GeminiCollector.unsettled` bills what is still open by estimate (``status`` ``incomplete``,
``error.code`` ``response_not_reported``, as the Realtime collector does).

**What a record says.** ``messages``: the setup's system instruction once, user text from
``clientContent`` turns (history turns with role ``model`` as ``assistant``) and
``realtimeInput.text`` (``"source": "text"``), inline media as a placeholder naming type and size,
the user's voice from ``inputTranscription`` (``"source": "transcript"``), tool results from
``toolResponse`` (role ``tool``). ``response``: ``output_text`` (text parts; thoughts left out),
``output_transcript`` (``outputTranscription``), ``tool_calls`` (``toolCall.functionCalls`` as
``{id, type: "function", function: {name, arguments}}``). ``proxy_server_request``: the setup's
model, instructions, tools (function declarations as ``{"type": "function", …}``, other tools as
``{"type": "<name>"}``), modalities, voice, activity detection and transcription settings,
bounded as the Realtime records are. Every client frame is read in both spellings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ...spend.audio_meter import AudioMeter
from ...spend.pricing import price_usage
from ...spend.records import Record, SessionEnd, SessionMeta, iso, new_record_id, utc_now
from ..peek import count_unknown
from ..realtime.collector import (
    MAX_PENDING_MESSAGES,
    MAX_TEXT_CHARS,
    _add_usage,
    _clip,
    record_instructions,
    record_setting,
    record_tools,
)
from ..seam import Direction
from .estimate import estimate_turn_usage
from .frames import CLIENT_MESSAGES, SERVER_MESSAGES, field, has_field, snake
from .usage import openai_usage

#: Function calls one turn's record keeps; more are counted in the session record.
MAX_TURN_TOOL_CALLS = 128
#: Tools a setup's record keeps before bounding them by size (entries read, not bytes).
MAX_SETUP_TOOL_ENTRIES = 512
#: Characters of a ``goAway.timeLeft`` kept (a Duration such as ``"9.5s"``).
MAX_TIME_LEFT_CHARS = 32
#: The session's call type and API in its records.
CALL_TYPE = "gemini"

#: The top-level key (either spelling) → its camelCase name.
_CANONICAL = {n: n for n in (*CLIENT_MESSAGES, *SERVER_MESSAGES)} | {
    snake(n): n for n in (*CLIENT_MESSAGES, *SERVER_MESSAGES)}


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _text_of(content: Any) -> str | None:
    """The text of a ``Content`` (its text parts, joined), or of a plain string."""
    if isinstance(content, str):
        return content
    texts = [t for p in _l(field(content, "parts")) if (t := _s(field(p, "text")))]
    return "".join(texts) if texts else None


def _media_placeholder(blob: Any) -> tuple[str, str]:
    """(``[image: image/png, about 12,345 bytes]``, ``"image"``) for an inline blob: never the data."""
    mime = (_s(field(blob, "mimeType")) or "unknown type")[:64]
    data = field(blob, "data")
    size = len(data) * 3 // 4 if isinstance(data, str) else 0
    kind = mime.split("/", 1)[0] if "/" in mime else "media"
    return f"[{kind}: {mime}, about {size:,} bytes]", kind


def recorded_tools(tools: Any) -> list[Any] | None:
    """A setup's ``tools`` as a record carries them: each function declaration as
    ``{"type": "function", …}`` (the Realtime records' shape, which the logs viewer lists), each
    other tool (``googleSearch``, ``codeExecution``, …) as ``{"type": "<its name>"}``; bounded
    by :func:`~..realtime.collector.record_tools`."""
    if not isinstance(tools, list):
        return None
    flat: list[Any] = []
    for tool in tools[:MAX_SETUP_TOOL_ENTRIES]:
        if not isinstance(tool, dict):
            continue
        for decl in _l(field(tool, "functionDeclarations"))[:MAX_SETUP_TOOL_ENTRIES]:
            if isinstance(decl, dict):
                flat.append({"type": "function", **{k: v for k, v in decl.items() if k != "type"}})
        flat.extend({"type": key} for key in tool if key not in ("functionDeclarations", "function_declarations"))
    return record_tools(flat)


def recorded_setup(setup: dict[str, Any], model: str) -> dict[str, Any]:
    """What a record's ``proxy_server_request`` says of a setup, bounded."""
    generation = _d(field(setup, "generationConfig"))
    speech = field(generation, "speechConfig") or field(setup, "speechConfig")
    voice = field(field(field(speech, "voiceConfig"), "prebuiltVoiceConfig"), "voiceName")
    modalities = field(generation, "responseModalities")
    return {
        "model": model,
        "instructions": record_instructions(_text_of(field(setup, "systemInstruction"))),
        "tools": recorded_tools(field(setup, "tools")) or [],
        "tool_choice": None,
        "modalities": record_setting(modalities) if isinstance(modalities, list) else None,
        "voice": record_setting(voice) if isinstance(voice, str) else None,
        "turn_detection": record_setting(field(setup, "realtimeInputConfig")),
        "input_audio_transcription": record_setting(field(setup, "inputAudioTranscription")),
        "output_audio_transcription": record_setting(field(setup, "outputAudioTranscription")),
    }


class _Text:
    """Fragments of one text, bounded: past :data:`MAX_TEXT_CHARS` the rest is counted, not kept."""

    __slots__ = ("chars", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.chars = 0

    def add(self, text: str) -> None:
        if self.chars <= MAX_TEXT_CHARS:
            self.parts.append(text)
        self.chars += len(text)

    def take(self) -> str | None:
        text = _clip("".join(self.parts)) if self.parts else None
        self.parts, self.chars = [], 0
        return text


class _Turn:
    """One model turn, from its first output to its record."""

    __slots__ = ("audio_out", "audio_out_at_start", "details", "end", "generation_complete", "index", "input_audio",
                 "input_text_chars", "interrupted", "messages", "paused", "started", "status", "text", "thought_chars",
                 "tool_calls", "transcript", "usage")

    def __init__(self, index: int | None, started: datetime, audio_out_at_start: int) -> None:
        self.index = index
        self.started = started
        self.end = started
        self.audio_out_at_start = audio_out_at_start
        self.text = _Text()
        self.transcript = _Text()
        self.thought_chars = 0
        self.tool_calls: list[dict[str, Any]] = []
        #: The last usageMetadata seen while it was open (raw).
        self.usage: dict[str, Any] | None = None
        self.paused = False
        self.interrupted = False
        self.generation_complete = False
        #: Set when it closes.
        self.status = "completed"
        self.details: dict[str, Any] | None = None
        self.messages: list[dict[str, Any]] = []
        self.audio_out = 0
        self.input_audio = 0
        self.input_text_chars = 0


class GeminiCollector:
    """Frames of one Gemini Live session in, spend records out."""

    def __init__(self, meta: SessionMeta, *, now: Callable[[], datetime] = utc_now,
                 new_id: Callable[[], str] = new_record_id) -> None:
        self.meta = meta
        self._now = now
        self._new_id = new_id
        self.started_at = now()
        self.upstream_session_id: str | None = None
        self.responses = 0
        self.usage: dict[str, Any] = {}
        self.cost_usd: float | None = 0.0 if meta.price is not None else None
        #: The first setup's record view (None until it is seen), and what it says.
        self.request: dict[str, Any] | None = None
        self.tools: list[Any] | None = None
        self.output_modality = "AUDIO"
        self.resumed = False
        self.setup_complete = False
        self._pending: list[dict[str, Any]] = []
        self._input_transcript = _Text()
        self._turn: _Turn | None = None
        #: A turn closed without usage, waiting for a standalone usageMetadata.
        self._held: _Turn | None = None
        self._turns = 0
        #: Input that will have the model answer, no turn started since.
        self._requested = False
        self._settling = False
        #: Audio relayed (the relay's counts of AUDIO frames; base64 frame bytes), and audio the
        #: collector found inside frames it was handed.
        self._audio_in = self._audio_out = 0
        self._audio_in_seen = self._audio_out_seen = 0
        #: Server audio relayed when the last turn closed: audio beyond it means a turn is under way.
        self._audio_out_at_boundary = 0
        self._audio_in_at_last = 0
        #: The same audio in ms (Gemini takes 16 kHz PCM and answers 24 kHz PCM), for the records'
        #: audio_in_ms / audio_out_ms and a key's audio minutes.
        self.meter = AudioMeter(input_format=("pcm16", 16000), output_format=("pcm16", 24000))
        self._text_in_chars = 0
        self._last_usage: dict[str, Any] | None = None
        self.settled_responses = 0
        self.estimated_responses = 0
        self.untracked_responses = 0
        self.usage_only_responses = 0
        self._ended_in_flight = 0
        self.dropped_messages = 0
        self.dropped_tool_calls = 0
        self.malformed = 0
        self.unknown_keys: dict[str, int] = {}
        self.setups_ignored = 0
        self.go_aways = 0
        self.go_away_time_left: str | None = None
        self.resumption_updates = 0
        self.resumable_updates = 0
        self.tool_call_cancellations = 0
        self._client: dict[str, Callable[[Any], list[Record]]] = {
            "setup": self._on_setup, "clientContent": self._on_client_content,
            "realtimeInput": self._on_realtime_input, "toolResponse": self._on_tool_response,
        }

    # -- input ---------------------------------------------------------------------------------

    def note_audio(self, client_bytes: int, server_bytes: int) -> None:
        self._audio_in, self._audio_out = client_bytes, server_bytes

    def _audio_out_total(self) -> int:
        return self._audio_out + self._audio_out_seen

    def _audio_in_total(self) -> int:
        return self._audio_in + self._audio_in_seen

    def feed(self, direction: Direction, payload: bytes) -> list[Record]:
        """Take one frame the relay collected; return the records it completes."""
        try:
            message = json.loads(payload)
        except (ValueError, RecursionError):
            self.malformed += 1
            return []
        if not isinstance(message, dict):
            self.malformed += 1
            return []
        records: list[Record] = []
        if self._turn is None and self._audio_out_total() > self._audio_out_at_boundary:
            records += self._open()  # audio was relayed since the last turn closed: one is under way
        parts: dict[str, Any] = {}
        for key in message:
            name = _CANONICAL.get(key)
            if name is None:
                count_unknown(self.unknown_keys, key)
            else:
                parts[name] = field(message, name)  # both spellings present: the later one
        if direction == "client":
            for name, handler in self._client.items():
                if name in parts:
                    records += handler(parts[name])
            return records
        return records + self._on_server(parts)

    # -- client frames -------------------------------------------------------------------------

    def _push(self, message: dict[str, Any]) -> None:
        if len(self._pending) >= MAX_PENDING_MESSAGES:
            self._pending.pop(0)
            self.dropped_messages += 1
        self._pending.append(message)

    def _on_setup(self, setup: Any) -> list[Record]:
        if self.request is not None or not isinstance(setup, dict):
            self.setups_ignored += 1  # Google closes on a second setup (the gate refuses it first)
            return []
        self.request = recorded_setup(setup, self.meta.model)
        self.tools = self.request["tools"]
        modalities = field(field(setup, "generationConfig"), "responseModalities")
        first = modalities[0] if isinstance(modalities, list) and modalities else None
        if isinstance(first, str):
            self.output_modality = first.upper()
        self.resumed = bool(field(field(setup, "sessionResumption"), "handle"))
        if self.request["instructions"]:
            self._push({"role": "system", "content": self.request["instructions"]})
        return []

    def _on_client_content(self, content: Any) -> list[Record]:
        for turn in _l(field(content, "turns")):
            role = "assistant" if field(turn, "role") == "model" else "user"
            for part in _l(field(turn, "parts")):
                self._on_part(role, part)
        if field(content, "turnComplete") is True:
            self._requested = True
        return []

    def _on_part(self, role: str, part: Any) -> None:
        text = _s(field(part, "text"))
        if text is not None:
            if not text.strip():
                return  # an empty message says nothing: no record entry for it
            message: dict[str, Any] = {"role": role, "content": _clip(text)}
            if role == "user":
                message["source"] = "text"
                self._text_in_chars += len(text)
            self._push(message)
            return
        blob = field(part, "inlineData")
        if isinstance(blob, dict):
            shown, kind = _media_placeholder(blob)
            self._push({"role": role, "content": shown, "source": kind})
        elif isinstance(field(part, "fileData"), dict):
            self._push({"role": role, "content": "[file: by URI]", "source": "file"})

    def _on_realtime_input(self, body: Any) -> list[Record]:
        body = _d(body)
        text = _s(field(body, "text"))
        if text is not None and text.strip():
            self._push({"role": "user", "content": _clip(text), "source": "text"})
            self._text_in_chars += len(text)
            self._requested = True
        if has_field(body, "activityEnd"):
            self._requested = True
        audio = field(body, "audio")
        for blob in [audio, *_l(field(body, "mediaChunks"))]:
            mime, data = _s(field(blob, "mimeType")), field(blob, "data")
            if isinstance(data, str) and (blob is audio or (mime or "").startswith("audio/")):
                self._audio_in_seen += len(data)
        return []

    def _on_tool_response(self, body: Any) -> list[Record]:
        for response in _l(field(body, "functionResponses")):
            if not isinstance(response, dict):
                continue
            output = field(response, "response")
            self._push({"role": "tool", "tool_call_id": _s(field(response, "id")), "name": _s(field(response, "name")),
                        "content": _clip(output if isinstance(output, str) else json.dumps(output))})
            self._requested = True
        return []

    # -- server frames -------------------------------------------------------------------------

    def _on_server(self, parts: dict[str, Any]) -> list[Record]:
        records: list[Record] = []
        if "setupComplete" in parts:
            self.setup_complete = True
            self.upstream_session_id = _s(field(parts["setupComplete"], "sessionId")) or self.upstream_session_id
        content = _d(parts.get("serverContent"))
        if content:
            records += self._on_content(content)
        if "toolCall" in parts:
            records += self._on_tool_call(_d(parts["toolCall"]))
        if "toolCallCancellation" in parts:
            self.tool_call_cancellations += len(_l(field(parts["toolCallCancellation"], "ids")))
        if isinstance(parts.get("usageMetadata"), dict):
            records += self._on_usage(parts["usageMetadata"])
        if field(content, "turnComplete") is True:
            records += self._on_turn_complete()
        if "goAway" in parts:
            self.go_aways += 1
            left = field(parts["goAway"], "timeLeft")
            self.go_away_time_left = left[:MAX_TIME_LEFT_CHARS] if isinstance(left, str) else None
        if "sessionResumptionUpdate" in parts:
            self.resumption_updates += 1
            if field(parts["sessionResumptionUpdate"], "resumable") is True:
                self.resumable_updates += 1  # the handle itself is never recorded: it resumes the session
        return records

    def _on_content(self, content: dict[str, Any]) -> list[Record]:
        records: list[Record] = []
        heard = field(content, "inputTranscription")
        text = _s(field(heard, "text"))
        if text:
            self._input_transcript.add(text)
        if field(heard, "finished") is True:
            self._flush_input_transcript()
        model_turn = field(content, "modelTurn")
        said = _s(field(field(content, "outputTranscription"), "text"))
        # output opens a turn; a bare interrupted, generationComplete or turnComplete opens none: with
        # no turn open, the one it ends was closed at its toolCall or relayed nothing (audio relayed
        # since the last turn has opened one already, in feed)
        if (isinstance(model_turn, dict) or said) and self._turn is None:
            records += self._open()
        turn = self._turn
        if turn is None:
            return records
        for part in _l(field(model_turn, "parts")):
            self._on_output_part(turn, part)
        if said:
            turn.transcript.add(said)
        if field(content, "interrupted") is True:
            turn.interrupted = True
        if field(content, "generationComplete") is True:
            turn.generation_complete = True
        return records

    def _on_output_part(self, turn: _Turn, part: Any) -> None:
        text = _s(field(part, "text"))
        if text is not None:
            if field(part, "thought") is True:  # thinking is billed (as output text), not said
                turn.thought_chars += len(text)
            else:
                turn.text.add(text)
            return
        blob = field(part, "inlineData")
        data = field(blob, "data")
        if isinstance(data, str):
            self._audio_out_seen += len(data)

    def _on_tool_call(self, body: dict[str, Any]) -> list[Record]:
        records = self._open() if self._turn is None else []
        turn = self._turn
        assert turn is not None
        for call in _l(field(body, "functionCalls")):
            if not isinstance(call, dict):
                continue
            if len(turn.tool_calls) >= MAX_TURN_TOOL_CALLS:
                self.dropped_tool_calls += 1
                continue
            args = field(call, "args")
            turn.tool_calls.append({"id": _s(field(call, "id")), "type": "function", "function": {
                "name": _s(field(call, "name")), "arguments": _clip(json.dumps(args if args is not None else {}))}})
        turn.paused = True
        return records

    def _on_usage(self, usage: dict[str, Any]) -> list[Record]:
        turn = self._turn
        if turn is not None:
            turn.usage = usage  # the last one seen before the turn closes
            if turn.paused:  # a paused tool turn closes once its usage has arrived
                return self._close(turn, details={"type": "completed", "reason": "tool_call"})
            return []
        held = self._held
        if held is not None:  # usage alone between turns: the turn just closed had none
            self._held = None
            held.usage = usage
            return [self._record(held, openai_usage(usage, output_modality=self.output_modality), "provider")]
        # usage belonging to no turn: billed all the same, on a record of its own
        now = self._now()
        orphan = _Turn(None, now, self._audio_out_total())
        orphan.usage = usage
        orphan.details = {"type": "completed", "reason": "usage_without_turn"}
        self.usage_only_responses += 1
        return [self._record(orphan, openai_usage(usage, output_modality=self.output_modality), "provider")]

    def _on_turn_complete(self) -> list[Record]:
        turn = self._turn
        if turn is None:
            return []  # the end of a turn already closed at its toolCall
        if turn.interrupted:
            return self._close(turn, status="cancelled", details={"type": "cancelled", "reason": "interrupted"})
        return self._close(turn)

    # -- turns ---------------------------------------------------------------------------------

    def _open(self) -> list[Record]:
        records = self._flush_held() if self._held is not None else []
        self._turns += 1
        self._turn = _Turn(self._turns, self._now(), self._audio_out_at_boundary)
        self._requested = False
        return records

    def _seal(self, turn: _Turn, status: str, details: dict[str, Any] | None) -> None:
        """End a turn: its time, status, the audio and input that were its own, and the messages
        that led to it (kept with it, whenever its record is written)."""
        turn.end = self._now()
        turn.status, turn.details = status, details
        self._turn = None
        total_out, total_in = self._audio_out_total(), self._audio_in_total()
        turn.audio_out = total_out - turn.audio_out_at_start
        turn.input_audio, turn.input_text_chars = total_in - self._audio_in_at_last, self._text_in_chars
        self._audio_out_at_boundary, self._audio_in_at_last, self._text_in_chars = total_out, total_in, 0
        self._flush_input_transcript()
        turn.messages = self._take_pending()

    def _close(self, turn: _Turn, *, status: str = "completed",
               details: dict[str, Any] | None = None) -> list[Record]:
        """A turn ended as reported: billed now with its usage, or held until its usage comes."""
        self._seal(turn, status, details)
        if self._settling:
            self.settled_responses += 1
        if turn.usage is None:
            self._held = turn
            return []
        return [self._record(turn, openai_usage(turn.usage, output_modality=self.output_modality), "provider")]

    @staticmethod
    def _relayed_nothing(turn: _Turn) -> bool:
        return not (turn.text.chars or turn.thought_chars or turn.transcript.chars or turn.audio_out
                    or turn.tool_calls)

    def _estimated(self, turn: _Turn, error: dict[str, Any]) -> list[Record]:
        """A turn whose usage never came, billed by estimate; one that relayed nothing has nothing to
        estimate from: counted, and the messages that led to it go to the next record."""
        if self._relayed_nothing(turn):
            self.untracked_responses += 1
            self._pending[:0] = turn.messages
            del self._pending[:max(0, len(self._pending) - MAX_PENDING_MESSAGES)]
            return []
        self.estimated_responses += 1
        usage = estimate_turn_usage(
            output_text_chars=turn.text.chars + turn.thought_chars, output_transcript_chars=turn.transcript.chars,
            output_audio_b64_bytes=turn.audio_out, input_text_chars=turn.input_text_chars,
            input_audio_b64_bytes=turn.input_audio, previous=self._last_usage)
        return [self._record(turn, usage, "estimated", error=error)]

    def _flush_held(self) -> list[Record]:
        """The next turn started (or the session ended) and the held turn's usage never came."""
        held, self._held = self._held, None
        assert held is not None
        return self._estimated(held, {"type": "gateway", "code": "usage_not_reported", "message":
                                      "the provider reported no usage for this turn; usage estimated from what "
                                      "was relayed"})

    def _flush_input_transcript(self) -> None:
        heard = self._input_transcript.take()
        if heard is not None and heard.strip():
            self._push({"role": "user", "content": heard, "source": "transcript"})

    def _take_pending(self) -> list[dict[str, Any]]:
        pending, self._pending = self._pending, []
        return pending

    # -- records -------------------------------------------------------------------------------

    def _base(self, kind: str) -> Record:
        m = self.meta
        return {
            "record": kind, "id": self._new_id(), "session_id": m.session_id,
            "upstream_session_id": self.upstream_session_id, "call_type": CALL_TYPE, "key_name": m.key_name,
            "key_hash": m.key_hash, "model": m.model, "provider": m.provider, "upstream_model": m.upstream_model,
            "api_base": m.api_base, "end_user": m.end_user, "tags": list(m.tags),
            **({"transport": m.transport} if m.transport != "websocket" else {}),
        }

    def _record(self, turn: _Turn, usage: dict[str, Any], source: str,
                error: dict[str, Any] | None = None) -> Record:
        cost, breakdown = price_usage(usage, self.meta.price)
        self.responses += 1
        _add_usage(self.usage, usage)
        if self.cost_usd is not None:  # a turn the price cannot price makes the total unknown
            self.cost_usd = None if cost is None else round(self.cost_usd + cost, 10)
        if source == "provider":
            self._last_usage = usage
        record = self._base("response")
        record.update({
            "response_id": None, "turn": turn.index, "status": turn.status, "start_time": iso(turn.started),
            "end_time": iso(turn.end), "duration_ms": int((turn.end - turn.started).total_seconds() * 1000),
            "usage": usage, "usage_source": source, "billing_unit": "tokens", **self._measured(),
            "cost_usd": cost, "cost_breakdown": breakdown,
            "messages": None, "proxy_server_request": None, "response": None, "error": error,
        })
        if self.meta.store_prompts:
            record["messages"] = turn.messages
            record["proxy_server_request"] = self.request
            record["response"] = {
                "id": None, "output_text": turn.text.take(), "output_transcript": turn.transcript.take(),
                "tool_calls": turn.tool_calls, "status_details": turn.details,
                "results": [record_setting(turn.usage)] if turn.usage is not None else [],
            }
        return record

    # -- settling: the client left with a turn in flight -------------------------------------------

    @property
    def in_flight(self) -> int:
        """The turn under way (seen, or inferred from audio relayed since the last one closed), a
        closed turn whose usage has not come, and input the model will answer with no turn yet."""
        under_way = self._turn is not None or self._audio_out_total() > self._audio_out_at_boundary
        return int(under_way) + int(self._held is not None) + int(self._requested)

    def settle_frames(self) -> list[str]:
        """Gemini cannot be asked to finish a turn (no cancel): nothing to send; the settle window
        waits for the turn's end and usage, and :meth:`unsettled` estimates the rest."""
        self._settling = True
        return []

    def unsettled(self) -> list[Record]:
        """Records for what is still in flight when the session ends: the held turn and the open
        one (``status`` ``incomplete``; billed with the usage it reported, else by estimate).
        Requested turns that never started are counted, not guessed."""
        in_flight = self.in_flight
        records = self._flush_held() if self._held is not None else []
        if self._turn is None and self._audio_out_total() > self._audio_out_at_boundary:
            records += self._open()
        turn = self._turn
        if turn is not None:
            self._seal(turn, "incomplete", {"type": "incomplete", "reason": "response_not_reported"})
            error = {"type": "gateway", "code": "response_not_reported",
                     "message": "the client left and the provider did not finish this turn in time; "
                                + ("billed with the last usage it reported" if turn.usage is not None
                                   else "usage estimated from what was relayed")}
            if turn.usage is not None:
                records.append(self._record(turn, openai_usage(turn.usage, output_modality=self.output_modality),
                                            "provider", error=error))
            else:
                records += self._estimated(turn, error)
        if self._requested:
            self._requested = False
            self.untracked_responses += 1
        self._ended_in_flight += in_flight
        self.meter.note(self._audio_in_total(), self._audio_out_total())
        audio_in, audio_out = self.meter.pending()
        if audio_in >= 1 or audio_out >= 1:  # on no record yet: it counts toward audio minutes
            usage = self._base("usage")
            usage.update({"time": iso(self._now()), "source": "session_end", "usage_source": "metered",
                          "billing_unit": "tokens", **self._measured(), "cost_usd": 0.0, "cost_breakdown": {}})
            records.append(usage)
        return records

    def _measured(self) -> dict[str, int]:
        """The audio relayed since the last record, in ms (marked as on this one)."""
        self.meter.note(self._audio_in_total(), self._audio_out_total())
        audio_in, audio_out = self.meter.take()
        return {"audio_in_ms": audio_in, "audio_out_ms": audio_out}

    def finish(self, end: SessionEnd) -> Record:
        """The session record; call once, when the session is over."""
        now = self._now()
        record = self._base("session")
        open_now = int(self._turn is not None) + int(self._held is not None)
        record.update({
            "api": CALL_TYPE,
            "start_time": iso(self.started_at), "end_time": iso(now),
            "duration_ms": int((now - self.started_at).total_seconds() * 1000),
            "responses": self.responses,
            "responses_in_flight": self._ended_in_flight + open_now,
            "responses_settled": self.settled_responses,
            "responses_estimated": self.estimated_responses,
            "responses_unestimated": self.untracked_responses,
            "responses_usage_only": self.usage_only_responses,
            "usage": self.usage,
            "cost_usd": self.cost_usd,
            "billing_unit": "tokens",
            "audio_in_ms": int(self.meter.in_ms), "audio_out_ms": int(self.meter.out_ms),
            "close": {"by": end.by, "code": end.code, "reason": end.reason},
            "status": "failure" if end.failed else "success",
            "error": end.error,
            "last_error_event": None,
            "client": {"ip": self.meta.client_ip, "user_agent": self.meta.user_agent},
            "credential": self.meta.credential,
            "tools": self.tools if self.meta.store_prompts else None,
            "unknown_event_types": self.unknown_keys,
            "malformed_frames": self.malformed,
            "messages_dropped": self.dropped_messages,
            "tool_calls_dropped": self.dropped_tool_calls,
            "setup_complete": self.setup_complete,
            "setups_ignored": self.setups_ignored,
            "resumed": self.resumed,
            "go_aways": self.go_aways,
            "go_away_time_left": self.go_away_time_left,
            "resumption_updates": self.resumption_updates,
            "resumable_updates": self.resumable_updates,
            "tool_call_cancellations": self.tool_call_cancellations,
        })
        return record
