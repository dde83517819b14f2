"""Bounded records: a session config reaches a record only once the provider confirmed it (a
``session.update`` the provider refuses is never recorded), and what a record carries of it is
bounded: instructions and tool definitions cut with a marker, as messages are, any other setting
replaced by a marker past its bound. Sans-IO collectors of both protocols, and one session through
a real gateway whose log stays small."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

from rtproxy.protocols.live import collector as live_module
from rtproxy.protocols.live.collector import LiveCollector
from rtproxy.protocols.realtime import collector as realtime_module
from rtproxy.protocols.realtime.collector import (MAX_PENDING_UPDATES, MAX_RECORD_INSTRUCTIONS_CHARS,
                                                  MAX_RECORD_SETTING_BYTES, MAX_RECORD_TOOLS_BYTES, Collector,
                                                  PendingUpdates)
from rtproxy.spend.records import SessionEnd

from . import test_live_collector
from .conftest import USER_KEY, make_config, start_server
from .helpers import auth_headers, events_until, send_event, user_text, ws_connect
from .test_collector import USAGE, Clock, meta

HUGE = "x" * (MAX_RECORD_INSTRUCTIONS_CHARS * 4)


def feed(c: Collector | LiveCollector, direction: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    return c.feed(direction, json.dumps(event).encode())  # type: ignore[arg-type]


def tools(n: int, description_chars: int = 1000) -> list[dict[str, Any]]:
    return [{"type": "function", "name": f"tool_{i}", "description": "d" * description_chars,
             "parameters": {"type": "object"}} for i in range(n)]


def response(c: Collector, rid: str) -> dict[str, Any]:
    (record,) = feed(c, "server", {"type": "response.done", "response": {"id": rid, "status": "completed",
                                                                         "usage": USAGE}})
    return record


# -- realtime ------------------------------------------------------------------------------------------

def test_a_session_update_the_provider_refuses_never_reaches_a_record() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "session.created", "session": {"id": "sess_up", "instructions": "Default."}})
    feed(c, "client", {"type": "session.update", "event_id": "big", "session": {
        "instructions": HUGE, "tools": tools(500), "audio": {"input": {"transcription": {"model": "refused-asr"}}}}})
    feed(c, "server", {"type": "error", "error": {"type": "invalid_request_error", "code": "missing_required_parameter",
                                                  "message": "session.type", "event_id": "big"}})
    records = [response(c, f"r{i}") for i in range(10)]
    for record in records:
        request = record["proxy_server_request"]
        assert (request["instructions"], request["tools"], request["input_audio_transcription"]) == ("Default.", [],
                                                                                                       None)
    assert len(json.dumps(records)) < 64 * 1024  # ten small records, not ten copies of the refused config
    assert c.finish(SessionEnd("client", 1000))["tools"] is None


def test_an_update_is_recorded_once_confirmed_and_an_error_naming_no_event_drops_the_oldest_pending() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "client", {"type": "session.update", "session": {"tools": tools(1)}})  # refused, named by no id
    feed(c, "client", {"type": "session.update", "event_id": "b", "session": {"instructions": "B"}})
    assert response(c, "r0")["proxy_server_request"]["instructions"] is None  # not yet confirmed
    feed(c, "server", {"type": "error", "error": {"code": "invalid_value", "message": "tools"}})
    feed(c, "server", {"type": "session.updated", "session": {"type": "realtime"}})  # confirms B
    request = response(c, "r1")["proxy_server_request"]
    assert (request["instructions"], request["tools"]) == ("B", [])
    # an error naming another event leaves a pending update alone
    feed(c, "client", {"type": "session.update", "event_id": "c", "session": {"voice": "marin"}})
    feed(c, "server", {"type": "error", "error": {"code": "x", "message": "y", "event_id": "some_item"}})
    feed(c, "server", {"type": "session.updated", "session": {}})
    assert response(c, "r2")["proxy_server_request"]["voice"] == "marin"


def test_confirmed_instructions_and_tools_are_cut_with_a_marker_and_other_settings_replaced_by_one() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "client", {"type": "session.update", "session": {
        "instructions": HUGE, "tools": tools(500), "tool_choice": {"type": "function", "name": "n" * 10_000},
        "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe", "prompt": "p" * 10_000}}}}})
    feed(c, "server", {"type": "session.updated", "session": {}})
    record = response(c, "r0")
    request = record["proxy_server_request"]
    assert request["instructions"] == "x" * MAX_RECORD_INSTRUCTIONS_CHARS + "…[truncated]"
    assert record["messages"][0] == {"role": "system", "content": request["instructions"]}
    *kept, marker = request["tools"]
    assert kept == tools(len(kept)) and len(json.dumps(kept)) <= MAX_RECORD_TOOLS_BYTES
    assert marker["type"] == "truncated" and marker["description"].startswith(f"{500 - len(kept)} more tool")
    assert request["tool_choice"].startswith("…[truncated: ")
    # the transcription keeps its model (its records are priced by it), not its prompt
    assert request["input_audio_transcription"]["model"] == "gpt-4o-transcribe"
    assert len(json.dumps(request["input_audio_transcription"])) < MAX_RECORD_SETTING_BYTES
    # the instructions twice (the request, and the system message when they change), the tools once
    assert len(json.dumps(record)) < 2 * MAX_RECORD_INSTRUCTIONS_CHARS + MAX_RECORD_TOOLS_BYTES + 16 * 1024


def test_what_the_provider_reports_is_bounded_too() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "server", {"type": "session.created", "session": {"id": "s", "instructions": HUGE, "tools": tools(500)}})
    request = response(c, "r0")["proxy_server_request"]
    assert len(request["instructions"]) == MAX_RECORD_INSTRUCTIONS_CHARS + len("…[truncated]")
    assert request["tools"][-1]["name"] == "…[truncated]"


def test_a_response_create_the_provider_refuses_leaves_no_overrides_and_accepted_ones_are_bounded() -> None:
    c = Collector(meta(), now=Clock())
    feed(c, "client", {"type": "response.create", "response": {"instructions": HUGE, "tools": tools(500)}})
    feed(c, "server", {"type": "error", "error": {"code": "invalid_value", "message": "refused"}})
    feed(c, "server", {"type": "response.created", "response": {"id": "vad_1"}})  # the provider's own (server VAD)
    assert "response_overrides" not in response(c, "vad_1")["proxy_server_request"]
    feed(c, "client", {"type": "response.create", "response": {"instructions": HUGE, "tools": tools(500),
                                                               "metadata": {"k": "v" * 10_000}}})
    feed(c, "server", {"type": "response.created", "response": {"id": "r1"}})
    overrides = response(c, "r1")["proxy_server_request"]["response_overrides"]
    assert overrides["instructions"].endswith("…[truncated]") and overrides["tools"][-1]["type"] == "truncated"
    assert overrides["metadata"].startswith("…[truncated: ")


def test_pending_updates_are_paired_by_event_id_else_in_order_and_bounded() -> None:
    pending = PendingUpdates()
    for i in range(MAX_PENDING_UPDATES + 2):
        pending.add(f"e{i}", {"instructions": str(i)})
    assert len(pending) == MAX_PENDING_UPDATES  # the oldest forgotten: never recorded
    assert pending.confirmed("e5") == {"instructions": "5"}
    assert pending.confirmed() == {"instructions": "2"}
    pending.refused("e3")
    pending.refused("not_pending")
    pending.refused(None)  # drops the oldest: e4
    assert pending.confirmed("no_such_id") == {"instructions": "6"}
    assert len(pending) == MAX_PENDING_UPDATES - 5


# -- GPT-Live ------------------------------------------------------------------------------------------

def test_a_live_update_the_provider_refuses_never_reaches_a_record_and_a_confirmed_one_is_bounded() -> None:
    c = LiveCollector(test_live_collector.meta(), now=test_live_collector.Clock())
    feed(c, "client", {"type": "session.start", "event_id": "s1", "session": {"model": "gpt-live-1", "delegation": {
        "type": "responses", "responses": {"model": "gpt-5.6-luna", "instructions": HUGE, "tools": tools(500)}}}})
    assert c.tools is None  # not started yet
    feed(c, "server", {"type": "session.started", "client_event_id": "s1", "session": {"id": "live_1"}})
    feed(c, "client", {"type": "session.update", "event_id": "u1", "session": {"delegation": {"responses": {
        "instructions": "refused", "tools": tools(1)}}}})
    feed(c, "server", {"type": "error", "error": {"code": "invalid_value", "message": "no", "client_event_id": "u1"}})
    records = []
    for i in range(3):
        feed(c, "server", {"type": "response.event", "delegation_id": "d1", "event": {
            "type": "response.created", "response": {"id": f"r{i}"}}})
        records += feed(c, "server", {"type": "response.event", "delegation_id": "d1", "event": {
            "type": "response.completed", "response": {"id": f"r{i}", "model": "gpt-5.6-luna", "usage": {
                "input_tokens": 10, "output_tokens": 2}}}})
    for record in records:
        request = record["proxy_server_request"]
        assert request["instructions"] == "x" * MAX_RECORD_INSTRUCTIONS_CHARS + "…[truncated]"
        assert request["tools"][-1]["type"] == "truncated" and len(request["tools"]) < 500
        assert "refused" not in json.dumps(record)
    session = c.finish(SessionEnd("client", 1000))
    assert session["tools"] == records[0]["proxy_server_request"]["tools"]


def test_a_live_delegation_is_bounded_key_by_key() -> None:
    session = {"instructions": HUGE, "delegation": {
        "type": "responses", "responses": {"model": "m", "tool_choice": "t" * 10_000},
        **{f"k{i}": i for i in range(100)}}}
    recorded = live_module.recorded_session(session)
    assert recorded["instructions"].endswith("…[truncated]")
    assert len(recorded["delegation"]) == realtime_module.MAX_RECORDED_KEYS
    assert recorded["delegation"]["responses"]["tool_choice"].endswith("…[truncated]")
    assert realtime_module.record_setting(None) is None and realtime_module.record_tools("no") is None


# -- through a real gateway ----------------------------------------------------------------------------

async def test_a_huge_session_update_the_provider_refuses_leaves_the_log_small(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, make_config(tmp_path))
    huge = 4 * 1024 * 1024
    async with ws_connect(srv.ws_url("realtime"), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        # no session.type: the (GA) provider refuses it
        await send_event(ws, {"type": "session.update", "event_id": "big", "session": {
            "instructions": "i" * huge, "tools": tools(2000)}})
        (refusal,) = await events_until(ws, "error")
        assert refusal["error"]["event_id"] == "big"
        for i in range(5):  # no session.updated comes to replace it: only responses
            await send_event(ws, user_text(f"turn {i}"))
            await send_event(ws, {"type": "response.create", "response": {"output_modalities": ["text"]}})
            await events_until(ws, "response.done")
    with trio.fail_after(10):
        while not any(r["record"] == "session" for r in srv.records()):
            await trio.sleep(0.02)
    records = srv.records()
    assert [r["record"] for r in records] == ["response"] * 5 + ["session"]
    assert all(r["proxy_server_request"]["tools"] == [] for r in records[:5])
    log = Path(srv.gateway.spend.path).read_text()
    assert len(log) < 64 * 1024 and "iiii" not in log and "tool_1" not in log
    srv.stop.set()
