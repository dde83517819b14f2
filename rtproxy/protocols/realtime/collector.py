"""The spend collector: a session's frames in, spend records out. No I/O, no trio.

One :class:`Collector` per session. :meth:`Collector.feed` takes each frame the relay hands it
(with its direction) and returns the records it completes: a ``"response"`` record at every
``response.done``. :meth:`Collector.finish` returns the ``"session"`` record. The record shapes
are DESIGN.md §Spend log.

Parsing is lazy: a frame is first classified by :func:`~rtproxy.protocols.peek.peek_type`; audio frames
(``input_audio_buffer.append``, ``response.output_audio.delta``, ``response.audio.delta``) are
counted and never parsed, and only the event types the records need are ``json.loads``-ed.

Nothing here raises on odd input: a malformed or unexpected event is counted and skipped, and a
``response.done`` always yields exactly one response record, with whatever could be read from it.

What a record says of the session's config (``proxy_server_request``, the session's ``tools``) is
what the provider confirmed: a client's ``session.update`` waits (:class:`PendingUpdates`) for
the ``session.updated`` that applies it, and is forgotten when an ``error`` refuses it. It is
bounded as messages are (:data:`MAX_RECORD_INSTRUCTIONS_CHARS`, :data:`MAX_RECORD_TOOLS_BYTES`,
:data:`MAX_RECORD_SETTING_BYTES`): every response record repeats it, and one large config
copied into each record would make the log grow by its size times the responses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from ...spend.audio_meter import AudioMeter, session_formats
from ...spend.estimate import estimate_usage
from ...spend.pricing import billing_unit, price_metered, price_usage
from ...spend.records import Record, SessionEnd, SessionMeta, iso, new_record_id, utc_now
from ..peek import EventTriage
from ..seam import Direction
from .events import AUDIO_TYPES, COLLECTED_TYPES, KNOWN_TYPES, TEXT_DELTA_TYPES, TRANSCRIPT_DELTA_TYPES

#: Messages kept for one response's record; older ones are dropped (and counted) beyond this.
MAX_PENDING_MESSAGES = 500
#: Longest text kept per message / output field; longer text is cut and marked.
MAX_TEXT_CHARS = 64 * 1024
#: Responses that may be in flight at once (response.created without response.done yet).
MAX_OPEN_RESPONSES = 64
#: Committed audio items awaiting their input transcription (the provider bills each one).
MAX_OPEN_TRANSCRIPTIONS = 64
#: MCP items (tool lists, approval answers) kept for the next response record; older ones dropped.
MAX_PENDING_TOOL_ITEMS = 64
#: Instructions a record carries (``proxy_server_request.instructions``, the system message), in
#: characters; longer ones are cut and marked, as message text is.
MAX_RECORD_INSTRUCTIONS_CHARS = MAX_TEXT_CHARS
#: Tool definitions a record carries, in bytes of JSON: whole definitions while they fit, then
#: one marker entry saying how many were left out.
MAX_RECORD_TOOLS_BYTES = 64 * 1024
#: Any other setting a record carries (tool choice, modalities, voice, turn detection,
#: transcription, a response's other overrides), in bytes of JSON; a larger one is replaced by a
#: marker (a transcription config keeps its model: what the provider bills).
MAX_RECORD_SETTING_BYTES = 4 * 1024
#: Client session updates sent and not yet confirmed nor refused; beyond, the oldest is forgotten
#: (never recorded).
MAX_PENDING_UPDATES = 16
#: Members of a response's overrides (or of a GPT-Live delegation) a record keeps.
MAX_RECORDED_KEYS = 64
#: Audio sent with no response to bill it with (a client streaming with manual turns, or silence
#: after the last answer) is put on a ``"usage"`` record once it reaches this much, in ms of audio:
#: a metered provider's cost and a key's audio minutes never run further than this behind.
METERED_FLUSH_MS = 60_000


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…[truncated]"


def _image_placeholder(url: Any) -> str:
    """``[image: image/png, about 12,345 bytes]`` for a data URL, ``[image: by URL]`` otherwise."""
    if isinstance(url, str) and url.startswith("data:"):
        head, _, data = url.partition(",")
        mime = head[5:].split(";", 1)[0][:64] or "unknown type"
        size = len(data) * 3 // 4 if ";base64" in head else len(data)
        return f"[image: {mime}, about {size:,} bytes]"
    return "[image: by URL]"


#: Fields of an MCP tool definition that carry credentials: never recorded.
MCP_SECRET_FIELDS = frozenset({"authorization", "headers"})


def _redact_url(url: Any) -> Any:
    """An MCP server URL without its query, fragment or user info (where tokens hide)."""
    if not isinstance(url, str):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "[unparsable URL]"
    redacted = "?[redacted]" if parts.query else ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", "")) + redacted


def redact_tools(tools: Any) -> Any:
    """Tool definitions as recorded: an MCP tool's ``authorization`` and ``headers`` dropped, its
    server URL cut to scheme, host and path. Function tools are kept as they are."""
    if not isinstance(tools, list):
        return tools
    out = []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type") == "mcp":
            tool = {k: v for k, v in tool.items() if k not in MCP_SECRET_FIELDS}
            if "server_url" in tool:
                tool["server_url"] = _redact_url(tool["server_url"])
        out.append(tool)
    return out


def _json_bytes(value: Any) -> int:
    """The size of ``value`` as a record writes it (ASCII JSON); what cannot be written counts as
    too large."""
    try:
        return len(json.dumps(value))
    except (ValueError, TypeError, RecursionError):
        return MAX_TEXT_CHARS * 1024


def record_tools(tools: Any) -> list[Any] | None:
    """Tool definitions as a record carries them: redacted (:func:`redact_tools`), whole while
    they fit in :data:`MAX_RECORD_TOOLS_BYTES`, then one entry naming how many were left out
    (shaped as a tool, so the logs viewer lists it). None for what is not a list."""
    if not isinstance(tools, list):
        return None
    kept: list[Any] = []
    size = 2
    for n, tool in enumerate(redact_tools(tools)):
        size += _json_bytes(tool) + 1
        if size > MAX_RECORD_TOOLS_BYTES:
            kept.append({"type": "truncated", "name": "…[truncated]",
                         "description": f"{len(tools) - n} more tool definition(s) left out: a record carries "
                                        f"{MAX_RECORD_TOOLS_BYTES:,} bytes of them"})
            break
        kept.append(tool)
    return kept


def record_setting(value: Any) -> Any:
    """A setting as a record carries it: whole up to :data:`MAX_RECORD_SETTING_BYTES` of JSON,
    else a marker naming its size (a string: cut and marked)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _clip(value, MAX_RECORD_SETTING_BYTES)
    size = _json_bytes(value)
    return value if size <= MAX_RECORD_SETTING_BYTES else f"…[truncated: {size:,} bytes]"


