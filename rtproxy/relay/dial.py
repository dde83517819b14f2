"""Dialing the upstream provider: TCP (+TLS for ``wss://``), then the WebSocket handshake.

:func:`dial_upstream` is the one seam between a session and the network on the upstream side:
tests point a model at the offline model or at a scripted fake upstream on loopback.
Frames that arrive in the same read as the 101 response (``session.created`` often does) are
kept and returned first by the leg.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import ssl

import trio
from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.uri import parse_uri

from ..errors import UpstreamRejected, UpstreamUnreachable
from ..protocols.seam import UpstreamTarget
from .transport import SocketTransport
from .wsleg import RECEIVE_CHUNK_BYTES, WIRE_LOGGER, LegLimits, WebSocketLeg

#: The upstream's handshake response (headers + any error body) may be at most this big.
MAX_HANDSHAKE_RESPONSE_BYTES = 256 * 1024
#: Unsent bytes the kernel may hold per socket before a write waits (as trio's SocketStream).
NOTSENT_LOWAT_BYTES = 16 * 1024


async def _connect_ip(host: str, port: int) -> socket.socket:
    """A TCP connection to an IP literal (an offline model, a sidecar, a private endpoint) with
    one socket and one wait: no resolver, no happy-eyeballs nursery (trio.open_tcp_stream's
    machinery costs about a fifth of a connect's CPU here, for one address). Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_NOTSENT_LOWAT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, NOTSENT_LOWAT_BYTES)
        err = sock.connect_ex((host, port))
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            await trio.lowlevel.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        return sock
    except BaseException:
        sock.close()
        raise


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _open_tcp(host: str, port: int) -> trio.SocketStream | socket.socket:
    if _is_ip(host):
        return await _connect_ip(host, port)
    return await trio.open_tcp_stream(host, port)


def default_ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """Certificate-verifying client context (system CAs, or a private bundle)."""
    return ssl.create_default_context(cafile=cafile)


async def dial_upstream(
    target: UpstreamTarget,
    *,
    max_message_bytes: int,
    connect_timeout_s: float,
    close_timeout_s: float,
    ssl_context: ssl.SSLContext | None = None,
) -> WebSocketLeg:
    """Open the upstream WebSocket. Raises UpstreamUnreachable or UpstreamRejected."""
    try:
        uri = parse_uri(target.url)
    except Exception as exc:
        raise UpstreamUnreachable(f"invalid upstream URL: {exc}") from None
    stream: trio.abc.Stream | SocketTransport | None = None
    started = trio.current_time()
    try:
        with trio.fail_after(connect_timeout_s):
            opened = await _open_tcp(uri.host, uri.port)
            if not uri.secure:  # the lean path for plain TCP
                stream = SocketTransport(opened) if isinstance(opened, socket.socket) else \
                    SocketTransport.from_stream(opened)
            else:
                tcp = opened if isinstance(opened, trio.SocketStream) else \
                    trio.SocketStream(trio.socket.from_stdlib_socket(opened))
                stream = tcp
                tls = trio.SSLStream(
                    tcp, ssl_context or default_ssl_context(), server_hostname=uri.host, https_compatible=True
                )
                stream = tls
                await tls.do_handshake()
            proto = ClientProtocol(uri, max_size=max_message_bytes, logger=WIRE_LOGGER)
            request = proto.connect()
            for name, value in target.headers:
                request.headers[name] = value
            proto.send_request(request)
            await stream.send_all(b"".join(proto.data_to_send()))
            received = 0
            while True:
                data = await stream.receive_some(RECEIVE_CHUNK_BYTES)
                received += len(data)
                if data:
                    proto.receive_data(data)
                else:
                    proto.receive_eof()
                events = proto.events_received()
                if events:
                    break
                if not data:
                    raise UpstreamUnreachable("upstream closed the connection during the handshake")
                if received > MAX_HANDSHAKE_RESPONSE_BYTES:
                    raise UpstreamUnreachable("upstream handshake response is too large")
    except trio.TooSlowError:
        await _aclose_quietly(stream)
        raise UpstreamUnreachable(f"upstream did not answer within {connect_timeout_s:g} s") from None
    except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
        await _aclose_quietly(stream)
        detail = getattr(exc, "strerror", None) or type(exc).__name__
        raise UpstreamUnreachable(f"cannot connect to upstream {uri.host}:{uri.port}: {detail}") from None
    except BaseException:  # UpstreamUnreachable, or cancelled mid-handshake (an abandoned predial)
        await _aclose_quietly(stream)
        raise
    response = events[0]
    if proto.handshake_exc is not None or not isinstance(response, Response) or response.status_code != 101:
        await _aclose_quietly(stream)
        if isinstance(response, Response) and response.status_code != 101:
            raise UpstreamRejected(response.status_code, response.body or b"")
        raise UpstreamUnreachable(f"upstream handshake failed: {proto.handshake_exc}")
    # websockets' parser generator keeps the Response alive for the whole connection: empty it.
    response.headers.clear()
    # the provider's frames: the same size bound as the client's (its pings are not limited)
    leg = WebSocketLeg(stream, proto, close_timeout_s=close_timeout_s, pending=events[1:],
                       limits=LegLimits(max_message_bytes))
    leg.dial_s = trio.current_time() - started
    return leg


async def _aclose_quietly(stream: trio.abc.Stream | SocketTransport | None) -> None:
    if stream is not None:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            try:
                await stream.aclose()
            except (trio.BrokenResourceError, OSError):
                pass
