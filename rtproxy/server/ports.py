"""The gateway's ports, bound or checked before anything else starts.

A port in use is the commonest start-up failure, and the one an operator fixes by changing one
setting. So ``rtproxy serve`` (and the hypercorn launch, through ``rtproxy.hypercorn_conf``)
binds the main port and tries the realtime and metrics ports first: that failure is then the
first and only line printed, naming the config key and the command-line flag that change it,
not something said after the state store and the offline model have logged that they started.

The main port's sockets are kept and served (nothing can take the port in between); the realtime
and metrics ports are bound and let go, as their listeners bind them again themselves inside the
gateway's services (a port taken in that moment still fails with the same message, later).
"""

from __future__ import annotations

import errno
import socket

from ..config import ServerConfig
from ..errors import StartupFailed


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main_port_in_use(host: str, port: int, *, flag: str | None = "--port") -> str:
    """What to say when the main port is taken. ``flag``: the command line's, if it has one."""
    change = "[server].port" + (f" or {flag}" if flag else "")
    return f"port {_bind(host, port)} is already in use (set {change})"


def realtime_port_in_use(host: str, port: int, *, flag: str | None = "--realtime-port") -> str:
    change = "[server].realtime_port" + (f" or {flag}" if flag else "")
    return f"realtime port {_bind(host, port)} is already in use (set {change}, or -1 to turn the listener off)"


def metrics_port_in_use(host: str, port: int) -> str:
    return f"metrics port {_bind(host, port)} is already in use (set [server].metrics_port, or -1 to turn it off)"


def bind_tcp(host: str, port: int, *, reuse_port: bool = False) -> list[socket.socket]:
    """Bound (not yet listening) TCP sockets for ``host:port``, one for each address the host
    names, as :func:`trio.open_tcp_listeners` binds them. Raises OSError (EADDRINUSE: in use)."""
    socks: list[socket.socket] = []
    try:
        for family, type_, proto, _, addr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                flags=socket.AI_PASSIVE):
            sock = socket.socket(family, type_, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:  # --workers: every worker binds the same port; the kernel spreads connections
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind(addr)
            if reuse_port:  # one socket a worker, as before (SO_REUSEPORT groups are per address)
                break
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def bind_main_port(server: ServerConfig, *, flag: str | None = "--port",
                   reuse_port: bool = False) -> list[socket.socket]:
    """The main port's bound sockets, to be served. Raises StartupFailed if the port is taken (or
    cannot be bound at all: a host that is not this machine's, a privileged port)."""
    try:
        return bind_tcp(server.host, server.port, reuse_port=reuse_port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupFailed(main_port_in_use(server.host, server.port, flag=flag)) from None
        raise StartupFailed(f"cannot bind {_bind(server.host, server.port)}: {exc.strerror or exc}") from None


def check_other_ports(server: ServerConfig, *, realtime_flag: str | None = "--realtime-port") -> None:
    """Bind the realtime and metrics ports (when on, and not 0: a free one is picked) and let them
    go. Raises StartupFailed if one is taken."""
    wanted = [(server.host, server.realtime_port, realtime_port_in_use(server.host, server.realtime_port,
                                                                       flag=realtime_flag)),
              (server.metrics_host, server.metrics_port, metrics_port_in_use(server.metrics_host,
                                                                             server.metrics_port))]
    for host, port, in_use in wanted:
        if port <= 0:
            continue
        try:
            socks = bind_tcp(host, port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupFailed(in_use) from None
            raise StartupFailed(f"cannot bind {_bind(host, port)}: {exc.strerror or exc}") from None
        for sock in socks:
            sock.close()