def record_instructions(value: Any) -> str | None:
    return _clip(value, MAX_RECORD_INSTRUCTIONS_CHARS) if isinstance(value, str) else None


def _record_transcription(value: Any) -> Any:
    """A transcription config, bounded; one too large keeps its model (what the provider bills)."""
    bounded = record_setting(value)
    if bounded is value or not isinstance(value, dict):
        return bounded
    return {"model": record_setting(value.get("model")), "truncated": bounded}


#: Session keys a record carries, besides instructions, tools and the audio block (GA) or the
#: transcription config (beta), each bounded by :func:`record_setting`.
_RECORDED_SETTINGS = ("tool_choice", "output_modalities", "modalities", "voice", "turn_detection")


def recorded_session(session: dict[str, Any]) -> dict[str, Any]:
    """The parts of a session config (``session.update``, ``session.updated``) a record carries,
    bounded, in the same shape: all that is kept of it, confirmed or not."""
    out: dict[str, Any] = {}
    if "instructions" in session:
        out["instructions"] = record_instructions(session["instructions"])
    if "tools" in session:
        out["tools"] = record_tools(session["tools"])
    for key in _RECORDED_SETTINGS:
        if key in session:
            out[key] = record_setting(session[key])
    if "input_audio_transcription" in session:  # beta
        out["input_audio_transcription"] = _record_transcription(session["input_audio_transcription"])
    audio = _d(session.get("audio"))  # GA
    audio_in, audio_out = _d(audio.get("input")), _d(audio.get("output"))
    kept_in = {k: record_setting(audio_in[k]) for k in ("turn_detection",) if k in audio_in}
    if "transcription" in audio_in:
        kept_in["transcription"] = _record_transcription(audio_in["transcription"])
    kept_out = {"voice": record_setting(audio_out["voice"])} if "voice" in audio_out else {}
    if kept_in or kept_out:
        out["audio"] = {"input": kept_in, "output": kept_out}
    return out


def _recorded_overrides(overrides: Any) -> dict[str, Any] | None:
    """A ``response.create``'s overrides as a record carries them, bounded as a session config."""
    if not isinstance(overrides, dict) or not overrides:
        return None
    out = {k: record_setting(v) for k, v in list(overrides.items())[:MAX_RECORDED_KEYS]
           if k not in ("instructions", "tools")}
    if "instructions" in overrides:
        out["instructions"] = record_instructions(overrides["instructions"])
    if "tools" in overrides:
        out["tools"] = record_tools(overrides["tools"])
    return out


@attrs.define
class PendingUpdates:
    """A client's session updates between sending and the provider's answer. Each is applied to
    what records say only once the provider confirms it, so one the provider refuses is never
    recorded. An answer is paired with the update whose event id it names, else with the oldest
    (the provider answers in order); an ``error`` naming no event drops the oldest (an update it
    may have refused is never recorded; at worst one it accepted is recorded as the provider
    reported it). Bounded by :data:`MAX_PENDING_UPDATES`, each update by the record bounds."""

    _items: list[tuple[str | None, dict[str, Any]]] = attrs.field(factory=list)

    def add(self, event_id: Any, update: dict[str, Any]) -> None:
        if len(self._items) >= MAX_PENDING_UPDATES:
            del self._items[0]
        self._items.append((event_id if isinstance(event_id, str) else None, update))

    def confirmed(self, event_id: Any = None) -> dict[str, Any] | None:
        """The update a confirmation answers (the one it names, else the oldest), or None."""
        i = self._index(event_id)
        return self._items.pop(0 if i is None else i)[1] if self._items else None

    def refused(self, event_id: Any) -> bool:
        """An error: forget the update it names, or the oldest when it names no event. Whether
        one was forgotten."""
        i = self._index(event_id)
        if i is not None:
            del self._items[i]
            return True
        if not isinstance(event_id, str) and self._items:
            del self._items[0]
            return True
        return False

    def _index(self, event_id: Any) -> int | None:
        if isinstance(event_id, str):
            for i, (pending_id, _) in enumerate(self._items):
                if pending_id == event_id:
                    return i
        return None

    def __len__(self) -> int:
        return len(self._items)


