"""The byte transport under a WebSocket leg, and WebSocket data-frame encoding.

:class:`SocketTransport` drives a plain TCP socket with ``trio.lowlevel.wait_readable`` /
``wait_writable`` directly. trio's own ``SocketStream`` is correct but, per call, adds a
scheduler round trip after every successful ``recv`` and ``send`` and a conflict-detector
context; a relay makes one of each per frame per leg, so that overhead was a third of its CPU
(notes/speed.md). Here a successful call returns at once; a read waits for readability first when
the previous read drained the kernel buffer (saving the ``EAGAIN`` syscall trio would make), and a
reader that never has to wait still yields every :data:`YIELD_EVERY_READS` reads so it cannot
starve other tasks or miss a cancellation. TLS connections keep trio's ``SSLStream``.

:func:`encode_data_frames` frames whole messages without going through the sans-IO protocol's
per-frame ``Frame`` objects: the header by ``struct``, client masking by websockets' C
``apply_mask``, mask keys cut from a buffer of ``os.urandom`` bytes refilled as it runs out (as
unpredictable as a syscall per frame, at a fraction of the cost).
"""

from __future__ import annotations

import math
import os
import socket
import struct
from collections.abc import Iterable

import trio

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension is part of every websockets wheel
    from websockets.utils import apply_mask

#: A reader that keeps finding data without waiting yields to the scheduler this often.
YIELD_EVERY_READS = 16
#: Random bytes fetched per refill of the mask-key pool (1024 keys).
MASK_POOL_BYTES = 4096

_TEXT = 0x1
_BINARY = 0x2
_FIN = 0x80
_MASKED = 0x80
_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack


class _MaskKeys:
    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        at = self._at
        if at + 4 > len(self._pool):
            self._pool = os.urandom(MASK_POOL_BYTES)
            at = 0
        self._at = at + 4
        return self._pool[at:at + 4]


_mask_keys = _MaskKeys()


def encode_data_frames(messages: Iterable[tuple[bool, bytes]], *, mask: bool, out: list[bytes]) -> None:
    """Append the wire bytes of each ``(is_text, payload)`` message, one FIN frame each, to ``out``."""
    next_key = _mask_keys.next
    for is_text, payload in messages:
        head1 = _FIN | (_TEXT if is_text else _BINARY)
        n = len(payload)
        m = _MASKED if mask else 0
        if n < 126:
            out.append(bytes((head1, m | n)))
        elif n < 65536:
            out.append(_pack_16(head1, m | 126, n))
        else:
            out.append(_pack_64(head1, m | 127, n))
        if mask:
            key = next_key()
            out.append(key)
            out.append(apply_mask(payload, key))
        else:
            out.append(payload)


def decode_data_frames(data: bytes, *, masked: bool, max_size: int | None,
                       out: list[tuple[bool, bytes]]) -> int:
    """Decode the whole, unfragmented text/binary frames at the start of ``data`` into ``out``.

    Returns how many bytes were consumed. It stops at the first thing it does not handle (a
    control frame, a fragment, RSV bits, the wrong masking, a frame over ``max_size``, or a
    frame not complete in ``data``) and leaves it, and all that follows, to the sans-IO protocol,
    which then starts at a frame boundary and raises whatever error is due.
    """
    i = 0
    n = len(data)
    while i + 2 <= n:
        b1 = data[i]
        if b1 != 0x81 and b1 != 0x82:  # FIN + text/binary, no RSV bits
            break
        b2 = data[i + 1]
        if bool(b2 & 0x80) is not masked:
            break
        length = b2 & 0x7F
        j = i + 2
        if length == 126:
            if j + 2 > n:
                break
            length = (data[j] << 8) | data[j + 1]
            j += 2
        elif length == 127:
            if j + 8 > n:
                break
            length = int.from_bytes(data[j:j + 8], "big")
            j += 8
        if max_size is not None and length > max_size:
            break
        if masked:
            if j + 4 > n:
                break
            key = data[j:j + 4]
            j += 4
            if j + length > n:
                break
            out.append((b1 == 0x81, apply_mask(data[j:j + length], key)))
        else:
            if j + length > n:
                break
            out.append((b1 == 0x81, data[j:j + length]))
        i = j + length
    return i


class SendTimeout(trio.BrokenResourceError):
    """The peer took none of our data for ``send_timeout_s``: it is too slow (or gone)."""


class SocketTransport:
    """A connected TCP socket with the subset of ``trio.abc.HalfCloseableStream`` a leg uses."""

    __slots__ = ("_sock", "_drained", "_reads", "_closed", "send_timeout_s")

    def __init__(self, sock: socket.socket, *, send_timeout_s: float | None = None) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._drained = True
        self._reads = 0
        self._closed = False
        #: How long a write may wait for the kernel's send buffer to drain (None: forever). Only
        #: a peer that stops reading makes a write wait, so the fast path never sets a timer.
        self.send_timeout_s = send_timeout_s

    @classmethod
    def from_stream(cls, stream: trio.SocketStream, *, send_timeout_s: float | None = None) -> SocketTransport:
        """Take over the socket of a trio ``SocketStream`` (which must not be used afterwards)."""
        return cls(socket.socket(fileno=stream.socket.detach()), send_timeout_s=send_timeout_s)

    @property
    def socket(self) -> socket.socket:
        return self._sock

    async def receive_some(self, max_bytes: int) -> bytes:
        sock = self._sock
        if self._drained:
            await trio.lowlevel.wait_readable(sock)
        else:
            self._reads += 1
            if self._reads >= YIELD_EVERY_READS:
                self._reads = 0
                await trio.lowlevel.checkpoint()
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the transport was closed")
            try:
                data = sock.recv(max_bytes)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            self._drained = len(data) < max_bytes
            return data

    async def send_all(self, data: bytes) -> None:
        sock = self._sock
        if self._closed:
            raise trio.ClosedResourceError("the transport was closed")
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        if sent == len(data):
            return
        view = memoryview(data)
        deadline = trio.current_time() + self.send_timeout_s if self.send_timeout_s else math.inf
        while sent < len(data):  # the kernel's send buffer is full: wait for room
            with trio.move_on_at(deadline) as waiting:
                await trio.lowlevel.wait_writable(sock)
            if waiting.cancelled_caught:
                raise SendTimeout(f"the peer took no data for {self.send_timeout_s:g} s")
            if self._closed:
                raise trio.ClosedResourceError("the transport was closed")
            try:
                sent += sock.send(view[sent:])
            except BlockingIOError:
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc

    async def send_eof(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            # wake any task waiting on this socket before the fd goes away
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()
        await trio.lowlevel.checkpoint()


class TimedStream:
    """A trio stream (TLS) whose writes give up with :class:`SendTimeout` after ``send_timeout_s``."""

    def __init__(self, stream: trio.abc.Stream, send_timeout_s: float) -> None:
        self.stream = stream
        self.send_timeout_s = send_timeout_s

    async def receive_some(self, max_bytes: int) -> bytes:
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data: bytes) -> None:
        with trio.move_on_after(self.send_timeout_s) as waiting:
            await self.stream.send_all(data)
        if waiting.cancelled_caught:
            raise SendTimeout(f"the peer took no data for {self.send_timeout_s:g} s")

    async def aclose(self) -> None:
        await self.stream.aclose()
