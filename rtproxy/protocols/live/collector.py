"""The GPT-Live spend collector: a session's frames in, spend records out. No I/O, no trio.

What GPT-Live bills, and how it is recorded (protocol/gpt-live.md §7):

- the voice model, **per second of session**: ``session.usage.updated`` carries the cumulative
  billable seconds (never summed: the latest wins), ``session.closed`` the final figure. Each
  rise is written at once as a ``"usage"`` record costing the seconds added since the previous
  one, so a crash loses at most one interval and the budget follows the running total;
- the delegated Responses model, **per token**: each terminal nested event
  (``response.completed`` / ``.incomplete`` / ``.failed`` inside ``response.event``) is one
  ``"response"`` record, each ``response.id`` once, priced by its own ``response.model``;
- the Decisions model, per token, from ``decision.event`` (a ``"response"`` record too).

Transcript fragments are grouped into turns as the SDK groups them (:mod:`.transcripts`); turns,
the content of ``session.{instructions,thinking,commentary}.append``, typed text and tool outputs
(``response.item.create``) go into the next record written (``store_prompts`` permitting).
Function calls come from the nested ``response.output_item.done`` and land in their response's
``tool_calls``, in the Realtime records' shape.

The session config a record carries (instructions, the delegation's model, instructions and tools)
is the client's ``session.start`` / ``session.update`` once the provider confirmed it
(``session.started`` / ``session.updated``; an ``error`` refusing it drops it), bounded as the
Realtime records are (:data:`~..realtime.collector.MAX_RECORD_INSTRUCTIONS_CHARS`,
:data:`~..realtime.collector.MAX_RECORD_TOOLS_BYTES`, :data:`~..realtime.collector.MAX_RECORD_SETTING_BYTES`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ...spend.audio_meter import AudioMeter, format_of
from ...spend.pricing import price_responses_usage, price_seconds
from ...spend.records import Record, SessionEnd, SessionMeta, iso, new_record_id, utc_now
from ..peek import EventTriage
from ..realtime.collector import (MAX_RECORDED_KEYS, PendingUpdates, _add_usage, _clip, _error_of, record_instructions,
                                  record_setting, record_tools)
from ..seam import Direction
from .events import AUDIO_TYPES, COLLECTED_TYPES, KNOWN_TYPES
from .transcripts import TranscriptTurns

#: Messages kept for the next record; older ones are dropped (and counted) beyond this.
MAX_PENDING_MESSAGES = 500
#: Delegated responses open at once (response.created, no terminal event yet).
MAX_OPEN_RESPONSES = 64
#: Response ids remembered so that each is billed once.
MAX_BILLED_IDS = 4096
#: Client delegations remembered for the session record.
MAX_DELEGATIONS = 256
#: The nested Responses events that end a response (and carry its usage).
TERMINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_APPEND_SOURCES = {"session.instructions.append": "instructions", "session.thinking.append": "thinking",
                   "session.commentary.append": "commentary"}
SESSION_CLOSE = json.dumps({"type": "session.close", "event_id": "event_rtp_settle_close"})


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _recorded_backend(value: Any) -> Any:
    """A delegated backend's config (``responses``, ``decisions``), bounded: its instructions and
    tools as the Realtime record bounds have them, every other value by :func:`record_setting`."""
    if not isinstance(value, dict):
        return record_setting(value)
    bounded = {}
    for key, v in list(value.items())[:MAX_RECORDED_KEYS]:
        bounded[key] = (record_instructions(v) if key == "instructions" else record_tools(v) if key == "tools"
                        else record_setting(v))
    return bounded


def recorded_session(session: dict[str, Any]) -> dict[str, Any]:
    """The parts of a Live session config a record carries, bounded, in the same shape."""
    out: dict[str, Any] = {}
    if "instructions" in session:
        out["instructions"] = record_instructions(session["instructions"])
    delegation = session.get("delegation")
    if isinstance(delegation, dict):
        out["delegation"] = {key: _recorded_backend(v) if key in ("responses", "decisions") else record_setting(v)
                             for key, v in list(delegation.items())[:MAX_RECORDED_KEYS]}
    return out


def _seconds(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return int(value)


class _Delegated:
    """A delegated response in flight: what its stream has said so far."""

    __slots__ = ("delegation_id", "started", "text", "tool_calls")

    def __init__(self, started: datetime, delegation_id: str | None) -> None:
        self.started = started
        self.delegation_id = delegation_id
        self.text: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []


class LiveCollector:
    """Frames of one GPT-Live session in, spend records out."""

    def __init__(self, meta: SessionMeta, *, now: Callable[[], datetime] = utc_now,
                 new_id: Callable[[], str] = new_record_id) -> None:
        self.meta = meta
        self._now = now
        self._new_id = new_id
        self.started_at = now()
        self.upstream_session_id: str | None = None
        self.responses = 0
        self.usage: dict[str, Any] = {}
        self.voice_cost_usd: float | None = 0.0 if meta.price is not None and meta.price.audio_per_hour is not None \
            else None
        self.delegated_cost_usd: float | None = 0.0
        #: The latest cumulative figures, and which event gave them.
        self.seconds = 0
        self.active_seconds: int | None = None
        self.paused_seconds: int | None = None
        self.seconds_source: str | None = None
        self.closed_reason: str | None = None
        self._started = False
        self._closed = False
        self._close_sent = False
        self.instructions: str | None = None
        self.delegation: dict[str, Any] = {}
        #: The client's session.start / session.update not yet confirmed by the provider.
        self._updates = PendingUpdates()
        self.tools: list[Any] | None = None
        self._turns = TranscriptTurns()
        self._pending: list[dict[str, Any]] = []
        self._open: dict[str, _Delegated] = {}
        self._billed: dict[str, None] = {}
        self.delegations: list[dict[str, Any]] = []
        self.last_error: dict[str, Any] | None = None
        self._triage = EventTriage(AUDIO_TYPES, KNOWN_TYPES, COLLECTED_TYPES)
        self.dropped_messages = 0
        #: Audio relayed each way (ms), for the records' audio_in_ms / audio_out_ms and a key's
        #: audio minutes; GPT-Live bills its own seconds, not these.
        self.meter = AudioMeter()
        self._client = {
            "session.start": self._on_start,
            "session.update": self._on_update,
            "response.item.create": self._on_item_create,
            **{t: self._on_append for t in _APPEND_SOURCES},
        }
        self._server = {
            "session.started": self._on_started,
            "session.updated": self._on_updated,
            "session.input_transcript.delta": self._on_transcript,
            "session.output_transcript.delta": self._on_transcript,
            "session.delegation.created": self._on_delegation,
            "response.event": self._on_response_event,
            "decision.event": self._on_decision,
            "session.usage.updated": self._on_usage,
            "session.closed": self._on_closed,
            "error": self._on_error,
        }

    # -- input ---------------------------------------------------------------------------------

    def note_audio(self, client_bytes: int, server_bytes: int) -> None:
        """Live bills seconds, not audio bytes: nothing is estimated from them; they are measured."""
        self.meter.note(client_bytes, server_bytes)

    def feed(self, direction: Direction, payload: bytes) -> list[Record]:
        event = self._triage.event(payload)
        if event is None:
            return []
        etype = event["type"]
        handler = (self._client if direction == "client" else self._server).get(etype)
        return (handler(event) or []) if handler is not None else []

    def _push(self, message: dict[str, Any]) -> None:
        if len(self._pending) >= MAX_PENDING_MESSAGES:
            self._pending.pop(0)
            self.dropped_messages += 1
        self._pending.append(message)

    def _apply(self, session: dict[str, Any]) -> None:
        if "instructions" in session and _s(session["instructions"]) and session["instructions"] != self.instructions:
            self.instructions = session["instructions"]
            self._push({"role": "system", "content": _clip(session["instructions"]), "source": "instructions"})
        delegation = session.get("delegation")
        if isinstance(delegation, dict):
            merged = dict(self.delegation)
            for kind in ("responses", "decisions"):
                if isinstance(delegation.get(kind), dict):
                    both = {**_d(merged.get(kind)), **delegation[kind]}
                    merged[kind] = dict(list(both.items())[:MAX_RECORDED_KEYS])  # bounded across updates too
            if isinstance(delegation.get("type"), str):
                merged["type"] = delegation["type"]
            self.delegation = merged
            tools = _d(merged.get("responses")).get("tools")
            if isinstance(tools, list):
                self.tools = tools  # bounded and redacted (recorded_session)

    def _on_start(self, event: dict[str, Any]) -> None:
        # held, bounded, until the provider answers: a refused config is never recorded
        self._updates.add(event.get("event_id"), recorded_session(_d(event.get("session"))))

    _on_update = _on_start

    def _on_started(self, event: dict[str, Any]) -> None:
        session = _d(event.get("session"))
        self.upstream_session_id = _s(session.get("id")) or self.upstream_session_id
        self._started = True
        self._on_updated(event)

    def _on_updated(self, event: dict[str, Any]) -> None:
        # the client's config it confirms, then the session as the provider reports it
        confirmed = self._updates.confirmed(event.get("client_event_id"))
        if confirmed is not None:
            self._apply(confirmed)
        session = _d(event.get("session"))
        stated = format_of(_d(session.get("audio")).get("format"))
        self.meter.formats(stated, stated)  # one format both ways
        self._apply(recorded_session(session))

    def _on_append(self, event: dict[str, Any]) -> None:
        content = _s(event.get("content"))
        if not content or not content.strip():
            return
        source = _APPEND_SOURCES[event["type"]]
        delegation_id = _s(event.get("delegation_id"))
        if delegation_id:  # the app's answer to a client delegation: that call's result
            self._push({"role": "tool", "tool_call_id": delegation_id, "content": _clip(content), "source": source})
        else:
            self._push({"role": "system", "content": _clip(content), "source": source})

    def _on_item_create(self, event: dict[str, Any]) -> None:
        item = _d(event.get("item"))
        if item.get("type") == "function_call_output":
            output = item.get("output")
            self._push({"role": "tool", "tool_call_id": _s(item.get("call_id")),
                        "content": _clip(output if isinstance(output, str) else json.dumps(output))})
            return
        if item.get("type") not in ("message", None):
            return
        role = _s(item.get("role")) or "user"
        content = item.get("content")
        parts = content if isinstance(content, list) else [{"type": "input_text", "text": content}]
        for part in parts:
            text = _s(_d(part).get("text"))
            if text and text.strip():
                self._push({"role": role, "content": _clip(text), "source": "text"})

    def _on_transcript(self, event: dict[str, Any]) -> None:
        for turn in self._turns.push(event):
            self._push(turn)

    def _on_delegation(self, event: dict[str, Any]) -> None:
        d = _d(event.get("delegation"))
        if len(self.delegations) < MAX_DELEGATIONS:
            self.delegations.append({"id": _s(d.get("id")), "target": _s(d.get("target")),
                                     "response_id": _s(d.get("response_id")), "offset_ms": event.get("offset_ms")})

    def _on_error(self, event: dict[str, Any]) -> None:
        self._updates.refused(_d(event.get("error")).get("client_event_id"))
        self.last_error = _error_of(event.get("error"))

    # -- the delegated Responses stream ---------------------------------------------------------

    def _on_response_event(self, event: dict[str, Any]) -> list[Record]:
        inner = _d(event.get("event"))
        itype = inner.get("type")
        delegation_id = _s(event.get("delegation_id"))
        if itype == "response.created":
            rid = _s(_d(inner.get("response")).get("id"))
            if rid and rid not in self._open and len(self._open) < MAX_OPEN_RESPONSES:
                self._open[rid] = _Delegated(self._now(), delegation_id)
            return []
        if itype == "response.output_text.delta":
            flight = self._flight(inner, delegation_id)
            if flight is not None and isinstance(inner.get("delta"), str) and sum(map(len, flight.text)) < 65536:
                flight.text.append(inner["delta"])
            return []
        if itype == "response.output_item.done":
            item = _d(inner.get("item"))
            flight = self._flight(inner, delegation_id)
            if item.get("type") == "function_call" and flight is not None:
                args = item.get("arguments")
                flight.tool_calls.append({"id": _s(item.get("call_id")), "type": "function", "function": {
                    "name": _s(item.get("name")), "arguments": args if isinstance(args, str) else json.dumps(args)}})
            return []
        if itype in TERMINAL_RESPONSE_EVENTS:
            return self._response_done(inner, delegation_id)
        return []

    def _flight(self, inner: dict[str, Any], delegation_id: str | None) -> _Delegated | None:
        rid = _s(inner.get("response_id")) or _s(_d(inner.get("response")).get("id"))
        if rid and rid in self._open:
            return self._open[rid]
        # nested item events name no response: the one open under this delegation (or the only one)
        same = [f for f in self._open.values() if f.delegation_id == delegation_id]
        return same[-1] if same else None

    def _response_done(self, inner: dict[str, Any], delegation_id: str | None) -> list[Record]:
        resp = _d(inner.get("response"))
        rid = _s(resp.get("id"))
        if rid is not None:
            if rid in self._billed:
                return []  # each response id is billed once
            self._billed[rid] = None
            if len(self._billed) > MAX_BILLED_IDS:
                del self._billed[next(iter(self._billed))]
        flight = self._open.pop(rid, None) if rid else None
        model = _s(resp.get("model")) or _s(_d(self.delegation.get("responses")).get("model"))
        usage = _d(resp.get("usage"))
        status = _s(resp.get("status")) or inner["type"].removeprefix("response.")
        record = self._billed_record(rid, status, flight.started if flight else self._now(), model, usage,
                                     delegation_id)
        error = _error_of(resp.get("error"))
        record["error"] = error
        if self.meta.store_prompts:
            text = "".join(flight.text) if flight else ""
            record["response"] = {"id": rid, "output_text": _clip(text) if text else None, "output_transcript": None,
                                  "tool_calls": flight.tool_calls if flight else [],
                                  "status_details": _d(resp.get("incomplete_details")) or None, "results": [inner]}
        return [record]

    def _on_decision(self, event: dict[str, Any]) -> list[Record]:
        decision = _d(_d(event.get("event")).get("decision"))
        usage = _d(decision.get("usage"))
        if not usage:
            return []
        record = self._billed_record(None, "completed", self._now(), _s(decision.get("model")), usage,
                                     _s(event.get("delegation_id")), kind="decisions")
        if self.meta.store_prompts:
            record["response"] = {"id": None, "output_text": None, "output_transcript": None, "tool_calls": [],
                                  "status_details": None, "answers": decision.get("answers"), "results": [event]}
        return [record]

    def _billed_record(self, rid: str | None, status: str, start: datetime, model: str | None,
                       usage: dict[str, Any], delegation_id: str | None, kind: str = "responses") -> Record:
        price = self.meta.model_price(model) if model else None
        cost, breakdown = price_responses_usage(usage, price)
        self.responses += 1
        _add_usage(self.usage, usage)
        if self.delegated_cost_usd is not None:
            self.delegated_cost_usd = None if cost is None else round(self.delegated_cost_usd + cost, 10)
        end = self._now()
        record = self._base("response")
        record.update({
            "response_id": rid, "status": status, "start_time": iso(start), "end_time": iso(end),
            "duration_ms": int((end - start).total_seconds() * 1000), "delegation": kind,
            "delegation_id": delegation_id, "response_model": model, "usage": usage, "usage_source": "provider",
            "billing_unit": "tokens", **self._measured(),
            "cost_usd": cost, "cost_breakdown": breakdown, "messages": None, "proxy_server_request": None,
            "response": None, "error": None,
        })
        if self.meta.store_prompts:
            record["messages"] = self._take_pending()
            responses = _d(self.delegation.get("responses"))
            record["proxy_server_request"] = {"model": model, "instructions": _s(responses.get("instructions")),
                                              "tools": self.tools or [], "tool_choice": responses.get("tool_choice")}
        else:
            self._pending = []
        return record

    # -- seconds -------------------------------------------------------------------------------

    def _on_usage(self, event: dict[str, Any]) -> list[Record]:
        return self._checkpoint(_d(event.get("usage")), "session.usage.updated")

    def _on_closed(self, event: dict[str, Any]) -> list[Record]:
        self._closed = True
        self.closed_reason = _s(event.get("reason"))
        records = self._checkpoint(_d(event.get("usage")), "session.closed")
        if self.seconds_source != "session.closed" and isinstance(event.get("usage"), dict):
            self.seconds_source = "session.closed"  # final, even when no second was added
        return records

    def _checkpoint(self, usage: dict[str, Any], source: str) -> list[Record]:
        seconds = _seconds(usage.get("seconds"))
        if seconds is None or seconds <= self.seconds:
            return []
        active, paused = _seconds(usage.get("active_seconds")), _seconds(usage.get("paused_seconds"))
        if active is None or paused is None:
            active, paused = seconds, 0
        prev_active = self.active_seconds if self.active_seconds is not None else self.seconds
        prev_paused = self.paused_seconds or 0
        added_active, added_paused = max(0, active - prev_active), max(0, paused - prev_paused)
        cost, breakdown = price_seconds(added_active, added_paused, self.meta.price)
        self.seconds, self.active_seconds, self.paused_seconds = seconds, active, paused
        self.seconds_source = source
        if self.voice_cost_usd is not None and cost is not None:
            self.voice_cost_usd = round(self.voice_cost_usd + cost, 10)
        now = self._now()
        record = self._base("usage")
        record.update({
            "time": iso(now), "source": source, "seconds": seconds, "active_seconds": active,
            "paused_seconds": paused, "seconds_added": added_active + added_paused,
            "usage_source": "provider", "billing_unit": "audio_seconds", **self._measured(), "cost_usd": cost,
            "cost_breakdown": breakdown, "voice_cost_usd": self.voice_cost_usd,
            "messages": self._take_pending() if self.meta.store_prompts else None,
        })
        if not self.meta.store_prompts:
            self._pending = []
        return [record]

    def _take_pending(self) -> list[dict[str, Any]]:
        pending, self._pending = self._pending, []
        return pending

    # -- the end -------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """1 while the session has started and its final seconds are not reported
        (``session.closed``): the provider bills them all the same."""
        return int(self._started and not self._closed)

    def settle_frames(self) -> list[str]:
        """``session.close`` once: the provider answers with the final seconds."""
        if self._close_sent or not self.in_flight:
            return []
        self._close_sent = True
        return [SESSION_CLOSE]

    def unsettled(self) -> list[Record]:
        """Nothing to estimate: the seconds billed are the last ones the provider reported. Audio
        measured after the last record goes on a ``"usage"`` record of its own (no cost: it counts
        toward the key's audio minutes)."""
        audio_in, audio_out = self.meter.pending()
        if audio_in < 1 and audio_out < 1:
            return []
        record = self._base("usage")
        record.update({"time": iso(self._now()), "source": "session_end", "seconds": self.seconds,
                       "active_seconds": self.active_seconds, "paused_seconds": self.paused_seconds,
                       "seconds_added": 0, "usage_source": "metered", "billing_unit": "audio_seconds",
                       **self._measured(), "cost_usd": 0.0, "cost_breakdown": {},
                       "voice_cost_usd": self.voice_cost_usd, "messages": None})
        return [record]

    def _measured(self) -> dict[str, int]:
        """The audio measured since the last record (marked as on this one)."""
        audio_in, audio_out = self.meter.take()
        return {"audio_in_ms": audio_in, "audio_out_ms": audio_out}

    def _base(self, kind: str) -> Record:
        m = self.meta
        return {
            "record": kind, "id": self._new_id(), "session_id": m.session_id,
            "upstream_session_id": self.upstream_session_id, "call_type": "live", "key_name": m.key_name,
            "key_hash": m.key_hash, "model": m.model, "provider": m.provider, "upstream_model": m.upstream_model,
            "api_base": m.api_base, "end_user": m.end_user, "tags": list(m.tags),
            **({"transport": m.transport} if m.transport != "websocket" else {}),
        }

    def finish(self, end: SessionEnd) -> Record:
        for turn in self._turns.finish():
            self._push(turn)
        now = self._now()
        record = self._base("session")
        voice, delegated = self.voice_cost_usd, self.delegated_cost_usd
        total = None if voice is None or delegated is None else round(voice + delegated, 10)
        record.update({
            "api": "live",
            "start_time": iso(self.started_at), "end_time": iso(now),
            "duration_ms": int((now - self.started_at).total_seconds() * 1000),
            "responses": self.responses, "responses_in_flight": len(self._open),
            "usage": self.usage,
            "seconds": self.seconds, "active_seconds": self.active_seconds, "paused_seconds": self.paused_seconds,
            "seconds_source": self.seconds_source,
            "billing_unit": "audio_seconds+tokens" if self.responses else "audio_seconds",
            "audio_in_ms": int(self.meter.in_ms), "audio_out_ms": int(self.meter.out_ms),
            "voice_cost_usd": voice, "delegated_cost_usd": delegated, "cost_usd": total,
            "closed_reason": self.closed_reason,
            "close": {"by": end.by, "code": end.code, "reason": end.reason},
            "status": "failure" if end.failed else "success",
            "error": end.error or (self.last_error if end.failed else None),
            "last_error_event": self.last_error,
            "client": {"ip": self.meta.client_ip, "user_agent": self.meta.user_agent},
            "credential": self.meta.credential,
            "delegation_type": _s(self.delegation.get("type")) or ("client" if self._started else None),
            "delegations": self.delegations,
            "tools": self.tools if self.meta.store_prompts else None,
            "messages": self._take_pending() if self.meta.store_prompts else None,
            "unknown_event_types": self._triage.unknown_types,
            "malformed_frames": self._triage.malformed,
            #: messages (and MCP items) dropped from a record over MAX_PENDING_MESSAGES
            "messages_dropped": self.dropped_messages,
            "transcript_fragments_invalid": self._turns.invalid,
        })
        return record
