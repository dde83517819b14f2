"""The realtime route on the main port: a plain ASGI websocket handler in front of the Quart app.

It bypasses Quart's websocket object (its extra task, signals, the close-code and ``None``-frame
surprises of notes/trio-stack.md §4) and speaks ASGI to hypercorn directly, presenting the same
:class:`~rtproxy.session.ClientHandshake` to the session core as the realtime listener does.
Rejections use the ASGI websocket denial response (an HTTP status and JSON body).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import trio

from ..auth.admission import HandshakeRequest
from ..relay.wsleg import LegClosed, Message, clip_reason, sendable_code

ASGIMessage = dict[str, Any]


def request_from_scope(scope: dict[str, Any]) -> HandshakeRequest:
    client = scope.get("client") or ("", 0)
    return HandshakeRequest(
        path=scope.get("path", ""),
        query_string=(scope.get("query_string") or b"").decode("latin-1"),
        headers=tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", ())),
        client_ip=str(client[0]) if client else "",
        listener="asgi",
    )


#: Messages queued for a main-port client's writer task. hypercorn shields its socket writes, so
#: a client that stops reading blocks the writer for good; the queue in front of it is where the
#: slow-client limit applies (a full queue for ``send_timeout_s`` closes the session with 1008).
MAIN_PORT_SEND_QUEUE = 16

Spawn = Callable[..., None]


class AsgiClientLeg:
    def __init__(self, receive: Any, send: Any, *, send_timeout_s: float | None = None,
                 spawn: Spawn | None = None) -> None:
        self._receive = receive
        self._send = send
        self._closed: LegClosed | None = None
        #: A client that takes none of its data for this long is closed with 1008.
        self._send_timeout_s = send_timeout_s or math.inf
        self._out: trio.MemorySendChannel[ASGIMessage] | None = None
        self.flushed = trio.Event()
        if spawn is not None:
            self._out, out = trio.open_memory_channel[ASGIMessage](MAIN_PORT_SEND_QUEUE)
            spawn(self._writer, out)
        else:
            self.flushed.set()

    async def _writer(self, out: trio.MemoryReceiveChannel[ASGIMessage]) -> None:
        """Hand queued messages to hypercorn, in order; runs outside the session's nursery so a
        write stuck on a dead-slow client never holds the session open."""
        try:
            async with out:
                async for message in out:
                    try:
                        await self._send(message)
                    except Exception:  # the connection is gone: hypercorn raises various types
                        self._closed = self._closed or LegClosed(1006, "connection lost")
                        return
        finally:
            self.flushed.set()

    async def receive(self) -> list[Message]:
        if self._closed is not None and self._closed.by_peer:
            raise self._closed
        event = await self._receive()
        etype = event["type"]
        if etype == "websocket.receive":
            text = event.get("text")
            if text is not None:
                return [(True, text.encode("utf-8"))]
            return [(False, event.get("bytes") or b"")]
        code = int(event.get("code") or 1005)
        self._closed = LegClosed(code, event.get("reason") or "", by_peer=code != 1009)
        raise self._closed

    async def _put(self, message: ASGIMessage) -> None:
        if self._out is None:
            await self._send(message)
            return
        with trio.move_on_after(self._send_timeout_s) as waiting:
            await self._out.send(message)
        if waiting.cancelled_caught:
            self._closed = LegClosed(1008, "too slow to receive", by_peer=False)
            raise self._closed

    async def send(self, messages: list[Message]) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            for is_text, payload in messages:
                if is_text:
                    await self._put({"type": "websocket.send", "text": payload.decode("utf-8", "replace")})
                else:
                    await self._put({"type": "websocket.send", "bytes": payload})
        except LegClosed:
            raise
        except Exception as exc:  # hypercorn raises (various types) when the connection is gone
            self._closed = LegClosed(1006, "connection lost")
            raise self._closed from exc

    async def send_text(self, text: str) -> None:
        await self.send([(True, text.encode("utf-8"))])

    async def close(self, code: int, reason: str = "") -> None:
        if self._closed is not None and self._closed.by_peer:
            if self._out is not None:
                self._out.close()
            return
        slow = self._closed is not None and self._closed.code == 1008
        self._closed = self._closed or LegClosed(code, reason, by_peer=False)
        message = {"type": "websocket.close", "code": sendable_code(code, 1011), "reason": clip_reason(reason)}
        try:
            if self._out is None:
                await self._send(message)
            else:
                if not slow:
                    with trio.move_on_after(self._send_timeout_s):
                        await self._out.send(message)
                self._out.close()
        except Exception:
            pass


class AsgiHandshake:
    def __init__(self, scope: dict[str, Any], receive: Any, send: Any, *,
                 send_timeout_s: float | None = None, spawn: Spawn | None = None) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._send_timeout_s = send_timeout_s
        self._spawn = spawn
        self.leg: AsgiClientLeg | None = None
        self.request = request_from_scope(scope)

    async def start(self) -> bool:
        """Wait for ``websocket.connect``; False if the client left first."""
        event = await self._receive()
        return event["type"] == "websocket.connect"

    async def reject(self, status: int, body: bytes) -> None:
        if "websocket.http.response" in (self._scope.get("extensions") or {}):
            await self._send({"type": "websocket.http.response.start", "status": status,
                              "headers": [(b"content-type", b"application/json"),
                                          (b"content-length", str(len(body)).encode())]})
            await self._send({"type": "websocket.http.response.body", "body": body})
        else:  # the server cannot send a status: closing before accept becomes 403
            await self._send({"type": "websocket.close", "code": 1008})

    async def accept(self, subprotocol: str | None) -> AsgiClientLeg:
        await self._send({"type": "websocket.accept", "subprotocol": subprotocol})
        self.leg = AsgiClientLeg(self._receive, self._send, send_timeout_s=self._send_timeout_s, spawn=self._spawn)
        return self.leg

    async def finish(self, timeout_s: float) -> None:
        """Let the writer deliver what is queued (the close with our code) before the handler
        returns: hypercorn closes with 1000 itself once the application is done."""
        if self.leg is not None:
            with trio.move_on_after(timeout_s):
                await self.leg.flushed.wait()
