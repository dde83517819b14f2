"""``make bench-peers``: rtproxy beside the other realtime gateways, on one machine, in one run.

    make bench-peers                                   # install the peers if needed, run, write docs/benchmarks.md
    .venv/bin/python bench/peers.py --quick            # a short smoke run of the harness (writes no doc)
    .venv/bin/python bench/peers.py --targets direct,realtime,portkey --scenarios s1,s5 --quick
    .venv/bin/python bench/peers.py --targets direct,realtime,main,litellm,portkey --scenarios s6 --quick

Targets: *direct* (the load generator talks to the fake upstream, bench/fake_upstream.py, itself),
rtproxy's *realtime* listener and its *main* port (run.py's Stack: spend log and store_prompts on),
*LiteLLM* (its proxy, one worker, no database, the model routed to the fake with ``api_base``) and
the *Portkey* gateway (its Node server, ``x-portkey-provider: openai`` per connection; its
realtime route dials the provider's fixed wss://api.openai.com, which a ``--require`` shim,
NODE_LOOPBACK, redirects to the fake and whose start-of-session race it closes). The peers are
installed pinned under ``.cache/peers/`` (LiteLLM in its own venv, Portkey with npm), never by
``make test``. A peer that cannot be installed, started or made to relay a realtime session to
the fake gets a row saying why.

Every target of every scenario gets a fresh fake upstream and a fresh gateway; targets run
interleaved (direct, realtime, main, LiteLLM, Portkey, then again) ``--repeat`` times, and each
figure is the median over the repetitions. The scenarios are run.py's (``make bench``), run by the
same load generator (bench/loadgen.py) with the same sizes: S1 sequential round trips, S2 pipelined
audio events, S3 voice sessions at real-time pace (50 and 200), S4 idle sessions (RSS before the
sessions and KiB per session), S5 connects, S6 streamed deltas (one-way latency upstream →
client, one stream of 40 ms audio deltas every 20 ms); and per gateway the start-up time
(process start to its port accepting connections) over every start of the run. Gateway CPU is
read from /proc around each run (the process and its children).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py: the stack, the port and CPU helpers)
from run import BENCH_KEY, HERE, PY, ROOT, cpu_seconds, free_port, ratio, wait_port  # noqa: E402

CACHE = ROOT / ".cache" / "peers"
LITELLM_VERSION = "1.110.2"
PORTKEY_VERSION = "1.15.2"
#: LiteLLM's proxy extra names ``litellm-proxy``, which the registry does not serve for this
#: version; the proxy's code ships in the ``litellm`` wheel, so its server's own dependencies are
#: installed by name instead.
LITELLM_SERVER_DEPS = ["gunicorn>=23,<24", "uvicorn>=0.33,<1", "uvloop>=0.22.1,<1", "fastapi>=0.136.3,<1",
                       "starlette>=1.0.1,<2", "backoff>=2.2.1,<3", "rq>=2.7,<3", "websockets", "orjson",
                       "apscheduler", "python-multipart", "cryptography", "PyJWT", "email-validator",
                       # what its proxy_server module imports besides
                       "semver", "expression", "fastapi-sso", "mcp", "soundfile"]
LITELLM_MASTER_KEY = "sk-bench-master-0123456789"
PROVIDER_KEY = "sk-bench-provider-000000"
TARGETS = ["direct", "realtime", "main", "litellm", "portkey"]
LABELS = {"direct": "direct", "realtime": "rtproxy realtime listener", "main": "rtproxy main port",
          "litellm": f"LiteLLM {LITELLM_VERSION}", "portkey": f"Portkey gateway {PORTKEY_VERSION}"}
#: The environment variable that carries the fake upstream's port to NODE_LOOPBACK's redirect.
REDIRECT_PORT_ENV = "BENCH_OPENAI_REDIRECT_PORT"
#: Preloaded into Portkey's Node server (``node --require``). First, it forces the server onto
#: 127.0.0.1 (Portkey's start-server.js listens on every interface).
#:
#: Second, it points Portkey's realtime upstream at the fake. The Node route /v1/realtime builds
#: the upstream URL from the provider's getBaseURL (openai: the fixed https://api.openai.com/v1,
#: made wss://) and never reads x-portkey-custom-host, then dials it with ``new WebSocket(url,
#: {headers})`` from the ``ws`` package (``import v from "ws"``). The shim loads ws's WebSocket
#: class (the one module every ``ws`` import resolves to) first and makes that module export a
#: Proxy of it, which the server's ESM import then receives: constructing one for
#: wss://api.openai.com dials ws://127.0.0.1:$BENCH_OPENAI_REDIRECT_PORT instead, same path, query,
#: options and headers, Host aside (so the fake sees Portkey's handshake, Authorization with the
#: provider key).
#: Any other URL, and the server side's instances (no URL), pass through untouched.
#:
#: Third, it closes a race in that route, which would otherwise lose most sessions: the route
#: forwards an upstream event only once its client socket is open (``onOpen``, after the route has
#: returned and @hono/node-ws has answered the client's upgrade) and drops the events before; the
#: fake sends session.created as soon as its handshake is done, as OpenAI does, and over loopback
#: it lands in that gap (in a 40-connect check 34 lost it, and S5 and most sessions hung). The shim
#: pauses the upstream socket's reads (ws's pause) from its open until one event-loop turn after
#: the client's upgrade (found by the request, carried in an AsyncLocalStorage from the server's
#: 'upgrade' listener to the route's ``new WebSocket``), so the event waits in the socket instead.
NODE_LOOPBACK = f"""\
const Module = require('module');
const http = require('http');
const net = require('net');
const path = require('path');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {{
  if (typeof args[0] === 'number') {{ args.splice(1, 0, '127.0.0.1'); if (typeof args[2] === 'number') args.splice(2, 1); }}
  else if (args[0] && typeof args[0] === 'object' && !args[0].path) args[0] = {{ ...args[0], host: '127.0.0.1' }};
  return listen.apply(this, args);
}};
const port = process.env.{REDIRECT_PORT_ENV};
if (port) {{
  // resolved from the server's own file (the shim sits in a temporary directory); ws's exports
  // hide lib/, so its files are found beside the package's main
  const req = Module.createRequire(path.resolve(process.argv[1]));
  const lib = path.join(path.dirname(req.resolve('ws')), 'lib');
  const file = path.join(lib, 'websocket.js');
  const redirect = (address) => {{
    const url = new URL(String(address));
    if (url.protocol !== 'wss:' || url.hostname !== 'api.openai.com') return address;
    return `ws://127.0.0.1:${{port}}${{url.pathname}}${{url.search}}`;
  }};
  // the client's upgrade request while Portkey handles it, and the upstream socket it dialed
  const upgrading = new (require('async_hooks').AsyncLocalStorage)();
  const held = new WeakMap();
  const on = http.Server.prototype.on;
  http.Server.prototype.on = function (event, listener) {{
    if (event !== 'upgrade') return on.call(this, event, listener);
    return on.call(this, event, function (request, ...rest) {{
      return upgrading.run(request, () => listener.call(this, request, ...rest));
    }});
  }};
  // The class is swapped for its Proxy while the file loads (Node snapshots a module's exports for
  // the ESM loader as it finishes loading, so replacing module.exports afterwards is not seen)
  const compile = Module._extensions['.js'];
  Module._extensions['.js'] = function (module, filename) {{
    compile.call(this, module, filename);
    if (filename === file) module.exports = new Proxy(module.exports, {{
      construct(target, args, newTarget) {{
        const to = typeof args[0] === 'string' || args[0] instanceof URL ? redirect(args[0]) : args[0];
        if (to === args[0]) return Reflect.construct(target, args, newTarget);
        const upstream = Reflect.construct(target, [to, ...args.slice(1)], newTarget);
        const request = upgrading.getStore();
        if (request) {{
          held.set(request, upstream);
          upstream.once('open', () => upstream.pause());  // before Portkey's listeners
        }}
        return upstream;
      }},
    }});
  }};
  try {{ req(file); }} finally {{ Module._extensions['.js'] = compile; }}
  const Server = req(path.join(lib, 'websocket-server.js'));
  const handleUpgrade = Server.prototype.handleUpgrade;
  Server.prototype.handleUpgrade = function (request, socket, head, cb) {{
    return handleUpgrade.call(this, request, socket, head, (...opened) => {{
      cb(...opened);  // @hono/node-ws: 'connection', then Portkey's onOpen a few microtasks later
      const upstream = held.get(request);
      held.delete(request);
      if (upstream) setImmediate(() => upstream.resume());
    }});
  }};
}}
"""


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------- installing the peers

def install_litellm() -> tuple[str | None, str]:
    """(version, "") when LiteLLM's proxy is installed in its own venv, else (None, why)."""
    venv = CACHE / "litellm-venv"
    stamp = venv / f".installed-{LITELLM_VERSION}"
    if stamp.exists():
        return LITELLM_VERSION, ""
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    try:
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        out = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", f"litellm=={LITELLM_VERSION}",
                              *LITELLM_SERVER_DEPS], capture_output=True, text=True, timeout=1200)
    except (subprocess.SubprocessError, OSError) as e:
        return None, f"install failed: {e}"
    if out.returncode != 0:
        return None, "pip install failed: " + _last_error(out.stderr)
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import litellm.proxy.proxy_server"],
                           capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        return None, "installed, but its proxy does not import: " + _last_error(probe.stderr)
    stamp.touch()
    return LITELLM_VERSION, ""


