"""The spend log survives operations: rotation by rename and by copytruncate (the real logrotate,
under live traffic), torn lines, short writes, and readers that follow across them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from rtproxy.spend import log as spend_log
from rtproxy.spend.log import LogCursor, SpendLogWriter, iter_records
from rtproxy.spend.query import SpendFilter, appended_since

from .conftest import ADMIN_KEY, USER_KEY, make_config, start_server
from .helpers import auth_headers, text_turn, ws_connect


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in path.read_bytes().splitlines() if raw.strip()]


def test_after_a_rename_the_writer_continues_in_the_file_at_the_path(tmp_path: Path) -> None:
    path, clock = tmp_path / "spend.jsonl", Clock()
    w = SpendLogWriter(path, clock=clock)
    assert w.write({"n": 1})
    path.rename(tmp_path / "spend.jsonl.1")
    assert w.write({"n": 2})  # within the check interval: still the renamed file (a whole line there)
    clock.now += spend_log.ROTATION_CHECK_S
    assert w.write({"n": 3})
    assert [r["n"] for r in lines(tmp_path / "spend.jsonl.1")] == [1, 2]
    assert [r["n"] for r in lines(path)] == [3]
    assert w.reopened == 1 and os.stat(path).st_mode & 0o777 == 0o600


def test_reopen_request_takes_effect_at_once(tmp_path: Path) -> None:
    path = tmp_path / "spend.jsonl"
    w = SpendLogWriter(path, clock=Clock())
    w.write({"n": 1})
    path.rename(tmp_path / "old")
    w.reopen()  # what SIGHUP does
    w.write({"n": 2})
    assert [r["n"] for r in lines(path)] == [2]


def test_a_torn_last_line_never_swallows_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "spend.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2, "cost_usd": 0.1')  # a crash mid-write
    SpendLogWriter(path).write({"n": 3})
    assert path.read_bytes().endswith(b'{"n": 2, "cost_usd": 0.1\n{"n":3}\n')
    assert [r["n"] for _, r in iter_records(path)] == [1, 3]


def test_a_short_write_is_written_again_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "spend.jsonl"
    w = SpendLogWriter(path)
    real_write = os.write
    calls = {"n": 0}

    def short_once(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, data[:10])  # the disk filled up part way
        return real_write(fd, data)

    monkeypatch.setattr(spend_log.os, "write", short_once)
    assert w.write({"n": 1, "pad": "x" * 100}) is False
    assert not w.healthy and w.queued == 1
    w.check()  # room again: the queued record goes out whole, after a newline
    assert w.healthy and w.queued == 0
    assert [r["n"] for _, r in iter_records(path)] == [1]


def test_a_cursor_restarts_in_a_replaced_or_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "spend.jsonl"
    w = SpendLogWriter(path, clock=Clock())
    for n in range(3):
        w.write({"n": n})
    cursor = LogCursor()
    assert [r["n"] for _, r in iter_records(path, cursor=cursor)] == [0, 1, 2]
    path.write_bytes(b"")  # copytruncate
    w.write({"n": 3})
    assert [r["n"] for _, r in iter_records(path, cursor=cursor)] == [3]
    path.rename(tmp_path / "old")
    path.write_bytes(json.dumps({"n": 4}).encode() + b"\n" + json.dumps({"n": 5}).encode() + b"\n")
    assert [r["n"] for _, r in iter_records(path, cursor=cursor)] == [4, 5]
    # /spend/logs?after=&file_id= follows the same way
    page = appended_since(path, SpendFilter(), after=10_000, limit=10, since_file="1:1")
    assert [r["n"] for r in page.records] == [4, 5] and page.file_id != "1:1"


LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"


@pytest.mark.parametrize("mode", ["create", "copytruncate"])
async def test_logrotate_under_live_traffic_loses_no_record(nursery: trio.Nursery, tmp_path: Path, listener: str,
                                                           mode: str) -> None:
    assert os.path.exists(LOGROTATE), "logrotate is missing: `make test` installs it"
    cfg = make_config(tmp_path, keys=[{"name": "user", "key": USER_KEY, "max_budget_usd": 1.0},
                                      {"name": "admin", "key": ADMIN_KEY, "role": "admin"}])
    srv = await start_server(nursery, cfg)
    log = srv.gateway.spend.path
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"{log} {{\n  rotate 5\n  missingok\n  {mode}\n}}\n")
    state = tmp_path / "logrotate.state"
    turns = 0

    async def turn() -> None:
        nonlocal turns
        async with ws_connect(srv.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
            await text_turn(ws)
            turns += 1

    async def traffic() -> None:
        for _ in range(6):
            async with trio.open_nursery() as n:
                for _ in range(3):
                    n.start_soon(turn)

    async with trio.open_nursery() as n:
        n.start_soon(traffic)
        for _ in range(2):
            await trio.sleep(0.15)
            await trio.run_process([LOGROTATE, "-f", "-s", str(state), str(conf)], stdout=subprocess.DEVNULL)
    # the housekeeping notices the last rotation (within ROTATION_CHECK_S): the writer is on the
    # file now at the path (after a copytruncate it never left it)
    with trio.fail_after(spend_log.ROTATION_CHECK_S * 10):
        while srv.gateway.spend.open_file_id not in (None, spend_log.file_id(log)):
            await trio.sleep(0.02)
    async with httpx.AsyncClient(base_url=srv.http) as http:
        await turn()  # lands in the file now at the path
        follow = (await http.get("/spend/logs", params={"record": "response", "limit": 1000},
                                 headers=auth_headers(ADMIN_KEY))).json()
        health = (await http.get("/health")).json()
    files = [log] + sorted(log.parent.glob(log.name + ".*"))
    with trio.fail_after(10):  # the last session's record is written just after its client left
        while sum(r["record"] == "session" for r in lines(log)) < 1 or srv.gateway.sessions:
            await trio.sleep(0.02)
    per_file = [lines(f) for f in files]  # every line of every file parses
    for records in per_file:
        assert len({r["id"] for r in records}) == len(records), "a record twice in one file"
    # a copytruncate may leave a record in both the copy and the new file: one id, counted once
    responses = list({r["id"]: r for records in per_file for r in records if r["record"] == "response"}.values())
    sessions = {r["id"] for records in per_file for r in records if r["record"] == "session"}
    assert turns == 19 and len(responses) == 19 and len(sessions) == 19
    assert follow["data"], "the current file has the newest records"
    assert health["status"] == "ok"
    if mode == "create":
        assert srv.gateway.spend.reopened >= 1
    # the budget saw every response, whichever file it went to
    spent = (await srv.gateway.limits.store.spent(["user"]))["user"]
    assert spent == pytest.approx(sum(r["cost_usd"] for r in responses))
