"""Soak: sessions over two `rtproxy serve` instances sharing a Redis state store, under churn.

    .venv/bin/python bench/soak.py [--sessions 300] [--concurrency 48] [--seed 1]

One asyncio process runs a fake upstream and the clients; two real `rtproxy serve` processes
(A and B) relay between them and share a real redis-server (unix socket). The upstream streams
each response as timed deltas, answers `response.cancel` with a cancelled `response.done`, and
drops a connection mid-response now and then (a bare TCP reset). Clients pick a key, open a
session on A or B, ask for responses and, at random, wait for them, close before
`response.done`, or vanish (no close frame). A third of the way in, instance A is killed with
SIGKILL and started again; two thirds in, both spend logs are rotated by the real `logrotate`
(A in `create` mode, B in `copytruncate`).

Afterwards, from the spend logs (current and rotated files):

- every line parses;
- the response records (provider-reported + estimated) are exactly the responses the upstream
  started, each once, except those that A was relaying when it was killed: nobody is left to
  write those, and they are counted separately;
- no key ever had more sessions open at once than its cap (seen from the clients, whose view of
  a session lies inside the gateway's);
- a key's spend exceeds its budget by at most one response per session it may hold open;
- Redis's spend totals equal the logs'.

Exit status 0 when every check holds; the figures are printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidStatus, WebSocketException

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import free_port, wait_port  # noqa: E402

BIN = Path(sys.executable).parent
#: One audio delta: 1920 bytes of PCM16 (40 ms at 24 kHz), base64.
AUDIO = "A" * 2560
#: Output audio tokens the fake upstream reports per audio delta sent.
TOKENS_PER_DELTA = 20
#: Seconds between the deltas of a streamed response.
DELTA_GAP_S = 0.03
#: The keys: (name, max_sessions, max_budget_usd). k0 and k1 run out of budget during the soak.
KEYS = [("k0", 4, 0.12), ("k1", 4, 0.2), ("k2", 5, None), ("k3", 5, None), ("k4", 6, None), ("k5", 6, None)]
#: Fraction of the run after which A is killed, and after which the logs are rotated.
KILL_AT, ROTATE_AT = 1 / 3, 2 / 3
#: How long A stays down before it is started again.
DOWN_S = 1.0


def secret(name: str) -> str:
    return f"sk-soak-{name}-0123456789abcdef"


# -- the fake upstream -------------------------------------------------------------------------


class Upstream:
    """Streams responses, honours response.cancel, drops connections at random; remembers every
    response it started and on which instance's connection."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.started: dict[str, str] = {}  # response id -> connection id
        self.conn_instance: dict[str, str] = {}
        self.open_conns: set[str] = set()
        self.done_sent = 0
        self.cancelled = 0
        self.drops = 0
        self._ids = itertools.count()

    async def handler(self, ws: ServerConnection) -> None:
        conn = f"c{next(self._ids)}"
        path = ws.request.path if ws.request is not None else ""
        self.conn_instance[conn] = "A" if path.startswith("/A/") else "B"
        self.open_conns.add(conn)
        streams: dict[str, asyncio.Task[None]] = {}
        try:
            await ws.send(json.dumps({"type": "session.created", "event_id": "e0", "session": {"id": conn}}))
            async for msg in ws:
                head = msg[:48] if isinstance(msg, str) else ""
                if '"response.create"' in head:
                    rid = f"resp_{conn}_{next(self._ids)}"
                    self.started[rid] = conn
                    streams[rid] = asyncio.create_task(self.stream(ws, rid, streams))
                elif '"response.cancel"' in head:
                    for rid, task in list(streams.items()):
                        task.cancel()
                        streams.pop(rid, None)
                        self.cancelled += 1
                        await ws.send(self.done(rid, "cancelled", 1))
                        self.done_sent += 1
        except WebSocketException:
            pass
        finally:
            for task in streams.values():
                task.cancel()
            self.open_conns.discard(conn)

    def done(self, rid: str, status: str, deltas: int) -> str:
        out_audio = deltas * TOKENS_PER_DELTA
        return json.dumps({"type": "response.done", "event_id": "x", "response": {
            "id": rid, "status": status, "usage": {
                "total_tokens": 40 + out_audio + 4, "input_tokens": 40, "output_tokens": out_audio + 4,
                "input_token_details": {"text_tokens": 20, "audio_tokens": 20, "cached_tokens": 0},
                "output_token_details": {"text_tokens": 4, "audio_tokens": out_audio}}}})

    async def stream(self, ws: ServerConnection, rid: str, streams: dict[str, asyncio.Task[None]]) -> None:
        deltas = self.rng.randint(4, 12)
        drop = self.rng.random() < 0.05
        try:
            await ws.send(json.dumps({"type": "response.created", "event_id": "c", "response": {"id": rid}}))
            await ws.send(json.dumps({"type": "response.output_audio_transcript.delta", "event_id": "t",
                                      "response_id": rid, "delta": "hello there, "}))
            for i in range(deltas):
                await asyncio.sleep(DELTA_GAP_S)
                await ws.send('{"type":"response.output_audio.delta","event_id":"d","response_id":"'
                              + rid + '","delta":"' + AUDIO + '"}')
                if drop and i == deltas // 2:
                    self.drops += 1
                    ws.transport.abort()  # gone mid-response: no response.done, ever
                    return
            streams.pop(rid, None)
            await ws.send(self.done(rid, "completed", deltas))
            self.done_sent += 1
        except (WebSocketException, ConnectionError):
            pass