def install_portkey() -> tuple[str | None, str]:
    """(version, "") when the Portkey gateway is installed with npm, else (None, why)."""
    where = CACHE / "portkey"
    server = where / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    stamp = where / f".installed-{PORTKEY_VERSION}"
    if stamp.exists() and server.exists():
        return PORTKEY_VERSION, ""
    where.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    try:
        out = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                              f"@portkey-ai/gateway@{PORTKEY_VERSION}"], cwd=where, capture_output=True, text=True,
                             timeout=900)
    except (subprocess.SubprocessError, OSError) as e:
        return None, f"npm install failed: {e}"
    if out.returncode != 0 or not server.exists():
        return None, "npm install failed: " + _last_error(out.stderr)
    stamp.touch()
    return PORTKEY_VERSION, ""


def _last_error(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("WARNING")]
    return lines[-1][:300] if lines else "no message"


# ---------------------------------------------------------------- the stacks

class RtStack:
    """run.py's Stack (fake upstream + rtproxy, both fresh), with rtproxy restarted once so that
    its start-up (process start to both ports open) is timed with the upstream already up."""

    def __init__(self, workdir: Path) -> None:
        self.stack = run.Stack(workdir)
        p = self.stack.proxy
        argv = list(p.args)  # type: ignore[arg-type]
        p.terminate()
        p.wait(15)
        env = {**os.environ, "BENCH_KEY": BENCH_KEY, "BENCH_PROVIDER_KEY": PROVIDER_KEY, "RTPROXY_LOG_LEVEL": "WARNING"}
        t0 = time.monotonic()
        self.stack.proxy = subprocess.Popen(argv, cwd=workdir, env=env, stdout=open(workdir / "proxy.log", "ab"),
                                            stderr=subprocess.STDOUT)
        try:
            wait_port(self.stack.port)
            wait_port(self.stack.rt_port)
        except RuntimeError:
            self.close()
            raise
        self.startup_s = time.monotonic() - t0
        time.sleep(0.5)

    def url(self, target: str) -> str:
        return self.stack.url(target)

    def pid(self, target: str) -> int:
        return self.stack.pid(target)

    def key(self, target: str) -> str | None:
        return None if target == "direct" else BENCH_KEY

    def headers(self, target: str) -> dict[str, str]:
        return {}

    def close(self) -> None:
        self.stack.close()


