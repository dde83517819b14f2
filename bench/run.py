"""Run the benchmark scenarios direct-to-upstream and through rtproxy, side by side.

    make bench                        # everything (about 15 minutes; G3 alone about 7)
    .venv/bin/python bench/run.py --scenarios s1,s2 --quick
    .venv/bin/python bench/run.py --scenarios s6 --quick                      # streamed deltas, one-way
    .venv/bin/python bench/run.py --scenarios l2,l3 --s3-sessions 50,200   # GPT-Live
    .venv/bin/python bench/run.py --scenarios g3 --s3-sessions 10,50         # translated to Gemini Live

Each scenario gets a fresh fake upstream and a fresh ``rtproxy serve`` (spend log on,
store_prompts on: the real configuration), then runs the load generator against the upstream
directly and through the proxy's listeners. Proxy CPU is read from /proc around each run. Results
go to bench/results/ as JSON and as a markdown table, which is also printed.

S6, streamed deltas: the fake upstream streams 40 ms audio deltas every 20 ms (``--s6-seconds``,
``--s6-sessions`` streams at once) stamped with its CLOCK_MONOTONIC, and the load generator
reads the one-way latency upstream → client off each (bench/loadgen.py's ``s6``).

G3, a translated voice session (issue #27): S3's voice client (an OpenAI Realtime client, 40 ms
appends at real-time pace, N sessions; ``--g3-sessions``, by default the ``--s3-sessions`` up to
200) on a model rtproxy translates to Gemini Live, beside the same client passed through, all on
the realtime listener, every target on a fresh stack warmed by one short session first:

- *direct*: the fake OpenAI upstream (bench/fake_upstream.py), no proxy;
- *pass-through*: client → rtproxy → that fake (S3);
- *Gemini direct*: the same pattern spoken natively (16 kHz ``realtimeInput``) to the fake Gemini
  Live upstream (bench/fake_gemini.py), no proxy: the two fakes' own round trips;
- *translated*: client → rtproxy (JSON, base64, 24 → 16 kHz resampling, Gemini frames and back)
  → the fake Gemini upstream, which answers each audio frame with 40 ms of 24 kHz audio (as
  large as the pass-through fake's echo) and ends a turn, with usage, every 5 s (a spend record,
  as S3's ``response.create`` every 5 s does);
- *offline pass-through* / *offline translated*: the same client on the offline model (provider
  ``local``; dialect ``realtime``, and ``gemini`` as config.toml's ``gemini-live``). The offline
  model runs inside rtproxy and answers no append (the bench's tone is one long utterance), so
  these rows have CPU per event (proxy and offline model together) but no round trip, and no
  direct baseline exists: the offline pass-through row is the reference.

It prints CPU-ms per audio event (proxy CPU over appends sent; each append is answered by one
audio delta) and RTT p50, with translated / pass-through CPU per event (goal ≤ 2×) and the p50
the translation adds over pass-through (goal < 1 ms). Pass-through and translated alternate
``--g3-repeat`` times (default 2; this box's CPU per event varies by ±30 % from run to run under
other load) and the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
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
#: S6's streams at once unless told (bench/loadgen.py's S6_SESSIONS; this file does not import the
#: load generator, which it runs as a process).
S6_SESSIONS = 1
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


#: How often start-up timing tries the ports (a connect refused costs some 50 µs).
STARTUP_POLL_S = 0.002


def time_ports_open(ports: list[int], started: float, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> float:
    """Seconds from ``started`` until every port in ``ports`` accepts a TCP connection."""
    waiting = list(ports)
    while waiting:
        if time.monotonic() - started > timeout or proc.poll() is not None:
            raise RuntimeError(f"nothing listens on {waiting[0]}")
        try:
            with socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.5):
                waiting.pop(0)
        except OSError:
            time.sleep(STARTUP_POLL_S)
    return time.monotonic() - started


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

    def __init__(self, workdir: Path, workers: int = 1, state: str = "sqlite", gemini: bool = False,
                 offline: bool = False) -> None:
        """``gemini``: also the fake Gemini Live upstream (bench/fake_gemini.py) and the model
        ``gemini-bench`` on it; ``offline``: also the offline model's ``offline-realtime`` and
        ``offline-gemini`` (starting the offline model inside rtproxy)."""
        self.up_port, self.port, self.rt_port = free_port(), free_port(), free_port()
        self.gem_port = free_port() if gemini else None
        self.gemini: subprocess.Popen[bytes] | None = None
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
        models_toml = ""
        if self.gem_port is not None:
            self.gemini = subprocess.Popen([PY, str(HERE / "fake_gemini.py"), str(self.gem_port)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            models_toml += textwrap.dedent(f"""
                [[models]]
                name = "gemini-bench"
                provider = "gemini"
                upstream_model = "gemini-live-2.5-flash"
                api_base = "ws://127.0.0.1:{self.gem_port}"
                api_key = "env:BENCH_PROVIDER_KEY"
            """)
        if offline:
            models_toml += textwrap.dedent("""
                [[models]]
                name = "offline-realtime"
                provider = "local"
                [[models]]
                name = "offline-gemini"
                provider = "local"
                dialect = "gemini"
                upstream_model = "gemini-live-2.5-flash"
            """)
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
        """) + models_toml + textwrap.dedent("""
            [[keys]]
            name = "bench"
            key = "env:BENCH_KEY"
        """) + state_toml)
        env = {**os.environ, "BENCH_KEY": BENCH_KEY, "BENCH_PROVIDER_KEY": "sk-bench-provider-000000",
               "RTPROXY_LOG_LEVEL": "WARNING"}
        argv = [str(Path(PY).parent / "rtproxy"), "serve", "--config", str(workdir / "config.toml")]
        if workers > 1:
            argv += ["--workers", str(workers)]
        try:  # the fakes first, so that the gateway's start-up is timed alone
            wait_port(self.up_port)
            if self.gem_port is not None:
                wait_port(self.gem_port)
        except RuntimeError:
            self.proxy = None
            self.close()
            raise
        # What start-up includes: exec, imports, the config, both ports listening (the price table
        # and the CA bundle load in threads after that; rtproxy/server/gateway.py).
        started = time.monotonic()
        self.proxy: subprocess.Popen[bytes] | None = subprocess.Popen(
            argv, cwd=workdir, env=env, stdout=open(workdir / "proxy.log", "ab"), stderr=subprocess.STDOUT)
        #: Seconds from the gateway's exec until both its ports accept a connection (None: not timed).
        self.startup_s: float | None = None
        try:
            self.startup_s = time_ports_open([self.port, self.rt_port], started, self.proxy)
        except RuntimeError:
            self.close()  # nothing left running
            raise RuntimeError(f"the stack did not start; proxy log:\n{(workdir / 'proxy.log').read_text()[-2000:]}")
        time.sleep(0.5)

    def url(self, target: str, live: bool = False) -> str:
        if target in G3_MODELS:  # the G3 targets: through the realtime listener, by model
            return f"ws://127.0.0.1:{self.rt_port}/v1/realtime?model={G3_MODELS[target]}"
        if target == "gemini-direct":
            return f"ws://127.0.0.1:{self.gem_port}/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
        port = {"direct": self.up_port, "realtime": self.rt_port, "main": self.port}[target]
        if live:
            return f"ws://127.0.0.1:{port}/v1/live/sessions"
        return f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"

    def pid(self, target: str) -> int:
        if target == "gemini-direct":
            assert self.gemini is not None
            return self.gemini.pid
        return self.upstream.pid if target == "direct" else self.proxy.pid

    def close(self) -> None:
        procs = [p for p in (self.proxy, self.upstream, self.gemini, self.redis) if p is not None]
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


