"""A scripted fake of xAI's Grok Voice endpoint on loopback (trio-websocket), emitting xAI's quirks
verbatim (protocol/xai-realtime.md §4): ``conversation.created`` first and no ``session.created``,
``ping`` keepalives, ``usage: {}``, ``role: "tool"`` on function calls, no ``output_index`` /
``content_index``, ``content_part.done`` without ``part``, a DTMF event, and responses that hold an
audio message *and* a function call. It records what the gateway sends and notes every frame
xAI would not take (:attr:`FakeXai.problems`).

The conversation, by the user's words (typed, or "heard" from appended audio: the fake hears
:data:`HEARD`): with the ``get_weather`` tool and no tool output yet, "Let me check." and a
``get_weather`` call; after a tool output, the forecast; otherwise "Hi, this is Grok.".
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from .fakes import SeenRequest

XAI_VOICES = ("eve", "ara", "rex", "sal", "leo")
#: What the fake hears in any appended audio.
HEARD = "What is the weather in Paris?"
FORECAST = "It is sunny and 21 degrees in Paris."
GREETING = "Hi, this is Grok."
#: The client sent no append for this long: the turn is over (the fake's VAD).
QUIET_S = 0.3
#: Audio in each output delta: 40 ms of 24 kHz PCM16.
DELTA_BYTES = 1920


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def ev(etype: str, **fields: Any) -> dict[str, Any]:
    return {"type": etype, "event_id": _id("event"), **fields}


def message_frames(rid: str, text: str, *, audio: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """An assistant message streamed as xAI streams one (no indices, no part on the done); the item."""
    item_id = _id("msg")
    item: dict[str, Any] = {"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                            "status": "in_progress", "content": []}
    ids = {"response_id": rid, "item_id": item_id}
    frames = [ev("response.output_item.added", response_id=rid, item=dict(item)),
              ev("conversation.item.added", item=dict(item)),
              ev("response.content_part.added", **ids,
                 part={"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""})]
    for word in text.split(" "):
        piece = word + " "
        if audio:
            frames.append(ev("response.output_audio_transcript.delta", **ids, delta=piece))
            frames.append(ev("response.output_audio.delta", **ids, delta=base64.b64encode(bytes(DELTA_BYTES)).decode()))
        else:
            frames.append(ev("response.output_text.delta", **ids, delta=piece))
    said = text + " "
    if audio:
        frames += [ev("response.output_audio.done", **ids),
                   ev("response.output_audio_transcript.done", **ids, transcript=said)]
        content = [{"type": "output_audio", "transcript": said}]
    else:
        frames.append(ev("response.output_text.done", **ids, text=said))
        content = [{"type": "output_text", "text": said}]
    frames.append(ev("response.content_part.done", **ids))  # xAI: no part
    done = {**item, "status": "completed", "content": content}
    frames += [ev("response.output_item.done", response_id=rid, item=done), ev("conversation.item.done", item=done)]
    return frames, done


def call_frames(rid: str, name: str, arguments: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A function call as xAI streams one (``role: "tool"`` on its conversation item, no indices)."""
    item_id, call_id = _id("fc"), _id("call")
    item: dict[str, Any] = {"id": item_id, "object": "realtime.item", "type": "function_call", "status": "in_progress",
                            "name": name, "call_id": call_id, "arguments": ""}
    done = {**item, "status": "completed", "arguments": arguments}
    frames = [ev("response.output_item.added", response_id=rid, item=dict(item)),
              ev("conversation.item.added", item={**item, "role": "tool"}),
              ev("response.function_call_arguments.delta", response_id=rid, item_id=item_id, call_id=call_id,
                 delta=arguments),
              ev("response.function_call_arguments.done", response_id=rid, item_id=item_id, call_id=call_id,
                 name=name, arguments=arguments),
              ev("response.output_item.done", response_id=rid, item=done),
              ev("conversation.item.done", item={**done, "role": "tool"})]
    return frames, done


def response_frames(parts: list[tuple[str, str]], *, audio: bool) -> list[dict[str, Any]]:
    """One response of messages (``("message", text)``) and calls (``("call", arguments)`` of
    get_weather), with ``usage: {}`` and pings between its events, as xAI sends them."""
    rid = _id("resp")
    frames = [ev("response.created", response={"id": rid, "object": "realtime.response", "status": "in_progress",
                                               "output": [], "usage": {}}), {"type": "ping"}]
    output = []
    for kind, value in parts:
        made, item = message_frames(rid, value, audio=audio) if kind == "message" else \
            call_frames(rid, "get_weather", value)
        frames += made
        frames.append({"type": "ping"})
        output.append(item)
    frames.append(ev("response.done", response={"id": rid, "object": "realtime.response", "status": "completed",
                                                "output": output, "usage": {}}))
    return frames


@attrs.define
class FakeXai:
    port: int = 0
    requests: list[SeenRequest] = attrs.Factory(list)
    #: Client events as the gateway sent them, parsed.
    received: list[dict[str, Any]] = attrs.Factory(list)
    #: What xAI would not take (a nested voice, an OpenAI voice, an event it has not, …).
    problems: list[str] = attrs.Factory(list)
    #: Appends that came as the exact bytes a client wrote (a compact ``{"type":"input_audio_buffer.append"``).
    compact_appends: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: WebSocketRequest) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        self.requests.append(SeenRequest(request.path, headers, list(request.proposed_subprotocols)))
        if not request.path.startswith("/v1/realtime?model="):
            await request.reject(404)
            return
        ws = await request.accept()
        try:
            await _Session(self, ws).run()
        except ConnectionClosed:
            pass