class PeerStack:
    """A fresh fake upstream and, unless ``kind`` is "direct", one peer gateway in front of it."""

    def __init__(self, workdir: Path, kind: str) -> None:
        self.kind = kind
        self.up_port = free_port()
        self.gw_port = free_port()
        self.gateway: subprocess.Popen[bytes] | None = None
        self.workdir = workdir
        self.upstream = subprocess.Popen([PY, str(HERE / "fake_upstream.py"), str(self.up_port)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.startup_s: float | None = None
        try:
            wait_port(self.up_port)
            if kind == "litellm":
                self._start_litellm()
            elif kind == "portkey":
                self._start_portkey()
        except Exception:
            self.close()
            raise
        time.sleep(0.5)

    def _start(self, argv: list[str], env: dict[str, str], timeout: float, ready_path: str = "") -> None:
        """Start the gateway; ``startup_s``: until its port accepts a connection (and, with
        ``ready_path``, until that path answers HTTP 200: LiteLLM opens its port before its app
        has started, and holds connections until then)."""
        t0 = time.monotonic()
        self.gateway = subprocess.Popen(argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                        stdout=open(self.workdir / "gateway.log", "ab"), stderr=subprocess.STDOUT)
        deadline = t0 + timeout
        while True:
            if self.gateway.poll() is not None:
                raise RuntimeError(f"{self.kind} exited ({self.gateway.returncode}): {self.log_tail()}")
            try:
                wait_port(self.gw_port, timeout=0.5)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.kind} did not open its port in {timeout:.0f} s: {self.log_tail()}")
        while ready_path:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.gw_port}{ready_path}", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not answer {ready_path} in {timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.05)
        self.startup_s = time.monotonic() - t0

    def log_tail(self) -> str:
        path = self.workdir / "gateway.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return " / ".join(lines[-3:])[-400:] or "no output"

    def _start_litellm(self) -> None:
        cfg = self.workdir / "litellm.yaml"
        cfg.write_text(textwrap.dedent(f"""\
            model_list:
              - model_name: gpt-realtime
                litellm_params:
                  model: openai/gpt-realtime
                  api_base: http://127.0.0.1:{self.up_port}
                  api_key: {PROVIDER_KEY}
                model_info:
                  mode: realtime
            general_settings:
              master_key: {LITELLM_MASTER_KEY}
            litellm_settings:
              telemetry: false
            """))
        venv = CACHE / "litellm-venv"
        env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "NO_DOCS": "True",
               "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DISABLE_SCHEMA_UPDATE": "True",
               "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"}
        env.pop("DATABASE_URL", None)
        self._start([str(venv / "bin" / "litellm"), "--config", str(cfg), "--host", "127.0.0.1",
                     "--port", str(self.gw_port), "--num_workers", "1"], env, timeout=120,
                    ready_path="/health/liveliness")

    def _start_portkey(self) -> None:
        server = CACHE / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
        shim = self.workdir / "loopback.cjs"
        shim.write_text(NODE_LOOPBACK)
        env = {**os.environ, "NODE_ENV": "production", REDIRECT_PORT_ENV: str(self.up_port)}
        self._start(["node", "--require", str(shim), str(server), f"--port={self.gw_port}", "--headless"], env,
                    timeout=60)

    def url(self, target: str) -> str:
        port = self.up_port if target == "direct" else self.gw_port
        return f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"

    def pid(self, target: str) -> int:
        if target == "direct" or self.gateway is None:
            return self.upstream.pid
        return self.gateway.pid

    def key(self, target: str) -> str | None:
        return {"direct": None, "litellm": LITELLM_MASTER_KEY, "portkey": PROVIDER_KEY}[target]

    def headers(self, target: str) -> dict[str, str]:
        if target == "litellm":
            return {"__respaced__": "1"}
        if target == "portkey":
            return {"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://127.0.0.1:{self.up_port}/v1"}
        return {}

    def close(self) -> None:
        procs = [p for p in (self.gateway, self.upstream) if p is not None]
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def open_stack(target: str, workdir: Path) -> RtStack | PeerStack:
    return RtStack(workdir) if target in ("realtime", "main") else PeerStack(workdir, target)


