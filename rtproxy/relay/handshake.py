"""What the session core sees of a client: a pending handshake and, once accepted, a leg.

Both listeners present a :class:`ClientHandshake`; refusals go out through
:func:`deliver_rejection`: an HTTP status and JSON body for header clients, or (for a browser,
which cannot read the status of a refused upgrade) an accepted socket, one protocol ``error``
event and a ``4000 + status`` close.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

from ..auth.admission import HandshakeRequest, Rejection
from ..errors import UpstreamError, UpstreamRejected
from .wsleg import LegClosed, Message, clip_reason

#: Formats a protocol's error event: (code, message, error_type) → text frame.
ErrorEvent = Callable[[str, str, str], str]


class ClientLeg(Protocol):
    async def receive(self) -> list[Message]: ...
    async def send(self, messages: list[Message]) -> None: ...
    async def send_text(self, text: str) -> None: ...
    async def close(self, code: int, reason: str = "") -> None: ...


class ClientHandshake(Protocol):
    """A client's pending WebSocket handshake, as either listener presents it."""

    request: HandshakeRequest

    async def reject(self, status: int, body: bytes) -> None:
        """Refuse with an HTTP response (``body`` is JSON)."""

    async def accept(self, subprotocol: str | None) -> ClientLeg:
        """Complete the handshake with 101, echoing ``subprotocol``."""


def error_body(code: str, message: str, error_type: str) -> bytes:
    return json.dumps({"error": {"type": error_type, "code": code, "message": message}}).encode()


async def deliver_rejection(hs: ClientHandshake, rejection: Rejection, error_event: ErrorEvent | None, *,
                            close_code: int | None = None) -> None:
    """HTTP status for header clients; accept + error event + 4xxx close for browsers. With no
    ``error_event`` (a protocol whose clients read only the close: Gemini Live), accept and close
    with ``close_code`` and the message as the reason."""
    if not rejection.browser:
        await hs.reject(rejection.status, error_body(rejection.code, rejection.message, rejection.error_type))
        return
    leg = await hs.accept(rejection.subprotocol)
    if error_event is not None:
        try:
            await leg.send_text(error_event(rejection.code, rejection.message, rejection.error_type))
        except LegClosed:
            pass
    await leg.close(close_code or rejection.close_code, clip_reason(rejection.message))


def upstream_rejection(exc: UpstreamError, browser: bool, subprotocol: str | None) -> Rejection:
    """Map an upstream failure to what the client is told. The upstream's body is not passed on:
    provider error pages can echo parts of the provider key."""
    if isinstance(exc, UpstreamRejected):
        if exc.status == 429:
            return Rejection(429, "upstream_rate_limited", "the upstream provider is rate limiting; retry later",
                             browser, subprotocol)
        if exc.status in (401, 403):
            return Rejection(502, "upstream_auth_failed",
                             f"the upstream provider refused the gateway's credentials (HTTP {exc.status})",
                             browser, subprotocol)
        if exc.status == 404:
            return Rejection(502, "upstream_model_not_found",
                             "the upstream provider does not know the configured model (HTTP 404)", browser, subprotocol)
        return Rejection(502, "upstream_refused", f"the upstream provider refused the session (HTTP {exc.status})",
                         browser, subprotocol)
    return Rejection(502, "upstream_unreachable", f"the upstream provider is unreachable: {exc}", browser, subprotocol)


class PrefetchedLeg:
    """A client leg some of whose frames were read already (a GPT-Live client's first frame
    read for admission, and whatever came with it): those come out of :meth:`receive` first."""

    def __init__(self, leg: ClientLeg, prefetched: list[Message]) -> None:
        self._leg = leg
        self._prefetched = prefetched

    async def receive(self) -> list[Message]:
        if self._prefetched:
            batch, self._prefetched = self._prefetched, []
            return batch
        return await self._leg.receive()

    async def send(self, messages: list[Message]) -> None:
        await self._leg.send(messages)

    async def send_text(self, text: str) -> None:
        await self._leg.send_text(text)

    async def close(self, code: int, reason: str = "") -> None:
        await self._leg.close(code, reason)


class AcceptedHandshake:
    """A handshake already accepted (to read a first frame before dialing), presented to the
    session core as a pending one: accepting returns the leg, and a refusal can no longer be an
    HTTP status, so it is the protocol's error event and a ``4000 + status`` close."""

    def __init__(self, request: HandshakeRequest, leg: ClientLeg, error_event: ErrorEvent) -> None:
        self.request = request
        self._leg = leg
        self._error_event = error_event

    async def accept(self, subprotocol: str | None) -> ClientLeg:
        return self._leg

    async def reject(self, status: int, body: bytes) -> None:
        error = json.loads(body).get("error", {})
        try:
            await self._leg.send_text(self._error_event(error.get("code", "refused"), error.get("message", ""),
                                                        error.get("type", "server_error")))
        except LegClosed:
            pass
        await self._leg.close(4000 + status, str(error.get("message", ""))[:120])
