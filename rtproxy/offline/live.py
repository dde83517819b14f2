"""The offline model speaking GPT-Live (protocol/gpt-live.md): client events in, server events
out. No I/O. Every event it sends validates against the official SDK's ``openai.types.live``
models (and the nested Responses events against ``openai.types.responses``).

- silent until ``session.start``, then ``session.started`` with the resolved config (unknown
  session keys are refused with ``unknown_parameter``, as the API does);
- ``session.input_audio.append`` into an energy VAD: each utterance gives input transcript
  fragments, then a spoken reply: output audio deltas (no ``event_id``) with output transcript
  fragments, on one session timeline in ms;
- client delegation (the default): each voice turn is delegated to the app
  (``session.delegation.created``, target ``client``); the app's ``commentary.append`` (or
  ``thinking.append``) with that id is spoken; appends are acknowledged with ``*.appended``;
- Responses delegation: a voice turn, or ``response.item.create`` + ``response.create``, runs the
  backend model as a ``response.event`` stream (created, output items, text or function-call
  argument deltas, ``response.completed`` with token usage); the function tool the user's words
  ask for (by name or by topic, as in a Realtime session, ``tool_choice`` honoured) is called, and
  answered after its ``function_call_output``; the reply is then spoken;
- ``session.usage.updated`` from :meth:`usage_tick` when the billed seconds rose (the seconds of
  the session timeline: input audio appended, speech produced);
- ``session.close`` → ``session.closed`` (``close_requested``, final usage); then the server
  closes the socket.

What the backend answers, the tool it calls and the voice are the offline model's brain's
(:mod:`rtproxy.offline.brain`), the same brain as the other front-ends': the same words get the
same answer and the same call here as in a Realtime or Gemini Live session.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

from .audio import BYTES_PER_MS, SpeechStopped, Vad, VadSettings
from .brain import Brain, Speaker, Utterances, cached_prefix, fill_arguments, placeholder, text_tokens
from .model import ClientError, audio_of

Event = dict[str, Any]

#: The session keys session.start accepts (the API refuses others).
SESSION_KEYS = frozenset({"model", "instructions", "audio", "delegation", "input", "triggers", "client", "store",
                          "safety_identifier", "type"})
FORK_KEYS = frozenset({"audio", "delegation", "store", "client", "type"})
#: Backend items kept for the context; the oldest are forgotten beyond this.
MAX_ITEMS = 1000
DEFAULT_VOICE = "marin"
DEFAULT_BACKEND_MODEL = "gpt-5.6-luna"
#: What the voice model says while a client delegation is worked on.
HOLDING_LINE = "One moment."


#: A client event the model refuses: the same error shape as the Realtime model's.
LiveClientError = ClientError


class OfflineLiveModel:
    def __init__(self, *, op: str = "start", source: OfflineLiveModel | None = None, hears: bool = False,
                 speaker: Speaker | None = None) -> None:
        """``hears`` and ``speaker`` as for :class:`~rtproxy.offline.model.OfflineModel`: the
        caller recognizes each utterance (:meth:`take_unheard`, :meth:`heard`), the speaker voices replies."""
        self.op = op
        # the Responses backend answers and picks tools as the Realtime model does: one brain
        self.brain = Brain(speaker)
        self._unheard: Utterances[SpeechStopped] = Utterances(hears)
        self.session_id = "live_" + secrets.token_hex(10)
        self.started = False
        self.closed = False
        self.model: str = source.model if source else ""
        self.instructions: str = source.instructions if source else ""
        self.voice: Any = source.voice if source else DEFAULT_VOICE
        self.audio_format: dict[str, Any] = {"type": "audio/pcm", "rate": 24000}
        self.delegation: dict[str, Any] = dict(source.delegation) if source else {"type": "client"}
        self.store = False
        self.created_at = int(time.time())
        self._counter = 0
        self._vad = Vad(VadSettings())
        self._muted = False
        #: The session timeline (ms): input audio appended so far; speech is placed after it.
        self._input_ms = 0
        self._output_end_ms = 0
        self._billed_seconds = 0
        self._items: list[Event] = list(source._items) if source else []  # the backend's context
        self._queued: list[Event] = []  # response.item.create items awaiting response.create
        self._prev_input_tokens = 0
        self._steps: list[Iterator[list[Event]]] = []
        self._pending_client_delegations: set[str] = set()

    # -- helpers -------------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self.session_id[5:13]}{self._counter:05d}"

    def _ev(self, etype: str, client_event_id: Any = None, **fields: Any) -> Event:
        event: Event = {"type": etype, "event_id": self._id("event"), **fields}
        if isinstance(client_event_id, str):
            event["client_event_id"] = client_event_id
        return event

    def _error(self, err: LiveClientError, client_event_id: Any) -> Event:
        cid = client_event_id if isinstance(client_event_id, str) else None
        return self._ev("error", cid, error={"code": err.code, "message": err.message, "type": "invalid_request_error",
                                            "param": err.param, "client_event_id": cid})

    def resource(self) -> dict[str, Any]:
        return {"id": self.session_id, "expires_at": self.created_at + 3600, "model": self.model, "status": "active",
                "instructions": self.instructions, "audio": {"format": self.audio_format, "output": {"voice": self.voice}},
                "delegation": self.delegation, "input": [], "store": self.store}

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

    @property
    def seconds(self) -> int:
        return max(self._input_ms, self._output_end_ms) // 1000

    @property
    def responding(self) -> bool:
        return bool(self._steps)

    @property
    def _responses_mode(self) -> bool:
        return self.delegation.get("type") == "responses"

    @property
    def _backend(self) -> dict[str, Any]:
        responses = self.delegation.get("responses")
        return responses if isinstance(responses, dict) else {}

    # -- client events -------------------------------------------------------------------------

    def receive(self, raw: str | bytes) -> list[Event]:
        try:
            event = json.loads(raw)
        except (ValueError, RecursionError):
            return [self._error(LiveClientError("invalid_json", "The event is not valid JSON."), None)]
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return [self._error(LiveClientError("invalid_event", "An event must be an object with a type."), None)]
        etype, eid = event["type"], event.get("event_id")
        handler = self._handlers().get(etype)
        if handler is None:
            return [self._error(LiveClientError("invalid_value", f"Invalid value: {etype[:80]!r}. That is not a "
                                                "supported client event type.", "type"), eid)]
        if not self.started and etype != "session.start":
            return [self._error(LiveClientError("session_not_started", "Send session.start first."), eid)]
        try:
            return handler(event)
        except LiveClientError as err:
            return [self._error(err, eid)]

    def _handlers(self) -> dict[str, Any]:
        return {
            "session.start": self._start,
            "session.update": self._update,
            "session.input_audio.append": self._append,
            "session.input_audio.mute": lambda e: self._mute(e, True),
            "session.input_audio.unmute": lambda e: self._mute(e, False),
            "session.output_audio.fixture.play": self._fixture,
            "session.instructions.append": self._context_append,
            "session.thinking.append": self._context_append,
            "session.commentary.append": self._context_append,
            "response.item.create": self._item_create,
            "response.create": self._response_create,
            "session.close": self._close,
        }

    def _start(self, event: Event) -> list[Event]:
        if self.started:
            raise LiveClientError("session_already_started", "The session has already started.")
        s = event.get("session")
        if not isinstance(s, dict):
            raise LiveClientError("invalid_value", "session must be an object", "session")
        allowed = FORK_KEYS if self.op == "fork" else SESSION_KEYS
        for k in s:
            if k not in allowed:
                raise LiveClientError("unknown_parameter", f"Unknown parameter: 'session.{k[:40]}'.", f"session.{k[:40]}")
        if self.op != "fork":
            if not isinstance(s.get("model"), str) or not s["model"]:
                raise LiveClientError("missing_required_parameter", "Missing required parameter: 'session.model'.",
                                      "session.model")
            self.model = s["model"]
            if "instructions" in s:
                if not isinstance(s["instructions"], str):
                    raise LiveClientError("invalid_type", "instructions must be a string", "session.instructions")
                self.instructions = s["instructions"]
        audio = s.get("audio") or {}
        if not isinstance(audio, dict):
            raise LiveClientError("invalid_type", "audio must be an object", "session.audio")
        fmt = audio.get("format")
        if fmt is not None and fmt != {"type": "audio/pcm", "rate": 24000}:
            raise LiveClientError("invalid_value", "the offline model speaks audio/pcm at 24000 Hz only",
                                      "session.audio.format")
        voice = (audio.get("output") or {}).get("voice") if isinstance(audio.get("output"), dict) else None
        if voice is not None:
            self.voice = voice
        if "delegation" in s:
            self.delegation = self._check_delegation(s["delegation"])
        self.store = bool(s.get("store", False))
        self.started = True
        return [self._ev("session.started", event.get("event_id"), session=self.resource())]

    @staticmethod
    def _check_delegation(d: Any) -> dict[str, Any]:
        if d is None:
            return {"type": "client"}
        if not isinstance(d, dict) or d.get("type") not in ("client", "responses", "decisions"):
            raise LiveClientError("invalid_value", "delegation.type must be client, responses or decisions",
                                  "session.delegation.type")
        if d["type"] == "responses":
            r = d.get("responses")
            if not isinstance(r, dict) or not isinstance(r.get("model"), str):
                raise LiveClientError("missing_required_parameter", "delegation.responses.model is required",
                                      "session.delegation.responses.model")
            tools = r.get("tools", [])
            if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("type"), str)
                                                      for t in tools):
                raise LiveClientError("invalid_value", "delegation.responses.tools must be a list of tools",
                                      "session.delegation.responses.tools")
        return dict(d)

    def _update(self, event: Event) -> list[Event]:
        s = event.get("session")
        if not isinstance(s, dict):
            raise LiveClientError("invalid_value", "session must be an object", "session")
        for k in s:
            if k not in ("delegation", "triggers"):
                raise LiveClientError("unknown_parameter", f"session.{k[:40]} cannot change mid-session.",
                                      f"session.{k[:40]}")
        d = s.get("delegation")
        if isinstance(d, dict):
            if d.get("type", self.delegation.get("type")) != self.delegation.get("type"):
                raise LiveClientError("invalid_value", "the delegation type cannot change", "session.delegation.type")
            merged = dict(self.delegation)
            for kind in ("responses", "decisions"):
                if isinstance(d.get(kind), dict):
                    merged[kind] = {**(merged.get(kind) or {}), **d[kind]}
            self.delegation = self._check_delegation(merged)
        return [self._ev("session.updated", event.get("event_id"), session=self.resource())]

    def _mute(self, event: Event, muted: bool) -> list[Event]:
        self._muted = muted
        return [self._ev("session.input_audio.muted" if muted else "session.input_audio.unmuted", event.get("event_id"))]

    def _fixture(self, event: Event) -> list[Event]:
        pcm = audio_of(event)
        self._output_end_ms = max(self._output_end_ms, self._input_ms) + len(pcm) // BYTES_PER_MS
        eid = event.get("event_id")
        return [self._ev("session.output_audio.fixture.playing", eid), self._ev("session.output_audio.fixture.played")]

    def _append(self, event: Event) -> list[Event]:
        return self.feed_audio(audio_of(event))

    def feed_audio(self, pcm: bytes) -> list[Event]:
        """Input audio (PCM16 24 kHz mono) from an append or, over WebRTC, the microphone track."""
        self._input_ms += len(pcm) // BYTES_PER_MS
        if self._muted:
            pcm = bytes(len(pcm))  # muted: the model hears silence (and the session still bills)
        out: list[Event] = []
        for vad_event in self._vad.feed(pcm):
            if isinstance(vad_event, SpeechStopped):
                out.extend(self._voice_turn(vad_event))
        return out

    def _context_append(self, event: Event) -> list[Event]:
        content = event.get("content")
        if not isinstance(content, str):
            raise LiveClientError("invalid_type", "content must be a string", "content")
        if "delegation_id" not in event:
            raise LiveClientError("missing_required_parameter", "delegation_id is required (it may be null)",
                                  "delegation_id")
        delegation_id = event.get("delegation_id")
        if delegation_id is not None and (self._responses_mode or delegation_id not in self._pending_client_delegations):
            raise LiveClientError("invalid_value", "delegation_id names no open client delegation", "delegation_id")
        kind = event["type"].split(".")[1]  # instructions, thinking, commentary
        at = max(self._input_ms, self._output_end_ms)
        out = [self._ev(f"session.{kind}.appended", event.get("event_id"), start_ms=at, end_ms=at)]
        if kind == "commentary" or (kind == "thinking" and delegation_id is not None):
            self._pending_client_delegations.discard(delegation_id)  # type: ignore[arg-type]
            self._steps.append(self._speak(content))
        return out

    def _item_create(self, event: Event) -> list[Event]:
        if not self._responses_mode:
            raise LiveClientError("invalid_request_error", "response.item.create requires Responses delegation.")
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") not in ("message", "function_call_output"):
            raise LiveClientError("invalid_value", "item must be a message or a function_call_output", "item")
        if item["type"] == "function_call_output" and not isinstance(item.get("call_id"), str):
            raise LiveClientError("invalid_value", "function_call_output needs call_id", "item.call_id")
        self._queued.append(dict(item))
        return []

    def _response_create(self, event: Event) -> list[Event]:
        if not self._responses_mode:
            raise LiveClientError("invalid_request_error", "response.create requires Responses delegation.")
        if not self._queued and not self._items:
            raise LiveClientError("invalid_request_error", "nothing to respond to: send response.item.create first")
        self._items.extend(self._queued)
        self._queued = []
        del self._items[:-MAX_ITEMS]
        self._steps.append(self._backend_response(None, event.get("event_id")))
        return []

    def _close(self, event: Event) -> list[Event]:
        self._steps.clear()
        self.closed = True
        return [self._ev("session.closed", event.get("event_id"), reason="close_requested", session=self.resource(),
                         usage={"seconds": self.seconds})]

    # -- turns ---------------------------------------------------------------------------------

    def take_unheard(self) -> list[tuple[str, bytes]]:
        """The utterances to recognize, ``(turn id, pcm)``, each handed out once."""
        return self._unheard.take()

    def heard(self, turn_id: str, words: str | None) -> list[Event]:
        """What was recognized in an utterance (``None``: not recognized): the turn goes on."""
        stopped = self._unheard.heard(turn_id)
        if stopped is None or self.closed:
            return []
        return self._heard_turn(stopped, words if words else None)

    def _voice_turn(self, stopped: SpeechStopped) -> list[Event]:
        if self._unheard.ready:
            self._unheard.listen(self._id("turn"), stopped.pcm, stopped)
            return []
        return self._heard_turn(stopped, None)

    def _heard_turn(self, stopped: SpeechStopped, words: str | None) -> list[Event]:
        ms = len(stopped.pcm) // BYTES_PER_MS
        heard = words or placeholder(ms)
        start = max(0, stopped.audio_end_ms - ms)
        out = self._fragments("session.input_transcript.delta", heard, start, stopped.audio_end_ms)
        if self._responses_mode:
            delegation_id = self._id("item")
            self._items.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": heard}]})
            response_id = self._id("resp")
            out.append(self._ev("session.delegation.created", offset_ms=stopped.audio_end_ms, delegation={
                "id": delegation_id, "type": "delegation", "target": "responses", "response_id": response_id}))
            self._steps.append(self._backend_response(delegation_id, None, response_id))
        else:
            delegation_id = self._id("item")
            self._pending_client_delegations.add(delegation_id)
            out.append(self._ev("session.delegation.created", offset_ms=stopped.audio_end_ms, delegation={
                "id": delegation_id, "type": "delegation", "target": "client"}))
            self._steps.append(self._speak(HOLDING_LINE))
        return out

    def _fragments(self, etype: str, text: str, start_ms: int, end_ms: int) -> list[Event]:
        words = text.split(" ")
        step = max(1, (end_ms - start_ms) // max(1, len(words)))
        out = []
        for i, word in enumerate(words):
            a = start_ms + i * step
            out.append(self._ev(etype, delta=word if i == 0 else " " + word, start_ms=a,
                                end_ms=end_ms if i == len(words) - 1 else a + step))
        return out

    def _speak(self, text: str) -> Iterator[list[Event]]:
        """The voice model says ``text``: audio deltas and output transcript fragments, a word a step."""
        t = max(self._input_ms, self._output_end_ms)
        # fragments carry their own spacing: a new utterance after earlier speech starts with one
        lead = " " if self._output_end_ms else ""
        for word in self.brain.speak(text, lead=lead):
            batch = [self._ev("session.output_transcript.delta", delta=word.delta, start_ms=t, end_ms=t + word.ms)]
            batch += [{"type": "session.output_audio.delta", "delta": chunk} for chunk in word.chunks()]
            t += word.ms
            self._output_end_ms = t
            yield batch

    # -- the Responses backend -----------------------------------------------------------------

    def _tool_named(self, text: str) -> dict[str, Any] | None:
        functions = [t for t in self._backend.get("tools") or []
                     if t.get("type") == "function" and isinstance(t.get("name"), str)]
        return self.brain.choose_tool(text, functions, self._backend.get("tool_choice", "auto"))

    def _backend_response(self, delegation_id: str | None, client_event_id: Any,
                          response_id: str | None = None) -> Iterator[list[Event]]:
        rid = response_id or self._id("resp")
        model = self._backend.get("model") or DEFAULT_BACKEND_MODEL
        seq = iter(range(1_000_000))

        def wrap(inner: Event, cid: Any = None) -> Event:
            inner["sequence_number"] = next(seq)
            return self._ev("response.event", cid, event=inner, delegation_id=delegation_id)

        snapshot: dict[str, Any] = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model,
                    "status": "in_progress", "output": [], "parallel_tool_calls": True, "tool_choice": "auto",
                    "tools": [], "instructions": None, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
                    "error": None, "incomplete_details": None}
        yield [wrap({"type": "response.created", "response": dict(snapshot)}, client_event_id)]
        last = self._items[-1] if self._items else {}
        text_in = " ".join(p.get("text", "") for p in last.get("content") or [] if isinstance(p, dict)) \
            if last.get("type") == "message" else ""
        tool = self._tool_named(text_in) if text_in else None
        out_text = ""
        if tool is not None:
            call_id, item_id = self._id("call"), self._id("fc")
            arguments = fill_arguments(text_in, tool)
            item = {"type": "function_call", "id": item_id, "call_id": call_id, "name": tool["name"],
                    "arguments": "", "status": "in_progress"}
            yield [wrap({"type": "response.output_item.added", "output_index": 0, "item": dict(item)})]
            yield [wrap({"type": "response.function_call_arguments.delta", "item_id": item_id, "output_index": 0,
                         "delta": arguments})]
            yield [wrap({"type": "response.function_call_arguments.done", "item_id": item_id, "output_index": 0,
                         "arguments": arguments, "name": tool["name"]})]
            item.update(arguments=arguments, status="completed")
            self._items.append(dict(item))
            out_text = arguments
            yield [wrap({"type": "response.output_item.done", "output_index": 0, "item": dict(item)})]
        else:
            reply = self._reply(last)
            item_id = self._id("msg")
            message: dict[str, Any] = {"type": "message", "id": item_id, "role": "assistant", "status": "in_progress", "content": []}
            yield [wrap({"type": "response.output_item.added", "output_index": 0, "item": dict(message)})]
            part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": []}
            yield [wrap({"type": "response.content_part.added", "item_id": item_id, "output_index": 0,
                         "content_index": 0, "part": dict(part)})]
            for i, word in enumerate(reply.split(" ")):
                delta = word if i == 0 else " " + word
                out_text += delta
                yield [wrap({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0,
                             "content_index": 0, "delta": delta, "logprobs": []})]
            part["text"] = out_text
            yield [wrap({"type": "response.output_text.done", "item_id": item_id, "output_index": 0,
                         "content_index": 0, "text": out_text, "logprobs": []}),
                   wrap({"type": "response.content_part.done", "item_id": item_id, "output_index": 0,
                         "content_index": 0, "part": dict(part)})]
            message.update(status="completed", content=[part])
            self._items.append(dict(message))
            yield [wrap({"type": "response.output_item.done", "output_index": 0, "item": dict(message)})]
        done = dict(snapshot, status="completed", usage=self._usage(out_text))
        yield [wrap({"type": "response.completed", "response": done})]
        if tool is None:
            yield from self._speak(out_text)

    def _reply(self, last: Event) -> str:
        if last.get("type") == "function_call_output":
            call = next((i for i in self._items if i.get("type") == "function_call"
                         and i.get("call_id") == last.get("call_id")), None)
            return self.brain.tool_reply(call["name"] if call else "the tool", last.get("output", ""))
        text = " ".join(p.get("text", "") for p in last.get("content") or [] if isinstance(p, dict)).strip()
        return self.brain.reply(text or None)  # an empty message is greeted like none

    def _usage(self, out_text: str) -> dict[str, Any]:
        texts = [self.instructions, self._backend.get("instructions") or ""]
        for item in self._items:
            texts += [p.get("text", "") for p in item.get("content") or [] if isinstance(p, dict)]
            texts += [item.get("output", "") or "", item.get("arguments", "") or ""]
        input_tokens = sum(text_tokens(t) for t in texts if isinstance(t, str))
        cached = cached_prefix(min(self._prev_input_tokens, input_tokens))
        self._prev_input_tokens = input_tokens
        output_tokens = text_tokens(out_text)
        return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
                "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens}

    # -- the server's pacing -------------------------------------------------------------------

    def next_chunk(self) -> list[Event]:
        while self._steps:
            try:
                return next(self._steps[0])
            except StopIteration:
                self._steps.pop(0)
        return []

    def usage_tick(self) -> list[Event]:
        """``session.usage.updated`` when the billed seconds rose since the last one."""
        if not self.started or self.closed or self.seconds <= self._billed_seconds:
            return []
        self._billed_seconds = self.seconds
        return [self._ev("session.usage.updated", usage={"seconds": self.seconds},
                         context_window={"usage_ratio": round(min(1.0, self.seconds / 3600), 4)})]