# ---------------------------------------------------------------- the load generator

def loadgen(scenario: str, url: str, key: str | None, headers: dict[str, str], timeout: float,
            **opts: Any) -> dict[str, Any]:
    """bench/loadgen.py (through this file's ``loadgen`` entry, which adds ``headers`` to every
    connection it opens), one scenario, its JSON figures or {"error": ...}."""
    argv = [PY, str(Path(__file__).resolve()), "loadgen", json.dumps(headers), scenario, url]
    if key:
        argv += ["--key", key]
    for k, v in opts.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if out.returncode != 0:
        return {"error": _last_error(out.stderr) if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout)


def loadgen_entry(headers_json: str, rest: list[str]) -> None:
    """``peers.py loadgen HEADERS_JSON <loadgen.py arguments>``: loadgen.py's main, with extra
    handshake headers (Portkey's provider and custom host) on every connection."""
    import loadgen as lg

    extra = json.loads(headers_json)
    if extra.pop("__respaced__", None):
        # LiteLLM re-serializes every event with json.dumps's default separators ('{"type": "…",
        # "event_id": "…"'); the load generator finds types and ids at fixed places in the compact
        # form, so the head of each received event is put back into it (on the client's CPU).
        from websockets.asyncio.connection import Connection

        recv = Connection.recv

        async def compact_recv(self: Any, *a: Any, **kw: Any) -> Any:
            msg = await recv(self, *a, **kw)
            if isinstance(msg, str) and msg.startswith('{"type": "'):
                head, sep, tail = msg.partition(', "delta": "')
                msg = head.replace('": "', '":"').replace('", "', '","') + (',"delta":"' if sep else "") + tail
            return msg

        Connection.recv = compact_recv  # type: ignore[method-assign]
    if extra:
        connect = lg.connect

        def with_headers(url: str, additional_headers: dict[str, str] | None = None, **kw: Any) -> Any:
            return connect(url, additional_headers={**(additional_headers or {}), **extra}, **kw)

        lg.connect = with_headers  # type: ignore[assignment]
    sys.argv = ["loadgen.py", *rest]
    lg.main()