# -- the clients -------------------------------------------------------------------------------


class Clients:
    def __init__(self, rng: random.Random, urls: dict[str, str], target: int) -> None:
        self.rng = rng
        self.urls = urls
        self.target = target
        self.opened = 0
        self.attempts = 0
        self.outcomes: Counter[str] = Counter()
        self.refusals: Counter[int] = Counter()
        #: (key, instance, opened at, closed at) as the client saw them.
        self.spans: list[tuple[str, str, float, float]] = []
        #: Sessions open on A when it was killed (no session record can be written for them).
        self.open_on: dict[str, int] = {"A": 0, "B": 0}

    async def worker(self) -> None:
        while self.opened < self.target:
            self.attempts += 1
            name, _, _ = self.rng.choice(KEYS)
            inst = self.rng.choice("AB")
            await self.session(name, inst)

    async def session(self, name: str, inst: str) -> None:
        mode = self.rng.choices(["complete", "early_close", "vanish", "idle_close"], [5, 3, 2, 1])[0]
        try:
            ws = await connect(self.urls[inst], additional_headers={"Authorization": f"Bearer {secret(name)}"},
                               max_size=None, ping_interval=None, open_timeout=20, close_timeout=5)
        except InvalidStatus as exc:
            self.refusals[exc.response.status_code] += 1
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))
            return
        except (OSError, WebSocketException, asyncio.TimeoutError):
            self.outcomes["connect_failed"] += 1  # A is down
            await asyncio.sleep(0.2)
            return
        self.opened += 1
        self.open_on[inst] += 1
        opened_at = time.monotonic()
        try:
            await asyncio.wait_for(ws.recv(), 10)  # session.created
            for turn in range(self.rng.randint(1, 5)):
                for _ in range(self.rng.randint(1, 8)):  # the user speaks for a moment
                    await ws.send('{"type":"input_audio_buffer.append","audio":"' + AUDIO + '"}')
                    await asyncio.sleep(0.04)
                await ws.send('{"type":"response.create"}')
                last = turn == 0 or self.rng.random() < 0.5
                if mode == "complete" or not last:
                    await self.until(ws, '"response.done"')
                    continue
                if mode == "idle_close":
                    break
                await self.until(ws, '"response.output_audio.delta"')
                break
            if mode == "vanish":
                self.outcomes["vanish"] += 1
                ws.transport.abort()
            else:
                self.outcomes[mode] += 1
                await ws.close()
        except (WebSocketException, OSError, asyncio.TimeoutError):
            self.outcomes["cut_off"] += 1  # an upstream drop, a budget cut-off, or A killed
            ws.transport.abort()
        finally:
            self.open_on[inst] -= 1
            self.spans.append((name, inst, opened_at, time.monotonic()))

    async def until(self, ws: object, marker: str) -> None:
        while True:
            msg = await asyncio.wait_for(ws.recv(), 10)  # type: ignore[attr-defined]
            if marker in msg[:48]:
                return
            if '"type":"error"' in msg[:20].replace(" ", ""):
                raise WebSocketException("error event")


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    cur = top = 0
    for _, d in events:
        cur += d
        top = max(top, cur)
    return top


# -- the instances -----------------------------------------------------------------------------


