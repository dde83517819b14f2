"""One scripted session through the collector, every record compared whole with a reviewed golden
copy (`tests/golden/collector_session.json`): a renamed field, a lost counter, a config value not
carried into `proxy_server_request`, all fail here. Regenerate with RTPROXY_GOLDEN=write, then
read the diff before committing it."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from rtproxy.protocols.realtime.collector import Collector
from rtproxy.spend.records import SessionEnd

from .test_collector import Clock, meta

GOLDEN = Path(__file__).parent / "golden" / "collector_session.json"

TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
USAGE_1 = {"total_tokens": 300, "input_tokens": 200, "output_tokens": 100,
           "input_token_details": {"text_tokens": 150, "audio_tokens": 50, "cached_tokens": 64,
                                   "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0}},
           "output_token_details": {"text_tokens": 20, "audio_tokens": 80}}
USAGE_2 = {"total_tokens": 40, "input_tokens": 30, "output_tokens": 10,
           "input_token_details": {"text_tokens": 30, "audio_tokens": 0, "cached_tokens": 0},
           "output_token_details": {"text_tokens": 10, "audio_tokens": 0}}

SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("server", {"type": "session.created", "session": {"id": "sess_up_1", "type": "realtime"}}),
    ("client", {"type": "session.update", "session": {
        "type": "realtime", "instructions": "Be brief.", "output_modalities": ["audio"], "tools": TOOLS,
        "tool_choice": "auto",
        "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 400}},
                  "output": {"voice": "marin"}}}}),
    ("server", {"type": "session.updated", "session": {"type": "realtime", "instructions": "Be brief."}}),
    ("client", {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Weather in Paris?"}]}}),
    ("server", {"type": "conversation.item.input_audio_transcription.completed", "item_id": "item_a",
                "transcript": "and in Rome"}),
    ("client", {"type": "response.create"}),
    ("server", {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}),
    ("server", {"type": "response.output_audio_transcript.delta", "response_id": "resp_1", "delta": "Sunny"}),
    ("server", {"type": "response.done", "response": {
        "id": "resp_1", "status": "completed", "usage": USAGE_1, "output": [
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_audio", "transcript": "Sunny in Paris."}]},
            {"type": "function_call", "name": "get_weather", "call_id": "call_9", "arguments": "{\"city\":\"Rome\"}"}]}}),
    ("client", {"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_9",
                                                            "output": "{\"temp_c\":21}"}}),
    ("client", {"type": "response.create", "response": {"instructions": "Answer with the temperature.",
                                                        "output_modalities": ["text"]}}),
    ("server", {"type": "response.created", "response": {"id": "resp_2"}}),
    ("server", {"type": "response.output_text.delta", "response_id": "resp_2", "delta": "21"}),
    ("server", {"type": "error", "error": {"type": "invalid_request_error", "code": "x_code", "message": "odd"}}),
    ("server", {"type": "response.done", "response": {
        "id": "resp_2", "status": "cancelled", "usage": USAGE_2,
        "status_details": {"type": "cancelled", "reason": "turn_detected"},
        "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "21"}]}]}}),
    ("client", {"type": "made.up.event"}),
    ("client", {"type": "response.create"}),
    ("server", {"type": "response.created", "response": {"id": "resp_3"}}),
    ("server", {"type": "response.output_text.delta", "response_id": "resp_3", "delta": "x" * 40}),
]


def run_script() -> list[dict[str, Any]]:
    ids = (f"rec_{i}" for i in itertools.count())
    c = Collector(meta(), now=Clock(), new_id=lambda: next(ids))
    records: list[dict[str, Any]] = []
    for direction, event in SCRIPT:
        records.extend(c.feed(direction, json.dumps(event).encode()))  # type: ignore[arg-type]
    c.feed("client", b"{not json")
    c.note_audio(2560, 96_000)
    assert c.in_flight == 1
    cancels = c.settle_frames()
    assert [json.loads(f)["response_id"] for f in cancels] == ["resp_3"] and c.settle_frames() == []
    records.extend(c.unsettled())
    records.append(c.finish(SessionEnd("client", 1000, "bye")))
    return records


def test_a_scripted_session_gives_exactly_the_golden_records() -> None:
    records = json.loads(json.dumps(run_script()))
    if os.environ.get("RTPROXY_GOLDEN") == "write":
        GOLDEN.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    assert records == json.loads(GOLDEN.read_text())