def measure(stack: RtStack | PeerStack, target: str, scenario: str, timeout: float, **opts: Any) -> dict[str, Any]:
    pid = stack.pid(target)
    if scenario == "s4":
        opts["rss_pid"] = pid
    c0, t0 = cpu_seconds(pid), time.monotonic()
    result = loadgen(scenario, stack.url(target), stack.key(target), stack.headers(target), timeout, **opts)
    cpu, wall = cpu_seconds(pid) - c0, time.monotonic() - t0
    result["cpu_s"] = round(cpu, 3)
    result["cpu_pct_of_core"] = round(100 * cpu / wall, 1) if wall else None
    events = result.get("events")
    if isinstance(events, int) and events:
        result["cpu_ms_per_event"] = round(1000 * cpu / events, 4)
    return result


def probe(stack: RtStack | PeerStack, target: str) -> str:
    """"" when the target relays a realtime session to the fake (session.created, then one round
    trip), else why not."""
    r = loadgen("s1", stack.url(target), stack.key(target), stack.headers(target), 60, events=5)
    if "error" in r:
        return f"does not relay a realtime session to the fake: {r['error']}"
    return ""


# ---------------------------------------------------------------- the run

def plan(args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any]]]:
    quick, scen = args.quick, set(args.scenarios.split(","))
    out: list[tuple[str, str, dict[str, Any]]] = []
    if "s1" in scen:
        out.append(("S1", "s1", {"events": 500 if quick else 3000}))
    if "s2" in scen:
        out.append(("S2", "s2", {"events": 3000 if quick else 20000}))
    if "s3" in scen:
        for n in [int(x) for x in args.s3_sessions.split(",")]:
            out.append((f"S3 N={n}", "s3", {"sessions": n, "seconds": 5 if quick else args.s3_seconds}))
    if "s4" in scen:
        out.append(("S4", "s4", {"sessions": 50 if quick else 300}))
    if "s5" in scen:
        out.append(("S5", "s5", {"events": 50 if quick else 200}))
    if "s6" in scen:
        out.append(("S6", "s6", {"sessions": args.s6_sessions, "seconds": 5 if quick else args.s6_seconds}))
    return out


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    versions: dict[str, str] = {"rtproxy": rtproxy_version()}
    unavailable: dict[str, str] = {}
    targets = args.targets.split(",")
    for name, install in (("litellm", install_litellm), ("portkey", install_portkey)):
        if name not in targets:
            continue
        log(f"== installing {LABELS[name]} under {CACHE.relative_to(ROOT)}/ (once)")
        version, why = install()
        if version:
            versions[name] = version
        else:
            unavailable[name] = f"cannot be installed: {why}"
    # Can each peer relay a realtime session to the fake at all?
    for name in ("litellm", "portkey"):
        if name not in targets or name in unavailable:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                stack = PeerStack(Path(tmp), name)
            except Exception as e:
                unavailable[name] = f"does not start: {e}"
                continue
            try:
                why = probe(stack, name)
                if why:
                    tail = stack.log_tail()
                    unavailable[name] = why + (f" (log: {tail})" if tail else "")
            finally:
                stack.close()
        log(f"   {name}: {unavailable.get(name, 'relays a realtime session to the fake')}")
    live = [t for t in targets if t not in unavailable]
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
                               "versions": versions, "unavailable": unavailable, "repeat": args.repeat,
                               "quick": args.quick, "rows": [], "startup_s": {},
                               "s6": {"sessions": args.s6_sessions,
                                      "seconds": 5 if args.quick else args.s6_seconds}}
    startups: dict[str, list[float]] = {}
    for rep in range(args.repeat):
        for name, scenario, opts in plan(args):
            row = next((r for r in results["rows"] if r["scenario"] == name), None)
            if row is None:
                row = {"scenario": name, "runs": {}}
                results["rows"].append(row)
            for target in live:
                with tempfile.TemporaryDirectory() as tmp:
                    try:
                        stack = open_stack(target, Path(tmp))
                    except Exception as e:
                        r: dict[str, Any] = {"error": f"did not start: {e}"[:300]}
                    else:
                        try:
                            if stack.startup_s is not None and target != "main":
                                startups.setdefault("rtproxy" if target == "realtime" else target, []).append(
                                    stack.startup_s)
                            r = measure(stack, target, scenario, timeout=args.timeout, **opts)
                        finally:
                            stack.close()
                row["runs"].setdefault(target, []).append(r)
                log(f"  [{rep + 1}/{args.repeat}] {name:8} {target:8} {json.dumps(r)}")
    for row in results["rows"]:
        row["median"] = {t: median_of(runs) for t, runs in row["runs"].items()}
    results["startup_s"] = {k: {"median": round(statistics.median(v), 3), "min": round(min(v), 3),
                                "max": round(max(v), 3), "n": len(v)} for k, v in startups.items()}
    return results


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": runs[0]["error"]}
    out = run.median_of(good)
    if len(good) < len(runs):
        out["failed_runs"] = len(runs) - len(good)
        out["failure"] = next(r["error"] for r in runs if "error" in r)
    return out


