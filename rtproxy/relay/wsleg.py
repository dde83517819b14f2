"""One WebSocket connection: a ``websockets`` sans-IO protocol driven over a trio stream.

Both legs of a realtime-listener session are :class:`WebSocketLeg`\\ s (the client side with a
``ServerProtocol``, the upstream side with a ``ClientProtocol``). There is no reader task and no
message queue: the pump task that calls :meth:`WebSocketLeg.receive` reads the socket itself, and
every complete message decoded from one socket read comes back as one batch, which the other
leg sends with one ``send_all`` (write batching for bursty output, at no cost otherwise).

A message is a ``(is_text, payload)`` tuple: text stays the same UTF-8 bytes, binary stays
binary, nothing is decoded or re-serialised. Fragmented messages are gathered into one buffer;
each fragment costs its payload plus :data:`FRAGMENT_OVERHEAD_BYTES` against the message size
limit, and a message in more fragments than :attr:`LegLimits.max_fragments` fails the connection
with 1009 (a flood of tiny fragments costs the server far more than its bytes).

Pings from a client are answered, but each pong is output like any other: a client that does not
read them is closed with 1008 after the send timeout, and one that sends more than
:data:`PING_BURST` pings faster than :data:`PING_RATE_PER_S` is closed with 1008 too.

Data frames are encoded here (:func:`~rtproxy.transport.encode_data_frames`); control frames
(pongs, close echoes, our close) come from the protocol. Writing takes a lock and fetches the
protocol's pending bytes *while holding it*, so control frames queued by the reader go out before
the data behind them and nothing is sent after a close.

The transport is a :class:`~rtproxy.transport.SocketTransport` for plain TCP (the fast path) or
any trio stream (``trio.SSLStream`` for TLS).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
import trio
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.frames import Opcode
from websockets.protocol import CLIENT, CLOSED, OPEN, Protocol

from .transport import SendTimeout, SocketTransport, decode_data_frames, encode_data_frames

#: Bytes asked of the socket per read. Large enough that a burst of audio frames is one read.
RECEIVE_CHUNK_BYTES = 65536
#: WebSocket close reasons are limited to 123 bytes of UTF-8.
MAX_CLOSE_REASON_BYTES = 123

#: What one fragment costs beyond its payload (frame header, parser objects), counted against the
#: message size limit so a message of empty fragments is bounded too.
FRAGMENT_OVERHEAD_BYTES = 64
#: Pings a client may send at once, and the rate they refill at; past that it is closed (1008).
PING_BURST = 64
PING_RATE_PER_S = 8.0

Message = tuple[bool, bytes]


@attrs.frozen
class LegLimits:
    """Bounds on what a peer may make this leg hold or do (named in ``[server]``)."""

    max_message_bytes: int | None = None
    max_fragments: int = 1024
    #: Enforce the ping budget (on the client side: a provider's pings are trusted).
    limit_pings: bool = False

    @classmethod
    def of(cls, server: Any) -> LegLimits:
        """The client side's limits from a ``ServerConfig``."""
        return cls(server.max_message_bytes, server.max_fragments_per_message, limit_pings=True)

_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT
_PING = Opcode.PING
_NOT_SENDABLE = frozenset({1004, 1005, 1006, 1015})


