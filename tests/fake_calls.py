"""A fake provider's WebRTC calls API over real loopback HTTP and WebSocket (hypercorn on trio):
``POST /v1/realtime/calls`` answers a fixed SDP, ``…/{call_id}/{op}`` is recorded, and the
sideband ``/v1/realtime?call_id=`` plays a script — so tests can make the provider refuse, end a
call, or drop its sideband mid-call, which the offline peer never does."""

from __future__ import annotations

import json
import socket
from typing import Any

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

ANSWER_SDP = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
RESPONSE_DONE = {"type": "response.done", "event_id": "ev_2", "response": {
    "id": "resp_1", "object": "realtime.response", "status": "completed", "output": [],
    "usage": {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10,
              "input_token_details": {"text_tokens": 20, "audio_tokens": 0, "cached_tokens": 0},
              "output_token_details": {"text_tokens": 10, "audio_tokens": 0}}}}


@attrs.define
class FakeCalls:
    port: int = 0
    #: Set to an HTTP status to refuse offers (with a body that echoes a key, as providers' do).
    refuse_status: int | None = None
    #: How the sideband ends after its script: "end" (1000: the call ended), "drop" (1011), "refuse" (404);
    #: "switch" reports the session switched to another model, and waits.
    sideband: str = "end"
    offers: list[tuple[dict[str, str], bytes]] = attrs.Factory(list)
    ops: list[tuple[str, str, dict[str, str]]] = attrs.Factory(list)
    sideband_headers: list[dict[str, str]] = attrs.Factory(list)
    sent_by_observer: list[Any] = attrs.Factory(list)
    hung_up: trio.Event = attrs.Factory(trio.Event)
    sideband_ended: trio.Event = attrs.Factory(trio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if scope["type"] == "websocket":
            await self._sideband(scope, headers, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/v1/realtime/calls":
            self.offers.append((headers, body))
            if self.refuse_status is not None:
                await _respond(send, self.refuse_status, json.dumps({"error": {
                    "message": "Invalid SDP; your key sk-proj-abcdefgh1234 was fine", "type": "invalid_request_error"}
                }).encode(), "application/json")
                return
            await _respond(send, 201, ANSWER_SDP, "application/sdp", [(b"location", b"/v1/realtime/calls/rtc_fake1")])
            return
        parts = path.strip("/").split("/")
        if len(parts) == 5 and parts[:3] == ["v1", "realtime", "calls"]:
            self.ops.append((parts[3], parts[4], headers))
            if parts[4] == "hangup":
                self.hung_up.set()
            await _respond(send, 200, b"", "application/json")
            return
        await _respond(send, 404, b'{"error":{"message":"not found"}}', "application/json")

    async def _sideband(self, scope: dict[str, Any], headers: dict[str, str], receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        self.sideband_headers.append(headers)
        if self.sideband == "refuse" or b"call_id=rtc_fake1" not in scope["query_string"]:
            await send({"type": "websocket.close", "code": 1008})
            self.sideband_ended.set()
            return
        await send({"type": "websocket.accept"})
        if self.sideband == "switch":  # the client switched the model over its data channel
            await send({"type": "websocket.send", "text": json.dumps({"type": "session.updated", "event_id": "ev_s",
                        "session": {"type": "realtime", "model": "gpt-realtime-expensive"}})})
            with trio.move_on_after(10):
                await receive()  # the gateway closes its sideband (and hangs the call up)
            self.sideband_ended.set()
            return
        for event in ({"type": "session.created", "event_id": "ev_1", "session": {"id": "sess_fake", "type": "realtime",
                                                                                "model": "gpt-realtime"}},
                      {"type": "response.created", "event_id": "ev_1b", "response": {"id": "resp_1"}},
                      RESPONSE_DONE):
            await send({"type": "websocket.send", "text": json.dumps(event)})
        with trio.move_on_after(0.2):
            message = await receive()  # an observer sends nothing; give it a moment to prove it
            if message["type"] == "websocket.receive":
                self.sent_by_observer.append(message.get("text") or message.get("bytes"))
        await send({"type": "websocket.close", "code": 1000 if self.sideband == "end" else 1011})
        self.sideband_ended.set()


async def _respond(send: Any, status: int, body: bytes, content_type: str,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


async def serve_fake_calls(*, task_status: trio.TaskStatus[FakeCalls] = trio.TASK_STATUS_IGNORED) -> None:
    fake = FakeCalls()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    fake.port = sock.getsockname()[1]
    config = HypercornConfig()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, fake, config)  # type: ignore[arg-type]
        task_status.started(fake)
