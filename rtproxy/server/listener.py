"""The realtime listener: raw trio TCP + the ``websockets`` sans-IO server protocol.

This is the fast data path (docs/architecture.md): no ASGI, no framework, one task per direction.
Each connection reads its HTTP upgrade request within ``handshake_timeout_s``; invalid requests
get websockets' own 4xx answer; valid ones become a :class:`ListenerHandshake` for the session
core. With several worker processes, each binds the port with ``SO_REUSEPORT``.
"""

from __future__ import annotations

import email.utils
import errno
import functools
import http
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import trio
from websockets.datastructures import Headers
from websockets.exceptions import HeaderLineTooLong, InvalidHeader, RequestLineTooLong, TooManyHeaders
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from ..auth.admission import HandshakeRequest, select_subprotocol
from ..config import ServerConfig
from ..relay.handshake import ClientHandshake, error_body
from ..relay.transport import SocketTransport, TimedStream
from ..relay.wsleg import RECEIVE_CHUNK_BYTES, WIRE_LOGGER, LegLimits, WebSocketLeg
from .connections import ConnectionSlots
from .ports import realtime_port_in_use

#: What the listener hands each accepted handshake to (the gateway's ``run_session``).
RunSession = Callable[[ClientHandshake], Awaitable[None]]

log = logging.getLogger("rtproxy.listener")

#: Pending connections the kernel queues for the realtime port.
LISTEN_BACKLOG = 1024


def _select(protocol: ServerProtocol, offered: object) -> str | None:
    return select_subprotocol(list(offered))  # type: ignore[call-overload]


Transport = trio.abc.Stream | SocketTransport | TimedStream


async def _send_pending(stream: Transport, proto: ServerProtocol) -> None:
    data = proto.data_to_send()
    payload = b"".join(d for d in data if d)
    if payload:
        await stream.send_all(payload)


async def _send_response(stream: Transport, response: Response) -> None:
    try:
        await stream.send_all(response.serialize())
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


#: What a refused handshake's body says, by status: never the request's header values, which may
#: hold a credential (a malformed ``Sec-WebSocket-Protocol`` carries the key).
_HANDSHAKE_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_handshake", "the WebSocket handshake is invalid"),
    403: ("origin_not_allowed", "this Origin may not open sessions"),
    405: ("method_not_allowed", "a WebSocket handshake is a GET request"),
    414: ("request_line_too_long", "the request line is too long"),
    426: ("upgrade_required", "this is a WebSocket endpoint: send a WebSocket upgrade request"),
    431: ("headers_too_large", "a request header line is over 8 KiB, or there are too many headers"),
    505: ("http_version_not_supported", "a WebSocket handshake needs HTTP/1.1"),
}


def handshake_refusal(proto: ServerProtocol, status: int) -> Response:
    """Our own answer to a handshake websockets refused: a JSON error naming what was wrong (the
    header's name, never its value) instead of websockets' text, which quotes the value."""
    code, message = _HANDSHAKE_ERRORS.get(status, _HANDSHAKE_ERRORS[400])
    exc = proto.handshake_exc
    name = getattr(exc, "name", None)
    if isinstance(exc, InvalidHeader) and isinstance(name, str) and name.isascii() and len(name) < 64:
        message = f"{message}: the {name} header is missing or invalid"
    response = json_response(status, error_body(code, message, "invalid_request_error"))
    if status == 426:
        response.headers["Upgrade"] = "websocket"
    return response


def json_response(status: int, body: bytes) -> Response:
    """An HTTP answer with a JSON body that ends the connection."""
    st = http.HTTPStatus(status)
    headers = Headers([
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Connection", "close"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
    ])
    return Response(st.value, st.phrase, headers, body)


@functools.lru_cache(maxsize=4)
def _client_limits(cfg: ServerConfig) -> LegLimits:
    """One LegLimits value per configuration, shared by its sessions' client legs."""
    return LegLimits.of(cfg)


def _refused_status(exc: BaseException | None) -> int:
    if isinstance(exc, RequestLineTooLong):
        return 414
    if isinstance(exc, (HeaderLineTooLong, TooManyHeaders)):
        return 431
    return 400