class _NeverDebug(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every handshake header at DEBUG, provider ``Authorization`` included:
    its protocol objects get this adapter, which reports DEBUG as disabled whatever the config."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


#: The logger handed to every websockets protocol object rtproxy creates.
WIRE_LOGGER = _NeverDebug(logging.getLogger("rtproxy.wire"), {})


class LegClosed(Exception):
    """The connection is closed (or failed); ``code``/``reason`` say how.

    ``by_peer`` is True when the other end closed or vanished, False when this side failed the
    connection because of what the peer sent (protocol error 1002, too big 1009, bad UTF-8 1007).
    """

    def __init__(self, code: int, reason: str = "", *, by_peer: bool = True) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.by_peer = by_peer


def _first_invalid_utf8(messages: list[Message]) -> int | None:
    """Index of the first text message that is not UTF-8. Audio events are ASCII, so the common
    case costs one ``isascii`` per message."""
    for i, (is_text, payload) in enumerate(messages):
        if is_text and not payload.isascii():
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                return i
    return None


def clip_reason(reason: str) -> str:
    data = reason.encode("utf-8")
    if len(data) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return data[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


def sendable_code(code: int, fallback: int = 1011) -> int:
    """Codes 1005/1006/1015 describe a closure and must never be sent; pick ``fallback`` then."""
    if code in _NOT_SENDABLE or not (1000 <= code <= 4999) or 1016 <= code <= 2999:
        return fallback
    return code


class SendLock:
    """One leg's writes, one at a time: trio.Lock's exclusion and hand-over, without its owner
    bookkeeping (``current_task()`` at every acquire and release, some 2 µs of every relayed
    frame). A waiter cancelled while parked leaves the queue; one woken holds the lock."""

    __slots__ = ("_held", "_waiting")

    def __init__(self) -> None:
        self._held = False
        self._waiting = trio.lowlevel.ParkingLot()

    def acquire_nowait(self) -> bool:
        if self._held:
            return False
        self._held = True
        return True

    async def acquire(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()  # as trio.Lock: a cancel never leaves it held
        if self._held:
            await self._waiting.park()  # release() hands the lock over: held on waking
        else:
            self._held = True
            await trio.lowlevel.cancel_shielded_checkpoint()

    def release(self) -> None:
        if self._waiting:
            self._waiting.unpark()
        else:
            self._held = False


class WebSocketLeg:
    """A WebSocket connection in OPEN state, driven by the task that calls it."""

    # Two legs per session, thousands of sessions: no per-instance dict (S4, memory per session).
    __slots__ = ("_close_timeout_s", "_closed", "_fast", "_fragment_cost", "_fragment_count", "_fragment_text",
                 "_fragments", "_limits", "_lock", "_mask", "_masked_in", "_pending", "_pings", "_pings_at",
                 "_proto", "_stream", "_transport_closed", "_violation", "dial_s")

    def __init__(
        self,
        stream: trio.abc.Stream | SocketTransport,
        protocol: Protocol,
        *,
        close_timeout_s: float = 2.0,
        pending: Iterable[object] = (),
        limits: LegLimits = LegLimits(),
    ) -> None:
        self._stream = stream
        self._proto = protocol
        self._lock = SendLock()
        self._close_timeout_s = close_timeout_s
        self._limits = limits
        #: The message being gathered from fragments, its fragment count and its cost in bytes.
        self._fragments: bytearray | None = None
        self._fragment_count = 0
        self._fragment_cost = 0
        self._fragment_text = False
        self._violation: tuple[int, str] | None = None
        self._pings = float(PING_BURST)
        self._pings_at = trio.current_time() if limits.limit_pings else 0.0
        self._closed: LegClosed | None = None
        self._transport_closed = False
        self._mask = protocol.side is CLIENT
        self._masked_in = not self._mask  # a server receives masked frames
        # The fast decode path must see that the protocol holds no unparsed input (it then sits
        # at a frame boundary); without that view every byte goes through the protocol.
        self._fast = isinstance(getattr(getattr(protocol, "reader", None), "buffer", None), bytearray)
        # Frames that arrived with the handshake (e.g. session.created behind the 101).
        self._pending: list[Message] = self._messages(pending)
        #: How long opening this connection took (set by the dialer; None for an accepted one).
        self.dial_s: float | None = None

    @property
    def protocol(self) -> Protocol:
        return self._proto

    @property
    def closed(self) -> LegClosed | None:
        return self._closed

    def _messages(self, events: Iterable[object]) -> list[Message]:
        """Complete messages from websockets' frame events; notes a limit broken (see receive)."""
        out: list[Message] = []
        limits = self._limits
        for ev in events:
            op = ev.opcode  # type: ignore[attr-defined]
            if op is _TEXT or op is _BINARY:
                if ev.fin:  # type: ignore[attr-defined]
                    out.append((op is _TEXT, ev.data))  # type: ignore[attr-defined]
                else:
                    self._fragment_text = op is _TEXT
                    self._fragments = bytearray(ev.data)  # type: ignore[attr-defined]
                    self._fragment_count = 1
                    self._fragment_cost = len(ev.data) + FRAGMENT_OVERHEAD_BYTES  # type: ignore[attr-defined]
            elif op is _CONT and self._fragments is not None:
                self._fragments += ev.data  # type: ignore[attr-defined]
                self._fragment_count += 1
                self._fragment_cost += len(ev.data) + FRAGMENT_OVERHEAD_BYTES  # type: ignore[attr-defined]
                if ev.fin:  # type: ignore[attr-defined]
                    out.append((self._fragment_text, bytes(self._fragments)))
                    self._fragments = None
                elif self._fragment_count > limits.max_fragments:
                    self._violation = (1009, f"message in more than {limits.max_fragments} fragments")
                    self._fragments = None
                    break
                elif limits.max_message_bytes is not None and self._fragment_cost > limits.max_message_bytes:
                    self._violation = (1009, "message too big (with its fragments' overhead)")
                    self._fragments = None
                    break
            elif op is _PING and limits.limit_pings:
                now = trio.current_time()
                self._pings = min(PING_BURST, self._pings + (now - self._pings_at) * PING_RATE_PER_S)
                self._pings_at = now
                self._pings -= 1
                if self._pings < 0:
                    self._violation = (1008, "too many pings")
                    break
            # PING/PONG/CLOSE: the protocol answered them already (pong/close echo queued).
        return out

    async def _fail(self, code: int, reason: str) -> LegClosed:
        """Fail the connection for what the peer sent: a close frame with ``code``, then done."""
        self._proto.fail(code, reason)
        try:
            await self._write(())
        except LegClosed:
            pass
        self._closed = LegClosed(code, reason, by_peer=False)
        return self._closed

    def _closure(self) -> LegClosed | None:
        proto = self._proto
        rcvd = proto.close_rcvd
        if rcvd is not None:
            return LegClosed(rcvd.code, rcvd.reason, by_peer=True)
        exc = proto.parser_exc
        if exc is not None:
            sent = proto.close_sent
            if isinstance(exc, EOFError):
                return LegClosed(1006, "connection lost", by_peer=True)
            if isinstance(exc, PayloadTooBig):
                return LegClosed(1009, "message too big", by_peer=False)
            if isinstance(exc, UnicodeDecodeError):
                return LegClosed(1007, "invalid UTF-8", by_peer=False)
            if isinstance(exc, ProtocolError):
                return LegClosed(1002, "protocol error", by_peer=False)
            return LegClosed(sent.code if sent else 1011, "connection failed", by_peer=False)
        if proto.state is CLOSED:
            return LegClosed(1006, "connection lost", by_peer=True)
        return None

    async def receive(self) -> list[Message]:
        """The next batch of complete messages. Raises LegClosed once the connection is done."""
        if self._pending:
            out, self._pending = self._pending, []
            return out
        if self._closed is not None:
            raise self._closed
        proto = self._proto
        stream = self._stream
        while True:
            try:
                data = await stream.receive_some(RECEIVE_CHUNK_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            out: list[Message] = []
            fed = True  # whether the protocol was given anything (else it has no events for us)
            if not data:
                proto.receive_eof()
            elif self._fast and not proto.reader.buffer and proto.current_size is None and proto.state is OPEN:
                # at a frame boundary: decode plain data frames here, the rest goes to the protocol
                used = decode_data_frames(data, masked=self._masked_in, max_size=proto.max_message_size, out=out)
                fed = used < len(data)
                if fed:
                    proto.receive_data(data[used:])
            else:
                proto.receive_data(data)
            if fed:
                for ev in proto.events_received():
                    op = ev.opcode
                    if ev.fin and (op is _TEXT or op is _BINARY):
                        out.append((op is _TEXT, ev.data))
                    else:
                        out.extend(self._messages((ev,)))
            if self._masked_in and out:
                bad = _first_invalid_utf8(out)
                if bad is not None:
                    # RFC 6455 §8.1: a client's text must be UTF-8. Deliver what came before it,
                    # then the connection fails with 1007.
                    closed = await self._fail(1007, "invalid UTF-8 in a text message")
                    if bad:
                        return out[:bad]
                    raise closed
            if self._violation is not None:
                # a fragment flood, a message too big with its overhead, a ping flood: what came
                # whole before it is delivered, then the connection fails
                closed = await self._fail(*self._violation)
                if out:
                    return out
                raise closed
            if not fed:  # whole data frames only: nothing for the protocol to answer or close
                if out:
                    return out
                continue
            if proto.writes:  # a pong or a close echo
                try:
                    await self._write(())
                except LegClosed as exc:
                    # a client that does not take its pongs is as slow as one that does not take
                    # its data: closed (1008 after the send timeout), not kept reading
                    if out:
                        return out
                    raise exc from None
            if proto.state is not OPEN or not data:
                closure = self._closure()
                if closure is not None:
                    self._closed = closure
                    if out:
                        return out
                    raise closure
            if out:
                return out

    async def send(self, messages: Iterable[Message]) -> None:
        """Frame every message and write them all with one ``send_all``."""
        if self._proto.state is not OPEN:
            raise self._closed or LegClosed(1006, "connection closed")
        parts: list[bytes] = []
        encode_data_frames(messages, mask=self._mask, out=parts)
        await self._write(parts)

    async def send_text(self, text: str) -> None:
        await self.send(((True, text.encode("utf-8")),))

    async def _write(self, data_parts: Iterable[bytes]) -> None:
        """Write pending control frames, then ``data_parts``, under the send lock."""
        lock = self._lock
        if not lock.acquire_nowait():  # the common, uncontended case costs no checkpoint
            await lock.acquire()
        try:
            proto = self._proto
            # the protocol's own frames (pongs, a close) first; usually there are none
            parts = proto.data_to_send() if proto.writes else []
            eof = bool(parts) and not parts[-1]  # a trailing b"" means: half-close the connection
            if eof:
                parts.pop()
            closing = proto.state is not OPEN
            if not closing:
                parts.extend(data_parts)
            # else: the reader saw a close while we waited; no data may follow it (raised below)
            try:
                if parts:
                    await self._stream.send_all(parts[0] if len(parts) == 1 else b"".join(parts))
                if eof:
                    send_eof = getattr(self._stream, "send_eof", None)
                    if send_eof is not None:
                        await send_eof()
            except SendTimeout as exc:
                self._closed = LegClosed(1008, f"too slow to receive: {exc}", by_peer=False)
                raise self._closed from None
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                if self._closed is None:
                    self._closed = LegClosed(1006, "connection lost", by_peer=True)
                raise self._closed from None
            if closing and data_parts:
                raise self._closed or LegClosed(1006, "connection closed")
        finally:
            lock.release()

    async def _flush(self) -> None:
        await self._write(())

    async def close(self, code: int, reason: str = "",
                    on_messages: Callable[[list[Message]], Awaitable[None]] | None = None) -> None:
        """Close the WebSocket (if still open), wait briefly for the peer's close, drop TCP.

        Messages that arrive while waiting (sent before the peer saw our close: a provider's last
        ``response.done``, say) go to ``on_messages``: they are not forwarded, but still billed.
        Call it with no other task using this leg, under a shield when cleaning up.
        """
        proto = self._proto
        try:
            if proto.state is OPEN:
                proto.send_close(sendable_code(code), clip_reason(reason))
                await self._flush()
                with trio.move_on_after(self._close_timeout_s):
                    while proto.state is not CLOSED and not proto.eof_sent:
                        try:
                            data = await self._stream.receive_some(RECEIVE_CHUNK_BYTES)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            break
                        if data:
                            proto.receive_data(data)
                        else:
                            proto.receive_eof()
                        late = self._messages(proto.events_received())
                        if late and on_messages is not None:
                            await on_messages(late)
                        await self._flush()
                        if not data:
                            break
            elif proto.writes:
                await self._flush()
        except LegClosed:
            pass
        finally:
            if self._closed is None:
                self._closed = LegClosed(code, reason, by_peer=False)
            await self.aclose_transport()

    async def aclose_transport(self) -> None:
        if not self._transport_closed:
            self._transport_closed = True
            with trio.move_on_after(self._close_timeout_s):
                await self._stream.aclose()
