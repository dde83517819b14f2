"""Abuse: each attack of the hardening issues against a live `rtproxy serve`, with two normal sessions going.

    .venv/bin/python bench/abuse.py [--seconds 6] [--only NAME]

For each attack it prints the server's RSS growth, its open descriptors (peak and after), the
state store's bytes on disk, the p99 and the worst of `GET /health` (the worst is how long the
event loop was held) and the p99 of the two normal sessions' text turns (offline model) while the
attack runs, and what the attacker got: for the money attacks, what was served against what was
charged. The server is one process on the embedded default (offline model), descriptors limited
to 256 as in the issue's report, so the connection cap is 96; its spend log starts with
:data:`PREFILL_LINES` records, as a server that has run for a while has.
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
#: A key with a tiny budget (the lone-surrogate attack) and one limited to one model (the gate attack).
BUDGET_KEY = "abuse-budget-key-0123456789"
BUDGET_USD = 0.001
LIMITED_KEY = "abuse-limited-key-0123456789"
#: Records in the spend log before the server starts (what /spend/logs and /spend/summary scan).
PREFILL_LINES = 200_000
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


# -- the attacks of Hardening III (issue #26) ------------------------------------------------------

LONE_SURROGATE = "\ud800"


async def lone_surrogate_money(port: int, rt_port: int, work: Path) -> str:
    """Responses asked for with a lone UTF-16 surrogate in the message and an event type, on a key
    with a tiny budget: every response must be recorded and charged, and the key cut off."""
    served = 0
    close = "-"
    try:
        async with open_websocket_url(f"ws://127.0.0.1:{rt_port}/v1/realtime?model=gpt-realtime",
                                      extra_headers=[(b"authorization", f"Bearer {BUDGET_KEY}".encode())]) as ws:
            await ws.get_message()
            for _ in range(5):
                await ws.send_message(json.dumps({"type": "conversation.item.create", "item": {
                    "type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": f"tell me {LONE_SURROGATE} a long story " * 200}]}}))
                await ws.send_message(json.dumps({"type": f"x.{LONE_SURROGATE}"}))
                await ws.send_message('{"type":"response.create"}')
                while '"response.done"' not in (await ws.get_message())[:40]:
                    pass
                served += 1
    except Exception as exc:  # the cut-off: a close with 4429
        close = str(getattr(getattr(exc, "reason", None), "code", type(exc).__name__))
    await trio.sleep(0.5)
    records = [json.loads(line) for line in (work / "spend.jsonl").read_text().splitlines()[PREFILL_LINES:]]
    mine = [r for r in records if r.get("key_name") == "abuse-budget" and r.get("record") == "response"]
    billed = sum(r.get("cost_usd") or 0 for r in mine)
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"http://127.0.0.1:{port}/health")).json()
    return (f"{served} response(s) served, {len(mine)} recorded, ${billed:.6f} charged on a ${BUDGET_USD} budget; "
            f"closed {close}; unwritable records {health['spend_log'].get('unwritable')}")


GATE_VARIANTS = [
    '{"session":{"type":"realtime","audio":{"input":{"transcription":{"model":"gpt-4o-transcribe"}}}},'
    '"type":"session.update"}',
    '{"type":"session.updat\\u0065","session":{"type":"realtime","audio":{"input":{"transcription":'
    '{"model":"gpt-4o-transcribe"}}}}}',
    '{"type":"response.create","type":"session.update","session":{"type":"realtime","audio":{"input":'
    '{"transcription":{"model":"gpt-4o-transcribe"}}}}}',
    '{"item":{"type":"input_audio_buffer.append"},"type":"session.update","session":{"type":"realtime",'
    '"audio":{"input":{"transcription":{"model":"gpt-4o-transcribe"}}}}}',
]


async def gate_bypass(rt_port: int) -> str:
    """session.update naming a transcription model the key may not use, hidden from a cheap peek."""
    refused = applied = 0
    for variant in GATE_VARIANTS:
        async with open_websocket_url(f"ws://127.0.0.1:{rt_port}/v1/realtime?model=gpt-realtime",
                                      extra_headers=[(b"authorization", f"Bearer {LIMITED_KEY}".encode())]) as ws:
            await ws.get_message()
            await ws.send_message(variant)
            with trio.move_on_after(5):
                while True:
                    event = json.loads(await ws.get_message())
                    if event["type"] == "error":
                        refused += event["error"].get("code") == "model_not_allowed"
                        break
                    if event["type"] == "session.updated":
                        applied += "gpt-4o-transcribe" in json.dumps(event)
                        break
    return f"{len(GATE_VARIANTS)} variants: {refused} refused, {applied} applied the forbidden model"


def _encoded_words(n_bytes: int) -> str:
    word = "=?utf-8?q?" + "=41" * 20 + "?= "
    return word * (n_bytes // len(word))


async def multipart_bomb(port: int) -> str:
    """Two offers at once with a 200 KiB part header of RFC 2047 encoded words and no valid key."""
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"sdp\"; filename=\"{_encoded_words(200 * 1024)}\"\r\n"
            f"\r\nv=0\r\n\r\n--{boundary}--\r\n").encode()
    statuses: list[int] = []

    async def one() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(f"http://127.0.0.1:{port}/v1/realtime/calls", content=body, headers={
                "Authorization": "Bearer not-a-key", "Content-Type": f"multipart/form-data; boundary={boundary}"})
            statuses.append(r.status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(one)
    return f"2 × {len(body) // 1024} KiB bodies with a bad key: answered {sorted(statuses)}"


async def slow_bodies(port: int, rt_port: int, seconds: float) -> str:
    """Request bodies trickled a byte a second on many connections (no key needed), then a new session."""
    held: list[trio.SocketStream] = []
    for _ in range(60):
        try:
            s = await raw(port)
            await s.send_all(b"POST /v1/realtime/client_secrets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                             b"\r\nContent-Length: 100000\r\n\r\n{")
            held.append(s)
        except (OSError, trio.BrokenResourceError):
            break
    closed = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for s in list(held):
            try:
                await s.send_all(b" ")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                held.remove(s)
                closed += 1
                await s.aclose()
        await trio.sleep(1.0)
    try:
        async with open_websocket_url(f"ws://127.0.0.1:{rt_port}/v1/realtime?model=gpt-realtime",
                                      extra_headers=[(b"authorization", f"Bearer {KEY}".encode())]) as ws:
            await ws.get_message()
            new_session = "opened"
    except Exception as exc:
        new_session = f"refused ({type(exc).__name__})"
    for s in held:
        await s.aclose()
    return (f"60 trickled bodies: {closed} closed by the server within {seconds:g} s; "
            f"a new session during the attack: {new_session}")


async def spend_scans(port: int) -> str:
    """Six concurrent scans of the whole log each of /spend/logs and /spend/summary, with a user key."""
    statuses: list[int] = []

    async def one(path: str) -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            r = await http.get(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {KEY}"})
            statuses.append(r.status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(one, "/spend/logs?model=nothing-matches")
            nursery.start_soon(one, "/spend/summary")
    counts = {code: statuses.count(code) for code in sorted(set(statuses))}
    return f"12 scans of {PREFILL_LINES:,} lines: answered {counts}"


async def token_configs(port: int, seconds: float) -> str:
    """Tokens with 200 KiB session configs (kept in the state store until they expire), as fast as they mint."""
    minted = refused = 0
    statuses: set[int] = set()
    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as http:
        while time.perf_counter() - t0 < seconds:
            r = await http.post(f"http://127.0.0.1:{port}/v1/realtime/client_secrets",
                                headers={"Authorization": f"Bearer {KEY}"},
                                json={"session": {"type": "realtime", "model": "gpt-realtime",
                                                  "instructions": "x" * 200_000},
                                      "expires_after": {"anchor": "created_at", "seconds": 7200}})
            statuses.add(r.status_code)
            if r.status_code == 200:
                minted += 1
            else:
                refused += 1
    return f"{minted} minted, {refused} refused ({sorted(statuses)}) in {seconds:g} s"


def store_bytes(work: Path) -> int:
    return sum(f.stat().st_size for f in (work / "state").glob("state.sqlite3*")) if (work / "state").exists() else 0


def prefill(path: Path, lines: int) -> None:
    """A spend log of ``lines`` response records of other keys (what the scans and the rebuild read)."""
    template = ('{"record":"response","id":"rec_%d","session_id":"sess_%d","key_name":"old-%d","model":"gpt-realtime",'
                '"status":"completed","start_time":"2026-11-01T00:00:00+00:00","end_time":"2026-11-01T00:00:01+00:00",'
                '"cost_usd":0.0001,"usage":{"input_tokens":10,"output_tokens":20,"total_tokens":30}}\n')
    with open(path, "w") as f:
        f.writelines(template % (i, i // 10, i % 50) for i in range(lines))


def _lower_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


async def main(seconds: float, only: str | None) -> None:
    port, rt_port = free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="rtproxy-abuse-"))
    prefill(work / "spend.jsonl", PREFILL_LINES)
    (work / "config.toml").write_text(textwrap.dedent(f"""
        [server]
        port = {port}
        realtime_port = {rt_port}
        state_dir = "state"
        [spend_log]
        path = "spend.jsonl"
        [[models]]
        name = "gpt-realtime"
        provider = "local"
        [[keys]]
        name = "abuse"
        key = "env:ABUSE_KEY"
        [[keys]]
        name = "abuse-budget"
        key = "env:ABUSE_BUDGET_KEY"
        max_budget_usd = {BUDGET_USD}
        [[keys]]
        name = "abuse-limited"
        key = "env:ABUSE_LIMITED_KEY"
        models = ["gpt-realtime"]
    """))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "rtproxy"), "serve", "--config", str(work / "config.toml")],
                            cwd=work, env={**os.environ, "ABUSE_KEY": KEY, "ABUSE_BUDGET_KEY": BUDGET_KEY,
                                           "ABUSE_LIMITED_KEY": LIMITED_KEY, "RTPROXY_LOG_LEVEL": "WARNING"},
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
        ("lone surrogate, $0.001 budget (#26.1)", lambda: lone_surrogate_money(port, rt_port, work)),
        ("model gate, 4 hidden session.updates (#26.3)", lambda: gate_bypass(rt_port)),
        ("multipart bomb, no key (#26.9)", lambda: multipart_bomb(port)),
        ("bodies a byte a second (#26.10)", lambda: slow_bodies(port, rt_port, seconds)),
        ("12 spend scans at once (#26.11)", lambda: spend_scans(port)),
        ("200 KiB token configs (#26.14)", lambda: token_configs(port, seconds)),
    ]
    if only:
        attacks = [a for a in attacks if a[0] == "none (baseline)" or only in a[0]]
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
                rss0, peak_fds, store0 = rss_kib(proc.pid), fds(proc.pid), store_bytes(work)
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
                             "store_growth_mib": round((store_bytes(work) - store0) / 2**20, 1),
                             "health_p99_ms": round(p99(probe.health), 1), "health_failures": probe.failures,
                             "health_max_ms": round(max(probe.health, default=0) * 1000, 1),
                             "turn_p99_ms": round(p99(probe.turns), 1), "turns": len(probe.turns), "attacker_got": outcome})
            nursery.cancel_scope.cancel()
    finally:
        proc.terminate()
        proc.wait(15)
    print("| attack | RSS growth MiB | fds peak / after | store growth MiB | /health p99 / worst ms (failures) "
          "| normal turn p99 ms (turns) | what the attacker got |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['attack']} | {r['rss_growth_mib']} | {r['fds_peak']} / {r['fds_after']} | {r['store_growth_mib']} | "
              f"{r['health_p99_ms']} / {r['health_max_ms']} ({r['health_failures']}) | {r['turn_p99_ms']} ({r['turns']}) "
              f"| {r['attacker_got']} |")


async def baseline(seconds: float) -> str:
    await trio.sleep(seconds)
    return "-"


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--only", help="run only the attacks whose name contains this (and the baseline)")
    args = ap.parse_args()
    trio.run(main, args.seconds, args.only)
