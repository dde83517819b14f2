"""Bounds per client: fragments, pings, connections and descriptors; no credential in any refusal."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from websockets.frames import Close, Frame, Opcode

from .conftest import USER_KEY, RunningServer, make_config, start_server
from .helpers import auth_headers, raw_upgrade, text_turn, write_server_config, ws_connect
from .test_processes import BIN, free_port, server_process


async def upgraded(port: int) -> trio.SocketStream:
    stream = await raw_upgrade(port, USER_KEY)
    with trio.fail_after(10):
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(65536)
    assert head.startswith(b"HTTP/1.1 101"), head[:200]
    return stream


async def close_code(stream: trio.SocketStream) -> int | None:
    """The code of the server's close frame (None if it dropped the connection without one)."""
    data = b""
    with trio.fail_after(10):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                chunk = b""
            if not chunk:
                break
            data += chunk
    # the server's frames are unmasked: find the close frame (0x88) among them
    i = 0
    while i + 2 <= len(data):
        op, n = data[i] & 0x0F, data[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            n, j = int.from_bytes(data[j:j + 2], "big"), j + 2
        elif n == 127:
            n, j = int.from_bytes(data[j:j + 8], "big"), j + 8
        if op == 0x8:
            return Close.parse(data[j:j + n]).code
        i = j + n
    return None


def fragments(count: int, payload: bytes = b"a") -> bytes:
    """One text message in ``count`` fragments, the last one never sent (it stays open)."""
    first = Frame(Opcode.TEXT, payload, fin=False).serialize(mask=True)
    rest = Frame(Opcode.CONT, payload, fin=False).serialize(mask=True)
    return first + rest * (count - 1)


# -- fragments ----------------------------------------------------------------------------------

async def test_a_message_in_too_many_fragments_closes_with_1009_and_others_carry_on(
        server: RunningServer, listener: str) -> None:
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as bystander:
        await text_turn(bystander)
        stream = await upgraded(server.port(listener))
        await stream.send_all(fragments(server.gateway.config.server.max_fragments_per_message + 10))
        assert await close_code(stream) == 1009
        await text_turn(bystander, fresh=False)  # the other session never noticed


async def test_empty_fragments_count_against_the_message_size(nursery: trio.Nursery, tmp_path: Path,
                                                             listener: str) -> None:
    srv = await start_server(nursery, make_config(tmp_path, server={
        "max_message_bytes": 16384, "max_fragments_per_message": 1_000_000}))
    stream = await upgraded(srv.port(listener))
    # 300 empty fragments carry no payload at all, but each one costs the server something
    await stream.send_all(fragments(300, b""))
    assert await close_code(stream) == 1009


async def test_a_fragmented_message_within_the_bounds_is_relayed_whole(server: RunningServer, listener: str) -> None:
    stream = await upgraded(server.port(listener))
    event = json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "x" * 300}}).encode()
    parts = [event[i:i + 10] for i in range(0, len(event), 10)]
    frames = Frame(Opcode.TEXT, parts[0], fin=False).serialize(mask=True)
    for i, part in enumerate(parts[1:], 1):
        frames += Frame(Opcode.CONT, part, fin=i == len(parts) - 1).serialize(mask=True)
    await stream.send_all(frames)
    seen = b""
    with trio.fail_after(10):
        while b"session.updated" not in seen:
            seen += await stream.receive_some(65536)
    await stream.aclose()


# -- pings --------------------------------------------------------------------------------------

async def test_a_ping_flood_closes_with_1008(server: RunningServer, listener: str) -> None:
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as bystander:
        await text_turn(bystander)
        stream = await upgraded(server.port(listener))
        await stream.send_all(Frame(Opcode.PING, b"p").serialize(mask=True) * 500)
        assert await close_code(stream) == 1008
        await text_turn(bystander, fresh=False)


async def test_pings_at_a_normal_rate_are_answered(server: RunningServer, listener: str) -> None:
    stream = await upgraded(server.port(listener))
    for i in range(10):
        await stream.send_all(Frame(Opcode.PING, f"p{i}".encode()).serialize(mask=True))
    seen = b""
    with trio.fail_after(10):
        while seen.count(b"\x8a") < 10:  # pongs
            seen += await stream.receive_some(65536)
    await stream.aclose()


