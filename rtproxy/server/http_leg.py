"""The main port's HTTP side: hypercorn's HTTP/1.1 connection server and the ASGI app it serves.

:mod:`rtproxy.server.front` reads each connection's first request head; a head that is not a
realtime upgrade comes here, with the bytes already read, and is served by hypercorn's
``TCPServer`` (keep-alive, pipelining, timeouts: front.py's docstring) running the app whose
lifespan :class:`HttpSide` holds. This module, hypercorn and the app are imported by the first
HTTP request a ``rtproxy serve`` gets (front.py), not at start-up: a gateway that only relays
sessions never loads them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, Updated
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

from ..config import Config
from .connections import CLOSE_TIMEOUT_S
from .front import MAX_HEAD_BYTES


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


class HttpSide:
    """hypercorn's settings, the wrapped ASGI app and its lifespan, for the main port's HTTP."""

    def __init__(self, cfg: Config, asgi_app: Any) -> None:
        self.hc = hypercorn_config(cfg)
        self.app = wrap_app(asgi_app, self.hc.wsgi_max_body_size, None)
        self.state: dict[str, Any] = {}
        self.lifespan = Lifespan(self.app, self.hc, self.state)
        self.context = WorkerContext(None)
        self._send_timeout_s = cfg.server.client_send_timeout_s

    async def start(self, nursery: trio.Nursery) -> None:
        """Run the app's lifespan in ``nursery`` until its startup is done."""
        await nursery.start(self.lifespan.handle_lifespan)
        await self.lifespan.wait_for_startup()

    async def serve(self, conn: Any, head: bytes) -> None:
        """Serve one connection whose first ``head`` the front has read."""
        replay = (_ReplayTLS if isinstance(conn, trio.SSLStream) else _Replay)(conn, head, self._send_timeout_s)
        await _HttpConnection(self.app, self.hc, self.context, ConnectionState(self.state.copy()), replay)  # type: ignore[arg-type]

    async def stop_idle(self) -> None:
        """Idle keep-alive connections close now (the port is shutting down)."""
        await self.context.terminated.set()

    async def shutdown(self) -> None:
        await self.lifespan.wait_for_shutdown()


def ready(cfg: Config, asgi_app: Any) -> Callable[[], Awaitable[HttpSide]]:
    """A loader for :func:`rtproxy.server.front.serve_main_port` of an app already built."""

    async def load() -> HttpSide:
        return HttpSide(cfg, asgi_app)

    return load
