"""Soak: many concurrent sessions with random client and upstream disconnects, then check the log.

    .venv/bin/python bench/soak.py [--sessions 320] [--seconds 60]

One asyncio process runs a fake upstream (which counts every response.done it sends and drops
sessions at random: a close frame or a bare TCP reset) and the clients (which open sessions
through a real `rtproxy serve`, talk, ask for responses, and vanish at random). Afterwards every
line of the spend log must parse, the number of response records must equal the number of
response.done events the upstream sent, and there must be one session record per session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import BENCH_KEY, free_port, wait_port  # noqa: E402

stats = {"response_done_sent": 0, "upstream_drops": 0, "upstream_closes": 0, "client_vanish": 0,
         "client_close": 0, "sessions_opened": 0, "errors": 0}
AUDIO = "A" * 2560


async def upstream(ws) -> None:  # type: ignore[no-untyped-def]
    await ws.send(json.dumps({"type": "session.created", "event_id": "e0", "session": {"id": "sess_soak"}}))
    n = 0
    async for msg in ws:
        n += 1
        if '"response.create"' in msg[:40]:
            rid = f"resp_{random.getrandbits(40):x}"
            await ws.send(json.dumps({"type": "response.created", "event_id": "c", "response": {"id": rid}}))
            for _ in range(random.randint(1, 5)):
                await ws.send('{"type":"response.output_audio.delta","event_id":"d","delta":"' + AUDIO + '"}')
            roll = random.random()
            if roll < 0.05:  # drop in the middle of the response: no response.done
                stats["upstream_drops"] += 1
                ws.transport.abort()
                return
            await ws.send(json.dumps({"type": "response.done", "event_id": "x", "response": {
                "id": rid, "status": "completed", "usage": {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10,
                "input_token_details": {"text_tokens": 10, "audio_tokens": 10, "cached_tokens": 0},
                "output_token_details": {"text_tokens": 2, "audio_tokens": 8}}}}))
            stats["response_done_sent"] += 1
            if roll < 0.08:
                stats["upstream_closes"] += 1
                await ws.close(1011, "soak: upstream goes away")
                return
        elif n % 5 == 0:
            await ws.send('{"type":"response.output_audio.delta","event_id":"d","delta":"' + AUDIO + '"}')


async def client(url: str, until: float) -> None:
    while time.monotonic() < until:
        try:
            async with connect(url, additional_headers={"Authorization": f"Bearer {BENCH_KEY}"}, max_size=None,
                               ping_interval=None, open_timeout=30) as ws:
                stats["sessions_opened"] += 1
                life = time.monotonic() + random.uniform(0.5, 6.0)
                while time.monotonic() < min(life, until):
                    await ws.send('{"type":"input_audio_buffer.append","audio":"' + AUDIO + '"}')
                    if random.random() < 0.1:
                        await ws.send('{"type":"response.create"}')
                    await asyncio.sleep(0.04)
                    while True:  # drain what arrived
                        try:
                            await asyncio.wait_for(ws.recv(), timeout=0.001)
                        except asyncio.TimeoutError:
                            break
                if random.random() < 0.3:
                    stats["client_vanish"] += 1
                    ws.transport.abort()  # no close frame
                else:
                    stats["client_close"] += 1
        except Exception:
            stats["errors"] += 1  # upstream drops surface here as closed connections
            await asyncio.sleep(0.05)


async def main(sessions: int, seconds: float) -> int:
    up_port, port, rt_port = free_port(), free_port(), free_port()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "config.toml").write_text(textwrap.dedent(f"""
        [server]
        port = {port}
        realtime_port = {rt_port}
        max_concurrent_sessions = 5000
        [spend_log]
        path = "spend.jsonl"
        [[models]]
        name = "gpt-realtime"
        provider = "openai"
        api_base = "ws://127.0.0.1:{up_port}/v1"
        api_key = "env:SOAK_PROVIDER_KEY"
        [[keys]]
        name = "soak"
        key = "env:BENCH_KEY"
    """))
    async with serve(upstream, "127.0.0.1", up_port, max_size=None, ping_interval=None):
        proxy = subprocess.Popen([str(Path(sys.executable).parent / "rtproxy"), "serve", "--config", str(tmp / "config.toml")],
                                 env={**os.environ, "BENCH_KEY": BENCH_KEY, "SOAK_PROVIDER_KEY": "sk-soak-0000000000000",
                                      "RTPROXY_LOG_LEVEL": "WARNING"},
                                 stdout=subprocess.DEVNULL, stderr=open(tmp / "proxy.log", "wb"))
        wait_port(rt_port)
        url = f"ws://127.0.0.1:{rt_port}/v1/realtime?model=gpt-realtime"
        until = time.monotonic() + seconds
        t0 = time.monotonic()
        await asyncio.gather(*(client(url, until) for _ in range(sessions)))
        elapsed = time.monotonic() - t0
        await asyncio.sleep(3)  # let the last sessions end and their records land
        proxy.terminate()
        proxy.wait(30)
    lines = (tmp / "spend.jsonl").read_bytes().splitlines()
    parsed = [json.loads(line) for line in lines]  # raises if any line is torn
    responses = sum(1 for r in parsed if r["record"] == "response")
    session_records = sum(1 for r in parsed if r["record"] == "session")
    ok = responses == stats["response_done_sent"] and session_records == stats["sessions_opened"]
    print(json.dumps({"concurrent_sessions": sessions, "seconds": round(elapsed, 1), **stats,
                      "log_lines": len(lines), "all_lines_parse": True, "response_records": responses,
                      "session_records": session_records, "ok": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=320)
    ap.add_argument("--seconds", type=float, default=60.0)
    a = ap.parse_args()
    sys.exit(asyncio.run(main(a.sessions, a.seconds)))