def _mcp_call(item: dict[str, Any]) -> dict[str, Any] | None:
    """An MCP item (from a response's output, or the conversation) as a recorded tool call."""
    itype = item.get("type")
    ident = _s(item.get("id"))
    if itype == "mcp_call":
        output = item.get("output")
        return {"id": ident, "type": "mcp_call", "mcp": {
            "server_label": _s(item.get("server_label")), "name": _s(item.get("name")),
            "arguments": _s(item.get("arguments")),
            "output": _clip(output) if isinstance(output, str) else None,
            "error": item.get("error") if isinstance(item.get("error"), dict) else None,
            "approval_request_id": _s(item.get("approval_request_id"))}}
    if itype == "mcp_approval_request":
        return {"id": ident, "type": "mcp_approval_request", "mcp": {
            "server_label": _s(item.get("server_label")), "name": _s(item.get("name")),
            "arguments": _s(item.get("arguments"))}}
    if itype == "mcp_list_tools":
        tools = item.get("tools")
        names = [_s(_d(t).get("name")) for t in tools] if isinstance(tools, list) else []
        return {"id": ident, "type": "mcp_list_tools", "mcp": {
            "server_label": _s(item.get("server_label")), "tools": [n for n in names if n][:256]}}
    if itype == "mcp_approval_response":
        return {"id": ident, "type": "mcp_approval_response", "mcp": {
            "approval_request_id": _s(item.get("approval_request_id")),
            "approve": item.get("approve") if isinstance(item.get("approve"), bool) else None,
            "reason": _s(item.get("reason"))}}
    return None


def _add_usage(total: dict[str, Any], usage: dict[str, Any]) -> None:
    """Sum token counts into ``total``; a value whose type differs from what the total already
    holds for that name (odd provider output) is skipped, never allowed to raise."""
    for k, v in usage.items():
        if isinstance(v, bool):
            continue
        current = total.get(k)
        if isinstance(v, int):
            if current is None:
                total[k] = v
            elif isinstance(current, int):
                total[k] = current + v
        elif isinstance(v, dict):
            if current is None:
                current = total[k] = {}
            if isinstance(current, dict):
                _add_usage(current, v)


def _error_of(value: Any) -> dict[str, Any] | None:
    err = _d(value)
    if not err:
        return None
    return {"type": _s(err.get("type")), "code": _s(err.get("code")), "message": _s(err.get("message"))}


@attrs.define
class _InFlight:
    """A response started and not yet reported, and what was relayed of it."""

    started: datetime
    #: The server audio bytes relayed when it started: its own are those relayed since.
    audio_out_at_start: int
    text_chars: int = 0
    transcript_chars: int = 0


