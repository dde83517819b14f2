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

This drives hypercorn below its public ``serve()`` (its ``TCPServer``, ``Lifespan`` and
``WorkerContext``, as its own ``worker_serve`` does), so ``pyproject.toml`` pins hypercorn's
minor version; ``tests/test_front.py`` covers the hand-off (keep-alive, pipelining, TLS).
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, Updated
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState
from hypercorn.utils import wrap_app

from ..config import Config, ServerConfig
from ..relay.wsleg import RECEIVE_CHUNK_BYTES
from .connections import ConnectionSlots
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
#: How long closing a connection handed to hypercorn may take (a TLS close_notify included).
CLOSE_TIMEOUT_S = 1.0


def hypercorn_config(cfg: Config) -> HypercornConfig:
    """hypercorn's settings for the HTTP connections the main port hands it."""
    s = cfg.server
    hc = HypercornConfig()
    hc.websocket_max_message_size = s.max_message_bytes
    hc.keep_alive_timeout = s.keep_alive_timeout_s
    hc.read_timeout = s.http_read_timeout_s  # type: ignore[assignment]
    hc.h11_max_incomplete_size = MAX_HEAD_BYTES
    hc.graceful_timeout = s.shutdown_grace_s
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    return hc


def realtime_request_line(head: bytes, is_session_path: Callable[[str], bool]) -> bool:
    """Whether ``head`` starts with ``GET <a session path>[?query] HTTP/1.x`` (Realtime or GPT-Live)."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or not parts[2].startswith(b"HTTP/1."):
        return False
    target = parts[1].split(b"?", 1)[0]
    return is_session_path(target.decode("latin-1"))


class _Replay:
    """A plain connection for hypercorn, replaying the bytes the front already read."""

    def __init__(self, stream: Any, head: bytes, send_timeout_s: float) -> None:
        self._stream = stream
        self._head = head
        self.send_timeout_s = send_timeout_s

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        return await self._stream.receive_some(max_bytes)  # type: ignore[no-any-return]

    async def send_all(self, data: bytes) -> None:
        # hypercorn shields its writes: without a deadline of our own, a client that stops
        # reading would hold this connection (and its task) for as long as TCP keeps it
        with trio.move_on_after(self.send_timeout_s) as waited:
            await self._stream.send_all(data)
        if waited.cancelled_caught:
            raise trio.BrokenResourceError(f"the client took no data for {self.send_timeout_s:g} s")

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    # hypercorn closes a connection that must close (``Connection: close``) from the app's task,
    # which is being cancelled as it finishes: unshielded, the half-close raises Cancelled and the
    # socket is never closed (one descriptor held per request). Closing is bounded instead.
    async def send_eof(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
            await self._stream.send_eof()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_S):
            await self._stream.aclose()
        await trio.lowlevel.checkpoint_if_cancelled()

    @property
    def socket(self) -> Any:
        return self._stream.socket


class _ReplayTLS(_Replay):
    """The same over TLS: hypercorn sees an SSL stream whose handshake is already done."""

    async def do_handshake(self) -> None:
        pass

    def selected_alpn_protocol(self) -> str | None:
        return self._stream.selected_alpn_protocol()  # type: ignore[no-any-return]

    @property
    def transport_stream(self) -> Any:
        return self._stream.transport_stream

    async def send_eof(self) -> None:  # TLS has no half-close: hypercorn expects this
        raise AttributeError("send_eof")


class _HttpConnection(TCPServer):
    """hypercorn's HTTP/1.1 connection server, with its bookkeeping made cancel-proof.

    hypercorn sends "idle again" (which restarts the keep-alive timer) and "close" from the
    app's task as that task finishes and is cancelled, so both were lost: a keep-alive
    connection was never timed out and a ``Connection: close`` one never closed. Both are quick
    and bounded (the close by :data:`CLOSE_TIMEOUT_S`), so they run shielded.
    """

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, (Closed, Updated)):
            with trio.CancelScope(shield=True):
                await super().protocol_send(event)
        else:
            await super().protocol_send(event)

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            # the client is gone: no keep-alive timer may hold the connection open any longer
            with trio.CancelScope(shield=True):
                await self.idle_task.stop()


@attrs.define
class MainPort:
    """What each main-port connection needs."""

    server: ServerConfig
    run_session: RunSession
    slots: ConnectionSlots
    is_session_path: Callable[[str], bool]
    app: AppWrapper
    hc: HypercornConfig
    context: WorkerContext
    state: dict[str, Any]
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
        head = whole
        timeout = self.server.client_send_timeout_s
        replay = _ReplayTLS(conn, head, timeout) if isinstance(conn, trio.SSLStream) else _Replay(conn, head, timeout)
        await _HttpConnection(self.app, self.hc, self.context, ConnectionState(self.state.copy()), replay)  # type: ignore[arg-type]


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


async def serve_main_port(cfg: Config, asgi_app: Any, run_session: RunSession, slots: ConnectionSlots,
                          is_session_path: Callable[[str], bool], ssl_context: ssl.SSLContext | None, *,
                          socks: list[socket.socket] | None = None,
                          shutdown_trigger: Callable[[], Awaitable[None]],
                          task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the main port until ``shutdown_trigger`` returns, with the app's lifespan around it
    (its startup starts the gateway's services; its shutdown closes the sessions)."""
    hc = hypercorn_config(cfg)
    app = wrap_app(asgi_app, hc.wsgi_max_body_size, None)
    state: dict[str, Any] = {}
    lifespan = Lifespan(app, hc, state)
    context = WorkerContext(None)
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(["http/1.1"])
    main = MainPort(cfg.server, run_session, slots, is_session_path, app, hc, context, state, ssl_context)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
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
                await context.terminated.set()  # idle keep-alive connections close now
                connections.cancel_scope.deadline = trio.current_time() + hc.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
