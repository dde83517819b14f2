"""The offline model's Gemini Live front-end, frame for frame, for scripted sessions compared with
a reviewed golden copy (`tests/golden/offline_gemini.json`): every frame it sends, every field.
Resumption handles and the session's part of call ids are normalised, audio payloads replaced by
their length and digest. Regenerate with RTPROXY_GOLDEN=write, then read the diff before
committing it."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtproxy.offline.gemini import ResumableSessions

from .audio_fixtures import utterance
from .test_offline_gemini import MODEL, WEATHER, GeminiDriver, pcm16k

GOLDEN = Path(__file__).parent / "golden" / "offline_gemini.json"
Scenario = Callable[[ResumableSessions], list[GeminiDriver]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


@scenario
def text_and_a_tool_from_a_snake_case_client(sessions: ResumableSessions) -> list[GeminiDriver]:
    d = GeminiDriver(sessions=sessions)
    d.send({"setup": {"model": MODEL, "generation_config": {"response_modalities": ["TEXT"]},
                      "system_instruction": {"parts": [{"text": "Be brief."}], "role": "user"},
                      "tools": [{"function_declarations": WEATHER[0]["functionDeclarations"]}]}})
    d.send({"client_content": {"turns": [{"role": "user", "parts": [{"text": "Hello there"}]}], "turnComplete": True}})
    d.drain()
    d.send({"realtime_input": {"text": "What is the weather in Paris?"}})
    d.drain()
    call_id = d.model.pending_call_id
    d.send({"tool_response": {"functionResponses": [{"id": call_id, "name": "get_weather",
                                                     "response": {"temp_c": 18}}]}})
    d.drain()
    d.send({"realtime_input": {"text": "And in Rome? get_weather"}})
    d.drain()
    d.send({"realtime_input": {"text": "Never mind."}})  # cancels the pending call
    d.drain()
    return [d]


@scenario
def a_spoken_conversation_with_barge_in(sessions: ResumableSessions) -> list[GeminiDriver]:
    d = GeminiDriver(sessions=sessions)
    d.send({"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["AUDIO"]},
                      "inputAudioTranscription": {}, "outputAudioTranscription": {}}})
    d.speak(pcm16k(utterance()))
    d.drain()
    d.send({"realtimeInput": {"text": "Tell me a joke"}})
    for _ in range(3):
        d.take(d.model.next_chunk())
    d.speak(pcm16k(utterance(speech_ms=600)), snake=False)  # barge-in
    d.drain()
    return [d]


@scenario
def manual_activity_then_a_resumed_connection(sessions: ResumableSessions) -> list[GeminiDriver]:
    first = GeminiDriver(sessions=sessions, connection_limit_s=20)
    first.send({"setup": {"model": MODEL, "realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}},
                          "sessionResumption": {}, "outputAudioTranscription": {}}})
    first.send({"realtimeInput": {"activityStart": {}}})
    first.speak(pcm16k(utterance(speech_ms=400, tail_ms=100)))
    first.send({"realtimeInput": {"activityEnd": {}}})
    first.drain()
    handle = first.model.sessions.find
    first.take(first.model.go_away())
    first.take(first.model.expire())
    (update,) = [f for f in first.sent if "sessionResumptionUpdate" in f][-1:]
    assert handle(update["sessionResumptionUpdate"]["newHandle"]) is not None
    second = GeminiDriver(sessions=sessions)
    second.send({"setup": {"model": MODEL, "sessionResumption": {"handle": update["sessionResumptionUpdate"]["newHandle"]},
                           "generationConfig": {"responseModalities": ["TEXT"]}}})
    second.send({"realtimeInput": {"text": "Hello again"}})
    second.drain()
    second.send({"setup": {"model": MODEL}})  # a second setup: closed
    unknown = GeminiDriver(sessions=sessions)
    unknown.send({"setup": {"model": MODEL, "sessionResumption": {"handle": "forgotten"}}})
    return [first, second, unknown]


def normalised(drivers: list[GeminiDriver]) -> list[dict[str, Any]]:
    connections = [{"sent": d.sent, "closing": list(d.model.closing) if d.model.closing else None} for d in drivers]
    text = json.dumps(connections, sort_keys=True)
    for d in drivers:
        text = text.replace(d.model.session_id[7:15], "SESSIONHEX")
    handles: dict[str, str] = {}
    text = re.sub(r'"newHandle": "([^"]+)"',
                  lambda m: f'"newHandle": "{handles.setdefault(m.group(1), f"HANDLE_{len(handles) + 1}")}"', text)
    out = json.loads(text)
    for connection in out:
        for frame in connection["sent"]:
            for part in frame.get("serverContent", {}).get("modelTurn", {}).get("parts", []):
                if "inlineData" in part:
                    data = part["inlineData"]["data"]
                    part["inlineData"]["data"] = f"<{len(data)} chars sha256:{hashlib.sha256(data.encode()).hexdigest()[:16]}>"
    return out


def test_scripted_sessions_give_exactly_the_golden_frames() -> None:
    got = {name: normalised(run(ResumableSessions())) for name, run in SCENARIOS.items()}
    if os.environ.get("RTPROXY_GOLDEN") == "write":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(GOLDEN.read_text())
