"""The main port: one capped accept loop; realtime upgrades on the fast path, the rest to hypercorn.

Every connection to the main port takes a slot (:mod:`rtproxy.server.connections`; at the cap it
gets a 503). Its request line is read here: a ``GET`` to a realtime path is a WebSocket session
and runs on the same data path as the realtime listener
(:func:`~rtproxy.server.listener.serve_websocket`: sans-IO legs, no ASGI); anything else has the
rest of its head read here too, then is handed, with the bytes already read, to hypercorn's
HTTP/1.1 connection server, which serves the Quart app (pages, REST) with keep-alive bounded by
``keep_alive_timeout_s``, a stalled request by ``http_read_timeout_s`` and a body by
``http_body_timeout_s`` (the app's deadline). The first head, either kind, must be whole within
``handshake_timeout_s`` of the connection, TLS handshake included, however it trickles in (a
later head on a kept-alive connection within ``keep_alive_timeout_s``: hypercorn's idle timer
runs until a head is whole). TLS, when configured, is done here for both (ALPN ``http/1.1``).

The HTTP side (hypercorn's connection server and the app: :mod:`rtproxy.server.http_leg`) is
given as a loader. ``rtproxy serve`` loads it with the first HTTP request (``http_on_demand``),
so a gateway that only relays sessions never imports Quart, its routes or hypercorn's HTTP
server; requests that come while it loads wait for it, sessions do not.

http_leg drives hypercorn below its public ``serve()`` (its ``TCPServer``, ``Lifespan`` and
``WorkerContext``, as its own ``worker_serve`` does), so ``pyproject.toml`` pins hypercorn's
minor version; ``tests/test_front.py`` covers the hand-off (keep-alive, pipelining, TLS) and
``tests/test_pay_for_what_you_use.py`` the loading.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

import attrs
import trio

from ..config import Config, ServerConfig
from ..relay.wsleg import RECEIVE_CHUNK_BYTES
from .connections import CLOSE_TIMEOUT_S, ConnectionSlots
from .listener import LISTEN_BACKLOG, RunSession, serve_websocket
from .ports import main_port_in_use

log = logging.getLogger("rtproxy.front")

#: The request line must be whole within this many bytes to be looked at (longer: hypercorn's).
MAX_REQUEST_LINE_BYTES = 8192
#: An HTTP request head is read whole by the front up to this many bytes; a longer one goes to
#: hypercorn as it is, whose parser (h11, given the same bound) answers it 431 and closes.
MAX_HEAD_BYTES = 16 * 1024
#: Where a head ends, as h11 finds it (a blank line, CRLF or bare LF).
_HEAD_END = re.compile(rb"\n\r?\n")
#: How long an HTTP request may wait for the HTTP side to load (the first one after start-up:
#: some 0.3 s on an idle machine); past it, or if loading failed, the request is answered 503.
HTTP_LOAD_TIMEOUT_S = 30.0
#: What a request gets when the HTTP side could not be loaded (the log says why).
_UNAVAILABLE_BODY = (b'{"error": {"type": "server_error", "code": "http_unavailable", '
                     b'"message": "the gateway\'s HTTP side (pages, REST) is not available; see its log"}}')
_UNAVAILABLE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(_UNAVAILABLE_BODY), _UNAVAILABLE_BODY))


class HttpServing(Protocol):
    """The main port's HTTP side (:class:`rtproxy.server.http_leg.HttpSide`): hypercorn's
    connection server and the ASGI app it serves, with the app's lifespan."""

    async def start(self, nursery: trio.Nursery) -> None: ...

    async def serve(self, conn: Any, head: bytes) -> None: ...

    async def stop_idle(self) -> None: ...

    async def shutdown(self) -> None: ...


#: Builds the HTTP side (imports what it needs, off the event loop).
HttpLoader = Callable[[], Awaitable[HttpServing]]


class _Http:
    """The HTTP side, loaded before the port opens or, ``on_demand``, by the first HTTP request:
    a gateway that only relays sessions then never loads Quart, hypercorn's HTTP server and the
    REST routes (a third of a second of start-up and some 25 MiB, docs/benchmarks.md). Requests
    that arrive while it loads wait for it (:data:`HTTP_LOAD_TIMEOUT_S`); sessions do not."""

    def __init__(self, load: HttpLoader, nursery: trio.Nursery) -> None:
        self._load = load
        self._nursery = nursery
        self._ready = trio.Event()
        self._loading = False
        self.side: HttpServing | None = None

    async def load_now(self) -> None:
        self._loading = True
        side = await self._load()
        await side.start(self._nursery)
        self.side = side
        self._ready.set()

    async def get(self) -> HttpServing | None:
        """The HTTP side, loading it if this is the first request; None if it cannot be had."""
        if self.side is not None:
            return self.side
        if not self._loading:
            self._loading = True
            self._nursery.start_soon(self._load_in_background)
        ready = self._ready
        with trio.move_on_after(HTTP_LOAD_TIMEOUT_S):
            await ready.wait()
        return self.side

    async def _load_in_background(self) -> None:
        ready = self._ready
        try:
            side = await self._load()
            await side.start(self._nursery)
            self.side = side
        except Exception:  # noqa: BLE001 - a bug or a broken install: the waiting requests get 503
            log.exception("the HTTP side (pages, REST) failed to load; HTTP requests are answered 503 "
                          "(the next one tries again)")
            self._loading = False  # the next request tries again, with a fresh event to wait on
            self._ready = trio.Event()
        finally:
            ready.set()

    async def stop_idle(self) -> None:
        if self.side is not None:
            await self.side.stop_idle()

    async def shutdown(self) -> None:
        if self.side is not None:
            await self.side.shutdown()


