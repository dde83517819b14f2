"""How many client connections this process holds open, against one named cap.

Every accepted client socket, on either port, takes a slot for as long as it is open: a handshake
in progress, a session, an idle HTTP keep-alive. At the cap a new connection gets a short 503
and is closed (:func:`refuse`): the process never runs out of descriptors, so ``/health`` and the
sessions already open keep working (a process out of descriptors cannot even accept to refuse).

Each connection may hold a second descriptor (its upstream), so the cap is lowered at start to
half of what the descriptor limit leaves after :data:`RESERVED_DESCRIPTORS`; the soft limit is
raised towards the hard one first.
"""

from __future__ import annotations

import json
import logging
import resource

import attrs
import trio

log = logging.getLogger("rtproxy.connections")

#: Descriptors kept for everything that is not a client connection or its upstream: listening
#: sockets, the spend log, the state store, the offline model, the event loop, the Python runtime.
RESERVED_DESCRIPTORS = 64
#: How long closing a client connection may take (a TLS close_notify included).
CLOSE_TIMEOUT_S = 1.0
#: Refusals being written at once; beyond that a connection over the cap is just closed.
MAX_REFUSING = 32
#: How long a refusal waits for the client to take its 503 and to finish sending its request
#: head (read and dropped, so that the close is a FIN and not a reset that can lose the 503).
REFUSAL_LINGER_S = 0.1
#: Bytes of the refused client's request read at most.
REFUSAL_DRAIN_BYTES = 65536

_BODY = json.dumps({"error": {"type": "server_error", "code": "too_many_connections",
                              "message": "the gateway holds as many connections as it may; try again shortly"}}).encode()
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
           b"Content-Type: application/json\r\nContent-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


def descriptor_cap(wanted: int) -> int:
    """The connection cap this process can honour: ``wanted``, or less under a low RLIMIT_NOFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = RESERVED_DESCRIPTORS + 2 * wanted
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted
    cap = max(1, (soft - RESERVED_DESCRIPTORS) // 2)
    log.warning("the descriptor limit (%d) allows %d client connections, not the %d configured "
                "([server] max_connections); raise `ulimit -n` for more", soft, cap, wanted)
    return cap


@attrs.define
class ConnectionSlots:
    """The per-process connection count and its cap."""

    cap: int
    open: int = 0
    #: Connections refused at the cap since start.
    refused: int = 0
    _refusing: int = 0

    def take(self) -> bool:
        if self.open >= self.cap:
            self.refused += 1
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1

    def stats(self) -> dict[str, int]:
        return {"open": self.open, "cap": self.cap, "refused": self.refused}

    async def refuse(self, stream: trio.abc.HalfCloseableStream | trio.SSLStream[trio.SocketStream]) -> None:
        """Answer 503 and close; bounded in time, and in number (past it, just close)."""
        try:
            if self._refusing < MAX_REFUSING:
                self._refusing += 1
                try:
                    with trio.move_on_after(REFUSAL_LINGER_S):
                        await stream.send_all(REFUSAL)
                        if isinstance(stream, trio.abc.HalfCloseableStream):
                            await stream.send_eof()
                        seen = b""
                        while len(seen) < REFUSAL_DRAIN_BYTES and b"\r\n\r\n" not in seen:
                            data = await stream.receive_some(REFUSAL_DRAIN_BYTES)
                            if not data:
                                break
                            seen += data
                finally:
                    self._refusing -= 1
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()