class _Session:
    def __init__(self, fake: FakeXai, ws: WebSocketConnection) -> None:
        self.fake, self.ws = fake, ws
        self.session: dict[str, Any] = {"id": _id("sess"), "object": "realtime.session", "voice": "eve",
                                        "turn_detection": {"type": "server_vad"}, "output_modalities": ["audio"],
                                        "instructions": "", "tools": [],
                                        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
                                                  "output": {"format": {"type": "audio/pcm", "rate": 24000}}}}
        self.heard_bytes = 0
        self.last_user = ""
        self.tool_output: str | None = None

    async def send(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            await self.ws.send_message(json.dumps(frame))

    async def run(self) -> None:
        await self.send([ev("conversation.created", conversation={"id": _id("conv"), "object": "realtime.conversation"}),
                         {"type": "ping"}])
        while True:
            message: str | bytes | None = None
            with trio.move_on_after(QUIET_S if self.heard_bytes else 3600):
                message = await self.ws.get_message()
            if message is None:
                await self.end_of_speech()
                continue
            raw = message.encode() if isinstance(message, str) else message
            event = json.loads(raw)
            self.fake.received.append(event)
            await self.on_event(event, raw)

    async def on_event(self, event: dict[str, Any], raw: bytes) -> None:
        etype = event.get("type")
        if etype == "session.update":
            self.update(event["session"])
            await self.send([ev("session.updated", session=self.session)])
        elif etype == "input_audio_buffer.append":
            self.fake.compact_appends += raw.startswith(b'{"type":"input_audio_buffer.append"')
            self.heard_bytes += len(base64.b64decode(event["audio"]))
        elif etype == "conversation.item.create":
            item = {"id": _id("item"), "object": "realtime.item", "status": "completed", **event["item"]}
            if item.get("type") == "function_call_output":
                self.tool_output = item.get("output")
            else:
                self.last_user = " ".join(p.get("text", "") for p in item.get("content") or [])
            await self.send([ev("conversation.item.added", item=item), ev("conversation.item.done", item=item)])
        elif etype == "response.create":
            await self.respond()
        elif etype in ("input_audio_buffer.commit", "input_audio_buffer.clear", "response.cancel"):
            pass
        else:
            self.fake.problems.append(f"xAI has no client event {etype!r}")

    def update(self, session: dict[str, Any]) -> None:
        audio = session.get("audio") or {}
        if "voice" in (audio.get("output") or {}):
            self.fake.problems.append("a nested audio.output.voice (xAI ignores it)")
        if {"turn_detection", "transcription"} & set(audio.get("input") or {}):
            self.fake.problems.append(f"nested audio.input keys xAI does not take: {sorted(audio['input'])}")
        if "model" in session:
            self.fake.problems.append(f"session.model {session['model']!r}")
        if "voice" in session:
            if str(session["voice"]).lower() not in XAI_VOICES:
                self.fake.problems.append(f"voice {session['voice']!r} is not xAI's")
            self.session["voice"] = session["voice"]
        for name in ("turn_detection", "instructions", "tools", "output_modalities"):
            if name in session:
                self.session[name] = session[name]

    async def end_of_speech(self) -> None:
        """The fake's VAD: the user stopped speaking; the turn, its transcript, the answer."""
        self.heard_bytes = 0
        item_id = _id("item")
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}]}
        self.last_user = HEARD
        await self.send([ev("input_audio_buffer.speech_started", item_id=item_id, audio_start_ms=300),
                         ev("input_audio_buffer.speech_stopped", item_id=item_id, audio_end_ms=1900),
                         ev("input_audio_buffer.committed", item_id=item_id, previous_item_id=None),
                         ev("conversation.item.added", item=item),
                         {"type": "input_audio_buffer.dtmf_event_received", "event": "5", "received_at": 1},
                         ev("conversation.item.input_audio_transcription.completed", item_id=item_id,
                            content_index=0, transcript=HEARD)])
        if (self.session.get("turn_detection") or {}).get("type") == "server_vad":
            await self.respond()

    async def respond(self) -> None:
        audio = self.session.get("output_modalities") != ["text"]
        tools = {t.get("name") for t in self.session.get("tools") or []}
        if self.tool_output is not None:
            parts = [("message", FORECAST)]
            self.tool_output = None
        elif "get_weather" in tools and "weather" in self.last_user.lower():
            parts = [("message", "Let me check."), ("call", json.dumps({"city": "Paris"}))]
        else:
            parts = [("message", GREETING)]
        await self.send(response_frames(parts, audio=audio))


async def serve_fake_xai(*, task_status: trio.TaskStatus[FakeXai] = trio.TASK_STATUS_IGNORED) -> None:
    fake = FakeXai()

    async def handler(request: WebSocketRequest) -> None:
        await fake.handle(request)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(lambda task_status: serve_websocket(
            handler, "127.0.0.1", 0, None, max_message_size=64 * 2**20, message_queue_size=64,
            task_status=task_status))
        fake.port = server.port
        task_status.started(fake)
