"""An upstream that speaks another protocol than the client, seen through a sans-IO translator.

:class:`TranslatingLeg` wraps the upstream's :class:`~rtproxy.relay.wsleg.WebSocketLeg` and
looks to the session core like an upstream that speaks the client's protocol: the core's pumps,
gate, collector, budget checks and settling run unchanged (the collector sees, and bills, the
events the client sees). Frames are parsed, handed to the translator (:class:`Translation`, one
per session, no I/O), and what it answers goes each way:

- ``send`` (client → upstream): each client event goes to :meth:`Translation.from_client`; its
  upstream frames are sent now, its events for the client (answers the translator gives itself,
  such as ``conversation.item.added``) wait in :attr:`_to_client` for the next :meth:`receive`,
  which is woken for them;
- ``receive`` (upstream → client): each upstream frame goes to :meth:`Translation.from_upstream`;
  the events for the client are returned (audio deltas with no extra task or queue hop).

**Reconnecting.** When the translator says so (the provider announced the end of the connection,
or a client update needs a new setup), the leg closes the old connection, dials the provider
again (:attr:`redial`: the target built afresh, credentials included) and sends the
translator's setup frame; the translator holds the client's input meanwhile (its own bounded
buffer) and releases it once the new connection is ready. The old connection's frames that
arrived before its close are translated, never dropped. A reconnection that fails ends the
session like a lost upstream. Reconnections are counted (:attr:`reconnections`) for the record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from .wsleg import LegClosed, Message, WebSocketLeg

log = logging.getLogger("rtproxy.translated")

#: How long closing the old connection may take when moving to a new one.
RECONNECT_CLOSE_TIMEOUT_S = 2.0
#: Events the translator may queue for the client between two receives (its own answers); more
#: close the session (1011): a translator that answers without end is a bug, not a load.
MAX_PENDING_CLIENT_EVENTS = 4096


class Translated(Protocol):
    """What a translator answers to one frame."""

    to_client: list[dict[str, Any]]
    to_upstream: list[dict[str, Any]]
    #: Open a new upstream connection and send :meth:`Translation.setup_frame` first.
    reconnect: bool
    #: End the client's session with (code, reason), after ``to_client``.
    close: tuple[int, str] | None


class Translation(Protocol):
    """A session's sans-IO translator (rtproxy/translate/)."""

    def start(self) -> Translated: ...

    def from_client(self, event: dict[str, Any]) -> Translated: ...

    def from_upstream(self, frame: dict[str, Any]) -> Translated: ...

    def setup_frame(self) -> dict[str, Any]: ...

    def upstream_closed(self, code: int, reason: str) -> Translated: ...

    # Optional, for a translator that passes some frames as bytes (no parse, no re-encoding):
    # ``fast_client(payload)`` / ``fast_upstream(payload)`` → the bytes to send on, or None to
    # have the frame parsed and handed to from_client / from_upstream.


#: ``json.dumps(…, separators=(",", ":"), ensure_ascii=False)``, without building an encoder per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _encode(event: dict[str, Any]) -> bytes:
    return _dumps(event).encode("utf-8", "surrogatepass")


