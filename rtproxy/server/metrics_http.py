"""``[server] metrics_port``: ``GET /metrics`` for Prometheus scrapers, on a bind of its own.

No key is asked (a scraper config holds none): bind it where only the scraper reaches (the
default host is loopback). A minimal HTTP/1.1 responder: one request per connection, the request
head at most :data:`MAX_REQUEST_BYTES`, read within :data:`READ_TIMEOUT_S`, at most
:data:`MAX_SCRAPERS` connections at once; anything but ``GET /metrics`` is a 404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

log = logging.getLogger("rtproxy.metrics")

MAX_REQUEST_BYTES = 8 * 1024
READ_TIMEOUT_S = 5.0
MAX_SCRAPERS = 16


def _response(status: str, body: bytes, content_type: str) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


async def serve_metrics(host: str, port: int, exposition: Callable[[], bytes], content_type: str, *,
                        reuse_port: bool = False,
                        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    slots = trio.Semaphore(MAX_SCRAPERS)

    async def handle(stream: trio.SocketStream) -> None:
        if slots.value == 0:  # too many at once: refuse rather than queue
            await stream.aclose()
            return
        async with slots, stream:
            head = b""
            with trio.move_on_after(READ_TIMEOUT_S):
                while b"\r\n\r\n" not in head and len(head) < MAX_REQUEST_BYTES:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    head += chunk
            parts = head.split(b"\r\n", 1)[0].split(b" ")
            if len(parts) == 3 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
                reply = _response("200 OK", exposition(), content_type)
            else:
                reply = _response("404 Not Found", b"GET /metrics\n", "text/plain")
            try:
                with trio.move_on_after(READ_TIMEOUT_S):
                    await stream.send_all(reply)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    if reuse_port:
        import socket

        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await sock.bind((host, port))
        sock.listen(64)
        listeners = [trio.SocketListener(sock)]
    else:
        listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    log.info("metrics on http://%s:%d/metrics", host, bound)
    task_status.started(bound)
    await trio.serve_listeners(handle, listeners)
