"""Run the benchmark scenarios direct-to-upstream and through rtproxy, side by side.

    make bench                        # everything (about 6 minutes)
    .venv/bin/python bench/run.py --scenarios s1,s2 --quick
    .venv/bin/python bench/run.py --scenarios l2,l3 --s3-sessions 50,200   # GPT-Live

Each scenario gets a fresh fake upstream and a fresh ``rtproxy serve`` (spend log on,
store_prompts on: the real configuration), then runs the load generator against the upstream
directly and through the proxy's listeners. Proxy CPU is read from /proc around each run. Results
go to bench/results/ as JSON and as a markdown table, which is also printed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
BENCH_KEY = "bench-key-0123456789abcdef"
TICKS = os.sysconf("SC_CLK_TCK")
#: The LiteLLM target, when given, is assumed to be already running against `--upstream-port`.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid: int) -> float:
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except FileNotFoundError:
        pass
    for p in pids:
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
        except FileNotFoundError:
            pass
    return total


class Stack:
    """A fake upstream and an rtproxy in front of it, both fresh."""

    def __init__(self, workdir: Path, workers: int = 1, state: str = "sqlite") -> None:
        self.up_port, self.port, self.rt_port = free_port(), free_port(), free_port()
        self.workdir = workdir
        self.redis: subprocess.Popen[bytes] | None = None
        state_toml = ""
        if state == "redis":  # a throwaway redis-server on a unix socket, as the state store
            sock = workdir / "redis.sock"
            self.redis = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "",
                                           "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            state_toml = f'[state]\nbackend = "redis"\nurl = "unix://{sock}"\n'

        self.upstream = subprocess.Popen([PY, str(HERE / "fake_upstream.py"), str(self.up_port)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (workdir / "config.toml").write_text(textwrap.dedent(f"""
            [server]
            host = "127.0.0.1"
            port = {self.port}
            realtime_port = {self.rt_port}
            [spend_log]
            path = "spend.jsonl"
            store_prompts = true
            [[models]]
            name = "gpt-realtime"
            provider = "openai"
            api_base = "ws://127.0.0.1:{self.up_port}/v1"
            api_key = "env:BENCH_PROVIDER_KEY"
            [[models]]
            name = "gpt-live-1"
            provider = "openai"
            api = "live"
            api_base = "ws://127.0.0.1:{self.up_port}/v1"
            api_key = "env:BENCH_PROVIDER_KEY"
            [[keys]]
            name = "bench"
            key = "env:BENCH_KEY"
        """) + state_toml)
        env = {**os.environ, "BENCH_KEY": BENCH_KEY, "BENCH_PROVIDER_KEY": "sk-bench-provider-000000",
               "RTPROXY_LOG_LEVEL": "WARNING"}
        argv = [str(Path(PY).parent / "rtproxy"), "serve", "--config", str(workdir / "config.toml")]
        if workers > 1:
            argv += ["--workers", str(workers)]
        self.proxy = subprocess.Popen(argv, cwd=workdir, env=env, stdout=open(workdir / "proxy.log", "ab"),
                                      stderr=subprocess.STDOUT)
        wait_port(self.up_port)
        wait_port(self.port)
        wait_port(self.rt_port)
        time.sleep(0.5)

    def url(self, target: str, live: bool = False) -> str:
        port = {"direct": self.up_port, "realtime": self.rt_port, "main": self.port}[target]
        if live:
            return f"ws://127.0.0.1:{port}/v1/live/sessions"
        return f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"

    def pid(self, target: str) -> int:
        return self.upstream.pid if target == "direct" else self.proxy.pid

    def close(self) -> None:
        procs = [p for p in (self.proxy, self.upstream, self.redis) if p is not None]
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()

    def spend_lines(self) -> int:
        path = self.workdir / "spend.jsonl"
        return sum(1 for _ in open(path)) if path.exists() else 0


def loadgen(scenario: str, url: str, key: str | None, timeout: float, **opts: Any) -> dict[str, Any]:
    argv = [PY, str(HERE / "loadgen.py"), scenario, url]
    if key:
        argv += ["--key", key]
    for k, v in opts.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout)


def measure(stack: Stack, target: str, scenario: str, timeout: float, **opts: Any) -> dict[str, Any]:
    key = None if target == "direct" else BENCH_KEY
    pid = stack.pid(target)
    c0, t0 = cpu_seconds(pid), time.monotonic()
    result = loadgen(scenario, stack.url(target, live=scenario.startswith("l")), key, timeout, **opts)
    cpu, wall = cpu_seconds(pid) - c0, time.monotonic() - t0
    result["cpu_s"] = round(cpu, 3)
    result["cpu_pct_of_core"] = round(100 * cpu / wall, 1) if wall else None
    events = result.get("events")
    if isinstance(events, int) and events:
        result["cpu_ms_per_event"] = round(1000 * cpu / events, 4)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    plan: list[tuple[str, str, list[str], dict[str, Any]]] = []
    scen = set(args.scenarios.split(","))
    if "s1" in scen:
        plan.append(("S1", "s1", ["direct", "realtime", "main"], {"events": 500 if quick else 3000}))
    if "s2" in scen:
        plan.append(("S2", "s2", ["direct", "realtime", "main"], {"events": 3000 if quick else 20000}))
    if "s3" in scen:
        for n in [int(x) for x in args.s3_sessions.split(",")]:
            targets = ["direct", "realtime", "main"] if n == 200 else ["direct", "realtime"]
            plan.append((f"S3 N={n}", "s3", targets, {"sessions": n, "seconds": 5 if quick else args.s3_seconds}))
    if "s4" in scen:
        plan.append(("S4", "s4", ["direct", "realtime"], {"sessions": 50 if quick else 300}))
    if "l2" in scen:
        plan.append(("L2 (Live)", "l2", ["direct", "realtime", "main"], {"events": 3000 if quick else 20000}))
    if "l3" in scen:
        for n in [int(x) for x in args.s3_sessions.split(",")]:
            plan.append((f"L3 N={n} (Live)", "l3", ["direct", "realtime"], {"sessions": n,
                                                                            "seconds": 5 if quick else args.s3_seconds}))
    if "s5" in scen:
        plan.append(("S5", "s5", ["direct", "realtime", "main"], {"events": 50 if quick else 200}))
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                               "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": []}
    for name, scenario, targets, opts in plan:
        row: dict[str, Any] = {"scenario": name}
        for target in targets:
            with tempfile.TemporaryDirectory() as tmp:
                stack = Stack(Path(tmp), workers=args.workers, state=args.state)
                try:
                    o = dict(opts)
                    if scenario == "s4":
                        o["rss_pid"] = stack.pid(target)
                    row[target] = measure(stack, target, scenario, timeout=600, **o)
                    if target != "direct":
                        row[target]["spend_lines"] = stack.spend_lines()
                finally:
                    stack.close()
            print(f"  {name:10} {target:9} {json.dumps(row[target])}", flush=True)
        results["rows"].append(row)
    return results


def ratio(a: Any, b: Any) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return f"{a / b:.2f}×"
    return "–"


def markdown(results: dict[str, Any]) -> str:
    lines = ["| scenario | metric | direct | realtime listener | ratio | main port | ratio |", "|---|---|---|---|---|---|---|"]
    metrics = {
        "S1": [("p50_ms", "RTT p50 ms"), ("p90_ms", "RTT p90 ms"), ("p99_ms", "RTT p99 ms")],
        "S2": [("events_per_s", "events/s"), ("mb_per_s", "MB/s"), ("cpu_ms_per_event", "CPU-ms / event (×1000 = CPU-s per 1000)"),
               ("p99_ms", "RTT p99 ms")],
        "S3": [("p50_ms", "RTT p50 ms"), ("p99_ms", "RTT p99 ms"), ("late_fraction", "late (>100 ms) or lost"),
               ("errors", "errors"), ("cpu_pct_of_core", "CPU % of one core"), ("cpu_ms_per_event", "CPU-ms / event")],
        "S4": [("rss_rest_mib", "RSS at rest MiB"), ("kib_per_session", "KiB per idle session"),
               ("rss_kept_after_close_mib", "RSS kept after close MiB")],
        "S5": [("p50_ms", "connect p50 ms"), ("p99_ms", "connect p99 ms")],
    }
    metrics["L2"] = metrics["S2"]  # GPT-Live: the same figures, 50 ms appends
    metrics["L3"] = metrics["S3"]
    for row in results["rows"]:
        kind = row["scenario"].split()[0]
        for key, label in metrics[kind]:
            d = row.get("direct", {}).get(key)
            r = row.get("realtime", {}).get(key)
            m = row.get("main", {}).get(key) if "main" in row else None
            lines.append(f"| {row['scenario']} | {label} | {d if d is not None else '–'} | {r if r is not None else '–'} | "
                         f"{ratio(r, d)} | {m if m is not None else '–'} | {ratio(m, d) if 'main' in row else '–'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="s1,s2,s3,s4,s5,l2,l3")
    ap.add_argument("--s3-sessions", default="50,200,500")
    ap.add_argument("--s3-seconds", type=float, default=15.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--state", choices=["sqlite", "redis"], default="sqlite",
                    help="the proxy's state store: the embedded SQLite file, or a local redis-server")
    ap.add_argument("--quick", action="store_true", help="short runs, for a smoke test of the harness")
    args = ap.parse_args()
    results = run(args)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"results-{stamp}.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / f"results-{stamp}.md").write_text(table + "\n")
    print()
    print(table)


if __name__ == "__main__":
    main()