class ListenerHandshake:
    def __init__(self, stream: Transport, proto: ServerProtocol, response: Response,
                 request: HandshakeRequest, close_timeout_s: float, limits: LegLimits) -> None:
        self._stream = stream
        self._proto = proto
        self._response: Response | None = response
        self.request = request
        self._close_timeout_s = close_timeout_s
        self._limits = limits

    @classmethod
    async def read(cls, stream: Transport, cfg: ServerConfig, client_ip: str,
                   initial: bytes = b"", *, deadline: float | None = None) -> ListenerHandshake | None:
        """Read and check the upgrade request (``initial``: bytes of it already read); answer a
        bad one and return None, or return the handshake, to be accepted or rejected. The request
        must be whole by ``deadline`` (default: ``handshake_timeout_s`` from now), however it
        trickles in; the listener reads no request bodies (websockets refuses a handshake with one)."""
        proto = ServerProtocol(max_size=cfg.max_message_bytes, select_subprotocol=_select, logger=WIRE_LOGGER)
        request: Request | None = None
        data: bytes | bytearray = initial
        with trio.move_on_at(trio.current_time() + cfg.handshake_timeout_s if deadline is None else deadline):
            while request is None:
                if not data:
                    data = await stream.receive_some(RECEIVE_CHUNK_BYTES)
                    if not data:
                        return None
                proto.receive_data(data)
                data = b""
                for event in proto.events_received():
                    if isinstance(event, Request):
                        request = event
                        break
                if request is None and proto.writes:  # websockets refused the request (414, 431, 400)
                    proto.data_to_send()  # its text may quote a header: ours instead
                    await _send_response(stream, handshake_refusal(proto, _refused_status(proto.handshake_exc)))
                    return None
        if request is None:
            return None
        response = proto.accept(request)
        if response.status_code != 101:
            await _send_response(stream, handshake_refusal(proto, response.status_code))
            return None
        path, _, query = request.path.partition("?")
        headers = tuple((k.lower(), v) for k, v in request.headers.raw_items())
        # websockets' parser generator keeps the Request alive for the whole connection: empty it.
        request.headers.clear()
        request_ = HandshakeRequest(path, query, headers, client_ip, listener="main" if initial else "realtime")
        return cls(stream, proto, response, request_, cfg.close_timeout_s, _client_limits(cfg))

    async def reject(self, status: int, body: bytes) -> None:
        self._proto.send_response(json_response(status, body))
        try:
            await _send_pending(self._stream, self._proto)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def accept(self, subprotocol: str | None) -> WebSocketLeg:
        assert self._proto.subprotocol == subprotocol, "the listener and admission chose different subprotocols"
        assert self._response is not None
        self._proto.send_response(self._response)
        # The headers are not needed once the session is open: free them (≈5 KB per session).
        self._response = None
        self.request = attrs.evolve(self.request, headers=())
        leg = WebSocketLeg(self._stream, self._proto, close_timeout_s=self._close_timeout_s, limits=self._limits)
        await leg.send(())  # flushes the 101
        return leg


def client_ip_of(stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]) -> str:
    raw = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    try:
        peer = raw.socket.getpeername()
        return peer[0] if isinstance(peer, tuple) else ""
    except OSError:
        return ""


async def serve_websocket(cfg: ServerConfig, run_session: RunSession,
                          stream: trio.SocketStream | trio.SSLStream[trio.SocketStream], initial: bytes = b"", *,
                          deadline: float | None = None) -> None:
    """One client connection that should be a realtime WebSocket upgrade (``initial``: bytes of
    its request already read, by ``deadline`` at the latest, the time its whole request has):
    check the handshake, run the session, close the connection."""
    client_ip = client_ip_of(stream)
    send_timeout = cfg.client_send_timeout_s
    transport: Transport
    if isinstance(stream, trio.SSLStream):
        transport = TimedStream(stream, send_timeout)  # TLS: trio's stream, with the slow-client limit
    else:
        transport = SocketTransport.from_stream(stream, send_timeout_s=send_timeout)
    try:
        hs = await ListenerHandshake.read(transport, cfg, client_ip, initial, deadline=deadline)
        if hs is not None:
            await run_session(hs)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:
        # A bug in one session must not take the listener down with it.
        log.exception("realtime connection from %s failed", client_ip)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            try:
                await transport.aclose()
            except (trio.BrokenResourceError, OSError):
                pass


async def _handle_connection(cfg: ServerConfig, run_session: RunSession, slots: ConnectionSlots,
                             stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]) -> None:
    if not slots.take():
        await slots.refuse(stream)
        return
    try:
        await serve_websocket(cfg, run_session, stream)
    finally:
        slots.give_back()


async def open_listeners(host: str, port: int, *, reuse_port: bool = False) -> list[trio.SocketListener]:
    if not reuse_port:
        return await trio.open_tcp_listeners(port, host=host, backlog=LISTEN_BACKLOG)
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners = []
    for family, type_, proto, _, addr in infos[:1]:
        sock = trio.socket.socket(family, type_, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await sock.bind(addr)
        sock.listen(LISTEN_BACKLOG)
        listeners.append(trio.SocketListener(sock))
    return listeners


async def serve_realtime_listener(cfg: ServerConfig, run_session: RunSession, slots: ConnectionSlots,
                                  host: str, port: int, *, reuse_port: bool = False,
                                  ssl_context: ssl.SSLContext | None = None,
                                  task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    try:
        listeners: list[Any] = list(await open_listeners(host, port, reuse_port=reuse_port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise OSError(exc.errno, realtime_port_in_use(host, port)) from None
        raise
    bound = listeners[0].socket.getsockname()[1]
    if ssl_context is not None:
        listeners = [trio.SSLListener(listener, ssl_context, https_compatible=True) for listener in listeners]
    log.info("realtime listener on %s://%s:%d/v1/realtime", "wss" if ssl_context else "ws", host, bound)
    task_status.started(bound)
    await trio.serve_listeners(partial(_handle_connection, cfg, run_session, slots), listeners)