def measure(stack: Stack, target: str, scenario: str, timeout: float, warm: bool = False,
            **opts: Any) -> dict[str, Any]:
    key = None if target in ("direct", "gemini-direct") else BENCH_KEY
    pid = stack.pid(target)
    url = stack.url(target, live=scenario.startswith("l"))
    if warm:  # one short session first, outside the measurement (imports, caches, first-use setup)
        loadgen(scenario, url, key, timeout, sessions=1, seconds=1, ramp_seconds=0.1)
    c0, t0 = cpu_seconds(pid), time.monotonic()
    result = loadgen(scenario, url, key, timeout, **opts)
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
    if "s6" in scen:
        s6 = {"sessions": args.s6_sessions, "seconds": 5 if quick else args.s6_seconds}
        plan.append(("S6", "s6", ["direct", "realtime", "main"], s6))
    if "g3" in scen:
        g3 = args.g3_sessions or ",".join(x for x in args.s3_sessions.split(",") if int(x) <= 200) or "50"
        for n in [int(x) for x in g3.split(",")]:
            chosen = args.g3_targets.split(",") if args.g3_targets else list(G3_TARGETS)
            targets = []  # pass-through and translated alternate, --g3-repeat times each
            for t in chosen:
                if t == "passthrough" and "translated" in chosen:
                    targets += ["passthrough", "translated"] * max(args.g3_repeat, 1)
                elif not (t == "translated" and "passthrough" in chosen):
                    targets += [t] * (max(args.g3_repeat, 1) if t in ("passthrough", "translated") else 1)
            plan.append((f"G3 N={n}", "g3", targets, {"sessions": n, "seconds": 5 if quick else args.s3_seconds}))
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                               "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": [], "startup_s": []}
    for name, scenario, targets, opts in plan:
        row: dict[str, Any] = {"scenario": name}
        runs: dict[str, list[dict[str, Any]]] = {}
        for target in targets:
            with tempfile.TemporaryDirectory() as tmp:
                g3 = scenario == "g3"
                stack = Stack(Path(tmp), workers=args.workers, state=args.state,
                              gemini=g3 and target in ("translated", "gemini-direct"),
                              offline=g3 and target.startswith("offline"))
                if not (g3 and target not in ("direct", "passthrough")) and stack.startup_s is not None:
                    # a gateway of remote providers only (the offline model's stacks load it)
                    results["startup_s"].append(round(stack.startup_s, 4))
                try:
                    o = dict(opts)
                    if scenario == "s4":
                        o["rss_pid"] = stack.pid(target)
                    row[target] = measure(stack, target, G3_TARGETS[target][0] if g3 else scenario, timeout=600,
                                          warm=g3, **o)
                    if target not in ("direct", "gemini-direct"):
                        row[target]["spend_lines"] = stack.spend_lines()
                finally:
                    stack.close()
            print(f"  {name:10} {target:9} {json.dumps(row[target])}", flush=True)
            runs.setdefault(target, []).append(row[target])
        for target, done in runs.items():
            if len(done) > 1:  # repeated (G3): the median of each figure, and every run
                row[target] = {**median_of(done), "runs": done}
        results["rows"].append(row)
    return results


