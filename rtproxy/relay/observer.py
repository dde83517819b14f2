"""A session with no client leg: the gateway's own sideband on a WebRTC call.

The media and the client's events travel browser ↔ provider; the gateway only watches the
provider's sideband (``?call_id=…``). The session core still runs its pumps, collector, budget
checks and records — the client side is :class:`SilentLeg`, which never has anything to send and
drops what it is given (the provider's events have no one to go to here). It never sends
anything upstream either: the observer's only words to the provider are the ones the session
core sends when it must (``response.cancel`` while settling is never needed — the call, not the
observer, owns the responses — so observers run with no settle window).
"""

from __future__ import annotations

import trio

from ..auth.admission import HandshakeRequest
from .wsleg import LegClosed, Message


class SilentLeg:
    """A client leg that says nothing, drops what it is sent, and closes when told."""

    def __init__(self) -> None:
        self._closed = trio.Event()
        self.close_code: int | None = None

    async def receive(self) -> list[Message]:
        await self._closed.wait()
        raise LegClosed(self.close_code or 1000, "observer closed", by_peer=True)

    async def send(self, messages: list[Message]) -> None:
        if self._closed.is_set():
            raise LegClosed(self.close_code or 1000, "observer closed", by_peer=True)

    async def send_text(self, text: str) -> None:
        await self.send([(True, text.encode())])

    async def close(self, code: int, reason: str = "") -> None:
        if not self._closed.is_set():
            self.close_code = code
            self._closed.set()


class ObserverHandshake:
    """The pending "handshake" of an observer: accepted at once, a refusal only remembered."""

    def __init__(self, request: HandshakeRequest) -> None:
        self.request = request
        self.leg = SilentLeg()
        self.refused: tuple[int, bytes] | None = None

    async def accept(self, subprotocol: str | None) -> SilentLeg:
        return self.leg

    async def reject(self, status: int, body: bytes) -> None:
        self.refused = (status, body)