def write_config(d: Path, name: str, port: int, rt_port: int, up_port: int, redis_url: str) -> Path:
    keys = "".join(textwrap.dedent(f"""
        [[keys]]
        name = "{k}"
        key = "{secret(k)}"
        max_sessions = {cap}
        """) + (f"max_budget_usd = {budget}\n" if budget is not None else "") for k, cap, budget in KEYS)
    cfg = d / "config.toml"
    cfg.write_text(textwrap.dedent(f"""
        [server]
        port = {port}
        realtime_port = {rt_port}
        settle_window_s = 3.0
        [spend_log]
        path = "spend.jsonl"
        [state]
        backend = "redis"
        url = "{redis_url}"
        lease_s = 6.0
        [[models]]
        name = "gpt-realtime"
        provider = "openai"
        api_base = "ws://127.0.0.1:{up_port}/{name}/v1"
        api_key = "env:SOAK_PROVIDER_KEY"
    """) + keys)
    return cfg


def start(d: Path, cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(BIN / "rtproxy"), "serve", "--config", str(cfg)], cwd=d,
                            env={**os.environ, "SOAK_PROVIDER_KEY": "sk-soak-provider-000000000000",
                                 "RTPROXY_LOG_LEVEL": "WARNING"},
                            stdout=subprocess.DEVNULL, stderr=open(d / "proxy.log", "ab"))


def rotate(work: Path, dirs: dict[str, Path]) -> str:
    conf = work / "logrotate.conf"
    conf.write_text(f"""{dirs['A'] / 'spend.jsonl'} {{
    rotate 3
    create
    missingok
}}
{dirs['B'] / 'spend.jsonl'} {{
    rotate 3
    copytruncate
    missingok
}}
""")
    binary = shutil.which("logrotate") or "/usr/sbin/logrotate"
    subprocess.run([binary, "-f", "-s", str(work / "logrotate.state"), str(conf)], check=True)
    return binary


def read_logs(d: Path) -> tuple[list[dict[str, object]], int, int]:
    """Records of every file of one instance's log, each record id once; and the count of lines
    that did not parse, and of lines written twice (a copytruncate's rewrite)."""
    seen: dict[str, dict[str, object]] = {}
    bad = dup = 0
    for f in sorted(d.glob("spend.jsonl*")):
        for line in f.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if rec["id"] in seen:
                dup += 1
                assert seen[rec["id"]] == rec, "one record id with two contents"
            seen[str(rec["id"])] = rec
    return list(seen.values()), bad, dup


def redis_spend(sock: Path) -> dict[str, float]:
    import redis

    r = redis.Redis(unix_socket_path=str(sock))
    out = {}
    for k, _, _ in KEYS:
        v = r.get(f"rtproxy:spend:{k}")
        out[k] = float(v) if v is not None else 0.0
    return out


