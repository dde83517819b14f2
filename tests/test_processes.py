"""Real server processes: both ways of launching, SIGTERM, kill -9, several writers, the logs CLI."""

from __future__ import annotations

from typing import Any

import functools
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from rtproxy.spend.log import SpendLogWriter

from .conftest import ADMIN_KEY, USER_KEY
from .helpers import auth_headers, events_until, expect_error_then_close, send_event, text_turn, user_text, write_server_config, ws_connect

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, port: int, rt_port: int, stream_delay_ms: float = 1.0) -> Path:
    return write_server_config(tmp_path, port, rt_port, stream_delay_ms=stream_delay_ms)


@asynccontextmanager
async def server_process(argv: list[str], tmp_path: Path, port: int,
                         extra_env: dict[str, str] | None = None, **popen: Any) -> AsyncIterator[trio.Process]:
    env = {**os.environ, "TEST_USER_KEY": USER_KEY, **(extra_env or {})}
    log = open(tmp_path / "server.log", "wb")
    proc = await trio.lowlevel.open_process(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            **popen)
    try:
        with trio.fail_after(20):
            async with httpx.AsyncClient() as http:
                while True:
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert proc.poll() is None, (tmp_path / "server.log").read_text()
                    await trio.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        await proc.wait()
        log.close()


def records(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "spend.jsonl").read_bytes().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("launcher", ["rtproxy", "hypercorn"])
async def test_both_launchers_serve_everything_and_sigterm_closes_sessions_with_1001(
        tmp_path: Path, launcher: str) -> None:
    port, rt_port = free_port(), free_port()
    cfg = write_config(tmp_path, port, rt_port)
    if launcher == "rtproxy":
        argv = [str(BIN / "rtproxy"), "serve", "--config", str(cfg)]
    else:
        argv = [str(BIN / "hypercorn"), "-k", "trio", "--bind", f"127.0.0.1:{port}", "rtproxy.app:create_app()"]
    async with server_process(argv, tmp_path, port, {"RTPROXY_CONFIG": str(cfg)}) as proc:
        async with ws_connect(f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime",
                              headers=auth_headers(USER_KEY)) as main_ws:
            await text_turn(main_ws)
        async with ws_connect(f"ws://127.0.0.1:{rt_port}/v1/realtime?model=gpt-realtime",
                              headers=auth_headers(ADMIN_KEY)) as ws:
            await text_turn(ws)
            proc.send_signal(signal.SIGTERM)
            await expect_error_then_close(ws, "server_shutdown", 1001)
        with trio.fail_after(15):
            assert await proc.wait() == 0
    sessions = [r for r in records(tmp_path) if r["record"] == "session"]
    assert len(sessions) == 2
    assert sessions[-1]["close"] == {"by": "proxy", "code": 1001, "reason": "the gateway is shutting down"}
    # the main-port session, closed normally by the client: `rtproxy serve` records its 1000; a
    # plain hypercorn launch cannot know it (docs/known-limits.md) and records 1006
    assert sessions[0]["close"]["by"] == "client"
    assert sessions[0]["close"]["code"] == (1000 if launcher == "rtproxy" else 1006)
    log = (tmp_path / "server.log").read_text()
    for secret in (USER_KEY, ADMIN_KEY):
        assert secret not in log


