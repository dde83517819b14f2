"""The realtime route on the main port: a plain ASGI websocket handler in front of the Quart app.

It bypasses Quart's websocket object (its extra task, signals, the close-code and ``None``-frame
surprises of notes/trio-stack.md §4) and speaks ASGI to hypercorn directly, presenting the same
:class:`~rtproxy.session.ClientHandshake` to the session core as the realtime listener does.
Rejections use the ASGI websocket denial response (an HTTP status and JSON body).
"""

from __future__ import annotations

from typing import Any

from .admission import HandshakeRequest
from .wsleg import LegClosed, Message, clip_reason, sendable_code

ASGIMessage = dict[str, Any]


def request_from_scope(scope: dict[str, Any]) -> HandshakeRequest:
    client = scope.get("client") or ("", 0)
    return HandshakeRequest(
        path=scope.get("path", ""),
        query_string=(scope.get("query_string") or b"").decode("latin-1"),
        headers=tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", ())),
        client_ip=str(client[0]) if client else "",
    )


class AsgiClientLeg:
    def __init__(self, receive: Any, send: Any) -> None:
        self._receive = receive
        self._send = send
        self._closed: LegClosed | None = None

    async def receive(self) -> list[Message]:
        if self._closed is not None:
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

    async def send(self, messages: list[Message]) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            for is_text, payload in messages:
                if is_text:
                    await self._send({"type": "websocket.send", "text": payload.decode("utf-8", "replace")})
                else:
                    await self._send({"type": "websocket.send", "bytes": payload})
        except Exception as exc:  # hypercorn raises (various types) when the connection is gone
            self._closed = LegClosed(1006, "connection lost")
            raise self._closed from exc

    async def send_text(self, text: str) -> None:
        await self.send([(True, text.encode("utf-8"))])

    async def close(self, code: int, reason: str = "") -> None:
        if self._closed is not None and self._closed.by_peer:
            return
        self._closed = self._closed or LegClosed(code, reason, by_peer=False)
        try:
            await self._send({"type": "websocket.close", "code": sendable_code(code, 1011),
                              "reason": clip_reason(reason)})
        except Exception:
            pass


class AsgiHandshake:
    def __init__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
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
        return AsgiClientLeg(self._receive, self._send)