def rtproxy_version() -> str:
    try:
        from importlib.metadata import version

        return version("rtproxy")
    except Exception:
        return "?"


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"') + f", kernel {platform.release()}"
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() or "?"
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram": mem, "os": os_name, "python": sys.version.split()[0],
            "node": node}


# ---------------------------------------------------------------- the table

#: (row label, scenario, figure, lower is better?)
FIGURES = [
    ("S1 sequential round trip p50 ms", "S1", "p50_ms"),
    ("S1 sequential round trip p99 ms", "S1", "p99_ms"),
    ("S2 pipelined events/s", "S2", "events_per_s"),
    ("S2 gateway CPU-ms per event", "S2", "cpu_ms_per_event"),
    ("S3 50 voice sessions, CPU-ms per event", "S3 N=50", "cpu_ms_per_event"),
    ("S3 50 voice sessions, round trip p99 ms", "S3 N=50", "p99_ms"),
    ("S3 200 voice sessions, CPU-ms per event", "S3 N=200", "cpu_ms_per_event"),
    ("S3 200 voice sessions, round trip p50 ms", "S3 N=200", "p50_ms"),
    ("S3 200 voice sessions, round trip p99 ms", "S3 N=200", "p99_ms"),
    ("S3 200 voice sessions, late (>100 ms) or lost", "S3 N=200", "late_fraction"),
    ("S4 KiB per idle session", "S4", "kib_per_session"),
    ("S4 RSS before the sessions, MiB", "S4", "rss_rest_mib"),
    ("S5 connect p50 ms", "S5", "p50_ms"),
    ("S5 connect p99 ms", "S5", "p99_ms"),
    ("S6 streamed deltas, one-way p50 ms", "S6", "p50_ms"),
    ("S6 streamed deltas, one-way p99 ms", "S6", "p99_ms"),
]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) >= 0.01 else f"{v:.4f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(results: dict[str, Any]) -> str:
    cols = [t for t in TARGETS if t in results["rows"][0]["median"] or t in results["unavailable"]] \
        if results["rows"] else []
    head = "| scenario | " + " | ".join(LABELS[t] for t in cols) + " |"
    lines = [head, "|---|" + "---|" * len(cols)]
    rows = {r["scenario"]: r for r in results["rows"]}
    for label, scen, key in FIGURES:
        row = rows.get(scen)
        if row is None:
            continue
        d = row["median"].get("direct", {}).get(key)
        cells = []
        for t in cols:
            if t in results["unavailable"]:
                cells.append("n/a")
                continue
            m = row["median"].get(t, {})
            if "error" in m:
                cells.append("error: " + m["error"][:120].replace("|", "/"))
                continue
            v = m.get(key)
            if v is None:
                cells.append("–")
                continue
            cell = _fmt(v)
            if t != "direct" and key not in ("late_fraction", "rss_rest_mib", "kib_per_session") and ratio(v, d) != "–":
                cell += f" ({ratio(v, d)})"
            if m.get("failed_runs"):
                cell += f" [{m['failed_runs']} run(s) failed: {m['failure'][:80].replace('|', '/')}]"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    st = results["startup_s"]
    cells = []
    for t in cols:
        key = "rtproxy" if t in ("realtime", "main") else t
        if t in results["unavailable"]:
            cells.append("n/a")
        elif t == "direct":
            cells.append(f"{st['direct']['median']:.2f} s (the fake)" if "direct" in st else "–")
        elif key in st:
            cells.append(f"{st[key]['median']:.2f} s ({st[key]['min']:.2f}–{st[key]['max']:.2f}, {st[key]['n']} starts)")
        else:
            cells.append("–")
    lines.append("| start-up to an open port (median of every start) | " + " | ".join(cells) + " |")
    for t, why in results["unavailable"].items():
        lines.append(f"| **{LABELS[t]}: not measured** | {why.replace('|', '/')} |" + " |" * (len(cols) - 1))
    return "\n".join(lines)