async def test_kill_9_mid_session_leaves_only_whole_lines(tmp_path: Path) -> None:
    port, rt_port = free_port(), free_port()
    cfg = write_config(tmp_path, port, rt_port, stream_delay_ms=20.0)
    async with server_process([str(BIN / "rtproxy"), "serve", "--config", str(cfg)], tmp_path, port) as proc:
        async with ws_connect(f"ws://127.0.0.1:{rt_port}/v1/realtime?model=gpt-realtime",
                              headers=auth_headers(USER_KEY)) as ws:
            for _ in range(3):
                await send_event(ws, user_text("hello"))
                await send_event(ws, {"type": "response.create"})
                await events_until(ws, "response.done")
            await send_event(ws, user_text("a long one " * 50))
            await send_event(ws, {"type": "response.create"})
            await events_until(ws, "response.output_audio.delta")
            proc.kill()  # SIGKILL, mid-response
            await proc.wait()
    raw = (tmp_path / "spend.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    recs = records(tmp_path)  # every line parses
    assert [r["record"] for r in recs] == ["response"] * 3


def _writer(path: str, worker: int, n: int) -> None:
    w = SpendLogWriter(Path(path))
    for i in range(n):
        assert w.write({"record": "response", "worker": worker, "i": i, "pad": "x" * (3000 + worker * 517)})


def test_several_processes_appending_never_tear_or_interleave_lines(tmp_path: Path) -> None:
    import multiprocessing

    path = tmp_path / "logs" / "spend.jsonl"  # the directory is created by the writer
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 1500)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    parsed = [json.loads(line) for line in lines[:-1]]
    assert len(parsed) == 6000
    for w in range(4):
        assert sorted(r["i"] for r in parsed if r["worker"] == w) == list(range(1500))
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_logs_cli_prints_a_table_filters_and_json(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 1, 2)
    w = SpendLogWriter(tmp_path / "spend.jsonl")
    w.write({"record": "response", "session_id": "sess_a", "key_name": "user", "model": "gpt-realtime",
             "status": "completed", "start_time": "2026-01-01T00:00:00.000Z", "response_id": "resp_1",
             "usage": {"input_tokens": 12, "output_tokens": 34}, "cost_usd": 0.00123})
    w.write({"record": "session", "session_id": "sess_b", "key_name": "admin", "model": "gpt-realtime",
             "status": "success", "start_time": "2026-01-01T00:01:00.000Z", "responses": 0, "usage": {},
             "cost_usd": 0.0})
    env = {**os.environ, "TEST_USER_KEY": USER_KEY}
    out = subprocess.run([str(BIN / "rtproxy"), "logs", "--config", str(cfg)], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert "sess_a" in out and "sess_b" in out and "$0.001230" in out  # response ids: --json
    out = subprocess.run([str(BIN / "rtproxy"), "logs", "--config", str(cfg), "--key", "admin", "--json"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert [json.loads(line)["session_id"] for line in out.splitlines()] == ["sess_b"]


def test_hash_key_cli() -> None:
    out = subprocess.run([str(BIN / "rtproxy"), "hash-key", "-"], input="secret-key\n", capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == __import__("hashlib").sha256(b"secret-key").hexdigest()


async def test_two_workers_share_both_ports_and_stop_together(tmp_path: Path) -> None:
    port, rt_port = free_port(), free_port()
    cfg = write_config(tmp_path, port, rt_port)
    async with server_process([str(BIN / "rtproxy"), "serve", "--config", str(cfg), "--workers", "2"],
                              tmp_path, port) as proc:
        for i in range(40):  # the kernel spreads them by a hash: all 40 on one worker is a 2^-39 chance
            url_port = rt_port if i % 2 else port
            async with ws_connect(f"ws://127.0.0.1:{url_port}/v1/realtime?model=gpt-realtime",
                                  headers=auth_headers(USER_KEY)) as ws:
                if i < 4:
                    await text_turn(ws)
                else:
                    await events_until(ws, "session.created")
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await proc.wait() == 0
    log = (tmp_path / "server.log").read_text().splitlines()
    served = {w: sum(1 for line in log if f"[{w}] rtproxy.session: session" in line and " opened:" in line)
              for w in ("w0", "w1")}
    assert served["w0"] > 0 and served["w1"] > 0 and sum(served.values()) == 40, served
    recs = records(tmp_path)
    assert [r["record"] for r in recs].count("session") == 40


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited (reaped by init in its own time)


async def test_workers_exit_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    port, rt_port = free_port(), free_port()
    cfg = write_config(tmp_path, port, rt_port)
    async with server_process([str(BIN / "rtproxy"), "serve", "--config", str(cfg), "--workers", "2"],
                              tmp_path, port) as proc:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        # (multiprocessing's resource tracker is a child too)
        workers = [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        proc.kill()  # SIGKILL: the supervisor can pass nothing on
        await proc.wait()
        with trio.fail_after(15):
            while any(_alive(pid) for pid in workers):
                await trio.sleep(0.05)
    # they shut down (SIGTERM from the kernel), and nothing listens on the ports any more
    # (SO_REUSEADDR: the health checks' TIME_WAIT sockets allow a bind, a live listener does not)
    for p in (port, rt_port):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
            s.listen()


async def test_simulate_serves_the_offline_model_standalone(tmp_path: Path) -> None:
    port = free_port()
    proc = await trio.lowlevel.open_process([str(BIN / "rtproxy"), "simulate", "--port", str(port)],
                                            stdout=subprocess.PIPE)
    try:
        with trio.fail_after(10):
            line = await proc.stdout.receive_some(200)
        assert f"ws://127.0.0.1:{port}/v1/realtime".encode() in line
        async with ws_connect(f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime") as ws:
            events = await text_turn(ws, "standalone")
        assert "".join(e.get("delta", "") for e in events if e["type"] == "response.output_text.delta") == \
            "You said: standalone"
    finally:
        proc.kill()
        await proc.wait()


async def test_logs_follow_prints_new_records_of_one_session_as_they_land(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 1, 2)
    w = SpendLogWriter(tmp_path / "spend.jsonl")
    base = {"key_name": "user", "model": "gpt-realtime", "status": "completed", "start_time": "2026-01-01T00:00:00.000Z",
            "usage": {}, "cost_usd": 0.0}
    w.write({**base, "record": "response", "session_id": "sess_old", "response_id": "resp_old"})
    proc = await trio.lowlevel.open_process(
        [str(BIN / "rtproxy"), "logs", "--config", str(cfg), "--follow", "--session", "sess_live", "--json"],
        stdout=subprocess.PIPE, stderr=open(tmp_path / "logs.err", "wb"), env={**os.environ, "TEST_USER_KEY": USER_KEY})
    try:
        w.write({**base, "record": "response", "session_id": "sess_other", "response_id": "resp_other"})
        w.write({**base, "record": "response", "session_id": "sess_live", "response_id": "resp_live_1"})
        out = b""
        with trio.fail_after(10):
            while out.count(b"\n") < 1:
                out += await proc.stdout.receive_some(65536)  # type: ignore[union-attr]
            (tmp_path / "spend.jsonl").rename(tmp_path / "spend.jsonl.1")  # rotated while following
            w.reopen()  # as on SIGHUP
            w.write({**base, "record": "response", "session_id": "sess_other", "response_id": "resp_other_2"})
            w.write({**base, "record": "session", "session_id": "sess_live", "responses": 1})
            while out.count(b"\n") < 2:
                out += await proc.stdout.receive_some(65536)  # type: ignore[union-attr]
        got = [json.loads(line) for line in out.splitlines()]
        assert [(r["record"], r["session_id"]) for r in got] == [("response", "sess_live"), ("session", "sess_live")]
    finally:
        proc.kill()
        await proc.wait()


def test_logs_cli_shows_whole_ids_finds_a_session_by_a_shown_prefix_and_survives_a_closed_pipe(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 1, 2)
    w = SpendLogWriter(tmp_path / "spend.jsonl")
    sid = "sess_rtp_0123456789abcdefce24"
    w.write({"record": "response", "session_id": sid, "key_name": "user", "model": "gpt-realtime",
             "status": "completed", "start_time": "2026-01-01T00:00:01.000Z", "response_id": "resp_1", "usage": {}})
    w.write({"record": "session", "session_id": sid, "key_name": "user", "model": "gpt-realtime",
             "status": "success", "start_time": "2026-01-01T00:00:00.000Z", "end_time": "2026-01-01T00:00:09.000Z",
             "responses": 1, "usage": {}})
    for i in range(3000):
        w.write({"record": "response", "session_id": f"sess_rtp_{i:020d}", "key_name": "user", "usage": {},
                 "start_time": "2026-01-01T00:01:00.000Z"})
    env = {**os.environ, "TEST_USER_KEY": USER_KEY}
    run = functools.partial(subprocess.run, capture_output=True, text=True, env=env)
    out = run([str(BIN / "rtproxy"), "logs", "--config", str(cfg), "--session", sid[:20]]).stdout.splitlines()
    assert len(out) == 3 and all(sid in line for line in out[1:])  # the whole id, found by its prefix
    response, session = out[1:]
    # in time order: a session's row at its end
    assert response.startswith("2026-01-01T00:00:01  response") and session.startswith("2026-01-01T00:00:09  session")
    head = run(f"{BIN / 'rtproxy'} logs --config {cfg} | head -3", shell=True)
    assert head.returncode == 0 and len(head.stdout.splitlines()) == 3
    assert "Traceback" not in head.stderr and "BrokenPipe" not in head.stderr
    helped = run([str(BIN / "rtproxy"), "logs", "--help"]).stdout
    for option in ("--follow", "--session", "--key", "--json", "--config"):
        assert option in helped
    assert "prefix" in helped and "rotation" in helped


def busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


@pytest.mark.parametrize("which", ["main", "realtime", "metrics", "certificate", "main-workers", "realtime-workers"])
def test_a_start_up_failure_is_one_clear_line_and_exit_2(tmp_path: Path, which: str) -> None:
    sock, busy = busy_port()
    port, rt_port = (busy, free_port()) if which.startswith("main") else (
        free_port(), busy if which.startswith("realtime") else free_port())
    cfg = write_config(tmp_path, port, rt_port)
    if which == "certificate":
        (tmp_path / "cert.pem").write_text("not a certificate")
        (tmp_path / "key.pem").write_text("not a key")
        cfg.write_text(cfg.read_text().replace("shutdown_grace_s = 5.0",
                                               'shutdown_grace_s = 5.0\ntls_certfile = "cert.pem"\ntls_keyfile = "key.pem"'))
    if which == "metrics":
        cfg.write_text(cfg.read_text().replace("shutdown_grace_s = 5.0", f"shutdown_grace_s = 5.0\nmetrics_port = {busy}"))
    # at the INFO level: the ports are bound before the state store or the offline model start,
    # so a port in use is the first and only line
    env = {**os.environ, "TEST_USER_KEY": USER_KEY, "RTPROXY_LOG_LEVEL": "INFO"}
    workers = ["--workers", "2"] if which.endswith("-workers") else []
    with sock:
        out = subprocess.run([str(BIN / "rtproxy"), "serve", "--config", str(cfg), *workers], capture_output=True,
                             text=True, env=env, timeout=30)
        debug = subprocess.run([str(BIN / "rtproxy"), "serve", "--config", str(cfg), "--debug"],
                               capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 2 and out.stdout == ""  # no banner for a server that did not start
    (line,) = [line for line in out.stderr.splitlines() if line.strip()]
    expected = {
        "main": f"rtproxy: port 127.0.0.1:{busy} is already in use (set [server].port or --port)",
        "realtime": f"rtproxy: realtime port 127.0.0.1:{busy} is already in use (set [server].realtime_port or "
                    "--realtime-port, or -1 to turn the listener off)",
        "metrics": f"rtproxy: metrics port 127.0.0.1:{busy} is already in use (set [server].metrics_port, or -1 "
                   "to turn it off)",
        "certificate": "rtproxy: the TLS certificate or key cannot be used"}[which.removesuffix("-workers")]
    assert line.startswith(expected)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


async def test_the_readmes_hypercorn_command_binds_the_configured_port_prints_the_banner_and_fails_loudly(
        tmp_path: Path) -> None:
    port, rt_port = free_port(), free_port()
    cfg = write_config(tmp_path, port, rt_port)
    argv = [str(BIN / "hypercorn"), "--config", "python:rtproxy.hypercorn_conf", "rtproxy.app:create_app()"]
    async with server_process(argv, tmp_path, port, {"RTPROXY_CONFIG": str(cfg)}) as proc:
        async with ws_connect(f"ws://127.0.0.1:{rt_port}/v1/realtime?model=gpt-realtime",
                              headers=auth_headers(USER_KEY)) as ws:
            await text_turn(ws)
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await proc.wait() == 0
    assert f"rtproxy on http://127.0.0.1:{port}/" in (tmp_path / "server.log").read_text()
    sock, busy = busy_port()
    with sock:
        cfg = write_config(tmp_path, free_port(), busy)
        failed = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False,
                                        env={**os.environ, "TEST_USER_KEY": USER_KEY, "RTPROXY_CONFIG": str(cfg)})
    assert failed.returncode == 2
    assert failed.stderr.decode() == (f"rtproxy: realtime port 127.0.0.1:{busy} is already in use "
                                      "(set [server].realtime_port, or -1 to turn the listener off)\n")
    assert b"Running on" not in failed.stderr and b"Traceback" not in failed.stderr


async def test_the_hypercorn_launch_says_in_one_line_that_the_main_port_is_in_use(tmp_path: Path) -> None:
    argv = [str(BIN / "hypercorn"), "--config", "python:rtproxy.hypercorn_conf", "rtproxy.app:create_app()"]
    sock, busy = busy_port()
    with sock:
        cfg = write_config(tmp_path, busy, free_port())
        failed = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False,
                                        env={**os.environ, "TEST_USER_KEY": USER_KEY, "RTPROXY_CONFIG": str(cfg)})
    # hypercorn would bind it itself first: a traceback and status 1 (hypercorn_conf.py binds it)
    assert failed.returncode == 2
    assert failed.stderr.decode() == f"rtproxy: port 127.0.0.1:{busy} is already in use (set [server].port)\n"
    assert failed.stdout == b""


@pytest.mark.parametrize("launcher", ["rtproxy", "hypercorn"])
async def test_without_a_config_file_both_launches_say_how_to_name_one(tmp_path: Path, launcher: str) -> None:
    if launcher == "rtproxy":
        argv, env, hint = [str(BIN / "rtproxy"), "serve"], {}, "pass --config PATH"
    else:
        argv = [str(BIN / "hypercorn"), "--config", "python:rtproxy.hypercorn_conf", "rtproxy.app:create_app()"]
        env, hint = {"RTPROXY_CONFIG": "config.toml"}, "set RTPROXY_CONFIG=PATH"
    environ = {k: v for k, v in os.environ.items() if k != "RTPROXY_CONFIG"}
    failed = await trio.run_process(argv, cwd=tmp_path, capture_stdout=True, capture_stderr=True, check=False,
                                    env={**environ, **env})
    assert failed.returncode == 2
    assert failed.stderr.decode() == ("rtproxy: config.toml: cannot read: No such file or directory "
                                      f"(run it from the repository, or {hint})\n")


async def test_a_config_with_no_keys_says_at_start_up_that_nobody_can_connect(tmp_path: Path) -> None:
    port, rt_port = free_port(), free_port()
    cfg = write_config(tmp_path, port, rt_port)
    text = cfg.read_text()
    cfg.write_text(text[:text.index("[[keys]]")])
    async with server_process([str(BIN / "rtproxy"), "serve", "--config", str(cfg)], tmp_path, port) as proc:
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            await proc.wait()
    assert "no [[keys]] in" in (tmp_path / "server.log").read_text()


def test_the_package_metadata_builds_without_deprecation_warnings() -> None:
    import tomllib

    meta = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    # an SPDX string, not the deprecated table (setuptools warned on every install)
    assert meta["project"]["license"] == "MIT"
    assert any(r.startswith("setuptools>=77") for r in meta["build-system"]["requires"])
