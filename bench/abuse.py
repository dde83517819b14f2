"""Abuse: each attack of the hardening issue against a live `rtproxy serve`, with two normal sessions going.

    .venv/bin/python bench/abuse.py [--seconds 6]

For each attack it prints the server's RSS growth, its open descriptors (peak and after), the
p99 of `GET /health` and of the two normal sessions' text turns (offline model) while the attack
runs, and what the attacker got. The server is one process on the embedded default (offline
model), descriptors limited to 256 as in the issue's report, so the connection cap is 96.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio
from trio_websocket import open_websocket_url
from websockets.frames import Frame, Opcode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import free_port, wait_port  # noqa: E402

KEY = "abuse-key-0123456789abcdef"
UPGRADE = ("GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * 0.99))] * 1000


class Probe:
    """/health every 20 ms and two sessions doing text turns, timed, for as long as it runs."""

    def __init__(self, port: int, rt_port: int) -> None:
        self.port, self.rt_port = port, rt_port
        self.health: list[float] = []
        self.turns: list[float] = []
        self.failures = 0

    async def run_health(self) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            while True:
                t0 = time.perf_counter()
                try:
                    r = await http.get(f"http://127.0.0.1:{self.port}/health")
                    if r.status_code != 200:
                        self.failures += 1
                except httpx.HTTPError:
                    self.failures += 1
                self.health.append(time.perf_counter() - t0)
                await trio.sleep(0.02)

    async def run_session(self, port: int) -> None:
        async with open_websocket_url(f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime",
                                      extra_headers=[(b"authorization", f"Bearer {KEY}".encode())]) as ws:
            await ws.get_message()
            while True:
                t0 = time.perf_counter()
                await ws.send_message(json.dumps({"type": "conversation.item.create", "item": {
                    "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}}))
                await ws.send_message('{"type":"response.create"}')
                while '"response.done"' not in (await ws.get_message())[:40]:
                    pass
                self.turns.append(time.perf_counter() - t0)
                await trio.sleep(0.05)

    def reset(self) -> None:
        self.health, self.turns, self.failures = [], [], 0


async def raw(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def upgraded(port: int) -> trio.SocketStream:
    s = await raw(port)
    await s.send_all(UPGRADE.encode() + f"Authorization: Bearer {KEY}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await s.receive_some(65536)
    return s


async def drain_until_closed(s: trio.SocketStream, limit_s: float) -> bytes:
    data = b""
    with trio.move_on_after(limit_s):
        while True:
            try:
                chunk = await s.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            data += chunk
    return data


def close_code(data: bytes) -> str:
    i = data.rfind(b"\x88")
    if i < 0 or i + 4 > len(data):
        return "no close frame"
    return str(int.from_bytes(data[i + 2:i + 4], "big"))


# -- the attacks: each returns what the attacker got ----------------------------------------------

async def flood(port: int, first: bytes, frame: bytes, batch: int, total: int, wait_s: float = 5) -> tuple[str, int]:
    """Send ``first``, then ``frame`` in batches until ``total`` are out or the server closes;
    (the close code it sent, how many frames were written)."""
    s = await upgraded(port)
    sent = 0
    try:
        await s.send_all(first)
        while sent < total:
            await s.send_all(frame * batch)
            sent += batch
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    code = close_code(await drain_until_closed(s, wait_s))
    await s.aclose()
    return code, sent


async def fragment_flood(port: int) -> str:
    """A 3 MB message as 1-byte continuation frames."""
    code, sent = await flood(port, Frame(Opcode.TEXT, b"a", fin=False).serialize(mask=True),
                             Frame(Opcode.CONT, b"a", fin=False).serialize(mask=True), 8192, 3_000_000)
    return f"closed {code} after {sent:,} of 3,000,000 fragments were written"


async def empty_fragment_flood(port: int) -> str:
    code, sent = await flood(port, Frame(Opcode.TEXT, b"", fin=False).serialize(mask=True),
                             Frame(Opcode.CONT, b"", fin=False).serialize(mask=True), 16384, 15_000_000)
    return f"closed {code} after {sent:,} of 15,000,000 empty fragments"


async def connection_close_requests(port: int) -> str:
    for _ in range(245):
        s = await raw(port)
        await s.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await drain_until_closed(s, 5)
        await s.aclose()
    return "245 requests with Connection: close, each closed by the server"


async def keep_alive_hold(port: int, seconds: float) -> str:
    held = []
    refused = 0
    for _ in range(1000):
        try:
            s = await raw(port)
        except OSError:
            refused += 1
            continue
        try:
            await s.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        except trio.BrokenResourceError:
            refused += 1
            continue
        held.append(s)
    await trio.sleep(seconds)
    still = 0
    for s in held:
        with trio.move_on_after(0.01):
            try:
                while await s.receive_some(65536):
                    pass
                continue  # closed by the server
            except trio.BrokenResourceError:
                continue
        still += 1
    for s in held:
        await s.aclose()
    return f"1000 keep-alive connections: {still} still open after {seconds:g} s"


async def ping_flood(port: int) -> str:
    """Pings as fast as the socket takes them, never reading a pong."""
    ping = Frame(Opcode.PING, b"x" * 125).serialize(mask=True)
    code, sent = await flood(port, b"", ping, 256, 200_000, wait_s=15)
    return f"closed {code} after {sent:,} pings"


async def credential_echo(port: int) -> str:
    cases = [
        UPGRADE + f"Sec-WebSocket-Protocol: realtime, openai-insecure-api-key. {KEY}\r\n",
        UPGRADE + f'Sec-WebSocket-Protocol: realtime, "openai-insecure-api-key.{KEY}"\r\n',
        UPGRADE + f"Upgrade: h2c\r\nSec-WebSocket-Protocol: openai-insecure-api-key.{KEY}\r\n",
        UPGRADE + f"Authorization: Bearer {KEY}\r\nX-Long: {'a' * 20000}\r\n",
    ]
    echoed = 0
    for case in cases:
        s = await raw(port)
        await s.send_all(case.encode() + b"\r\n")
        data = await drain_until_closed(s, 3)
        await s.aclose()
        echoed += KEY.encode() in data
    return f"{len(cases)} malformed handshakes, {echoed} answers carried the key"


async def long_token(port: int, rt_port: int) -> str:
    async with httpx.AsyncClient() as http:
        r = await http.post(f"http://127.0.0.1:{port}/v1/realtime/client_secrets", headers={"Authorization": f"Bearer {KEY}"},
                            json={"session": {"type": "realtime", "model": "gpt-realtime", "instructions": "x" * 12000}})
    token = r.json()["value"]
    async with open_websocket_url(f"ws://127.0.0.1:{rt_port}/v1/realtime", subprotocols=[
            "realtime", f"openai-insecure-api-key.{token}"]) as ws:
        await ws.get_message()
    return f"a {len(token)}-character token for 12,000 characters of instructions; it opens on the realtime listener"


def _lower_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


async def main(seconds: float) -> None:
    port, rt_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="rtproxy-abuse-"))
    (work / "config.toml").write_text(textwrap.dedent(f"""
        [server]
        port = {port}
        realtime_port = {rt_port}
        [spend_log]
        path = "spend.jsonl"
        [[models]]
        name = "gpt-realtime"
        provider = "local"
        [[keys]]
        name = "abuse"
        key = "env:ABUSE_KEY"
    """))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "rtproxy"), "serve", "--config", str(work / "config.toml")],
                            cwd=work, env={**os.environ, "ABUSE_KEY": KEY, "RTPROXY_LOG_LEVEL": "WARNING"},
                            stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "wb"), preexec_fn=_lower_nofile)
    wait_port(port)
    wait_port(rt_port)
    attacks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        ("none (baseline)", lambda: baseline(seconds)),
        ("fragment flood, realtime port", lambda: fragment_flood(rt_port)),
        ("fragment flood, main port", lambda: fragment_flood(port)),
        ("empty fragments, realtime port", lambda: empty_fragment_flood(rt_port)),
        ("empty fragments, main port", lambda: empty_fragment_flood(port)),
        ("245 × Connection: close", lambda: connection_close_requests(port)),
        ("1000 keep-alive connections", lambda: keep_alive_hold(port, seconds)),
        ("ping flood, never reading", lambda: ping_flood(rt_port)),
        ("ping flood, main port", lambda: ping_flood(port)),
        ("malformed handshakes", lambda: credential_echo(rt_port)),
        ("long token", lambda: long_token(port, rt_port)),
    ]
    rows = []
    probe = Probe(port, rt_port)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe.run_health)
            nursery.start_soon(probe.run_session, rt_port)
            nursery.start_soon(probe.run_session, port)
            await trio.sleep(1.0)
            for name, attack in attacks:
                probe.reset()
                rss0, peak_fds = rss_kib(proc.pid), fds(proc.pid)
                done = trio.Event()

                async def watch_fds(done: trio.Event) -> None:
                    nonlocal peak_fds
                    while not done.is_set():
                        peak_fds = max(peak_fds, fds(proc.pid))
                        await trio.sleep(0.05)

                nursery.start_soon(watch_fds, done)
                outcome = await attack()
                done.set()
                await trio.sleep(1.0)  # what is left once the attacker is gone
                rows.append({"attack": name, "rss_growth_mib": round((rss_kib(proc.pid) - rss0) / 1024, 1),
                             "fds_peak": peak_fds, "fds_after": fds(proc.pid),
                             "health_p99_ms": round(p99(probe.health), 1), "health_failures": probe.failures,
                             "turn_p99_ms": round(p99(probe.turns), 1), "turns": len(probe.turns), "attacker_got": outcome})
            nursery.cancel_scope.cancel()
    finally:
        proc.terminate()
        proc.wait(15)
    print("| attack | RSS growth MiB | fds peak / after | /health p99 ms (failures) | normal turn p99 ms (turns) | what the attacker got |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['attack']} | {r['rss_growth_mib']} | {r['fds_peak']} / {r['fds_after']} | "
              f"{r['health_p99_ms']} ({r['health_failures']}) | {r['turn_p99_ms']} ({r['turns']}) | {r['attacker_got']} |")


async def baseline(seconds: float) -> str:
    await trio.sleep(seconds)
    return "-"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    trio.run(main, ap.parse_args().seconds)
