"""One scripted GPT-Live session through its collector, every record compared whole with a
reviewed golden copy (`tests/golden/live_collector_session.json`): seconds checkpoints, delegated
responses with a tool call, client delegations, appends, transcript turns and the session
record. Regenerate with RTPROXY_GOLDEN=write, then read the diff before committing it."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from rtproxy.protocols.live.collector import LiveCollector
from rtproxy.spend.records import SessionEnd

from .test_live_collector import Clock, meta

GOLDEN = Path(__file__).parent / "golden" / "live_collector_session.json"
TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
         {"type": "mcp", "server_label": "docs", "server_url": "https://m.example/x?token=t", "authorization": "B t"}]


def wrap(inner: dict[str, Any], delegation_id: str | None = "d_1") -> dict[str, Any]:
    return {"type": "response.event", "event_id": f"e_{inner['type']}", "delegation_id": delegation_id, "event": inner}


def fragment(kind: str, eid: str, delta: str, start: int, end: int) -> dict[str, Any]:
    return {"type": f"session.{kind}_transcript.delta", "event_id": eid, "delta": delta, "start_ms": start,
            "end_ms": end}


SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("client", {"type": "session.start", "session": {"model": "gpt-live-1", "instructions": "Be brief.", "delegation": {
        "type": "responses", "responses": {"model": "gpt-5.6-luna", "tools": TOOLS, "tool_choice": "auto",
                                           "instructions": "Use tools."}}}}),
    ("server", {"type": "session.started", "event_id": "e0", "session": {"id": "live_up_1", "model": "gpt-live-1"}}),
    ("server", fragment("input", "f1", "What's the", 100, 400)),
    ("server", fragment("input", "f1", "What's the", 100, 400)),  # a repeat: skipped
    ("server", fragment("input", "f2", " weather?", 400, 700)),
    ("server", {"type": "session.delegation.created", "event_id": "e1", "offset_ms": 700, "delegation": {
        "id": "d_1", "type": "delegation", "target": "responses", "response_id": "resp_1"}}),
    ("server", wrap({"type": "response.created", "response": {"id": "resp_1"}})),
    ("server", wrap({"type": "response.output_item.done", "item": {
        "type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}})),
    ("server", wrap({"type": "response.completed", "response": {
        "id": "resp_1", "model": "gpt-5.6-luna", "status": "completed",
        "usage": {"input_tokens": 600, "input_tokens_details": {"cached_tokens": 100}, "output_tokens": 20}}})),
    ("server", {"type": "session.usage.updated", "event_id": "u1", "usage": {"seconds": 5}}),
    ("client", {"type": "response.item.create", "item": {"type": "function_call_output", "call_id": "call_1",
                                                        "output": "{\"temp_c\":18}"}}),
    ("client", {"type": "response.create"}),
    ("server", wrap({"type": "response.created", "response": {"id": "resp_2"}})),
    ("server", wrap({"type": "response.output_text.delta", "delta": "It is 18 degrees."})),
    ("server", wrap({"type": "response.incomplete", "response": {
        "id": "resp_2", "model": "gpt-5.6-luna", "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "usage": {"input_tokens": 650, "input_tokens_details": {"cached_tokens": 600}, "output_tokens": 8}}})),
    ("server", fragment("output", "f3", "It's 18", 1500, 1900)),
    ("server", fragment("output", "f4", " degrees.", 1900, 2300)),
    ("client", {"type": "session.commentary.append", "delegation_id": None, "content": "Mention the wind."}),
    ("client", {"type": "session.update", "session": {"delegation": {"type": "responses", "responses": {
        "model": "gpt-5.6-luna", "tools": TOOLS[:1]}}}}),
    ("server", {"type": "session.updated", "event_id": "e1u", "session": {"id": "live_up_1", "model": "gpt-live-1"}}),
    ("server", {"type": "session.delegation.created", "event_id": "e2", "offset_ms": 9000, "delegation": {
        "id": "d_2", "type": "delegation", "target": "client"}}),
    ("client", {"type": "session.thinking.append", "delegation_id": "d_2", "content": "Windy, 20 km/h."}),
    ("server", {"type": "decision.event", "event_id": "e3", "event": {"type": "decision.completed", "decision": {
        "answers": [{"id": "q", "value": "yes"}], "model": "gpt-5.6-luna", "usage": {"input_tokens": 40,
                                                                                   "output_tokens": 2}}}}),
    ("server", {"type": "session.usage.updated", "event_id": "u2", "usage": {"seconds": 12, "active_seconds": 10,
                                                                            "paused_seconds": 2}}),
    ("server", {"type": "error", "event_id": "e4", "error": {"code": "x", "message": "odd", "type": "invalid_request_error"}}),
    ("server", {"type": "session.closed", "event_id": "e5", "reason": "close_requested",
                "session": {"id": "live_up_1"}, "usage": {"seconds": 14, "active_seconds": 11, "paused_seconds": 3}}),
    ("client", {"type": "made.up"}),
]


def run_script() -> list[dict[str, Any]]:
    ids = (f"rec_{i}" for i in itertools.count())
    c = LiveCollector(meta(), now=Clock(), new_id=lambda: next(ids))
    records: list[dict[str, Any]] = []
    for direction, event in SCRIPT:
        records.extend(c.feed(direction, json.dumps(event).encode()))  # type: ignore[arg-type]
        if event["type"] == "session.started":
            assert c.in_flight == 1
    c.feed("server", b"{not json")
    c.feed("server", b'{"type":"session.output_audio.delta","delta":"AAAA"}')
    assert c.in_flight == 0 and c.settle_frames() == [] and c.unsettled() == []
    records.append(c.finish(SessionEnd("client", 1000, "bye")))
    return records


def test_a_scripted_live_session_gives_exactly_the_golden_records() -> None:
    records = json.loads(json.dumps(run_script()))
    if os.environ.get("RTPROXY_GOLDEN") == "write":
        GOLDEN.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    assert records == json.loads(GOLDEN.read_text())