@attrs.define
class _SessionConfig:
    """The session as configured, as the provider confirmed it (session.created/updated, and the
    client's updates they confirm); every value bounded (:func:`recorded_session`)."""

    instructions: str | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    modalities: list[Any] | None = None
    voice: str | None = None
    turn_detection: Any = None
    transcription: Any = None

    def apply(self, session: dict[str, Any]) -> None:
        """Take the values a :func:`recorded_session` holds."""
        if "instructions" in session:
            self.instructions = _s(session["instructions"])
        if "tools" in session:
            self.tools = session["tools"]
        if "tool_choice" in session:
            self.tool_choice = session["tool_choice"]
        for key in ("output_modalities", "modalities"):
            if key in session and isinstance(session[key], list):
                self.modalities = session[key]
        if "voice" in session:  # beta
            self.voice = _s(session["voice"])
        if "turn_detection" in session:  # beta
            self.turn_detection = session["turn_detection"]
        if "input_audio_transcription" in session:  # beta
            self.transcription = session["input_audio_transcription"]
        audio = _d(session.get("audio"))  # GA
        audio_in, audio_out = _d(audio.get("input")), _d(audio.get("output"))
        if "voice" in audio_out:
            self.voice = _s(audio_out["voice"])
        if "turn_detection" in audio_in:
            self.turn_detection = audio_in["turn_detection"]
        if "transcription" in audio_in:
            self.transcription = audio_in["transcription"]

    @property
    def transcription_model(self) -> str | None:
        return _s(_d(self.transcription).get("model"))

    def as_request(self, model: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
        request = {
            "model": model,
            "instructions": self.instructions,
            "tools": self.tools or [],
            "tool_choice": self.tool_choice,
            "modalities": self.modalities,
            "voice": self.voice,
            "turn_detection": self.turn_detection,
            "input_audio_transcription": self.transcription,
        }
        if overrides:
            request["response_overrides"] = overrides
        return request


class Collector:
    """Frames of one session in, spend records out."""

    # one open session's state: slots, not a per-instance dict (some 1 KiB of every session)
    __slots__ = (
        "_audio_in", "_audio_in_at_last", "_audio_out", "_awaiting_created", "_awaiting_transcripts",
        "_billing_unit", "_cancel_sent", "_ended_in_flight", "_instructions_sent", "_last_usage",
        "_metered_only", "_new_id", "_now", "_observing", "_open_responses", "_pending",
        "_pending_tool_items", "_requested_overrides", "_response_overrides", "_settling", "_text_in_chars",
        "_text_items_unbilled", "_transcription_session", "_triage", "_updates", "config", "cost_usd",
        "dropped_messages", "estimated_responses", "last_error", "meta", "meter", "responses",
        "settled_responses", "started_at", "text_items", "transcription_usage", "transcriptions",
        "unreported_transcriptions", "untracked_responses", "upstream_session_id", "usage",
    )

    def __init__(self, meta: SessionMeta, *, now: Callable[[], datetime] = utc_now,
                 new_id: Callable[[], str] = new_record_id) -> None:
        self.meta = meta
        self._now = now
        self._new_id = new_id
        self.started_at = now()
        self.upstream_session_id: str | None = None
        self.config = _SessionConfig()
        #: Watching a WebRTC call's sideband: the client's own events are never seen.
        self._observing = meta.transport == "webrtc"
        self._instructions_sent: str | None = None
        self._pending: list[dict[str, Any]] = []
        #: Client session updates the provider has not answered yet (applied once confirmed).
        self._updates = PendingUpdates()
        #: The latest response.create's overrides, until the provider starts (or refuses) it; then
        #: those of the response it started, for its record.
        self._requested_overrides: dict[str, Any] | None = None
        self._response_overrides: dict[str, Any] | None = None
        self._open_responses: dict[str, _InFlight] = {}
        #: response.create frames forwarded that no response.created (nor error) has answered yet:
        #: the provider may already be generating them, so settling waits for them too.
        self._awaiting_created = 0
        #: Responses a response.cancel was sent for while settling (each is cancelled once);
        #: made when a session first settles.
        self._cancel_sent: set[str] | None = None
        #: Responses past MAX_OPEN_RESPONSES (or without an id): never tracked, never estimated.
        self.untracked_responses = 0
        self.settled_responses = 0
        self.estimated_responses = 0
        #: In flight when the session ended (estimated by :meth:`unsettled`, or not yet).
        self._ended_in_flight = 0
        self._audio_in = 0
        self._audio_out = 0
        self._audio_in_at_last = 0
        #: Audio relayed each way in ms (at the session's formats), and how much of it is on a
        #: record already; text items created (xAI bills each), in all and not yet on a record.
        self.meter = AudioMeter()
        self.text_items = 0
        self._text_items_unbilled = 0
        price = meta.price
        self._billing_unit = billing_unit(price)
        #: A provider that reports no usage, billed by what the gateway counts (xAI).
        self._metered_only = price is not None and price.metered and not price.has_token_rates
        self._text_in_chars = 0
        self._last_usage: dict[str, Any] | None = None
        self.responses = 0
        self.usage: dict[str, Any] = {}
        self.cost_usd: float | None = 0.0 if meta.price is not None else None
        self.last_error: dict[str, Any] | None = None
        #: Audio frames counted, malformed frames, unknown types by name (forwarded all the same).
        self._triage = EventTriage(AUDIO_TYPES, KNOWN_TYPES, COLLECTED_TYPES)
        #: Messages dropped over the cap.
        self.dropped_messages = 0
        #: A transcription session (``intent=transcription``): no responses, and its transcripts
        #: are recorded in their transcription records only.
        self._transcription_session = meta.call_type == "transcription"
        #: Committed audio items whose transcription the provider has not reported (ordered).
        self._awaiting_transcripts: dict[str, None] = {}
        #: Input transcriptions billed, their usage summed, and those never reported.
        self.transcriptions = 0
        self.transcription_usage: dict[str, Any] = {}
        self.unreported_transcriptions = 0
        #: MCP items seen outside a response (tool lists, approval answers), for the next record.
        self._pending_tool_items: list[dict[str, Any]] = []
        #: response.cancel frames sent while settling: their response.done is "settled"
        self._settling = False

    @property
    def audio_frames(self) -> int:
        return self._triage.audio_frames

    @property
    def malformed(self) -> int:
        return self._triage.malformed

    # -- input ---------------------------------------------------------------------------------

    def note_audio(self, client_bytes: int, server_bytes: int) -> None:
        """The relay's running totals of audio relayed (base64 characters) each way."""
        self._audio_in, self._audio_out = client_bytes, server_bytes
        self.meter.note(client_bytes, server_bytes)

    def feed(self, direction: Direction, payload: bytes) -> list[Record]:
        """Take one text frame; return the records it completes (usually none)."""
        event = self._triage.event(payload)
        if event is None:
            return []
        etype = event["type"]
        handler = (_CLIENT_HANDLERS if direction == "client" else _SERVER_HANDLERS).get(etype)
        if handler is None:
            return []
        return handler(self, event) or []

    def _on_session_update(self, event: dict[str, Any]) -> None:
        # held, bounded, until the provider answers: a refused update is never recorded
        session = _d(event.get("session"))
        self._updates.add(event.get("event_id"), recorded_session(session))
        self.meter.requested(*session_formats(session))

    def _on_session_created(self, event: dict[str, Any]) -> None:
        session = _d(event.get("session"))
        sid = _s(session.get("id"))
        if sid:
            self.upstream_session_id = sid
        self.meter.formats(*session_formats(session))
        self._apply_session(recorded_session(session))

    def _on_session_updated(self, event: dict[str, Any]) -> None:
        # the client's update it confirms, then the session as the provider reports it applied
        confirmed = self._updates.confirmed()
        if confirmed is not None:
            self.config.apply(confirmed)
        session = _d(event.get("session"))
        self.meter.formats(*session_formats(session))
        self._apply_session(recorded_session(session))

    def _apply_session(self, session: dict[str, Any]) -> None:
        self.config.apply(session)
        instructions = self.config.instructions
        if instructions and instructions != self._instructions_sent:
            # one system message per change: replace an earlier one not yet recorded
            self._pending = [m for m in self._pending if m.get("role") != "system"]
            self._pending.insert(0, {"role": "system", "content": _clip(instructions)})
            self._instructions_sent = instructions

    def _push(self, message: dict[str, Any]) -> None:
        if len(self._pending) >= MAX_PENDING_MESSAGES:
            self._pending.pop(0)
            self.dropped_messages += 1
        self._pending.append(message)

    def _on_item_create(self, event: dict[str, Any]) -> None:
        item = _d(event.get("item"))
        itype = item.get("type")
        self._count_item(itype, item.get("content"))
        if itype == "function_call_output":
            output = item.get("output")
            self._push({
                "role": "tool",
                "tool_call_id": _s(item.get("call_id")),
                "content": _clip(output if isinstance(output, str) else json.dumps(output)),
            })
            return
        if itype == "mcp_approval_response":
            self._push_tool_item(_mcp_call(item))
            return
        if itype not in ("message", None):
            return
        role = _s(item.get("role")) or "user"
        content = item.get("content")
        for part in content if isinstance(content, list) else []:
            part = _d(part)
            ptype = part.get("type")
            if ptype in ("input_text", "text", "output_text"):
                text = _s(part.get("text"))
                if text is None or not text.strip():
                    continue  # an empty message says nothing: no record entry for it
                message: dict[str, Any] = {"role": role, "content": _clip(text)}
                if role == "user":
                    message["source"] = "text"
                self._text_in_chars += len(text)
                self._push(message)
            elif ptype == "input_image":
                # a placeholder naming type and size: never the image itself
                self._push({"role": role, "content": _image_placeholder(part.get("image_url")), "source": "image"})
            elif ptype == "input_audio" and (_s(part.get("transcript")) or "").strip():
                self._push({"role": role, "content": _clip(part["transcript"]), "source": "transcript"})

    def _count_item(self, itype: Any, content: Any) -> None:
        """What a created item adds to the measure: its audio (``input_audio`` parts: billed as
        audio, as appended audio is), and one text item unless it is a tool's output or audio
        only (xAI bills every other ``conversation.item.create``, however empty)."""
        has_audio = has_text = False
        for part in content if isinstance(content, list) else []:
            part = _d(part)
            if part.get("type") in ("input_audio", "audio"):
                has_audio = True
                audio = part.get("audio")
                if isinstance(audio, str):
                    self.meter.add_input(len(audio))
            elif part.get("type") in ("input_text", "text", "output_text"):
                has_text = True
        if itype != "function_call_output" and (has_text or not has_audio):
            self.text_items += 1
            self._text_items_unbilled += 1

    def _push_tool_item(self, call: dict[str, Any] | None) -> None:
        if call is None:
            return
        if len(self._pending_tool_items) >= MAX_PENDING_TOOL_ITEMS:
            self._pending_tool_items.pop(0)
            self.dropped_messages += 1
        self._pending_tool_items.append(call)

    def _on_item_done(self, event: dict[str, Any]) -> None:
        item = _d(event.get("item"))
        if item.get("type") == "mcp_list_tools":  # listed when the session's MCP tools are set
            self._push_tool_item(_mcp_call(item))
        elif self._observing and (item.get("type") in ("function_call_output", "mcp_approval_response") or (
                item.get("type") == "message" and item.get("role") in ("user", "system"))):
            # a WebRTC call: the client's items went over its data channel, unseen; the provider's
            # echo of each is what there is (voice turns come from their transcription events)
            content = item.get("content")
            parts = [p for p in content if _d(p).get("type") != "input_audio"] if isinstance(content, list) else None
            self._on_item_create({"item": {**item, "content": parts} if parts is not None else item})

    def _on_committed(self, event: dict[str, Any]) -> None:
        # the provider transcribes (and bills) each committed item while transcription is on
        item_id = _s(event.get("item_id"))
        if item_id and (self._transcription_session or self.config.transcription is not None) \
                and len(self._awaiting_transcripts) < MAX_OPEN_TRANSCRIPTIONS:
            self._awaiting_transcripts[item_id] = None

    def _on_transcript_failed(self, event: dict[str, Any]) -> None:
        self._awaiting_transcripts.pop(_s(event.get("item_id")) or "", None)

    def _on_transcript(self, event: dict[str, Any]) -> list[Record]:
        item_id = _s(event.get("item_id"))
        self._awaiting_transcripts.pop(item_id or "", None)
        transcript = _s(event.get("transcript"))
        usage = event.get("usage")
        records = [self._transcription_record(item_id, transcript, usage)] if isinstance(usage, dict) else []
        if transcript is None or not transcript.strip() or self._transcription_session:
            return records  # silence, or noise the model heard as nothing; or no response to give it to
        self._push({
            "role": "user",
            "content": _clip(transcript),
            "source": "transcript",
            "item_id": item_id,
        })
        return records

    def _transcription_record(self, item_id: str | None, transcript: str | None, usage: dict[str, Any]) -> Record:
        """One billed input transcription: the provider reports its usage per item, apart from any
        response, and bills it at the transcription model's rates."""
        name = self.config.transcription_model or (self.meta.upstream_model if self._transcription_session else None)
        if self._metered_only:  # included in the minutes (xAI transcribes every turn, unasked)
            cost, breakdown = 0.0, {}
        else:
            cost, breakdown = price_usage(usage, self.meta.model_price(name) if name else None)
        self.transcriptions += 1
        _add_usage(self.transcription_usage, {k: v for k, v in usage.items() if k != "type"})
        if self.cost_usd is not None:
            self.cost_usd = None if cost is None else round(self.cost_usd + cost, 10)
        now = self._now()
        record = self._base("transcription")
        record.update({
            "item_id": item_id,
            "transcription_model": name,
            "start_time": iso(now),
            "end_time": iso(now),
            "duration_ms": 0,
            "usage": usage,
            "usage_source": "metered" if self._metered_only else "provider",
            "billing_unit": self._billing_unit if self._metered_only else
            "audio_seconds" if usage.get("type") == "duration" else "tokens",
            "cost_usd": cost,
            "cost_breakdown": breakdown,
            "transcript": _clip(transcript) if self.meta.store_prompts and transcript else None,
            "error": None,
        })
        return record

    def _on_response_create(self, event: dict[str, Any]) -> None:
        # The relay hands a client frame to the collector before forwarding it, so this count
        # always rises before the provider's answer (response.created or error) can lower it.
        self._awaiting_created += 1
        self._requested_overrides = _recorded_overrides(event.get("response"))

    def _on_response_created(self, event: dict[str, Any]) -> None:
        if self._awaiting_created:  # else the provider started it itself (server VAD)
            self._awaiting_created -= 1
            self._response_overrides, self._requested_overrides = self._requested_overrides, None
        rid = _s(_d(event.get("response")).get("id"))
        if rid and len(self._open_responses) < MAX_OPEN_RESPONSES:
            self._open_responses[rid] = _InFlight(self._now(), self._audio_out)
        else:
            self.untracked_responses += 1

    def _on_text_delta(self, event: dict[str, Any]) -> None:
        flight = self._open_responses.get(_s(event.get("response_id")) or "")
        delta = event.get("delta")
        if flight is not None and isinstance(delta, str):
            flight.text_chars += len(delta)

    def _on_transcript_delta(self, event: dict[str, Any]) -> None:
        flight = self._open_responses.get(_s(event.get("response_id")) or "")
        delta = event.get("delta")
        if flight is not None and isinstance(delta, str):
            flight.transcript_chars += len(delta)

    def _on_error(self, event: dict[str, Any]) -> None:
        # A refused response.create is answered by an error instead of response.created. An error
        # about something else may end a settle's wait early; either way the window bounds it.
        if self._awaiting_created:
            self._awaiting_created -= 1
            self._requested_overrides = None  # refused, or at least not known to be started
        if self._updates.refused(_d(event.get("error")).get("event_id")):
            self.meter.refused()  # the formats it asked for are not the session's
        self.last_error = _error_of(event.get("error"))

    # -- records -------------------------------------------------------------------------------

    def _base(self, kind: str) -> Record:
        m = self.meta
        return {
            "record": kind,
            "id": self._new_id(),
            "session_id": m.session_id,
            "upstream_session_id": self.upstream_session_id,
            "call_type": m.call_type,
            "key_name": m.key_name,
            "key_hash": m.key_hash,
            "model": m.model,
            "provider": m.provider,
            "upstream_model": m.upstream_model,
            "api_base": m.api_base,
            "end_user": m.end_user,
            "tags": list(m.tags),
            **({"transport": m.transport} if m.transport != "websocket" else {}),
        }

    def _response_record(self, rid: str | None, status: str, start: datetime, end: datetime,
                         usage: dict[str, Any], usage_source: str) -> Record:
        """A response record's common fields, with the usage priced and added to the session's:
        its tokens as reported (or estimated), and what the gateway measured since the last
        record (audio each way, text items) at the model's metered rates."""
        cost, breakdown, measured = self._priced(usage)
        if self._metered_only:
            usage_source = "metered"
        self.responses += 1
        _add_usage(self.usage, usage)
        if self.cost_usd is not None:  # a response the price cannot price makes the total unknown
            self.cost_usd = None if cost is None else round(self.cost_usd + cost, 10)
        record = self._base("response")
        record.update({
            "response_id": rid,
            "status": status,
            "start_time": iso(start),
            "end_time": iso(end),
            "duration_ms": int((end - start).total_seconds() * 1000),
            "usage": usage,
            "usage_source": usage_source,
            "billing_unit": self._billing_unit,
            **measured,
            "cost_usd": cost,
            "cost_breakdown": breakdown,
            "messages": None,
            "proxy_server_request": None,
            "response": None,
            "error": None,
        })
        if self.meta.store_prompts:
            record["messages"] = self._pending
            record["proxy_server_request"] = self.config.as_request(self.meta.model, self._response_overrides)
        self._pending = []
        self._response_overrides = None
        return record

    def _priced(self, usage: dict[str, Any] | None) -> tuple[float | None, dict[str, float] | None, dict[str, Any]]:
        """(cost, breakdown, measured fields) of ``usage`` plus what was measured since the last
        record; marks that measure as on a record."""
        cost, breakdown = price_usage(usage, self.meta.price)
        audio_in, audio_out = self.meter.take()
        items, self._text_items_unbilled = self._text_items_unbilled, 0
        metered, parts = price_metered(audio_in, audio_out, items, self.meta.price)
        if cost is not None and parts:
            cost = round(cost + metered, 10)
            breakdown = {**(breakdown or {}), **parts}
        measured = {"audio_in_ms": audio_in, "audio_out_ms": audio_out, "text_items": items}
        return cost, breakdown, measured

    def metered_usage(self, *, final: bool = False, threshold_ms: float | None = None) -> list[Record]:
        """A ``"usage"`` record for what was measured and is on no record yet: audio sent with no
        response to bill it with, text items no response followed. Written once it reaches
        :data:`METERED_FLUSH_MS` of audio (the relay asks every few seconds), and, ``final``, for
        whatever is left when the session ends (audio minutes count on every provider; a metered
        one bills them). ``threshold_ms``: less when the key has fewer minutes left than that."""
        audio_in, audio_out = self.meter.pending()
        if final:
            if audio_in < 1 and audio_out < 1 and not self._text_items_unbilled:
                return []
        else:
            threshold = METERED_FLUSH_MS if threshold_ms is None else min(METERED_FLUSH_MS, threshold_ms)
            if audio_in + audio_out < max(threshold, 1):
                return []
        cost, breakdown, measured = self._priced({})
        if self.cost_usd is not None:
            self.cost_usd = None if cost is None else round(self.cost_usd + cost, 10)
        record = self._base("usage")
        record.update({
            "time": iso(self._now()),
            "source": "session_end" if final else "audio_without_response",
            "usage_source": "metered",
            "billing_unit": self._billing_unit,
            **measured,
            "cost_usd": cost,
            "cost_breakdown": breakdown,
        })
        return [record]

    def _on_response_done(self, event: dict[str, Any]) -> list[Record]:
        resp = _d(event.get("response"))
        rid = _s(resp.get("id"))
        end = self._now()
        flight = self._open_responses.pop(rid, None) if rid else None
        start = flight.started if flight is not None else end
        if self._settling and flight is not None:
            self.settled_responses += 1
        usage = _d(resp.get("usage"))
        status = _s(resp.get("status")) or "completed"
        details = _d(resp.get("status_details"))

        texts: list[str] = []
        transcripts: list[str] = []
        tool_calls: list[dict[str, Any]] = self._pending_tool_items
        self._pending_tool_items = []
        output = resp.get("output")
        for item in output if isinstance(output, list) else []:
            item = _d(item)
            mcp = _mcp_call(item)
            if mcp is not None:
                tool_calls.append(mcp)
            elif item.get("type") == "function_call":
                args = item.get("arguments")
                tool_calls.append({
                    "id": _s(item.get("call_id")),
                    "type": "function",
                    "function": {
                        "name": _s(item.get("name")),
                        "arguments": args if isinstance(args, str) else json.dumps(args),
                    },
                })
            elif item.get("type") == "message":
                content = item.get("content")
                for part in content if isinstance(content, list) else []:
                    part = _d(part)
                    if part.get("type") in ("output_text", "text") and _s(part.get("text")):
                        texts.append(part["text"])
                    if part.get("type") in ("output_audio", "audio") and _s(part.get("transcript")):
                        transcripts.append(part["transcript"])

        record = self._response_record(rid, status, start, end, usage, "provider")
        record["error"] = _error_of(details.get("error"))
        if self.meta.store_prompts:
            record["response"] = {
                "id": rid,
                "output_text": _clip("".join(texts)) if texts else None,
                "output_transcript": _clip("".join(transcripts)) if transcripts else None,
                "tool_calls": tool_calls,
                "status_details": details or None,
                "results": [event],
            }
        self._last_usage = usage or self._last_usage
        self._audio_in_at_last = self._audio_in
        self._text_in_chars = 0
        return [record]

    # -- settling: the client left with responses in flight ---------------------------------------

    @property
    def in_flight(self) -> int:
        """Responses started and not reported, responses requested and not yet started, and input
        transcriptions the provider has not reported yet (it bills them all the same)."""
        return len(self._open_responses) + self._awaiting_created + len(self._awaiting_transcripts)

    def settle_frames(self) -> list[str]:
        """One ``response.cancel`` per response in flight not cancelled yet: the provider then
        reports each one. Called again as responses requested before the client left start."""
        self._settling = True
        sent = self._cancel_sent = self._cancel_sent if self._cancel_sent is not None else set()
        frames = []
        for rid in self._open_responses:
            if rid not in sent:
                sent.add(rid)
                frames.append(json.dumps({"type": "response.cancel", "event_id": f"event_rtp_settle_{len(sent)}",
                                          "response_id": rid}))
        return frames

    def unsettled(self) -> list[Record]:
        """Response records with usage estimated from what was relayed, for every response still
        in flight (the provider never reported it). See :mod:`rtproxy.spend.estimate`."""
        records = []
        end = self._now()
        self._ended_in_flight += len(self._open_responses)
        for rid, flight in list(self._open_responses.items()):
            usage = estimate_usage(
                output_text_chars=flight.text_chars, output_transcript_chars=flight.transcript_chars,
                output_audio_b64_bytes=self._audio_out - flight.audio_out_at_start,
                input_text_chars=self._text_in_chars, input_audio_b64_bytes=self._audio_in - self._audio_in_at_last,
                previous=self._last_usage)
            self.estimated_responses += 1
            record = self._response_record(rid, "incomplete", flight.started, end, usage, "estimated")
            record["error"] = {"type": "gateway", "code": "response_not_reported",
                               "message": "the client left and the provider did not report this response in time; "
                                          "usage estimated from what was relayed"}
            self._text_in_chars = 0
            self._audio_in_at_last = self._audio_in
            records.append(record)
        self._open_responses.clear()
        # requested, never acknowledged: nothing was relayed to estimate them from
        self.untracked_responses += self._awaiting_created
        self._ended_in_flight += self._awaiting_created
        self._awaiting_created = 0
        # billed by the provider, never reported: counted in the session record, not guessed
        self.unreported_transcriptions += len(self._awaiting_transcripts)
        self._awaiting_transcripts.clear()
        return records + self.metered_usage(final=True)

    def finish(self, end: SessionEnd) -> Record:
        """The session record; call once, when the session is over."""
        now = self._now()
        record = self._base("session")
        error = end.error or (self.last_error if end.failed else None)
        record.update({
            "start_time": iso(self.started_at),
            "end_time": iso(now),
            "duration_ms": int((now - self.started_at).total_seconds() * 1000),
            "responses": self.responses,
            "responses_in_flight": self._ended_in_flight + len(self._open_responses),
            "responses_settled": self.settled_responses,
            "responses_estimated": self.estimated_responses,
            "responses_unestimated": self.untracked_responses,
            "usage": self.usage,
            "transcriptions": self.transcriptions,
            "transcription_usage": self.transcription_usage,
            "transcriptions_unreported": self.unreported_transcriptions + len(self._awaiting_transcripts),
            "cost_usd": self.cost_usd,
            "billing_unit": self._billing_unit,
            "audio_in_ms": int(self.meter.in_ms),
            "audio_out_ms": int(self.meter.out_ms),
            "text_items": self.text_items,
            "close": {"by": end.by, "code": end.code, "reason": end.reason},
            "status": "failure" if end.failed else "success",
            "error": error,
            "last_error_event": self.last_error,
            "client": {"ip": self.meta.client_ip, "user_agent": self.meta.user_agent},
            "dialect": self.meta.dialect,
            "credential": self.meta.credential,
            "tools": self.config.tools if self.meta.store_prompts else None,
            "unknown_event_types": self._triage.unknown_types,
            "malformed_frames": self._triage.malformed,
            #: messages (and MCP items) dropped from a record over MAX_PENDING_MESSAGES
            "messages_dropped": self.dropped_messages,
        })
        return record


# The handlers by event type, shared by every collector (bound methods in a dict per instance
# cost some 3 KiB of each open session).
_CLIENT_HANDLERS: dict[str, Callable[[Collector, dict[str, Any]], list[Record] | None]] = {
    "session.update": Collector._on_session_update,
    "transcription_session.update": Collector._on_session_update,
    "conversation.item.create": Collector._on_item_create,
    "response.create": Collector._on_response_create,
}
_SERVER_HANDLERS: dict[str, Callable[[Collector, dict[str, Any]], list[Record] | None]] = {
    "session.created": Collector._on_session_created,
    "session.updated": Collector._on_session_updated,
    "transcription_session.updated": Collector._on_session_updated,
    "conversation.item.input_audio_transcription.completed": Collector._on_transcript,
    "conversation.item.input_audio_transcription.failed": Collector._on_transcript_failed,
    "input_audio_buffer.committed": Collector._on_committed,
    "conversation.item.done": Collector._on_item_done,
    "response.created": Collector._on_response_created,
    "response.done": Collector._on_response_done,
    "error": Collector._on_error,
    **dict.fromkeys(TEXT_DELTA_TYPES, Collector._on_text_delta),
    **dict.fromkeys(TRANSCRIPT_DELTA_TYPES, Collector._on_transcript_delta),
}
