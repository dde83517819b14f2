"""CPU per hop inside one process: what the event loop and the leg cost, without the kernel's
loopback TCP or another process in the way.

    .venv/bin/python bench/hop.py

Three ways of moving one message from a socket to another (socketpairs, one message in flight):

- ``bare epoll``: a ``select.epoll`` loop (level-triggered, registered once), recv + send;
- ``trio task``: two trio tasks parked in ``wait_readable``, recv + send (what trio's scheduler
  and its EPOLLONESHOT re-arming add to the bare loop);
- ``rtproxy leg``: a client's masked 2.6 KB audio event through a server-side WebSocketLeg,
  classified, and re-sent masked by a client-side leg, as Session._pump does (the far end, which
  answers each frame with the next, is a bare trio task, counted in the figure).
"""

from __future__ import annotations

import base64
import select
import socket
import sys
import time
from pathlib import Path

import trio
from websockets.client import ClientProtocol
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rtproxy.protocols.realtime import REALTIME  # noqa: E402
from rtproxy.relay.transport import SocketTransport, encode_data_frames  # noqa: E402
from rtproxy.relay.wsleg import WebSocketLeg  # noqa: E402

HOPS = 20000
AUDIO = base64.b64encode(bytes(range(256)) * 7 + bytes(128)).decode()
EVENT = ('{"type":"input_audio_buffer.append","event_id":"x0000000001","audio":"' + AUDIO + '"}').encode()


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def bare_epoll() -> float:
    a, b = _pair()
    ep = select.epoll()
    ep.register(a, select.EPOLLIN)
    ep.register(b, select.EPOLLIN)
    a.send(b"x")
    hops = 0
    t = time.process_time()
    while hops < HOPS:
        for fd, _ in ep.poll():
            src, dst = (a, b) if fd == a.fileno() else (b, a)
            dst.send(src.recv(64))
            hops += 1
    return (time.process_time() - t) / hops * 1e6


async def trio_tasks() -> float:
    a, b = _pair()
    hops = [0]

    async def pump(src: socket.socket, dst: socket.socket) -> None:
        while True:
            await trio.lowlevel.wait_readable(src)
            dst.send(src.recv(64))
            hops[0] += 1
            if hops[0] >= HOPS:
                done.set()

    done = trio.Event()
    t = time.process_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump, a, b)
        nursery.start_soon(pump, b, a)
        a.send(b"x")
        await done.wait()
        nursery.cancel_scope.cancel()
    return (time.process_time() - t) / hops[0] * 1e6


async def rtproxy_leg() -> float:
    client_app, client_px = _pair()
    upstream_px, upstream_app = _pair()
    client_leg = WebSocketLeg(SocketTransport(client_px), ServerProtocol(state=OPEN, max_size=None))
    upstream_leg = WebSocketLeg(SocketTransport(upstream_px),
                                ClientProtocol(parse_uri("ws://upstream/"), state=OPEN, max_size=None))
    parts: list[bytes] = []
    encode_data_frames([(True, EVENT)], mask=True, out=parts)
    frame = b"".join(parts)
    classify = REALTIME.classify
    done = trio.Event()

    async def pump() -> None:
        while True:
            messages = await client_leg.receive()
            for is_text, payload in messages:
                if is_text:
                    classify(payload)
            await upstream_leg.send(messages)

    async def far_end() -> None:
        for _ in range(HOPS):
            await trio.lowlevel.wait_readable(upstream_app)
            upstream_app.recv(65536)
            client_app.send(frame)
        done.set()

    t = time.process_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        nursery.start_soon(far_end)
        client_app.send(frame)
        await done.wait()
        nursery.cancel_scope.cancel()
    return (time.process_time() - t) / HOPS * 1e6


def main() -> None:
    bare = bare_epoll()
    tasks = trio.run(trio_tasks)
    leg = trio.run(rtproxy_leg)
    print(f"bare epoll loop:      {bare:6.1f} µs per hop")
    print(f"trio tasks:           {tasks:6.1f} µs per hop ({tasks / bare:.1f}× bare)")
    print(f"rtproxy leg + far end:{leg:6.1f} µs per relayed frame (the far end is a trio task: "
          f"the leg itself ≈ {leg - tasks:.1f} µs)")


if __name__ == "__main__":
    main()
