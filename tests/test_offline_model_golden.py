"""The offline model's whole event stream for scripted conversations (GA and beta), compared with
reviewed golden copies in `tests/golden/`: every event it sends, every field. Session ids and
times are normalised and audio payloads replaced by their length and digest. Regenerate with
RTPROXY_GOLDEN=write, then read the diff before committing it."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from .audio_fixtures import append_events, silence, utterance
from .test_offline_model import TOOLS, Driver, user_message

GOLDEN = Path(__file__).parent / "golden"


def script(d: Driver, beta: bool) -> None:
    if beta:
        d.send({"type": "session.update", "session": {"modalities": ["text", "audio"], "instructions": "Be brief.",
                                                      "voice": "alloy", "tools": TOOLS,
                                                      "input_audio_transcription": {"model": "whisper-1"},
                                                      "turn_detection": {"type": "server_vad"}}})
    else:
        d.send({"type": "session.update", "session": {
            "type": "realtime", "instructions": "Be brief.", "output_modalities": ["audio"], "tools": TOOLS,
            "audio": {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"},
                                "turn_detection": {"type": "server_vad", "silence_duration_ms": 400}},
                      "output": {"voice": "marin"}}}})
    d.send(user_message("Hello there"))
    d.send({"type": "response.create", "response": {"metadata": {"k": "v"}}})
    d.drain()
    d.send(user_message("What is the weather in Paris? use get_weather"))
    d.send({"type": "response.create"})
    d.drain()
    call = next(e for e in reversed(d.sent) if e["type"] == "response.done")["response"]["output"][-1]
    d.send({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": call.get("call_id"),
                                                        "output": "{\"temp_c\": 18}"}})
    d.send({"type": "response.create"})
    d.drain()
    for event in append_events(silence(300) + utterance() + silence(900)):  # server VAD: a voice turn
        d.send(event)
    d.drain()
    d.send({"type": "response.create"})
    d.send({"type": "response.cancel"})
    d.send({"type": "response.cancel"})  # nothing to cancel now: an error
    d.send({"type": "conversation.item.create", "item": {"type": "nope"}})
    d.send({"type": "made.up"})


def normalised(events: list[dict[str, Any]], d: Driver) -> Any:
    text = json.dumps(events, sort_keys=True)
    text = text.replace(d.model.session_id, "sess_ID").replace(d.model.session_id[5:13], "SESSIONHEX")
    text = text.replace(d.model.conversation_id, "conv_ID")
    text = re.sub(r'"expires_at": \d+', '"expires_at": 0', text)
    text = re.sub(r'"event_id": "event_[0-9a-f]+"', '"event_id": "event_X"', text)
    out = json.loads(text)
    for e in out:
        for field in ("delta", "audio"):
            v = e.get(field)
            if isinstance(v, str) and len(v) > 200:
                e[field] = f"<{len(v)} chars sha256:{hashlib.sha256(v.encode()).hexdigest()[:16]}>"
    return out


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_a_scripted_conversation_gives_exactly_the_golden_events(dialect: str) -> None:
    d = Driver(dialect)
    script(d, dialect == "beta")
    got = normalised(d.sent, d)
    path = GOLDEN / f"offline_model_{dialect}.json"
    if os.environ.get("RTPROXY_GOLDEN") == "write":
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text())
