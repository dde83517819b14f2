"""A request that is not a WebSocket handshake gets a JSON error body from the offline model.

trio-websocket answers one (a plain ``GET``, a missing ``Sec-WebSocket-Key``, bytes that are not
HTTP) with wsproto's bare rejection: a status and an empty body, which a client or a developer
with curl cannot read. :class:`HandshakeGuardListener` wraps the server's listener: each
connection's first bytes go through a scratch wsproto connection before trio-websocket sees
them; a request wsproto refuses is answered here, with the same status and an OpenAI-shaped
error body (``{"error": {"type": "invalid_request_error", "message": ...}}``), and the stream
then ends for trio-websocket as if the client had gone. A real handshake is passed on untouched.
"""

from __future__ import annotations

import json

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import RejectConnection, RejectData, Request
from wsproto.utilities import RemoteProtocolError

#: How much of a connection is read at a time while its handshake is being checked.
RECEIVE_BYTES = 4096


def rejection(status: int, problem: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and JSON body that answer a request that is not a WebSocket handshake."""
    body = json.dumps({"error": {
        "type": "invalid_request_error", "code": "websocket_handshake_required",
        "message": f"not a WebSocket handshake ({problem}): connect with a WebSocket client, "
                   "e.g. to ws://HOST:PORT/v1/realtime?model=gpt-realtime",
    }}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    return headers, body


class HandshakeGuardStream(trio.abc.Stream):
    """A server stream whose opening handshake is checked (by wsproto) before it is handed on."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._scratch: WSConnection | None = WSConnection(ConnectionType.SERVER)
        self._checked = b""

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while self._scratch is not None:
            data = await self.stream.receive_some(RECEIVE_BYTES)
            if not data:
                self._scratch = None
                break
            self._checked += data
            try:
                self._scratch.receive_data(data)
                handshake = any(isinstance(event, Request) for event in self._scratch.events())
            except RemoteProtocolError as exc:
                await self._reject(self._scratch, exc)
                self._scratch, self._checked = None, b""
                return b""  # trio-websocket sees a client that went away, and never answers it
            if handshake:
                self._scratch = None
        if self._checked:
            size = len(self._checked) if max_bytes is None else max_bytes
            out, self._checked = self._checked[:size], self._checked[size:]
            return out
        return await self.stream.receive_some(max_bytes)

    async def _reject(self, scratch: WSConnection, exc: RemoteProtocolError) -> None:
        hint = exc.event_hint if isinstance(exc.event_hint, RejectConnection) else RejectConnection()
        headers, body = rejection(hint.status_code, str(exc))
        extra = [(k, v) for k, v in hint.headers if k.lower() not in (b"content-type", b"content-length")]
        try:
            await self.stream.send_all(
                scratch.send(RejectConnection(status_code=hint.status_code, headers=headers + extra, has_body=True))
                + scratch.send(RejectData(data=body, body_finished=True)))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()


class HandshakeGuardListener(trio.abc.Listener[trio.abc.Stream]):
    """Wraps a listener so that each accepted stream is a :class:`HandshakeGuardStream`."""

    def __init__(self, listener: trio.SocketListener) -> None:
        self.listener = listener

    @property
    def socket(self) -> trio.socket.SocketType:
        return self.listener.socket

    async def accept(self) -> HandshakeGuardStream:
        return HandshakeGuardStream(await self.listener.accept())

    async def aclose(self) -> None:
        await self.listener.aclose()