def doc(results: dict[str, Any], tbl: str, argv: str) -> str:
    m, v = results["machine"], results["versions"]
    gw = ", ".join([f"rtproxy {v.get('rtproxy', '?')}"] + [f"{LABELS[k]}" for k in ("litellm", "portkey") if k in v])
    s6 = results.get("s6", {"sessions": 1, "seconds": 15})
    streams = "one stream at a time" if s6["sessions"] == 1 else f"{s6['sessions']} streams at once"
    return textwrap.dedent(f"""\
        # Benchmarks: rtproxy beside other realtime gateways

        This file is written by `make bench-peers` (`bench/peers.py`); rerun it to regenerate. Nothing
        here is edited by hand.

        ## Method

        - One fake realtime upstream (`bench/fake_upstream.py`: asyncio + `websockets` + uvloop) answers
          every event cheaply; one load generator (`bench/loadgen.py`, the same as `make bench`) drives
          each target. *Direct* is the load generator talking to the fake itself, measured in the same run;
          every ratio in parentheses is to that column (for events/s, above 1× is better; for everything
          else, below).
        - Targets: rtproxy's realtime listener and its main port (spend log and `store_prompts` on, as in
          `make bench`); LiteLLM's proxy (`litellm --config …`, one worker, no database, master key set,
          the model `openai/gpt-realtime` with `api_base` at the fake); the Portkey gateway
          (`node build/start-server.js --headless`, the provider named per connection by
          `x-portkey-provider: openai`, the provider key as the client's `Authorization`). The peers are
          installed pinned under `.cache/peers/` (LiteLLM in its own venv, with its proxy server's
          dependencies named one by one since its `proxy` extra requires a `litellm-proxy` package the
          registry does not serve; Portkey with npm). Every server binds 127.0.0.1 (Portkey's through a
          `--require` shim, as its start script listens on every interface).
        - Portkey's upstream is redirected, and one race in it closed, by that shim. Its Node realtime
          route builds the upstream URL from the provider's fixed base URL (openai:
          `wss://api.openai.com/v1/realtime?model=…`) and does not read `x-portkey-custom-host` (sent
          anyway, as `http://127.0.0.1:PORT/v1`) nor a config's `custom_host`. First, the shim wraps the
          WebSocket constructor of the `ws` package, which the route dials with, so that a
          `wss://api.openai.com` URL is dialed as `ws://127.0.0.1:PORT` with the same path, query and
          headers (Host aside): the fake sees Portkey's own handshake (`Authorization: Bearer` the
          provider key), over plain WebSocket on loopback where the real one would be TLS to OpenAI.
          Second, the route forwards upstream events only once its client socket is open and drops the
          ones before; the fake sends `session.created` as soon as its handshake is done (as OpenAI
          does), which over loopback lands in that gap (in a 40-connect check, 34 connects never got
          it). The shim pauses the upstream socket's reads from its open until one event-loop turn after
          Portkey has answered the client's upgrade (the turn in which Portkey's own `onOpen` runs), so
          no event is dropped, at the cost of at most that turn on a session's first events (S5
          includes it); Portkey's code is otherwise unchanged.
        - Every target of every scenario gets a fresh fake upstream and a fresh gateway. Targets are
          interleaved (direct, rtproxy realtime, rtproxy main, LiteLLM, Portkey, then the next scenario),
          and the whole plan runs {results['repeat']} time(s); each figure is the median over the
          repetitions.
        - Scenarios (as `make bench`): S1 {'500' if results['quick'] else '3000'} sequential small events
          (round trip); S2 pipelined 40 ms audio events, 64 in flight (events/s, gateway CPU per event);
          S3 N voice sessions at real-time pace, one 40 ms append each way every 40 ms (round trip, late
          or lost, gateway CPU per event); S4 idle sessions (RSS of the gateway's process tree before the
          sessions, and KiB per open session); S5 sequential connects to `session.created`; S6 streamed
          deltas: one `response.create` that the fake answers with `response.created`, one
          `response.output_audio.delta` (40 ms of 24 kHz audio) every 20 ms for {s6['seconds']:g} s, and a
          billed `response.done`; each delta carries the fake's CLOCK_MONOTONIC at sending in its
          `event_id`, read against the client's on arrival (one machine, one clock): the one-way latency
          upstream → gateway → client, {streams}, with nothing flowing the other way; start-up:
          process start until its port accepts a connection (the fake already up), over every start in the
          run. Gateway CPU is read from /proc (the process and its children) around each run.
        - A peer that cannot be installed, started or made to relay a realtime session to the fake gets a
          row that says why.

        ## The machine

        `nproc` {m['nproc']}; CPU {m['cpu']}; RAM {m['ram']}; {m['os']}; Python {m['python']}; Node {m['node']}.
        Gateways: {gw}. Run started {results['started']} with `{argv}`.

        This is a 2-core VM: the load generator, the fake upstream and the gateway share the two
        cores, and during this run another agent's test suite was using the same machine. Figures vary
        by ±20 % or more between back-to-back runs; compare the ratios within this table, not
        milliseconds across runs.

        ## Results

        """) + tbl + "\n"


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "loadgen":
        loadgen_entry(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--scenarios", default="s1,s2,s3,s4,s5,s6")
    ap.add_argument("--s3-sessions", default="50,200")
    ap.add_argument("--s3-seconds", type=float, default=15.0)
    ap.add_argument("--s6-sessions", type=int, default=run.S6_SESSIONS, help="S6: streams at once")
    ap.add_argument("--s6-seconds", type=float, default=15.0, help="S6: how long each stream lasts")
    ap.add_argument("--repeat", type=int, default=2, help="the interleaved plan runs this many times; medians")
    ap.add_argument("--timeout", type=float, default=300.0, help="per load generator run, seconds")
    ap.add_argument("--quick", action="store_true", help="short runs, one repetition; writes no doc")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"),
                    help="where to write the method, the machine and the table ('' for nowhere)")
    args = ap.parse_args()
    if args.quick and "--repeat" not in sys.argv:
        args.repeat = 1
    results = run_all(args)
    tbl = table(results)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"peers-{stamp}.json").write_text(json.dumps(results, indent=2))
    (out / f"peers-{stamp}.md").write_text(tbl + "\n")
    print()
    print(tbl)
    if args.doc and not args.quick:
        argv = "make bench-peers" if sys.argv[1:] == [] else "bench/peers.py " + " ".join(sys.argv[1:])
        Path(args.doc).write_text(doc(results, tbl, argv))
        print(f"\nwrote {Path(args.doc).relative_to(ROOT) if Path(args.doc).is_relative_to(ROOT) else args.doc}")


if __name__ == "__main__":
    main()