def realtime_request_line(head: bytes, is_session_path: Callable[[str], bool]) -> bool:
    """Whether ``head`` starts with ``GET <a session path>[?query] HTTP/1.x`` (Realtime or GPT-Live)."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or not parts[2].startswith(b"HTTP/1."):
        return False
    target = parts[1].split(b"?", 1)[0]
    return is_session_path(target.decode("latin-1"))


@attrs.define
class MainPort:
    """What each main-port connection needs."""

    server: ServerConfig
    run_session: RunSession
    slots: ConnectionSlots
    is_session_path: Callable[[str], bool]
    http: _Http
    ssl_context: ssl.SSLContext | None

    async def handle(self, stream: trio.SocketStream) -> None:
        if not self.slots.take():
            await self.slots.refuse(stream)
            return
        try:
            await self._serve(stream)
        finally:
            self.slots.give_back()

    async def _serve(self, raw: trio.SocketStream) -> None:
        conn: trio.SocketStream | trio.SSLStream[trio.SocketStream] = raw
        head = b""
        # one deadline for the whole first head, whichever path reads the rest of it
        deadline = trio.current_time() + self.server.handshake_timeout_s
        try:
            with trio.move_on_at(deadline):
                if self.ssl_context is not None:
                    conn = trio.SSLStream(raw, self.ssl_context, server_side=True, https_compatible=True)
                    await conn.do_handshake()
                while b"\r\n" not in head and len(head) < MAX_REQUEST_LINE_BYTES:
                    data = await conn.receive_some(RECEIVE_CHUNK_BYTES)
                    if not data:
                        break
                    head += data
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            head = b""
        if b"\r\n" not in head and len(head) < MAX_REQUEST_LINE_BYTES:
            # no request line in time (or the client left): nothing to answer
            await _close(conn)
            return
        if realtime_request_line(head, self.is_session_path):
            await serve_websocket(self.server, self.run_session, conn, head, deadline=deadline)
            return
        whole = await _rest_of_head(conn, head, deadline)
        if whole is None:
            # the head did not end in time (or the client left): nothing to answer, as above
            await _close(conn)
            return
        http = await self.http.get()
        if http is None:
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                try:
                    await conn.send_all(_UNAVAILABLE)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
            await _close(conn)
            return
        await http.serve(conn, whole)


async def _close(conn: trio.SocketStream | trio.SSLStream[trio.SocketStream]) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
        try:
            await conn.aclose()
        except (trio.BrokenResourceError, OSError):
            pass


async def _rest_of_head(conn: trio.SocketStream | trio.SSLStream[trio.SocketStream], head: bytes,
                        deadline: float) -> bytes | None:
    """``head`` read on to its blank line (or past :data:`MAX_HEAD_BYTES`) by ``deadline``; None
    when the time runs out or the client leaves first. Bytes past the head (a body, a pipelined
    request) come along and are handed on."""
    scanned = 0
    try:
        with trio.move_on_at(deadline):
            while _HEAD_END.search(head, scanned) is None and len(head) <= MAX_HEAD_BYTES:
                scanned = max(0, len(head) - 2)  # a blank line may straddle two reads
                data = await conn.receive_some(RECEIVE_CHUNK_BYTES)
                if not data:
                    return None
                head += data
            return head
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return None
    return None


async def open_main_listeners(host: str, port: int, socks: list[socket.socket] | None) -> list[trio.SocketListener]:
    """Listen on ``socks`` (bound before anything else started: :mod:`rtproxy.server.ports`), or
    bind ``host:port`` now."""
    if socks is not None:
        for sock in socks:
            sock.listen(LISTEN_BACKLOG)
        return [trio.SocketListener(trio.socket.from_stdlib_socket(sock)) for sock in socks]
    try:
        return await trio.open_tcp_listeners(port, host=host, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise OSError(exc.errno, main_port_in_use(host, port)) from None
        raise


async def serve_main_port(cfg: Config, load_http: HttpLoader, run_session: RunSession, slots: ConnectionSlots,
                          is_session_path: Callable[[str], bool], ssl_context: ssl.SSLContext | None, *,
                          socks: list[socket.socket] | None = None,
                          shutdown_trigger: Callable[[], Awaitable[None]],
                          http_on_demand: bool = False,
                          task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the main port until ``shutdown_trigger`` returns, with the HTTP side's app lifespan
    around it: started before the port opens, or ``http_on_demand`` by the first HTTP request."""
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["http/1.1"])
    async with trio.open_nursery() as lifespan_nursery:
        http = _Http(load_http, lifespan_nursery)
        if not http_on_demand:
            await http.load_now()
        main = MainPort(cfg.server, run_session, slots, is_session_path, http, ssl_context)
        listeners = await open_main_listeners(cfg.server.host, cfg.server.port, socks)
        async with trio.open_nursery() as connections:
            try:
                async with trio.open_nursery() as accepting:
                    accepting.start_soon(partial(trio.serve_listeners, main.handle, listeners,
                                                 handler_nursery=connections))
                    task_status.started(listeners[0].socket.getsockname()[1])
                    await shutdown_trigger()
                    accepting.cancel_scope.cancel()
            finally:
                await http.stop_idle()  # idle keep-alive connections close now
                connections.cancel_scope.deadline = trio.current_time() + cfg.server.shutdown_grace_s
        await http.shutdown()
        lifespan_nursery.cancel_scope.cancel()