# -- credentials never echoed ---------------------------------------------------------------------

SECRET = USER_KEY
BASE = ("GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
MALFORMED = {
    "subprotocol with a stray space": BASE + f"Sec-WebSocket-Protocol: realtime, openai-insecure-api-key. {SECRET}\r\n",
    "subprotocol in quotes": BASE + f'Sec-WebSocket-Protocol: realtime, "openai-insecure-api-key.{SECRET}"\r\n',
    "subprotocol with a comma inside": BASE + f"Sec-WebSocket-Protocol: realtime,, openai-insecure-api-key.{SECRET},\r\n",
    "a second Upgrade header": BASE + f"Upgrade: h2c\r\nSec-WebSocket-Protocol: openai-insecure-api-key.{SECRET}\r\n",
    "no Sec-WebSocket-Key": BASE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "")
    + f"Authorization: Bearer {SECRET}\r\n",
    "a bad Sec-WebSocket-Key": BASE.replace("dGhlIHNhbXBsZSBub25jZQ==", f"{SECRET}=")
    + f"Authorization: Bearer {SECRET}\r\n",
    "a bad version": BASE.replace("Version: 13", f"Version: {SECRET}"),
    "no upgrade at all": f"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n",
    "a header line too long": BASE + f"Authorization: Bearer {SECRET}\r\nX-Long: {'a' * 20000}\r\n",
    "too many headers": BASE + f"Authorization: Bearer {SECRET}\r\n" + "X-A: b\r\n" * 300,
    "a header line without a colon": BASE + f"X-Key {SECRET}\r\n",
    "a key in the request line": f"GET /v1/realtime?model={SECRET}%ZZ HTTP/1.1\r\nHost: x\r\n"
    + BASE.split("\r\n", 2)[2],
    "HTTP/1.0": BASE.replace("HTTP/1.1", "HTTP/1.0") + f"Authorization: Bearer {SECRET}\r\n",
    "a bad Connection header": BASE.replace("Connection: Upgrade", f"Connection: {SECRET}"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_no_malformed_handshake_answer_or_log_carries_the_key(
        server: RunningServer, listener: str, case: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    stream = await trio.open_tcp_stream("127.0.0.1", server.port(listener))
    await stream.send_all(MALFORMED[case].encode() + b"\r\n")
    data = b""
    with trio.fail_after(10):
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b" 101 " in data.split(b"\r\n", 1)[0]:
                break  # websockets' parser takes it as valid: the 101 must not echo the key either
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                          if line.startswith(b"content-length:")]
                if not length or len(body) >= length[0]:
                    break
    await stream.aclose()
    assert data, "the server answered nothing"
    status = int(data.split(b" ", 2)[1])
    assert status == 101 or 400 <= status < 600, data[:200]
    assert SECRET.encode() not in data
    assert SECRET not in caplog.text
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await text_turn(ws)


# -- connections on the main port ----------------------------------------------------------------

async def http_exchange(port: int, request: bytes) -> tuple[trio.SocketStream, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(request)
    data = b""
    with trio.fail_after(10):
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
    return stream, data


async def eof(stream: trio.SocketStream, within_s: float) -> bool:
    """Whether the server closes ``stream`` within ``within_s`` (reading and dropping its data)."""
    with trio.move_on_after(within_s):
        while True:
            try:
                if not await stream.receive_some(65536):
                    return True
            except trio.BrokenResourceError:
                return True
    return False


async def test_connection_close_is_honoured(server: RunningServer) -> None:
    stream, data = await http_exchange(server.main_port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")
    assert await eof(stream, 5)
    await stream.aclose()


async def test_idle_keep_alive_and_silent_connections_are_closed(nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, make_config(tmp_path, server={"keep_alive_timeout_s": 0.3,
                                                                    "handshake_timeout_s": 0.5}))
    stream, data = await http_exchange(srv.main_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")
    assert await eof(stream, 10)  # kept alive, then closed when idle
    silent = await trio.open_tcp_stream("127.0.0.1", srv.main_port)
    assert await eof(silent, 10)  # never sent a request line
    for port in (srv.main_port, srv.realtime_port):
        half = await trio.open_tcp_stream("127.0.0.1", port)
        await half.send_all(b"GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\n")  # head never ends
        assert await eof(half, 10)
    await stream.aclose()
    await silent.aclose()
    assert srv.gateway.connections.open == 0 or await wait_closed(srv)


async def wait_closed(srv: RunningServer) -> bool:
    with trio.fail_after(5):
        while srv.gateway.connections.open:
            await trio.sleep(0.01)
    return True


async def test_connections_over_the_cap_get_a_503_and_the_server_recovers(nursery: trio.Nursery,
                                                                         tmp_path: Path) -> None:
    srv = await start_server(nursery, make_config(tmp_path, server={"max_connections": 4}))
    held = [await trio.open_tcp_stream("127.0.0.1", port) for port in
            (srv.main_port, srv.main_port, srv.realtime_port, srv.realtime_port)]
    with trio.fail_after(5):
        while srv.gateway.connections.open < 4:
            await trio.sleep(0.01)
    for port in (srv.main_port, srv.realtime_port):
        stream, data = await http_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 503")
        assert await eof(stream, 5)
        await stream.aclose()
    for s in held:
        await s.aclose()
    await wait_closed(srv)
    async with httpx.AsyncClient() as client:
        health = (await client.get(srv.http + "/health")).json()
    assert health["connections"]["refused"] == 2 and health["connections"]["cap"] == 4
    async with ws_connect(srv.ws_url("main"), headers=auth_headers(USER_KEY)) as ws:
        await text_turn(ws)


def _lower_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


async def test_under_a_low_descriptor_limit_the_server_keeps_answering(tmp_path: Path) -> None:
    """RLIMIT_NOFILE 256: the cap is lowered to fit, and hundreds of abusive connections (closed
    requests, idle keep-alives, silent sockets) never stop /health from answering."""
    port, rt_port = free_port(), free_port()
    cfg = write_server_config(tmp_path, port, rt_port)
    async with server_process([str(BIN / "rtproxy"), "serve", "--config", str(cfg)], tmp_path, port,
                              preexec_fn=_lower_nofile) as proc:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1)) as client:
            health = (await client.get(url + "/health")).json()
        cap = health["connections"]["cap"]
        assert cap == (256 - 64) // 2  # two descriptors per connection, 64 kept for the rest
        for _ in range(245):  # Connection: close, one after another: none may stay held
            s, data = await http_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert data.startswith(b"HTTP/1.1 200")
            await s.aclose()
        hold = [await trio.open_tcp_stream("127.0.0.1", port if i % 2 else rt_port) for i in range(cap + 50)]
        # at the cap, a new client gets a clean 503, not a dead socket (once the refusals of the
        # silent connections past the cap, each lingering REFUSAL_LINGER_S, are done)
        with trio.fail_after(10):
            while True:
                try:
                    async with httpx.AsyncClient() as client:
                        status = (await client.get(url + "/health")).status_code
                    break
                except httpx.TransportError:
                    await trio.sleep(0.05)
        assert status == 503
        for s in hold:
            await s.aclose()
        with trio.fail_after(10):
            while True:
                async with httpx.AsyncClient() as client:
                    r = await client.get(url + "/health")
                if r.status_code == 200 and r.json()["connections"]["open"] <= 1:
                    break
                await trio.sleep(0.05)
        assert r.json()["connections"]["refused"] >= 50
        async with ws_connect(f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime",
                              headers=auth_headers(USER_KEY)) as ws:
            await text_turn(ws)
        assert proc.returncode is None
    log = (tmp_path / "server.log").read_text() if (tmp_path / "server.log").exists() else ""
    assert "Too many open files" not in log


def test_the_descriptor_cap_is_what_the_limit_allows() -> None:
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200));"
            "from rtproxy.server.connections import descriptor_cap;"
            "print(descriptor_cap(10), descriptor_cap(1000))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ}).stdout.split()
    assert out == ["10", str((200 - 64) // 2)]
