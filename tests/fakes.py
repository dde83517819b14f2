"""A scripted fake upstream on loopback that records what the proxy sends it (trio-websocket)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

SESSION_CREATED = json.dumps({"type": "session.created", "event_id": "event_fake_1",
                              "session": {"id": "sess_fake", "type": "realtime", "object": "realtime.session"}})

Behaviour = Callable[[WebSocketConnection, "FakeUpstream"], Awaitable[None]]


@attrs.define
class SeenRequest:
    path: str
    headers: dict[str, str]
    subprotocols: list[str]


async def echo(ws: WebSocketConnection, fake: FakeUpstream) -> None:
    """session.created, then every message straight back."""
    await ws.send_message(SESSION_CREATED)
    while True:
        message = await ws.get_message()
        fake.received.append(message)
        await ws.send_message(message)


@attrs.define
class FakeUpstream:
    port: int = 0
    behaviour: Behaviour = echo
    #: Set to an HTTP status to refuse handshakes.
    reject_status: int | None = None
    #: Seconds to wait before answering the handshake (connect-timeout tests).
    accept_delay_s: float = 0.0
    requests: list[SeenRequest] = attrs.Factory(list)
    received: list[Any] = attrs.Factory(list)
    #: (code, reason) of each close the proxy sent us, in order.
    closes: list[tuple[int | None, str | None]] = attrs.Factory(list)
    closed: trio.Event = attrs.Factory(trio.Event)
    connected: trio.Event = attrs.Factory(trio.Event)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def handle(self, request: WebSocketRequest) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        self.requests.append(SeenRequest(request.path, headers, list(request.proposed_subprotocols)))
        if self.accept_delay_s:
            await trio.sleep(self.accept_delay_s)
        if self.reject_status is not None:
            await request.reject(self.reject_status, body=b'{"error":{"message":"Incorrect API key provided: sk-pr****1234"}}')
            return
        ws = await request.accept()
        self.connected.set()
        try:
            await self.behaviour(ws, self)
        except ConnectionClosed as exc:
            self.closes.append((exc.reason.code, exc.reason.reason))
        finally:
            self.closed.set()


async def serve_fake_upstream(*, task_status: trio.TaskStatus[FakeUpstream] = trio.TASK_STATUS_IGNORED) -> None:
    fake = FakeUpstream()

    async def handler(request: WebSocketRequest) -> None:
        await fake.handle(request)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(lambda task_status: serve_websocket(
            handler, "127.0.0.1", 0, None, max_message_size=64 * 2**20, message_queue_size=64,
            task_status=task_status))
        fake.port = server.port
        task_status.started(fake)
