"""Money that cannot leak through odd input (issue #26, item 1): whatever a client sends, every
response is recorded and charged, and the budget cut-off holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from .conftest import ADMIN_KEY, LIMITED_KEY, RunningServer, make_config, start_server
from .helpers import auth_headers, events_until, expect_error_then_close, ws_connect

LONE_SURROGATE = "\ud800"


def _raw(event: dict[str, Any]) -> str:
    # json.dumps escapes the lone surrogate as \ud800: valid JSON, as a client would send it
    return json.dumps(event)


async def _records(srv: RunningServer, kind: str, n: int) -> list[dict[str, Any]]:
    with trio.fail_after(10):
        while True:
            found = [r for r in srv.records() if r["record"] == kind]
            if len(found) >= n:
                return found
            await trio.sleep(0.01)


async def test_a_lone_surrogate_in_a_message_and_a_type_is_recorded_charged_and_cut_off(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    cfg = make_config(tmp_path, keys=[{"name": "limited", "key": LIMITED_KEY, "max_budget_usd": 1e-9},
                                      {"name": "admin", "key": ADMIN_KEY, "role": "admin"}])
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)) as ws:
        await events_until(ws, "session.created")
        await ws.send_message(_raw({"type": "session.update", "session": {"type": "realtime",
                                                                           "output_modalities": ["text"]}}))
        await events_until(ws, "session.updated")
        await ws.send_message(_raw({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": f"say {LONE_SURROGATE} back"}]}}))
        await ws.send_message(_raw({"type": f"nonsense.{LONE_SURROGATE}"}))
        await ws.send_message(_raw({"type": "response.create"}))
        await events_until(ws, "response.done")
        # the response is charged: the key is over its budget and the session is cut off
        await expect_error_then_close(ws, "budget_exceeded", 4429)
    (resp,) = await _records(srv, "response", 1)
    (session,) = await _records(srv, "session", 1)
    assert resp["cost_usd"] > 0 and resp["status"] == "completed"
    # what UTF-8 cannot carry is escaped in the line, and reads back as it came
    assert LONE_SURROGATE in json.dumps(resp["messages"], ensure_ascii=False)
    assert session["responses"] == 1 and session["cost_usd"] == pytest.approx(resp["cost_usd"])
    assert (await srv.gateway.limits.store.spent(["limited"]))["limited"] == pytest.approx(resp["cost_usd"])
    # every line of the log is valid UTF-8 JSON (what jq reads)
    for line in srv.gateway.spend.path.read_bytes().splitlines():
        json.loads(line.decode("utf-8"))
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{srv.http}/health")).json()
        metrics = await http.get(f"{srv.http}/metrics", headers=auth_headers(ADMIN_KEY))
    assert health["spend_log"]["unwritable"] == 0 and health["status"] == "ok"
    assert metrics.status_code == 200


async def test_a_record_that_cannot_be_encoded_is_still_charged_counted_and_reported(
        nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make_config(tmp_path, keys=[{"name": "limited", "key": LIMITED_KEY, "max_budget_usd": 1e-9},
                                      {"name": "admin", "key": ADMIN_KEY, "role": "admin"}])
    srv = await start_server(nursery, cfg)

    def unencodable(record: dict[str, Any]) -> bytes:
        raise ValueError("Circular reference detected")

    monkeypatch.setattr("rtproxy.spend.log.encode_record", unencodable)
    async with ws_connect(srv.ws_url("realtime"), headers=auth_headers(LIMITED_KEY)) as ws:
        await events_until(ws, "session.created")
        await ws.send_message(_raw({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}}))
        await ws.send_message(_raw({"type": "response.create", "response": {"output_modalities": ["text"]}}))
        await events_until(ws, "response.done")
        await expect_error_then_close(ws, "budget_exceeded", 4429)
    assert (await srv.gateway.limits.store.spent(["limited"]))["limited"] > 0
    with trio.fail_after(10):
        while srv.gateway.spend.unwritable < 2:  # the response record and the session record
            await trio.sleep(0.01)
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{srv.http}/health")).json()
        metrics = (await http.get(f"{srv.http}/metrics", headers=auth_headers(ADMIN_KEY))).text
    assert health["status"] == "degraded" and health["spend_log"]["unwritable"] >= 2
    assert "rtproxy_spend_log_unwritable_records_total 2.0" in metrics