#: G3's targets: the load generator's scenario for each, and what it is.
G3_TARGETS = {
    "direct": ("s3", "direct: fake OpenAI upstream, no proxy"),
    "gemini-direct": ("gd3", "Gemini direct: native client → fake Gemini upstream, no proxy"),
    "passthrough": ("s3", "pass-through: rtproxy → fake OpenAI upstream"),
    "translated": ("g3", "translated: rtproxy → fake Gemini upstream"),
    "offline-passthrough": ("o3", "offline pass-through: rtproxy → offline model (OpenAI front-end)"),
    "offline-translated": ("o3", "offline translated: rtproxy → offline model (Gemini front-end, gemini-live)"),
}
#: The model each proxied G3 target names.
G3_MODELS = {"passthrough": "gpt-realtime", "translated": "gemini-bench", "offline-passthrough": "offline-realtime",
             "offline-translated": "offline-gemini"}


def median_of(done: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric figure's median over repeated runs of one target (the runs' other keys: the first's)."""
    out = dict(done[0])
    for key, value in done[0].items():
        values = [d.get(key) for d in done]
        if all(_num(v) is not None for v in values):
            out[key] = round(statistics.median(values), 4)
    return out


def _num(v: Any) -> float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def g3_markdown(results: dict[str, Any]) -> str:
    """G3: translated beside pass-through, per N (see the module text)."""
    rows = [r for r in results["rows"] if r["scenario"].startswith("G3")]
    if not rows:
        return ""
    lines = ["| scenario | target | RTT p50 / p99 ms | late or lost | CPU % of one core | CPU-ms / audio event "
             "| CPU vs pass-through | p50 added |",
             "|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for row in rows:
        base = row.get("passthrough", {})
        off_base = row.get("offline-passthrough", {})
        for target, (_, label) in G3_TARGETS.items():
            r = row.get(target)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {row['scenario']} | {label} | error: {r['error']} | | | | | |")
                continue
            p50, p99 = _num(r.get("p50_ms")), _num(r.get("p99_ms"))
            rtt = f"{p50} / {p99}" if p50 is not None else f"none (answers no append; {r.get('replies', 0)} deltas heard)"
            late = r.get("late_fraction", "–")
            cpu = r.get("cpu_ms_per_event", "–")
            if "runs" in r:  # the median, and every run's figure
                rtt += " (runs: " + ", ".join(str(x.get("p50_ms")) for x in r["runs"]) + ")"
                cpu_cell = f"{cpu} (runs: " + ", ".join(str(x.get("cpu_ms_per_event")) for x in r["runs"]) + ")"
            else:
                cpu_cell = str(cpu)
            ref = base if target == "translated" else off_base if target == "offline-translated" else None
            vs = ratio(cpu, ref.get("cpu_ms_per_event")) if ref else ""
            added = ""
            if target == "passthrough":
                d = _num(row.get("direct", {}).get("p50_ms"))
                added = f"+{p50 - d:.3f} ms over direct" if p50 is not None and d is not None else ""
            elif target == "translated":
                b, d = _num(base.get("p50_ms")), _num(row.get("gemini-direct", {}).get("p50_ms"))
                parts = []
                if p50 is not None and b is not None:
                    parts.append(f"{p50 - b:+.3f} ms over pass-through")
                if p50 is not None and d is not None:
                    parts.append(f"+{p50 - d:.3f} ms over Gemini direct")
                added = "; ".join(parts)
            elif target == "offline-translated":
                added = "no round trip, no direct baseline"
            lines.append(f"| {row['scenario']} | {label} | {rtt} | {late} | {r.get('cpu_pct_of_core', '–')} | {cpu_cell} "
                         f"| {vs} | {added} |")
        t, b = row.get("translated", {}), base
        tc, bc = _num(t.get("cpu_ms_per_event")), _num(b.get("cpu_ms_per_event"))
        tp, bp = _num(t.get("p50_ms")), _num(b.get("p50_ms"))
        if tc is not None and bc and tp is not None and bp is not None:
            verdicts.append(f"{row['scenario']}: translated / pass-through CPU per audio event {tc / bc:.2f}× "
                            f"(goal ≤ 2×: {'met' if tc / bc <= 2 else 'missed'}); p50 added {tp - bp:+.3f} ms "
                            f"(goal < 1 ms: {'met' if tp - bp < 1 else 'missed'})")
    notes = ["", "Repeated targets show the median of their runs (and each run); the ratios and the p50 added "
             "are between medians.", "", *verdicts, "",
             "Offline rows: the offline model runs inside rtproxy (its CPU is counted with the proxy's) and answers "
             "no append here, so they have no round trip and no direct baseline; the offline pass-through row "
             "(the same model's OpenAI front-end) is the reference."]
    return "\n".join(lines + notes)


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
        "S6": [("p50_ms", "one-way p50 ms"), ("p99_ms", "one-way p99 ms"), ("max_ms", "one-way max ms"),
               ("lost", "deltas lost"), ("cpu_ms_per_event", "CPU-ms / delta")],
    }
    starts = results.get("startup_s") or []
    if starts:  # every rtproxy start of the run, each timed from exec to both ports accepting
        lines.append(f"| start-up | to both ports open, s (median of {len(starts)} starts; min–max) | – | "
                     f"{statistics.median(starts):.3f} ({min(starts):.3f}–{max(starts):.3f}) | – | – | – |")
    metrics["L2"] = metrics["S2"]  # GPT-Live: the same figures, 50 ms appends
    metrics["L3"] = metrics["S3"]
    for row in results["rows"]:
        kind = row["scenario"].split()[0]
        for key, label in metrics.get(kind, []):  # G3 has its own table (g3_markdown)
            d = row.get("direct", {}).get(key)
            r = row.get("realtime", {}).get(key)
            m = row.get("main", {}).get(key) if "main" in row else None
            lines.append(f"| {row['scenario']} | {label} | {d if d is not None else '–'} | {r if r is not None else '–'} | "
                         f"{ratio(r, d)} | {m if m is not None else '–'} | {ratio(m, d) if 'main' in row else '–'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", default="s1,s2,s3,s4,s5,s6,l2,l3,g3")
    ap.add_argument("--s3-sessions", default="50,200,500")
    ap.add_argument("--g3-sessions", default="",
                    help="G3's session counts (default: the --s3-sessions up to 200)")
    ap.add_argument("--g3-repeat", type=int, default=2,
                    help="G3: pass-through and translated alternate this many times each (medians are printed)")
    ap.add_argument("--g3-targets", default="", help=f"G3's targets, some of {','.join(G3_TARGETS)} (default: all)")
    ap.add_argument("--s3-seconds", type=float, default=15.0)
    ap.add_argument("--s6-sessions", type=int, default=S6_SESSIONS, help="S6: streams at once")
    ap.add_argument("--s6-seconds", type=float, default=15.0, help="S6: how long each stream lasts")
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
    g3 = g3_markdown(results)
    others = [r for r in results["rows"] if not r["scenario"].startswith("G3")]
    table = "\n\n".join(t for t in (markdown(results) if others else "", g3) if t)
    (out / f"results-{stamp}.md").write_text(table + "\n")
    print()
    print(table)


if __name__ == "__main__":
    main()
