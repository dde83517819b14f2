"""The ``rtproxy`` command line as an operator meets it: real processes, their output and status."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from rtproxy.spend.log import SpendLogWriter

from .conftest import USER_KEY
from .helpers import text_turn, write_server_config, ws_connect

RTPROXY = str(Path(sys.executable).parent / "rtproxy")
ENV = {**os.environ, "TEST_USER_KEY": USER_KEY}


def rtproxy(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RTPROXY, *args], input=stdin, capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=60, check=False)


def test_version_prints_the_installed_package_version() -> None:
    out = rtproxy("--version")
    assert out.returncode == 0
    assert out.stdout == f"rtproxy {importlib.metadata.version('rtproxy')}\n"


def test_serve_help_describes_the_command_and_gives_every_options_default() -> None:
    out = rtproxy("serve", "--help")
    assert out.returncode == 0
    _, description, options = out.stdout.split("\n\n", 2)
    assert "Run the gateway" in description and "exit status 2" in " ".join(description.split())
    # each option's help, joined across argparse's wrapped lines
    helps = {m.group(1): " ".join(m.group(2).split())
             for m in re.finditer(r"^  (--[\w-]+)[^\n]*?(?:  +|\n)(.*?)(?=^  -|\Z)", options, re.DOTALL | re.MULTILINE)}
    assert set(helps) == {"--config", "--host", "--port", "--realtime-port", "--workers", "--debug"}
    for option, text in helps.items():
        assert "default" in text, (option, text)
    assert "else 127.0.0.1" in helps["--host"] and "else 8000" in helps["--port"]
    assert "else 8001" in helps["--realtime-port"] and "default: 1" in helps["--workers"]


def _spend_log(tmp_path: Path) -> Path:
    cfg = write_server_config(tmp_path, 1, 2)
    w = SpendLogWriter(tmp_path / "spend.jsonl")
    w.write({"record": "response", "session_id": "sess_rtp_0123456789abcdef0123", "key_name": "user",
             "model": "gpt-realtime", "status": "completed", "start_time": "2026-01-01T00:00:01.000Z",
             "response_id": "resp_1", "usage": {"input_tokens": 12, "output_tokens": 34}, "cost_usd": 0.00123})
    return cfg


def test_logs_for_a_session_with_no_records_says_so_and_exits_1(tmp_path: Path) -> None:
    cfg = _spend_log(tmp_path)
    for extra in ([], ["--json"]):
        out = rtproxy("logs", "--file", "--config", str(cfg), "--session", "nope", *extra)
        assert (out.returncode, out.stdout) == (1, "")
        assert out.stderr == f"rtproxy: no records for session 'nope' in {tmp_path / 'spend.jsonl'}\n"
    out = rtproxy("logs", "--file", "--config", str(cfg), "--session", "sess_rtp_0123", "--key", "admin")
    assert out.returncode == 1
    assert out.stderr.startswith("rtproxy: no records for session 'sess_rtp_0123' and key 'admin' in ")
    (tmp_path / "spend.jsonl").unlink()  # nothing written yet
    out = rtproxy("logs", "--file", "--config", str(cfg))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"rtproxy: no records in {tmp_path / 'spend.jsonl'} (a record is written when")


def test_logs_table_fits_120_columns_with_whole_session_ids_and_json_has_the_rest(tmp_path: Path) -> None:
    cfg = _spend_log(tmp_path)
    w = SpendLogWriter(tmp_path / "spend.jsonl")
    sid = "sess_rtp_fedcba98765432100123"
    base = {"session_id": sid, "key_name": "a-rather-long-key-name", "model": "gpt-realtime-mini-2025-10-06",
            "usage": {"input_tokens": 123456, "output_tokens": 654321}}
    w.write({**base, "record": "transcription", "status": "incomplete", "start_time": "2026-01-01T00:00:02.000Z",
             "transcription_model": "gpt-4o-transcribe", "item_id": "item_0123456789", "cost_usd": 123.456789})
    w.write({**base, "record": "session", "status": "success", "start_time": "2026-01-01T00:00:00.000Z",
             "end_time": "2026-01-01T00:00:09.000Z", "responses": 1, "cost_usd": 123.458019})
    out = rtproxy("logs", "--file", "spend.jsonl", "--config", str(cfg))
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert len(lines) == 4 and max(len(line) for line in lines) <= 120, [len(line) for line in lines]
    header, response, transcription, session = lines
    assert header.split() == ["time", "record", "session", "key", "model", "status", "cost", "(USD)"]
    assert response.split() == ["2026-01-01T00:00:01", "response", "sess_rtp_0123456789abcdef0123", "user",
                                "gpt-realtime", "completed", "$0.001230"]
    assert transcription.split() == ["2026-01-01T00:00:02", "transcription", sid, "a-rather-…", "gpt-realtime-…",
                                     "incomplete", "$123.456789"]
    assert session.startswith("2026-01-01T00:00:09  session ")  # at its end
    # the whole record, cut cells and all, with --json
    rows = [json.loads(line) for line in rtproxy("logs", "--file", "--config", str(cfg), "--session", sid, "--json").stdout
            .splitlines()]
    assert [r["record"] for r in rows] == ["transcription", "session"]
    assert rows[0]["key_name"] == "a-rather-long-key-name" and rows[0]["usage"]["output_tokens"] == 654321


def test_hash_key_warns_on_a_key_the_config_would_refuse_as_too_short(tmp_path: Path) -> None:
    short, enough = "k" * 15, "k" * 16
    out = rtproxy("hash-key", "-", stdin=short + "\n")
    assert out.returncode == 0 and out.stdout == hashlib.sha256(short.encode()).hexdigest() + "\n"
    assert out.stderr.startswith("rtproxy: warning: this key is only 15 characters long: the gateway refuses "
                                 "keys under 16 characters")
    out = rtproxy("hash-key", enough)
    assert (out.returncode, out.stderr) == (0, "")
    # the same limit as the config's
    cfg = write_server_config(tmp_path, 1, 2)
    for key, refused in ((short, True), (enough, False)):
        cfg.write_text(cfg.read_text().replace('key = "env:TEST_USER_KEY"', f'key = "{key}"'))
        out = rtproxy("logs", "--config", str(cfg))
        assert ("keys[0].key: is too short" in out.stderr) == refused, out.stderr
        cfg.write_text(cfg.read_text().replace(f'key = "{key}"', 'key = "env:TEST_USER_KEY"'))


def test_an_unknown_config_key_is_refused_with_the_nearest_known_one(tmp_path: Path) -> None:
    cfg = write_server_config(tmp_path, 1, 2)
    cfg.write_text(cfg.read_text().replace("shutdown_grace_s = 5.0", "max_message_byte = 65536"))
    out = rtproxy("serve", "--config", str(cfg))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"rtproxy: {cfg}: server: unknown key(s) (max_message_byte); did you mean max_message_bytes?\n"


def test_an_auto_key_on_a_public_bind_is_refused_with_what_to_use_instead(tmp_path: Path) -> None:
    cfg = write_server_config(tmp_path, 1, 2)
    cfg.write_text(cfg.read_text().replace('host = "127.0.0.1"', 'host = "0.0.0.0"')
                   .replace('key = "env:TEST_USER_KEY"', 'key = "auto"'))
    out = rtproxy("serve", "--config", str(cfg))  # refused while reading the config: nothing is bound
    assert out.returncode == 2
    assert out.stderr == (f'rtproxy: {cfg}: keys[0].key: "auto" keys are for loopback binds only, not 0.0.0.0: '
                          'use key = "env:NAME" or key_sha256 (see `rtproxy hash-key`), or bind host = "127.0.0.1"\n')


def test_logs_without_a_config_file_says_how_to_name_one(tmp_path: Path) -> None:
    environ = {k: v for k, v in ENV.items() if k != "RTPROXY_CONFIG"}
    out = subprocess.run([RTPROXY, "logs"], capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=60,
                         check=False)
    assert out.returncode == 2
    assert out.stderr == ("rtproxy: config.toml: cannot read: No such file or directory "
                          "(run it from the repository, or pass --config PATH)\n")


async def test_simulate_answers_a_request_that_is_not_a_websocket_handshake_with_a_json_error() -> None:
    proc = await trio.lowlevel.open_process([RTPROXY, "simulate", "--port", "0", "--speech", "off"],
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = b""
        with trio.fail_after(15):
            while b"\n" not in line:
                line += await proc.stdout.receive_some(200)  # type: ignore[union-attr]
        url = re.search(rb"ws://127\.0\.0\.1:(\d+)/v1/realtime", line)
        assert url, line
        port = int(url.group(1))
        async with httpx.AsyncClient() as http:
            plain = await http.get(f"http://127.0.0.1:{port}/v1/realtime")
            old = await http.get(f"http://127.0.0.1:{port}/v1/realtime",
                                 headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                          "Sec-WebSocket-Version": "8"})
        assert plain.status_code == 400 and plain.headers["content-type"] == "application/json"
        error = plain.json()["error"]
        assert error["type"] == "invalid_request_error" and "not a WebSocket handshake" in error["message"]
        assert old.status_code == 426 and old.headers["sec-websocket-version"] == "13"
        assert old.json()["error"]["type"] == "invalid_request_error"
        # a WebSocket client is served as before, on the same port
        async with ws_connect(f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime") as ws:
            events = await text_turn(ws, "still here")
        assert "".join(e.get("delta", "") for e in events if e["type"] == "response.output_text.delta") == \
            "You said: still here"
    finally:
        proc.kill()
        await proc.wait()


def test_simulate_on_a_port_in_use_is_one_line_and_exit_2() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = rtproxy("simulate", "--port", str(port), "--speech", "off")
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1] == (f"rtproxy: port 127.0.0.1:{port} is already in use "
                                           "(pass --port, or 0 for a free one)")
    assert "Traceback" not in out.stderr