class TranslatingLeg:
    """An upstream leg that speaks the client's protocol (see the module docstring)."""

    def __init__(self, upstream: WebSocketLeg, translation: Translation,
                 redial: Callable[[], Awaitable[WebSocketLeg]]) -> None:
        self._upstream = upstream
        self.translation = translation
        self.redial = redial
        self._to_client: list[bytes] = []
        self._close_after: tuple[int, str] | None = None
        #: Cancelled to wake :meth:`receive` when events for the client are queued by :meth:`send`.
        self._waiting: trio.CancelScope | None = None
        self._swap = trio.Lock()
        self._swapped = trio.Event()
        self.reconnections = 0
        self.closed: LegClosed | None = None
        #: For the session core's metrics, like a dialed WebSocketLeg's.
        self.dial_s = getattr(upstream, "dial_s", None)
        self._apply_now(translation.start())

    # -- applying a translator's answer -------------------------------------------------------

    def _apply_now(self, out: Translated) -> None:
        """The parts of an answer that need no I/O: events for the client, the close."""
        if out.to_client:
            if len(self._to_client) + len(out.to_client) > MAX_PENDING_CLIENT_EVENTS:
                raise LegClosed(1011, "the translator queued too many events", by_peer=False)
            self._to_client.extend(_encode(e) for e in out.to_client)
            if self._waiting is not None:
                self._waiting.cancel()
        if out.close is not None and self._close_after is None:
            self._close_after = out.close

    async def _apply(self, out: Translated) -> None:
        self._apply_now(out)
        if out.to_upstream:
            await self._send_upstream(out.to_upstream)
        if out.reconnect:
            await self._reconnect()

    async def _send_upstream(self, frames: list[dict[str, Any]]) -> None:
        await self._upstream.send([(True, _encode(f)) for f in frames])

    async def _reconnect(self) -> None:
        async with self._swap:
            old = self._upstream
            with trio.move_on_after(RECONNECT_CLOSE_TIMEOUT_S):
                await old.close(1000, "reconnecting")
            try:
                new = await self.redial()
            except Exception as exc:  # UpstreamError and the like: the session ends as if the upstream was lost
                log.warning("reconnecting to the provider failed: %s", exc)
                self.closed = LegClosed(1006, "reconnecting to the provider failed", by_peer=True)
                self._swapped.set()  # a receive waiting for the new connection sees the end instead
                raise self.closed from None
            self._upstream = new
            self.reconnections += 1
            await self._send_upstream([self.translation.setup_frame()])
            self._swapped.set()
            self._swapped = trio.Event()

    # -- the leg -----------------------------------------------------------------------------

    async def send(self, messages: list[Message]) -> None:
        """Client events, to the translator (and what it answers, each way)."""
        if self.closed is not None:
            raise self.closed
        fast = getattr(self.translation, "fast_client", None)
        passed: list[Message] = []  # frames the translator passes as they are, sent together
        for is_text, payload in messages:
            ready = fast(payload) if fast is not None and is_text else None
            if ready is not None:
                passed.append((True, ready))
                continue
            if passed:
                await self._upstream.send(passed)
                passed = []
            try:
                event = json.loads(payload)
            except (ValueError, RecursionError):
                continue  # the gate answered it already (invalid_json); nothing to translate
            if isinstance(event, dict):
                await self._apply(self.translation.from_client(event))
        if passed:
            await self._upstream.send(passed)

    async def send_text(self, text: str) -> None:
        await self.send([(True, text.encode("utf-8", "surrogatepass"))])

    def _take_for_client(self) -> list[Message]:
        out = [(True, e) for e in self._to_client]
        self._to_client = []
        return out

    async def receive(self) -> list[Message]:
        """Events for the client: the translator's own answers, then translated upstream frames."""
        while True:
            if self._to_client:
                return self._take_for_client()
            if self._close_after is not None:
                code, reason = self._close_after
                self.closed = LegClosed(code, reason, by_peer=True)
                raise self.closed
            if self.closed is not None:
                raise self.closed
            leg = self._upstream
            batch: list[Message] | None = None
            with trio.CancelScope() as self._waiting:
                try:
                    batch = await leg.receive()
                except LegClosed as exc:
                    if leg is not self._upstream or self._swap.locked():
                        await self._swapped_from(leg)
                        continue
                    await self._apply(self.translation.upstream_closed(exc.code, exc.reason))
                    if leg is self._upstream and not self._to_client and self._close_after is None:
                        self.closed = exc
                        raise
                    continue
            self._waiting = None
            if batch is None:
                continue  # woken: events for the client were queued
            fast = getattr(self.translation, "fast_upstream", None)
            for _, payload in batch:
                ready = fast(payload) if fast is not None else None
                if ready is not None:
                    self._to_client.append(ready)
                    continue
                try:
                    frame = json.loads(payload)
                except (ValueError, RecursionError):
                    log.warning("the provider sent a frame that is not JSON (%d bytes): dropped", len(payload))
                    continue
                if isinstance(frame, dict):
                    await self._apply(self.translation.from_upstream(frame))

    async def _swapped_from(self, leg: WebSocketLeg) -> None:
        """The connection this receive read was replaced (or is being): wait until the new one is up."""
        while self._upstream is leg and self.closed is None:
            await self._swapped.wait()

    async def close(self, code: int = 1000, reason: str = "", *,
                    on_messages: Callable[[list[Message]], Awaitable[None]] | None = None) -> None:
        async def translated(batch: list[Message]) -> None:
            if on_messages is None:
                return
            out: list[Message] = []
            for _, payload in batch:
                try:
                    frame = json.loads(payload)
                except (ValueError, RecursionError):
                    continue
                if isinstance(frame, dict):
                    answer = self.translation.from_upstream(frame)
                    out.extend((True, _encode(e)) for e in answer.to_client)
            if out:
                await on_messages(out)

        await self._upstream.close(code, reason, on_messages=translated)
        # what the translator still owes the records (a response.done held for its usage)
        owed = [(True, _encode(e)) for e in self.translation.finish().to_client]
        if owed and on_messages is not None:
            await on_messages(owed)

    @property
    def upstream(self) -> WebSocketLeg:
        return self._upstream