async def main(target: int, concurrency: int, seed: int) -> int:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="rtproxy-soak-"))
    up_port = free_port()
    ports = {n: (free_port(), free_port()) for n in "AB"}
    dirs = {n: work / n for n in "AB"}
    sock = work / "redis.sock"
    redis_proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                                   "--save", "", "--appendonly", "no", "--dir", str(work)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if sock.exists():
            break
        time.sleep(0.02)
    cfgs = {}
    for n, d in dirs.items():
        d.mkdir()
        cfgs[n] = write_config(d, n, *ports[n], up_port, f"unix://{sock}")
    upstream = Upstream(rng)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    figures: dict[str, object] = {}
    try:
        async with serve(upstream.handler, "127.0.0.1", up_port, max_size=None, ping_interval=None):
            for n in "AB":
                procs[n] = start(dirs[n], cfgs[n])
            for n in "AB":
                wait_port(ports[n][1])
            urls = {n: f"ws://127.0.0.1:{ports[n][1]}/v1/realtime?model=gpt-realtime" for n in "AB"}
            clients = Clients(rng, urls, target)
            t0 = time.monotonic()
            workers = asyncio.gather(*(clients.worker() for _ in range(concurrency)))
            killed = rotated = False
            cut_by_kill: set[str] = set()
            while not workers.done():
                await asyncio.sleep(0.05)
                if not killed and clients.opened >= target * KILL_AT:
                    killed = True
                    a_conns = {c for c in upstream.open_conns if upstream.conn_instance[c] == "A"}
                    figures["sessions_open_on_A_at_kill"] = clients.open_on["A"]
                    procs["A"].send_signal(signal.SIGKILL)
                    procs["A"].wait()
                    cut_by_kill = {rid for rid, c in upstream.started.items() if c in a_conns}
                    await asyncio.sleep(DOWN_S)
                    procs["A"] = start(dirs["A"], cfgs["A"])
                    await asyncio.get_running_loop().run_in_executor(None, wait_port, ports["A"][1])
                if not rotated and clients.opened >= target * ROTATE_AT:
                    rotated = True
                    figures["logrotate"] = rotate(work, dirs)
            await workers
            elapsed = time.monotonic() - t0
            # Every session has ended at the clients; the gateway may still be settling.
            await asyncio.sleep(4.0)
            for p in procs.values():
                p.send_signal(signal.SIGTERM)
            for p in procs.values():
                p.wait(30)
        store_spend = redis_spend(sock)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        redis_proc.terminate()
        redis_proc.wait(10)

    records: list[dict[str, object]] = []
    bad = dup = 0
    for d in dirs.values():
        recs, b, du = read_logs(d)
        records += recs
        bad += b
        dup += du
    responses = [r for r in records if r["record"] == "response"]
    sessions = [r for r in records if r["record"] == "session"]
    recorded = Counter(str(r["response_id"]) for r in responses)
    started = set(upstream.started)
    must = started - cut_by_kill
    missing = must - set(recorded)
    extra = set(recorded) - started
    twice = [rid for rid, n in recorded.items() if n > 1]

    caps = {k: cap for k, cap, _ in KEYS}
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for k, _, a, b in clients.spans:
        by_key[k].append((a, b))
    peak = {k: max_overlap(v) for k, v in by_key.items()}
    over_cap = {k: n for k, n in peak.items() if n > caps[k]}

    spend: dict[str, float] = defaultdict(float)
    biggest: dict[str, float] = defaultdict(float)
    for r in responses:
        c = float(r["cost_usd"] or 0.0)  # type: ignore[arg-type]
        spend[str(r["key_name"])] += c
        biggest[str(r["key_name"])] = max(biggest[str(r["key_name"])], c)
    overshoot = {}
    for k, cap, budget in KEYS:
        if budget is not None:
            over = spend[k] - budget
            overshoot[k] = {"budget_usd": budget, "spent_usd": round(spend[k], 6), "over_usd": round(max(over, 0), 6),
                            "bound_usd": round(cap * biggest[k], 6), "ok": over <= cap * biggest[k] + 1e-9}
    store_vs_log = {k: (round(store_spend[k], 6), round(spend[k], 6)) for k, _, _ in KEYS}
    store_ok = all(abs(a - b) < 1e-6 for a, b in store_vs_log.values())
    sessions_expected = clients.opened - int(figures.get("sessions_open_on_A_at_kill", 0))  # type: ignore[call-overload]

    ok = (bad == 0 and not missing and not extra and not twice and not over_cap
          and all(v["ok"] for v in overshoot.values()) and store_ok and len(sessions) >= sessions_expected)
    print(json.dumps({
        "sessions_opened": clients.opened, "connect_attempts": clients.attempts, "seconds": round(elapsed, 1),
        "concurrency": concurrency, "refused": dict(clients.refusals), "client_outcomes": dict(clients.outcomes),
        **figures,
        "upstream": {"responses_started": len(started), "response_done_sent": upstream.done_sent,
                     "cancelled_on_request": upstream.cancelled, "dropped_mid_response": upstream.drops,
                     "on_A_connections_cut_by_kill9": len(cut_by_kill)},
        "log": {"lines_that_do_not_parse": bad, "lines_written_twice_by_copytruncate_rewrite": dup,
                "response_records": len(responses),
                "usage_source": dict(Counter(str(r["usage_source"]) for r in responses)),
                "session_records": len(sessions), "session_records_expected_at_least": sessions_expected},
        "responses_missing": len(missing), "responses_recorded_not_started": len(extra),
        "responses_recorded_twice": len(twice),
        "cut_by_kill9_recorded_anyway": len(cut_by_kill & set(recorded)),
        "peak_open_sessions_per_key": {k: f"{peak.get(k, 0)}/{caps[k]}" for k in caps},
        "budgets": overshoot, "redis_spend_vs_log": store_vs_log, "ok": ok,
    }, indent=2))
    (work / "missing.json").write_text(json.dumps(
        {rid: upstream.conn_instance[upstream.started[rid]] for rid in sorted(missing)}, indent=1))
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept for inspection: {work}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=300, help="sessions to open in all")
    ap.add_argument("--concurrency", type=int, default=48, help="clients at once")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    sys.exit(asyncio.run(main(a.sessions, a.concurrency, a.seed)))
